"""Robustness table: accuracy and agreement with the clean clip after each degradation.

Usage::

    python benchmarks/robustness.py NAME --folds runs/bench/NAME   # the RAVDESS test folds of an evaluation
    python benchmarks/robustness.py NAME --folds RUN1 RUN2   # each fold's models of several runs as one ensemble
    python benchmarks/robustness.py NAME --savee runs/bench/cross/NAME/train/best   # all 480 SAVEE clips
    python benchmarks/robustness.py bundled-v2 --folds runs/bench/mel-deltas runs/bench/resnet18-mfcc-emobox \
        --savee src/emovox/assets/model     # the bundled model (an ensemble folder) and its recipe's folds
    python benchmarks/robustness.py NAME --heldout runs/bench/cross/NAME   # its 4 RAVDESS validation actors
    (both at once is fine; ``--limit N`` takes every k-th clip for a quick look;
    ``--speaker-adaptive``: each speaker judged against all their clips, degraded alike: feature
    statistics or mean answer, as the recognizer does)

Each test clip is decoded once, degraded with the same classes training augments with
(``emovox.augment``, fixed settings, rooms simulated from another seed than training's), and
predicted through the model's own pipeline. For each condition: WA, and the share of clips whose
label equals the clean clip's. RAVDESS folds: each fold's model on its own test actors
(actor-disjoint); SAVEE: a model trained on RAVDESS (cross-corpus, development set).
Writes ``benchmarks/results/robustness/NAME.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def conditions():
    from emovox.augment import Clipping, Codec, Gain, Noise, Reverb, Telephone

    return {
        "telephone (8 kHz, µ-law)": Telephone(),
        "MP3 32 kbit/s": Codec(codecs=(("mp3", 32),)),
        "Opus 16 kbit/s": Codec(codecs=(("opus", 16),)),
        "white noise 10 dB SNR": Noise(10, 10, colours=("white",)),
        "reverberation RT60 0.5 s": Reverb(0.5, 0.5, rooms=8, seed=1234),
        "gain -20 dB": Gain(-20, -20),
        "clipping (12 dB overdrive)": Clipping(dc=0.0, low=12, high=12),
    }


def predict(members: list, waves: list[np.ndarray], speakers: list[str] | None = None) -> np.ndarray:
    """Each clip's label from a model (a list of one bundle) or an ensemble (the mean of its
    members' probabilities); with ``speakers``, speaker-adaptive: each speaker's reference from all
    their clips as given (degraded ones from degraded clips: one microphone, room or codec per speaker):
    their feature statistics when every member takes them, else their mean answer, as the recognizer does."""
    from emovox.adaptation import centre_by_speaker
    from emovox.pipeline import (ClipClassifier, ensemble_mean, predict_clips, speaker_adaptation,
                                 speaker_feature_probabilities)

    classifiers = [ClipClassifier.from_bundle(b) for b in members]
    by_features = speakers is not None and speaker_adaptation(classifiers) == "features"
    probs = []
    for clf in classifiers:
        analysed = [clf.analyse(w) for w in waves]
        images, bounds = [a[0] for a in analysed], [a[1] for a in analysed]
        probs.append(speaker_feature_probabilities(clf, images, bounds, speakers) if by_features
                     else predict_clips(clf, images, bounds))
    probs = ensemble_mean(probs)
    if speakers is not None and not by_features:
        probs = centre_by_speaker(probs, speakers)
    return probs.argmax(1)


def run(members: list, utts, label_of, adaptive: bool = False) -> dict:
    """Clean and degraded predictions of ``utts``; ``label_of(utt)`` → index in the model's labels or None."""
    from emovox import audio

    keep = [u for u in utts if label_of(u) is not None]
    truth = np.array([label_of(u) for u in keep])
    waves = [audio.load(u.source()) for u in keep]
    speakers = [f"{u.corpus}:{u.speaker}" for u in keep] if adaptive else None
    clean = predict(members, waves, speakers)
    out = {"clean": {"n": len(keep), "correct": int((clean == truth).sum()), "agree": len(keep)}}
    for name, aug in conditions().items():
        degraded = [aug(w, np.random.default_rng([7, i])) for i, w in enumerate(waves)]
        pred = predict(members, degraded, speakers)
        out[name] = {"n": len(keep), "correct": int((pred == truth).sum()), "agree": int((pred == clean).sum())}
        print(f"  {name}: acc {(pred == truth).mean():.3f} agree {(pred == clean).mean():.3f}", flush=True)
    return out


