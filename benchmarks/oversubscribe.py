"""Issue 14 goal 1, "never oversubscribe": 1, 2 and 4 `emovox predict` processes side by side.

    python benchmarks/oversubscribe.py                 # → benchmarks/results/oversubscribe.json
    python benchmarks/oversubscribe.py --quick --out /tmp/o.json   # a smoke test (seconds)

Each process is a whole `emovox predict` (bundled model) on the same 40 RAVDESS speech clips
(every 36th of the 1440, sorted by name), listed ``--repeat`` times so that the model's work
outweighs the process start (torch's start alone is several seconds). Two settings:

- ``emovox``: the defaults, no flag and no thread variable: 1 thread per inference, batches on
  as many workers as the process may use cores, OMP_WAIT_POLICY=PASSIVE, onnxruntime not spinning
  (src/emovox/threads.py).
- ``runtime``: what the runtime does by itself: ``--threads T`` with T = torch's own default
  thread count in a fresh process (the physical cores; onnxruntime's default is the same count),
  one batch at a time, and GNU OpenMP's default spinning restored (``GOMP_SPINCOUNT=300000``,
  which libgomp honours over the PASSIVE policy emovox sets). onnxruntime's spinning stays off in
  both: emovox no longer offers a way to turn it on.

Reported per backend (onnx, torch), setting and number of processes N:
- ``throughput``: N × clips / seconds from the first start to the last exit (what a user sees,
  process starts included), and ``steady_throughput``: the sum of each process's rate after its
  first batch (rows of its JSON Lines output timed as they arrive: starts excluded);
- each process's wall time and steady rate.

The goal: with the defaults, the total throughput of 2 and 4 processes never falls below that of
one process (``goal_met``). The figures are only as quiet as the machine: the load average
before the run is recorded beside them, with the CPU model and its vector extensions.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "oversubscribe.json"
RAVDESS = ROOT.parent / "shared" / "data" / "ravdess" / "Audio_Speech_Actors_01-24"
GOAL = "total throughput of 2 and 4 processes side by side never falls below one process's (default settings)"
BATCH = 16  # emovox predict's default --batch-size


def cpu_info() -> dict:
    """CPU model and the vector extensions the figures depend on (/proc/cpuinfo)."""
    model, flags = None, set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and model is None:
                model = value.strip()
            elif key.strip() == "flags" and not flags:
                flags = set(value.split())
    except OSError:  # not Linux
        pass
    model = model or platform.processor() or platform.machine()
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count()
    return {"model": model, "avx2": "avx2" in flags, "avx512f": "avx512f" in flags,
            "amx": sorted(f for f in flags if f.startswith("amx")), "cores_usable": cores,
            "cpu_count": os.cpu_count(), "machine": platform.machine()}


def clean_env() -> dict:
    """The caller's environment without anything that sets threads: defaults are defaults."""
    drop = {"OMP_NUM_THREADS", "OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"}
    env = {k: v for k, v in os.environ.items() if k not in drop and not k.startswith("EMOVOX_")}
    src = str(ROOT / "src")
    env["PYTHONPATH"] = src + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def torch_default_threads() -> int:
    out = subprocess.run([sys.executable, "-c", "import torch; print(torch.get_num_threads())"], env=clean_env(),
                         capture_output=True, text=True, check=True).stdout
    return int(out.strip())


