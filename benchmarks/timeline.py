"""Issue 5 figures: timeline speed, memory on an hour of audio, streaming = offline.

    python benchmarks/timeline.py            # → benchmarks/results/timeline.json
    python benchmarks/timeline.py --quick    # 1-minute / 5-minute recordings, for a smoke test
    python benchmarks/timeline.py --speed-only --out F.json [--also-onnx OLD.onnx]   # speed alone,
        another machine's file; --also-onnx times another ONNX file of the same model beside them

Recordings are built from RAVDESS speech clips (actors 01-24, round robin) separated by
0.3-2.5 s of silence with faint noise, written as 16 kHz FLAC, seed 0:
- speed: a 10-minute recording, `Recognizer.timeline` on ONE thread (torch and ONNX backends);
  real-time factor = processing seconds / audio seconds. Goal: <= 0.01.
- memory: a 60-minute recording, the timeline in a fresh process; peak resident memory
  (ru_maxrss) against the same process that only loads the model. The hour decoded into one
  float32 array would be 230 MB.
- agreement: the 10-minute recording as the offline timeline (10 s decoding blocks) and as a
  live stream (0.25 s blocks, as a microphone delivers them): share of cells with the same
  label and largest probability difference.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "timeline.json"


def build_recording(path: Path, minutes: float, seed: int = 0, actor: str | None = None) -> float:
    """Write a FLAC of RAVDESS clips with pauses, block by block (flat memory). Returns seconds.
    With ``actor``: that actor's strong-intensity clips only, one voice like a real recording."""
    from emovox import audio
    from emovox.corpora import open_corpus

    utts = open_corpus("ravdess").utterances()
    if actor is not None:
        utts = [u for u in utts if u.speaker == actor and u.field("intensity") in ("02", "strong")]
        if not utts:
            raise ValueError(f"no strong-intensity clips of actor {actor}")
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(utts))
    target = int(minutes * 60 * 16000)
    written = 0
    with sf.SoundFile(path, "w", 16000, 1, format="FLAC", subtype="PCM_16") as f:
        i = 0
        while written < target:
            clip = audio.load(utts[order[i % len(order)]].path)
            gap = (rng.standard_normal(int(rng.uniform(0.3, 2.5) * 16000)) * 3e-4).astype(np.float32)
            block = np.concatenate([clip, gap])[: target - written]
            f.write(block)
            written += len(block)
            i += 1
    return written / 16000


def speed_and_agreement(path: Path, seconds: float, also_onnx: Path | None = None) -> dict:
    from emovox.inference import Recognizer
    from emovox.live_input import file_blocks

    out = {}
    for backend in ("torch", "onnx", *(["onnx_file"] if also_onnx else [])):
        rec = Recognizer.load(also_onnx, threads=1) if backend == "onnx_file" else Recognizer.load(backend=backend, threads=1)
        rec.timeline(path, block_seconds=10.0)  # warm-up (first-call allocations)
        t0 = time.perf_counter()
        offline = rec.timeline(path)
        dt = time.perf_counter() - t0
        out[f"rtf_{backend}"] = dt / seconds
        print(f"{backend}: {seconds / 60:.1f} min of audio in {dt:.1f} s: RTF {dt / seconds:.4f}")
        if backend == "torch":
            engine = rec.stream()
            for block in file_blocks(path, block_seconds=0.25, realtime=False):
                engine.push(block)
            live = engine.finish()
            same = np.mean([a == b for a, b in zip(live.cell_labels, offline.cell_labels)])
            both = ~np.isnan(live.probabilities).any(1) & ~np.isnan(offline.probabilities).any(1)
            diff = float(np.abs(live.probabilities[both] - offline.probabilities[both]).max()) if both.any() else 0.0
            out.update({"agreement_cells": float(same), "agreement_max_prob_diff": diff,
                        "cells": len(offline.cell_labels), "segments": len(offline.segments),
                        "speech_share": float(np.mean([lab != "silence" for lab in offline.cell_labels]))})
            print(f"streaming (0.25 s blocks) vs offline: {100 * same:.2f} % of {len(live.cell_labels)} cells agree, "
                  f"max prob diff {diff:.1e}")
    return out