def add(total: dict, part: dict) -> dict:
    for cond, v in part.items():
        t = total.setdefault(cond, {"n": 0, "correct": 0, "agree": 0})
        for k in t:
            t[k] += v[k]
    return total


def table(counts: dict) -> dict:
    clean = counts["clean"]["correct"] / counts["clean"]["n"]
    return {c: {"accuracy": v["correct"] / v["n"], "drop_points": 100 * (clean - v["correct"] / v["n"]),
                "agreement": v["agree"] / v["n"], "n": v["n"]} for c, v in counts.items()}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("name")
    ap.add_argument("--folds", nargs="+", help="`emovox evaluate --protocol emobox` output folders (per-fold "
                                                "models; several: each fold's models as one ensemble)")
    ap.add_argument("--savee", help="a model or ensemble folder trained on RAVDESS, tested on all SAVEE clips")
    ap.add_argument("--heldout", help="a cross-corpus run folder: its model on the RAVDESS validation actors it "
                                      "never trained on (actor-disjoint, 240 clips)")
    ap.add_argument("--limit", type=int, default=1, help="use every N-th clip (1: all)")
    ap.add_argument("--speaker-adaptive", action="store_true",
                    help="the speaker-adaptive protocol: each speaker judged against all their clips (as degraded)")
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    from emovox.corpora import open_corpus
    from emovox.models.folder import load_bundle, load_members
    from emovox.splits import EMOBOX_RAVDESS_FOLDS
    from emovox.training.data import machine

    doc = {"name": args.name, "command": "python benchmarks/robustness.py " + " ".join(argv or sys.argv[1:]),
           "machine": machine(), "conditions": list(conditions()),
           "speaker_adaptive": args.speaker_adaptive}
    if args.folds:
        utts = open_corpus("ravdess").utterances()[::args.limit]
        total: dict = {}
        for k, actors in EMOBOX_RAVDESS_FOLDS.items():
            model_dirs = [Path(f) / f"emobox-{k}" / "best" for f in args.folds]
            if not all(d.is_dir() for d in model_dirs):
                print(f"fold {k}: no model at {[str(d) for d in model_dirs if not d.is_dir()]}, skipped")
                continue
            members = [load_bundle(d) for d in model_dirs]
            labels = members[0].labels
            if any(m.labels != labels for m in members):
                raise SystemExit(f"fold {k}: the runs' models have different labels")
            print(f"RAVDESS fold {k}", flush=True)
            part = run(members, [u for u in utts if u.speaker in actors],
                       lambda u: labels.index(u.emotion) if u.emotion in labels else None, args.speaker_adaptive)
            add(total, part)
        doc["ravdess_folds"] = {"protocol": "EmoBox 6 folds, actor-disjoint; each fold's model on its test actors",
                                "model_runs": args.folds, **table(total)}
    if args.heldout:
        from emovox.config import load_config
        from emovox.splits import no_test_fold

        run_dir = Path(args.heldout)
        cfg = load_config(run_dir / "config.yaml")
        utts = open_corpus("ravdess").utterances()
        actors = set(no_test_fold(utts, cfg.training.val_speakers, cfg.seed).val_speakers)
        bundle = load_bundle(run_dir / "train" / "best")
        print(f"RAVDESS held-out actors {sorted(actors)}", flush=True)
        counts = run([bundle], [u for u in utts if u.speaker in actors][::args.limit],
                               lambda u: bundle.labels.index(u.emotion) if u.emotion in bundle.labels else None,
                       args.speaker_adaptive)
        doc["ravdess_heldout"] = {"protocol": "RAVDESS speech, the 4 validation actors the model never trained on "
                                              "(actor-disjoint; they chose its epoch)", "actors": sorted(actors),
                                  "model": str(run_dir / "train" / "best"), **table(counts)}
    if args.savee:
        members = load_members(args.savee)
        labels = members[0].labels
        utts = open_corpus("savee").utterances()[::args.limit]
        print("SAVEE", flush=True)
        counts = run(members, utts, lambda u: labels.index(u.emotion) if u.emotion in labels else None,
                     args.speaker_adaptive)
        doc["savee"] = {"protocol": "cross-corpus RAVDESS → SAVEE (development), all emotions, the model's own answer",
                        "model": args.savee, **table(counts)}
    out = ROOT / "benchmarks" / "results" / "robustness" / f"{args.name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