def pick_clips(n: int) -> list[str]:
    files = sorted(RAVDESS.glob("Actor_*/*.flac"))
    if not files:
        raise SystemExit(f"no RAVDESS speech clips under {RAVDESS}")
    step = max(1, len(files) // n)
    return [str(f) for f in files[::step][:n]]


def run_side_by_side(n_procs: int, clips: list[str], backend: str, args: list[str], env: dict) -> dict:
    """Start ``n_procs`` `emovox predict` processes at once; time each and each of its rows."""
    cmd = [sys.executable, "-m", "emovox.cli", "predict", *clips, "--backend", backend, "--format", "jsonl", "-q",
           *args]
    procs, rows, starts, ends = [], [], [], []

    def read(i: int, proc) -> None:
        for line in proc.stdout:
            if line.startswith("{"):
                rows[i].append(time.perf_counter())
        proc.wait()
        ends[i] = time.perf_counter()

    readers = []
    for i in range(n_procs):
        rows.append([])
        ends.append(None)
        starts.append(time.perf_counter())
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        procs.append(proc)
        readers.append(threading.Thread(target=read, args=(i, proc), daemon=True))
        readers[-1].start()
    for t in readers:
        t.join()
    per = []
    for i, proc in enumerate(procs):
        if proc.returncode != 0 or len(rows[i]) != len(clips):
            raise RuntimeError(f"`{' '.join(cmd[:6])} ...` exited {proc.returncode} with {len(rows[i])} of "
                               f"{len(clips)} rows:\n{proc.stderr.read()[-2000:]}")
        t = rows[i]
        # the first batches (one per worker: up to one per core) arrive together, after the start;
        # too few rows after them: no steady rate
        m = BATCH * cpu_info()["cores_usable"]
        steady = (len(t) - m) / (t[-1] - t[m - 1]) if len(t) >= 2 * m and t[-1] > t[m - 1] else None
        per.append({"wall_s": round(ends[i] - starts[i], 3), "first_row_s": round(t[0] - starts[i], 3),
                    "steady_clips_per_s": round(steady, 2) if steady else None})
    span = max(ends) - min(starts)
    steady = [p["steady_clips_per_s"] for p in per]
    return {"processes": n_procs, "span_s": round(span, 3),
            "throughput": round(n_procs * len(clips) / span, 2),
            "steady_throughput": round(sum(steady), 2) if all(steady) else None, "per_process": per}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--clips", type=int, default=40, help="distinct RAVDESS clips per process")
    ap.add_argument("--repeat", type=int, default=5, help="times each process goes through them")
    ap.add_argument("--procs", default="1,2,4", help="numbers of processes side by side")
    ap.add_argument("--backends", default="onnx,torch")
    ap.add_argument("--settings", default="emovox,runtime")
    ap.add_argument("--quick", action="store_true", help="smoke test: 8 clips once, 1 and 2 processes, onnx")
    ap.add_argument("--out", default=str(OUT))
    opts = ap.parse_args()
    if opts.quick:
        opts.clips, opts.repeat, opts.procs, opts.backends = 8, 1, "1,2", "onnx"
    procs = [int(p) for p in opts.procs.split(",")]
    clips = pick_clips(opts.clips) * opts.repeat
    runtime_threads = torch_default_threads()
    env = clean_env()
    settings = {
        "emovox": ([], env),
        "runtime": (["--threads", str(runtime_threads)], {**env, "GOMP_SPINCOUNT": "300000"}),
    }
    res = {"goal": GOAL, "cpu": cpu_info(), "loadavg_before": os.getloadavg(),
           "clips_per_process": len(clips), "distinct_clips": opts.clips, "model": "bundled",
           "runtime_default_threads": runtime_threads,
           "settings": {"emovox": "no flag, no thread variable (1 thread per inference, workers fill the cores, "
                                  "OMP_WAIT_POLICY=PASSIVE, onnxruntime not spinning)",
                        "runtime": f"--threads {runtime_threads} (torch's own default here), one batch at a time, "
                                   "GOMP_SPINCOUNT=300000 (libgomp's default spinning)"},
           "python": platform.python_version(), "results": {}}
    subprocess.run([sys.executable, "-m", "emovox.cli", "predict", clips[0], "-q"], env=env,
                   capture_output=True)  # warm the file cache: the first start reads torch from disk
    for backend in opts.backends.split(","):
        for name in opts.settings.split(","):
            args, run_env = settings[name]
            rows = []
            for n in procs:
                r = run_side_by_side(n, clips, backend, args, run_env)
                rows.append(r)
                print(f"{backend:5} {name:8} {n} process(es): {r['throughput']:7.2f} clips/s "
                      f"(steady {r['steady_throughput']}), per process "
                      f"{', '.join(str(p['wall_s']) for p in r['per_process'])} s", flush=True)
            one = rows[0]["throughput"] if rows[0]["processes"] == 1 else None
            for r in rows:
                r["vs_one_process"] = round(r["throughput"] / one, 3) if one else None
            res["results"].setdefault(backend, {})[name] = rows
        default = res["results"][backend].get("emovox")
        if default and default[0]["processes"] == 1:
            res["results"][backend]["goal_met"] = all(r["throughput"] >= default[0]["throughput"] for r in default)
    res["loadavg_after"] = os.getloadavg()
    out = Path(opts.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=2) + "\n")
    print(f"wrote {out} ({res['cpu']['model']}, avx2 {res['cpu']['avx2']}, avx512f {res['cpu']['avx512f']}, "
          f"amx {res['cpu']['amx'] or 'no'}; load average before {res['loadavg_before'][0]:.2f})")


if __name__ == "__main__":
    main()