MEMORY_CHILD = """
import resource, sys, numpy as np
from emovox.inference import Recognizer
rec = Recognizer.load(backend="onnx", threads=1)
rec.predict(np.zeros(16000 * 3, np.float32), 16000)
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
if sys.argv[1] != "-":
    tl = rec.timeline(sys.argv[1])
    assert tl.duration > 0
print(base, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def peak_memory(path: Path | None) -> tuple[float, float]:
    """(peak MB after loading the model, peak MB after the timeline) in a fresh process."""
    res = subprocess.run([sys.executable, "-c", MEMORY_CHILD, str(path) if path else "-"],
                         capture_output=True, text=True, check=True)
    base, peak = map(int, res.stdout.split())
    return base / 1024, peak / 1024


def memory(minutes: float) -> dict:
    """Peak memory of a timeline over a ``minutes``-long file, in a fresh process."""
    with tempfile.TemporaryDirectory() as tmp:
        hour = Path(tmp) / "hour.flac"
        hour_s = build_recording(hour, minutes, seed=1)
        _, model_only = peak_memory(None)
        t0 = time.perf_counter()
        _, peak = peak_memory(hour)
    res = {"memory_minutes": minutes, "memory_audio_seconds": hour_s,
           "peak_rss_mb_model_only": model_only, "peak_rss_mb_timeline": peak,
           "whole_file_float32_mb": hour_s * 16000 * 4 / 2**20, "memory_run_seconds": time.perf_counter() - t0}
    print(f"{minutes}-minute file: peak RSS {peak:.0f} MB (model alone {model_only:.0f} MB; "
          f"the decoded file alone would be {res['whole_file_float32_mb']:.0f} MB)")
    return res


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="timeline speed, memory and streaming agreement")
    ap.add_argument("--quick", action="store_true", help="1 and 5 minutes instead of 10 and 60")
    ap.add_argument("--example", metavar="OUT.flac", help="only write an example recording (one actor)")
    ap.add_argument("--minutes", type=float, default=0.75, help="length of --example")
    ap.add_argument("--actor", default="12", help="actor of --example")
    ap.add_argument("--speed-only", action="store_true", help="skip the hour-long memory run")
    ap.add_argument("--also-onnx", type=Path, help="time this ONNX file of the bundled model too (e.g. an older export)")
    ap.add_argument("--out", type=Path, default=OUT, help=f"results file (default {OUT.relative_to(ROOT)})")
    args = ap.parse_args(argv)
    if args.speed_only and args.out == OUT:
        ap.error(f"--speed-only needs --out: {OUT.relative_to(ROOT)} holds the memory figures too")
    if args.example:
        seconds = build_recording(Path(args.example), args.minutes, seed=3, actor=args.actor)
        print(f"wrote {args.example} ({seconds:.1f} s, RAVDESS actor {args.actor}, CC BY-NC-SA 4.0)")
        return 0
    speed_min, memory_min = (1, 5) if args.quick else (10, 60)
    with tempfile.TemporaryDirectory() as tmp:
        rec10 = Path(tmp) / "ten.flac"
        seconds = build_recording(rec10, speed_min)
        res = {"speed_minutes": speed_min, **speed_and_agreement(rec10, seconds, args.also_onnx)}
        if args.also_onnx:
            res["also_onnx"] = str(args.also_onnx)
    if not args.speed_only:
        res.update(memory(memory_min))
    from emovox.training.data import machine

    res["machine"] = machine()
    res["model"] = "bundled"
    res["command"] = "python benchmarks/timeline.py " + " ".join(sys.argv[1:] if argv is None else argv)
    if not args.quick:
        args.out.write_text(json.dumps(res, indent=2) + "\n")
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
