"""Where one fold's training time goes: the LR range test, the optimisation steps, making the
batches, validation, and what is written after every epoch (model folders, checkpoint, plots).

    python benchmarks/epoch_profile.py [--config configs/resnet18-mel.yaml] [--fold emobox:1] [--epochs 3]

Trains ``--epochs`` epochs of the recipe on the fold's training actors (validation on its
validation actors, as ``emovox evaluate`` does) with timers around each part and writes the
breakdown, with the machine, to benchmarks/results/epoch_profile.json. The feature cache is
filled first (not timed). The figures and calibration happen once per run, the rest every epoch;
"per epoch" divides everything by the epochs.
"""

from __future__ import annotations

import argparse
import functools
import inspect
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "epoch_profile.json"

#: the parts of a training run timed by wrapping functions: (module, attributes). The
#: optimisation steps are the functions ``make_step`` returns (wrapped in :func:`instrument`).
PARTS = {
    "making batches": ("emovox.training.batches", "BatchMaker.epoch"),
    "validation": ("emovox.training.trainer", "_evaluate"),
    "model folders (best, last)": ("emovox.training.trainer", "save_bundle"),
    "checkpoint": ("emovox.training.trainer", "_save_checkpoint"),
    "figures (training, confusion)": ("emovox.plots", "plot_training plot_confusion"),
    "calibration (selected model)": ("emovox.training.trainer", "validation_logits calibrate_on"),
}


def timed(seconds: dict, part: str):
    """Wrap functions so that their wall time adds up in ``seconds[part]``: plain timers, not a
    profiler (cProfile's per-call cost nearly doubled a training epoch here)."""
    def wrap(fn):
        if inspect.isgeneratorfunction(fn):  # time spent inside the generator only
            @functools.wraps(fn)
            def gen(*a, **k):
                it = fn(*a, **k)
                while True:
                    t0 = time.perf_counter()
                    try:
                        item = next(it)
                    except StopIteration:
                        seconds[part] += time.perf_counter() - t0
                        return
                    seconds[part] += time.perf_counter() - t0
                    yield item
            return gen

        @functools.wraps(fn)
        def call(*a, **k):
            t0 = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                seconds[part] += time.perf_counter() - t0
        return call
    return wrap


def instrument(seconds: dict) -> None:
    import importlib

    from emovox.training import trainer

    seconds["optimisation steps"] = 0.0
    make_step = trainer.make_step  # time the steps it makes, not their making
    trainer.make_step = lambda *a, **k: timed(seconds, "optimisation steps")(make_step(*a, **k))
    for part, (module, names) in PARTS.items():
        seconds[part] = 0.0
        mod = importlib.import_module(module)
        for name in names.split():
            owner, _, attr = name.rpartition(".")
            owner = getattr(mod, owner) if owner else mod
            setattr(owner, attr, timed(seconds, part)(getattr(owner, attr)))


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

    parts: dict[str, float] = {}
    instrument(parts)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        train(cfg, Path(tmp) / "run", train_set, val_set, progress=False)
        total = time.perf_counter() - t0
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
