"""Cross-corpus figures: train on RAVDESS speech (validation actors from it), test on SAVEE.

Usage::

    python benchmarks/cross_corpus.py NAME CONFIG [key=value ...] [--train ravdess] [--test savee]
    python benchmarks/cross_corpus.py --model DIR NAME      # an existing model folder (e.g. the bundled one)
    python benchmarks/cross_corpus.py --model DIR --model DIR NAME   # several, averaged (e.g. two seeds' runs)

One training (reused when the run folder already holds it), then the test corpus twice: all its
clips, and EmoBox's balanced 4-emotion list when the test corpus is SAVEE. Each with the per-clip
and the speaker-adaptive protocol (feature statistics or mean answers: ``speaker_adaptation``), and the two readings (the model's own answer;
the argmax over the test emotions). SAVEE is the development corpus: these are development figures.
Writes ``benchmarks/results/cross/NAME.json``; the run is in ``runs/bench/cross/NAME``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SAVEE_LIST = ROOT.parent / "shared" / "data" / "savee" / "emobox-track2-savee-4class.csv"


def wave_augmentations(members: list) -> list[str]:
    """The waveform augmentations a model folder's members trained with (recorded in the JSON:
    the folder changes, the JSON stays)."""
    names = set()
    for m in members:
        augment = m.extra.get("provenance", {}).get("augment") or {}
        names.update(augment.get("wave") or {})
    return sorted(names)


def training_epochs(members: list) -> int | None:
    """The epochs a model folder's members trained for (recorded likewise; the most of them)."""
    epochs = [(m.extra.get("provenance", {}).get("training") or {}).get("epochs") or 0 for m in members]
    return max(epochs) or None


def consistency_weight(members: list) -> float | None:
    """The consistency-training weight a model folder's members trained with, if any (recorded likewise)."""
    weights = [(m.extra.get("provenance", {}).get("training") or {}).get("consistency") or 0 for m in members]
    return max(weights) or None


def evaluate_model(members: list, test_spec: str, cache_dir=None) -> dict:
    from emovox.training.crosscorpus import evaluate_test_set, test_utterances
    from emovox.training.data import parse_spec

    out = {"all": evaluate_test_set(members, test_utterances(test_spec), cache_dir)}
    if parse_spec(test_spec)[0] == "savee" and SAVEE_LIST.is_file():
        out["emobox-4"] = evaluate_test_set(members, test_utterances(test_spec, SAVEE_LIST), cache_dir)
    return out


def summary(res: dict) -> str:
    lines = []
    for subset, r in res.items():
        for protocol in ("per-clip", "speaker-adaptive"):
            if protocol in r:
                own, rest = r[protocol]["own"], r[protocol]["restricted"]
                fold = r[protocol].get("folded")  # results written before the reading existed: none
                lines.append(f"{subset:9s} {protocol:17s} own WA {100 * own['wa']:5.1f} UA {100 * own['ua']:5.1f} | "
                             f"restricted WA {100 * rest['wa']:5.1f} UA {100 * rest['ua']:5.1f} | calm as neutral "
                             + (f"WA {100 * fold['wa']:5.1f} UA {100 * fold['ua']:5.1f}" if fold else "—"))
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("name")
    ap.add_argument("config", nargs="?")
    ap.add_argument("overrides", nargs="*")
    ap.add_argument("--model", action="append",
                    help="evaluate this model folder instead of training one (repeatable: the folders' average)")
    ap.add_argument("--train", action="append", help="training corpus (repeatable; default ravdess)")
    ap.add_argument("--test", default="savee")
    args = ap.parse_args(argv)
    import torch

    from emovox.config import load_config
    from emovox.models.folder import load_members
    from emovox.training.crosscorpus import cross_corpus
    from emovox.models.folder import member_folders
    from emovox.training.data import machine

    if args.model:
        torch.set_num_threads(1)
        members, cfg, train = [m for folder in args.model for m in load_members(folder)], None, None
        if len({tuple(m.labels) for m in members}) > 1:
            raise SystemExit("the model folders answer with different emotion lists: they cannot be averaged")
    else:
        cfg = load_config(args.config, args.overrides)
        torch.set_num_threads(cfg.threads)
        train = args.train or ["ravdess"]
        run = ROOT / "runs" / "bench" / "cross" / args.name
        cross_corpus(cfg, train, args.test, run)
        members = load_members(run / "train" / "best")
    res = evaluate_model(members, args.test, cfg.data.cache_dir if cfg else None)
    doc = {"name": args.name, "protocol": "cross-corpus (development: SAVEE)", "train": train, "test": args.test,
           "model": (args.model[0] if len(args.model) == 1 else args.model) if args.model else None,
           "members": [f.name for folder in args.model for f in member_folders(folder)] if args.model else None,
           "config": cfg.to_dict() if cfg else None, "command": "python benchmarks/cross_corpus.py " + " ".join(argv or sys.argv[1:]),
           "machine": machine(), "seed": cfg.seed if cfg else None,
           "validation": members[0].extra.get("validation", {}) if len(members) == 1 else None,
           "wave_augment": wave_augmentations(members) if args.model else None,
           "consistency": consistency_weight(members) if args.model else None,
           "epochs": training_epochs(members) if args.model else None,
           "features": [m.pipeline.features.kind + (" + deltas" if m.pipeline.features.deltas else "") for m in members]
           if args.model else None, **res}
    out = ROOT / "benchmarks" / "results" / "cross" / f"{args.name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=2) + "\n")
    print(summary(res))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
