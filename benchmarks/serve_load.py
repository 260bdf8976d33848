"""Load test for `emovox serve` (issue 11): N concurrent clients on loopback posting 3-4 s clips.

    python benchmarks/serve_load.py --clients 50 --seconds 60
    python benchmarks/serve_load.py --clients 200 --seconds 60
    python benchmarks/serve_load.py --url http://127.0.0.1:8000 --clients 50   # a server already running

Without ``--url`` it starts ``emovox serve`` (default settings, the bundled model, ``--backend``)
on a free port. Each client posts RAVDESS clips of 3-4 s from the bundled examples in a loop;
a 503 is a deliberate refusal (its Retry-After is checked, the client waits that long), any
other non-200 or a dropped connection is an error. Reports requests/s, p50/p95/p99 latency of
the 200s, and counts by outcome, then the same predictions run in one process without a
server (``Recognizer.predict`` on ``--threads`` threads, one thread each) for comparison.
Writes ``benchmarks/results/serve_load_<clients>.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))


def clips() -> list[bytes]:
    import soundfile as sf

    from emovox.cli import EXAMPLES

    out = [p.read_bytes() for p in sorted(EXAMPLES.glob("*.flac")) if 3.0 <= sf.info(str(p)).duration <= 4.0]
    return out or [p.read_bytes() for p in sorted(EXAMPLES.glob("*.flac"))]


async def client(http, url: str, data: list[bytes], stop: float, i: int, log: list) -> None:
    k = i
    while time.monotonic() < stop:
        body = data[k % len(data)]
        k += 1
        start = time.monotonic()
        try:
            r = await http.post(url + "/v1/predict", content=body, headers={"Content-Type": "audio/flac"})
            status = r.status_code
            retry = r.headers.get("retry-after")
        except Exception as err:  # a dropped connection or a client-side timeout
            status, retry = type(err).__name__, None
        log.append((status, time.monotonic() - start, retry))
        if status == 503:
            await asyncio.sleep(float(retry) if retry else 1.0)


async def load(url: str, n_clients: int, seconds: float) -> dict:
    import httpx

    data = clips()
    log: list = []
    limits = httpx.Limits(max_connections=n_clients, max_keepalive_connections=n_clients)
    async with httpx.AsyncClient(timeout=120, limits=limits) as http:
        start = time.monotonic()
        await asyncio.gather(*(client(http, url, data, start + seconds, i, log) for i in range(n_clients)))
        wall = time.monotonic() - start
    ok = np.array([t for s, t, _ in log if s == 200])
    outcomes = Counter(str(s) for s, _, _ in log)
    return {
        "clients": n_clients, "seconds": round(wall, 1), "requests": len(log), "ok": int(len(ok)),
        "requests_per_s": round(len(ok) / wall, 2),
        "latency_ms": {q: round(float(np.percentile(ok, p)) * 1000, 1) if len(ok) else None
                       for q, p in (("p50", 50), ("p95", 95), ("p99", 99))},
        "outcomes": dict(outcomes),
        "busy_without_retry_after": sum(1 for s, _, r in log if s == 503 and not r),
        "errors": sum(n for s, n in outcomes.items() if s not in ("200", "503")),
    }


def in_process(backend: str, threads: int, seconds: float) -> dict:
    """The same predictions without a server: ``threads`` threads, one torch/onnx thread each."""
    from emovox import Recognizer

    rec = Recognizer.load(backend=backend, threads=1)
    data = clips()
    rec.predict(data[0])  # warm-up
    stop = time.monotonic() + seconds
    counts = [0] * threads

    def run(i: int) -> None:
        k = i
        while time.monotonic() < stop:
            rec.predict(data[k % len(data)])
            k += 1
            counts[i] += 1

    start = time.monotonic()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(run, range(threads)))
    return {"threads": threads, "predictions_per_s": round(sum(counts) / (time.monotonic() - start), 2)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--url", help="a running server (default: start one)")
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--backend", choices=["torch", "onnx"], default="torch")
    ap.add_argument("--baseline-seconds", type=float, default=20, help="0: skip the in-process comparison")
    ap.add_argument("--out", help="JSON results (default benchmarks/results/serve_load_<clients>.json)")
    args = ap.parse_args()
    from emovox.serve.settings import Settings, cpu_count

    if args.url:
        result = asyncio.run(load(args.url.rstrip("/"), args.clients, args.seconds))
    else:
        from serve_util import running_server

        with running_server("--backend", args.backend) as url:
            result = asyncio.run(load(url, args.clients, args.seconds))
    defaults = Settings(backend=args.backend)
    if args.baseline_seconds > 0:
        result["in_process"] = in_process(args.backend, defaults.concurrent, args.baseline_seconds)
        result["throughput_vs_in_process"] = round(result["requests_per_s"] / result["in_process"]["predictions_per_s"], 3)
    result["machine"] = {"cpu": platform.processor() or platform.machine(), "cpus": cpu_count(),
                         "backend": args.backend, "server": "default settings" if not args.url else args.url}
    print(json.dumps(result, indent=2))
    out = Path(args.out or ROOT / "benchmarks" / "results" / f"serve_load_{args.clients}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    sys.exit(main())
