"""Speed figures for docs/performance.md (the README links it), each a ratio measured in one run on this machine.

    python benchmarks/speed.py [features|inference|cold-start|batch|training|all] [--out FILE] [--model FOLDER]
                                  → benchmarks/results/speed.json (or FILE: keep another machine's figures apart)
                                  --model: a model folder instead of the bundled one (inference, cold-start, batch)

- features: the 1440 RAVDESS speech clips (decoded beforehand), emovox's batched torch features
  against librosa's melspectrogram / mfcc with the same settings, both on ONE thread.
- inference: real-time factor of one 3.5 s clip on ONE thread, torch vs onnxruntime (the model folder's model.onnx, int8 for the bundled one) vs a dynamic-int8 re-export
  onnxruntime (bundled model), its FLOPs per second of audio, and this CPU's matmul throughput.
- cold-start: `emovox predict one.wav` as a whole new process, ONNX and torch backends.
- batch: `emovox predict DIR -o out.csv` over RAVDESS actors 01-05 (300 files), default workers, ONNX
  and torch backends: wall time and times real time (needs ../shared/data/ravdess).
- training: clips/s of one training step of the recipe (batch 32) in fp32, channels_last and
  bf16 autocast + channels_last (also under torch.compile), at width 32 (the configs) and 64
  (torchvision's), on the configured 2 threads.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")  # librosa/numpy BLAS and onnxruntime start single-threaded

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "speed.json"
CLIP = ROOT / "src" / "emovox" / "assets" / "examples" / "03-01-05-02-01-01-05.flac"
MODEL: Path | None = None  # --model: this folder instead of the bundled model
RAVDESS = ROOT.parent / "shared" / "data" / "ravdess" / "Audio_Speech_Actors_01-24"


def best_of(fn, repeat: int = 5) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def bench_features() -> dict:
    import librosa
    import torch
    from threadpoolctl import threadpool_limits

    from emovox import audio
    from emovox.corpora import open_corpus
    from emovox.features import FeatureConfig, FeatureExtractor

    torch.set_num_threads(1)
    waves = [audio.load(u.source()) for u in open_corpus("ravdess").utterances()]
    out = {"clips": len(waves), "audio_seconds": sum(map(len, waves)) / 16000}
    for kind in ("mel", "mfcc"):
        cfg = FeatureConfig(kind=kind, normalize=False)
        ex = FeatureExtractor(cfg)
        order = np.argsort([len(w) for w in waves])  # batch clips of similar length: little padding

        def ours():
            with torch.inference_mode():
                for s in range(0, len(order), 64):
                    idx = order[s:s + 64]
                    n = max(len(waves[i]) for i in idx)
                    batch = torch.zeros(len(idx), n)
                    for j, i in enumerate(idx):
                        batch[j, :len(waves[i])] = torch.from_numpy(waves[i])
                    ex.power_db(batch)

        common = dict(sr=16000, n_fft=cfg.n_fft, hop_length=cfg.hop_length, win_length=cfg.win_length, n_mels=cfg.n_mels)

        def theirs():
            for w in waves:
                if kind == "mel":
                    librosa.power_to_db(librosa.feature.melspectrogram(y=w, **common), top_db=80)
                else:
                    librosa.feature.mfcc(y=w, n_mfcc=cfg.n_mfcc, **common)

        with threadpool_limits(1):
            theirs()  # warm-up (librosa caches its filters)
            t_ours, t_theirs = best_of(ours, 3), best_of(theirs, 3)
        out[kind] = {"emovox_s": t_ours, "librosa_s": t_theirs, "speedup": t_theirs / t_ours}
    return out


def bench_inference() -> dict:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from emovox import Recognizer, audio
    from emovox.inference.export import export_onnx
    from emovox.inference.recognizer import BUNDLED_MODEL

    wave = audio.load(CLIP)
    wave = np.resize(wave, int(3.5 * 16000))  # exactly 3.5 s
    seconds = len(wave) / 16000
    res = {"clip_seconds": seconds}
    res["model"] = str(MODEL or BUNDLED_MODEL.relative_to(ROOT))
    with tempfile.TemporaryDirectory() as tmp:
        q = export_onnx(MODEL or BUNDLED_MODEL, Path(tmp) / "q.onnx", quantize=True)
        for name, rec in [("torch", Recognizer.load(MODEL, threads=1)),
                          ("onnxruntime", Recognizer.load(MODEL, backend="onnx", threads=1)),
                          ("onnxruntime_int8_dynamic", Recognizer.load(q, threads=1))]:
            rec.predict(wave, sample_rate=16000)
            t = best_of(lambda: rec.predict(wave, sample_rate=16000), 20)
            res[name] = {"seconds": t, "rtf": t / seconds}
    rec = Recognizer.load(MODEL, threads=1)
    with FlopCounterMode(display=False) as counter:  # the windows the torch backend really runs
        rec.predict(wave, sample_rate=16000)
    res["flops_per_audio_second"] = counter.get_total_flops() / seconds
    a = torch.randn(1024, 1024)
    torch.set_num_threads(1)
    t = best_of(lambda: a @ a, 10)
    res["matmul_gflops_1thread"] = 2 * 1024**3 / t / 1e9
    # FLOPs the model must do per wall second at this speed, against what one core's matmul does
    for name in ("torch", "onnxruntime"):
        achieved = res["flops_per_audio_second"] / res[name]["rtf"]
        res[name]["fraction_of_matmul_peak"] = achieved / (res["matmul_gflops_1thread"] * 1e9)
    return res


def model_args() -> list[str]:
    return ["--model", str(MODEL)] if MODEL else []


def bench_cold_start(runs: int = 7) -> dict:
    res = {"model": str(MODEL or "bundled")}
    for backend in ("onnx", "torch"):
        cmd = [sys.executable, "-m", "emovox.cli", "predict", str(CLIP), "--backend", backend, "--threads", "1",
               *model_args()]
        subprocess.run(cmd, capture_output=True, check=True)  # warm the file cache
        times = []
        for _ in range(runs):
            t = time.perf_counter()
            subprocess.run(cmd, capture_output=True, check=True)
            times.append(time.perf_counter() - t)
        res[backend] = {"median_s": statistics.median(times), "min_s": min(times), "max_s": max(times)}
    return res


def bench_batch() -> dict:
    """Batch prediction of 300 RAVDESS files (actors 01-05) to a CSV, as a new process per backend."""
    import soundfile as sf

    files = sorted(f for a in range(1, 6) for f in (RAVDESS / f"Actor_{a:02d}").glob("*.flac"))
    audio_s = sum(sf.info(f).duration for f in files)
    res = {"model": str(MODEL or "bundled"), "files": len(files), "audio_seconds": audio_s,
           "workers": "default (os.sched_getaffinity)"}
    with tempfile.TemporaryDirectory() as tmp:
        for f in files:  # one folder of 300 links: the command a user would run on a folder
            os.symlink(f, Path(tmp) / f.name)
        for backend in ("onnx", "torch"):
            out = Path(tmp) / f"{backend}.csv"
            cmd = [sys.executable, "-m", "emovox.cli", "predict", tmp, "--backend", backend, "-o", str(out),
                   "--quiet", *model_args()]
            t = time.perf_counter()
            subprocess.run(cmd, capture_output=True, check=True)
            wall = time.perf_counter() - t
            rows = out.read_text().count("\n") - 1
            res[backend] = {"wall_s": wall, "times_real_time": audio_s / wall, "rows": rows}
            out.unlink()
    return res


def bench_training() -> dict:
    import torch

    from emovox.config import load_config
    from emovox.training.trainer import bf16_available, bundle_from, make_optimizer, make_step

    cfg = load_config(ROOT / "configs" / "resnet18-mel.yaml")
    torch.set_num_threads(cfg.threads)
    pipe = bundle_from(cfg).pipeline
    windows = torch.randn(32, pipe.features.bins, pipe.clip_frames)
    y = torch.randint(0, 8, (32,))
    res = {"threads": cfg.threads, "batch": 32, "input": [1, pipe.features.bins, pipe.clip_frames],
           "bf16_native": bf16_available()}
    variants = [("fp32", False, False, False, 32), ("fp32_channels_last", True, False, False, 32),
                ("fp32_channels_last_compiled", True, False, True, 32),
                ("bf16_channels_last", True, True, False, 32), ("bf16_channels_last_compiled", True, True, True, 32),
                ("fp32_width64", False, False, False, 64), ("bf16_channels_last_width64", True, True, False, 64)]
    for name, cl, bf16, compiled, width in variants:
        if bf16 and not res["bf16_native"]:
            continue  # emulated bf16 is slow: the trainer falls back to fp32 on such CPUs
        torch.manual_seed(0)
        model = bundle_from(cfg.override(f"model.width={width}")).model
        if cl:
            model = model.to(memory_format=torch.channels_last)
        if compiled:
            t0 = time.perf_counter()
            model = torch.compile(model)
            step = make_step(pipe.extractor(), bf16, cfg.training.label_smoothing, cl)
            step(model, make_optimizer(cfg.training)(model), (windows, y))
            res["compile_s"] = time.perf_counter() - t0
        opt = make_optimizer(cfg.training)(model)
        step = make_step(pipe.extractor(), bf16, cfg.training.label_smoothing, cl)
        step(model, opt, (windows, y))
        t = best_of(lambda: step(model, opt, (windows, y)), 5)
        res[name] = {"clips_per_s": 32 / t, "epoch_s_1200_clips": 1200 / 32 * t}
    return res


if __name__ == "__main__":
    args = sys.argv[1:]
    if "--out" in args:
        i = args.index("--out")
        OUT = Path(args[i + 1])
        del args[i:i + 2]
    if "--model" in args:
        i = args.index("--model")
        MODEL = Path(args[i + 1])
        del args[i:i + 2]
    which = args[0] if args else "all"
    benches = {"features": bench_features, "inference": bench_inference, "cold-start": bench_cold_start,
               "batch": bench_batch, "training": bench_training}
    from emovox.training.data import machine

    results = json.loads(OUT.read_text()) if OUT.exists() else {}
    for name, fn in benches.items():
        if which in (name, "all"):
            results[name] = {**fn(), "machine": machine()}  # each section names the CPU that measured it
            print(name, json.dumps(results[name], indent=2), flush=True)
    OUT.write_text(json.dumps(results, indent=2) + "\n")
