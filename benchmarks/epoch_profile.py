"""Where one fold's training time goes: the LR range test, the optimisation steps, making the
batches, validation, and what is written after every epoch (model folders, checkpoint, plots).

    python benchmarks/epoch_profile.py [--config configs/resnet18-mel.yaml] [--fold emobox:1] [--epochs 3]

Trains ``--epochs`` epochs of the recipe on the fold's training actors (validation on its
validation actors, as ``emovox evaluate`` does) under cProfile and writes the breakdown, with the
machine, to benchmarks/results/epoch_profile.json. The feature cache is filled first (not timed).
Each part's time is its cumulative profile time; cProfile adds a little to Python-level code.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "epoch_profile.json"

#: the parts of a training run: (file suffix, function name) as cProfile names them
PARTS = {
    "optimisation steps": ("training/trainer.py", "step"),
    "making batches": ("training/batches.py", "epoch"),
    "validation": ("training/trainer.py", "_evaluate"),
    "model folders (best, last)": ("models/folder.py", "save_bundle"),
    "checkpoint": ("training/trainer.py", "_save_checkpoint"),
    "training plot": ("emovox/plots.py", "plot_training"),
    "confusion plot": ("emovox/plots.py", "plot_confusion"),
    "calibration": ("training/trainer.py", "calibrate_on"),
}


def cumulative(stats: pstats.Stats, suffix: str, name: str) -> float:
    return sum(v[3] for (path, _, fn), v in stats.stats.items() if fn == name and path.endswith(suffix))


def main(argv=None) -> dict:
    import torch

    from emovox.config import load_config
    from emovox.training.data import machine
    from emovox.training.evaluate import fold_data
    from emovox.training.trainer import bf16_available, find_lr, train

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", default=str(ROOT / "configs" / "resnet18-mel.yaml"))
    ap.add_argument("--fold", default="emobox:1")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = ap.parse_args(argv)
    cfg = load_config(args.config, [f"training.epochs={args.epochs}", *args.set])
    torch.set_num_threads(cfg.threads)
    data, fold = fold_data(cfg, args.fold, progress=False)
    train_set, val_set = data.subset(fold.train), data.subset(fold.val)

    t0 = time.perf_counter()
    rt = find_lr(cfg, train_set, progress=False)
    range_test = time.perf_counter() - t0
    max_lr, div_factor = rt.one_cycle()
    cfg = cfg.merged({"training": {"max_lr": max_lr, "div_factor": div_factor}})

    profile = cProfile.Profile()
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        profile.runcall(train, cfg, Path(tmp) / "run", train_set, val_set, progress=False)
        total = time.perf_counter() - t0
    stats = pstats.Stats(profile)
    parts = {k: cumulative(stats, *where) for k, where in PARTS.items()}
    parts["other"] = total - sum(parts.values())
    res = {"command": "python benchmarks/epoch_profile.py " + " ".join(sys.argv[1:] if argv is None else argv),
           "machine": machine(), "bf16": bool(cfg.training.bf16 and bf16_available()), "threads": cfg.threads,
           "fold": args.fold, "train_clips": len(train_set), "val_clips": len(val_set), "epochs": args.epochs,
           "range_test_seconds": round(range_test, 2), "lr_find_steps": cfg.lr_find.steps,
           "train_seconds": round(total, 2), "per_epoch_seconds": round(total / args.epochs, 2),
           "parts_seconds_per_epoch": {k: round(v / args.epochs, 3) for k, v in parts.items()}}
    OUT.write_text(json.dumps(res, indent=2) + "\n")
    print(json.dumps(res, indent=2))
    return res


if __name__ == "__main__":
    main()
