"""Issue 4 ablation: an ensemble of finished EmoBox runs (e.g. mel + MFCC), no new training.

For every fold, each run's selected model (``<run>/<fold>/best``, chosen on that fold's
validation actors) computes its window logits on the fold's validation and test clips. The
ensemble averages the members' probabilities at ONE shared temperature, fitted on the
validation actors (members' own temperatures are for using them alone: averaging already
softens the ensemble). Also the speaker-adaptive protocol (a protocol of its own): each actor's
clips judged against that actor's mean answer (emovox.adaptation), on validation and test actors. The members are fixed before looking at test results; the validation
score is what a choice between configurations may use.

Usage: python benchmarks/ensemble.py NAME RUN_DIR RUN_DIR [...]
  e.g. python benchmarks/ensemble.py ens-mel-mfcc runs/bench/resnet18-mel-emobox runs/bench/resnet18-mfcc-emobox
Result: benchmarks/results/ablations/NAME.json (per-fold WA/UA, validation UA, temperature,
test ECE before/after, machine).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from emovox.adaptation import centre_by_speaker
from emovox.calibration import ensemble_probabilities, expected_calibration_error, fit_temperature
from emovox.config import load_config
from emovox.labels import EMOTIONS
from emovox.models.folder import load_bundle
from emovox.pipeline import ClipClassifier, window_logits
from emovox.splits import make_folds
from emovox.training.data import load_dataset, machine
from emovox.training.metrics import fold_means, scores

ROOT = Path(__file__).resolve().parents[1]


def member_logits(run: Path, protocol: str = "emobox") -> dict[str, dict]:
    """fold name → {"val"|"test": (keys, labels, (window logits, weights, owner), speakers)} for one run."""
    cfg = load_config(run / "config.yaml")
    data = load_dataset(cfg, progress=False)
    folds = make_folds(protocol, data.utterances, n_val_speakers=cfg.training.val_speakers,
                       seed=cfg.seed, test_corpora=cfg.data.test_corpora)
    out = {}
    for fold in folds:
        best = run / fold.name / "best"
        if not fold.test or not best.is_dir():
            continue
        bundle = load_bundle(best)
        clf = ClipClassifier(bundle.model, bundle.pipeline)
        out[fold.name] = {}
        for split in ("val", "test"):
            part = data.subset(getattr(fold, split))
            order = np.argsort([u.key for u in part.utterances])  # align members by utterance
            part = part.subset(order.tolist())
            out[fold.name][split] = ([u.key for u in part.utterances], np.asarray(part.labels),
                                     window_logits(clf, part.images, part.bounds),
                                     part.speakers)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("name")
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--protocol", default="emobox", choices=["emobox", "random", "loso"],
                    help="the protocol the runs were evaluated with")
    args = ap.parse_args(argv)
    torch.set_num_threads(2)
    t0 = time.perf_counter()
    members = [member_logits(r, args.protocol) for r in args.runs]
    folds = sorted(set.intersection(*(set(m) for m in members)))
    if not folds:
        print("no fold is finished in every run", file=sys.stderr)
        return 1
    rows = []
    for name in folds:
        keys, labels, _, speakers = members[0][name]["test"]
        vkeys, vlabels, _, vspeakers = members[0][name]["val"]
        if any(m[name]["test"][0] != keys or m[name]["val"][0] != vkeys for m in members):
            raise ValueError(f"{name}: the runs use different clips; ensemble runs of the same protocol")
        val_logits = [m[name]["val"][2] for m in members]
        t = fit_temperature([v[0] for v in val_logits], [v[1] for v in val_logits], [v[2] for v in val_logits],
                            vlabels)
        test_logits = [m[name]["test"][2] for m in members]
        probs = ensemble_probabilities(test_logits, len(keys), t)
        raw = ensemble_probabilities(test_logits, len(keys), 1.0)
        val_probs = ensemble_probabilities(val_logits, len(vkeys), t)
        val = scores(vlabels, val_probs.argmax(1), len(EMOTIONS))
        s = scores(labels, probs.argmax(1), len(EMOTIONS))
        # speaker-adaptive, a protocol of its own: each actor's clips against that actor's mean answer
        adapted = centre_by_speaker(probs, speakers)
        sa = scores(labels, adapted.argmax(1), len(EMOTIONS))
        val_sa = scores(vlabels, centre_by_speaker(val_probs, vspeakers).argmax(1), len(EMOTIONS))
        single = [scores(labels, ensemble_probabilities([tl], len(keys)).argmax(1), len(EMOTIONS))["wa"]
                  for tl in test_logits]
        rows.append({"fold": name, **s, "n_test": len(keys), "member_wa": single, "temperature": t,
                     "val_wa": val["wa"], "val_ua": val["ua"],
                     "speaker_adaptive_wa": sa["wa"], "speaker_adaptive_ua": sa["ua"],
                     "speaker_adaptive_ece": expected_calibration_error(adapted, labels),
                     "val_speaker_adaptive_wa": val_sa["wa"], "val_speaker_adaptive_ua": val_sa["ua"],
                     "test_ece_before": expected_calibration_error(raw, labels),
                     "test_ece_after": expected_calibration_error(probs, labels)})
        print(f"{name}: WA {s['wa']:.3f}  UA {s['ua']:.3f}  T {t:.2f}  members WA {' '.join(f'{w:.3f}' for w in single)}"
              f"  | speaker-adaptive WA {sa['wa']:.3f}")
    from emovox.training.evaluate import PROTOCOL_NOTES

    res = {"protocol": args.protocol, "protocol_note": PROTOCOL_NOTES[args.protocol] + "; members averaged at one "
           "temperature fitted on the validation data",
           "ensemble_of": [str(r) for r in args.runs], "folds": rows, "machine": machine(),
           "seconds": time.perf_counter() - t0}
    res.update(fold_means(rows, ("wa", "ua", "f1", "val_wa", "val_ua", "test_ece_before", "test_ece_after",
                                 "temperature", "speaker_adaptive_wa", "speaker_adaptive_ua", "speaker_adaptive_ece",
                                 "val_speaker_adaptive_wa", "val_speaker_adaptive_ua")))
    res["temperature_median"] = float(np.median([r["temperature"] for r in rows]))
    print(f"validation actors (selection): WA {100 * res['val_wa']:.1f}  UA {100 * res['val_ua']:.1f}")
    print(f"ensemble: WA {100 * res['wa']:.1f} ± {100 * res['wa_std']:.1f}  UA {100 * res['ua']:.1f} ± "
          f"{100 * res['ua_std']:.1f}; test ECE {100 * res['test_ece_before']:.1f} % at T = 1, "
          f"{100 * res['test_ece_after']:.1f} % at the fitted T")
    print(f"speaker-adaptive (each actor against their mean answer): validation WA {100 * res['val_speaker_adaptive_wa']:.1f}"
          f"  UA {100 * res['val_speaker_adaptive_ua']:.1f}; test WA {100 * res['speaker_adaptive_wa']:.1f} ± "
          f"{100 * res['speaker_adaptive_wa_std']:.1f}  UA {100 * res['speaker_adaptive_ua']:.1f}, "
          f"ECE {100 * res['speaker_adaptive_ece']:.1f} %")
    out = ROOT / "benchmarks" / "results" / "ablations" / f"{args.name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
