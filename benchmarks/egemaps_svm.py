"""Issue 4's classical anchor: eGeMAPSv02 functionals (openSMILE, 88 per clip) + an RBF SVM,
on the same EmoBox 6 actor-disjoint folds as the networks.

    pip install opensmile        # optional extra (research / non-commercial licence)
    python benchmarks/egemaps_svm.py   # → benchmarks/results/ablations/egemaps-svm.json

Features are standardised on each fold's training actors. C and gamma are chosen on the fold's
validation actors (the same 4 the networks select on), then the SVM is refitted on training +
validation actors and the test actors are predicted once. Seed 0.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

from emovox import audio
from emovox.corpora import open_corpus
from emovox.labels import EMOTIONS
from emovox.splits import make_folds
from emovox.training.data import machine
from emovox.training.metrics import fold_means, scores

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "ablations" / "egemaps-svm.json"
CACHE = ROOT / "runs" / "bench" / "egemaps.npy"
GRID_C = (0.1, 1.0, 10.0, 100.0)
GRID_GAMMA = ("scale", 0.003, 0.01, 0.03)


def egemaps(utts) -> np.ndarray:
    import opensmile
    from tqdm.auto import tqdm

    if CACHE.is_file():
        x = np.load(CACHE)
        if len(x) == len(utts):
            return x
    smile = opensmile.Smile(feature_set=opensmile.FeatureSet.eGeMAPSv02,
                            feature_level=opensmile.FeatureLevel.Functionals)
    rows = [smile.process_signal(audio.load(u.path), 16000).to_numpy()[0] for u in tqdm(utts, desc="eGeMAPS")]
    x = np.stack(rows).astype(np.float64)
    CACHE.parent.mkdir(parents=True, exist_ok=True)
    np.save(CACHE, x)
    return x


def main() -> int:
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    t0 = time.perf_counter()
    utts = open_corpus("ravdess").utterances()
    x = egemaps(utts)
    y = np.array([EMOTIONS.index(u.emotion) for u in utts])
    rows = []
    for fold in make_folds("emobox", utts, n_val_speakers=4, seed=0):
        tr, va, te = map(np.array, (fold.train, fold.val, fold.test))
        scaler = StandardScaler().fit(x[tr])
        best = None
        for c in GRID_C:
            for g in GRID_GAMMA:
                svm = SVC(C=c, gamma=g, random_state=0).fit(scaler.transform(x[tr]), y[tr])
                ua = scores(y[va], svm.predict(scaler.transform(x[va])), len(EMOTIONS))["ua"]
                if best is None or ua > best[0]:
                    best = (ua, c, g)
        trva = np.concatenate([tr, va])
        scaler = StandardScaler().fit(x[trva])
        svm = SVC(C=best[1], gamma=best[2], random_state=0).fit(scaler.transform(x[trva]), y[trva])
        s = scores(y[te], svm.predict(scaler.transform(x[te])), len(EMOTIONS))
        rows.append({"fold": fold.name, **s, "selected_val_ua": best[0], "C": best[1], "gamma": best[2],
                     "n_test": len(te)})
        print(f"{fold.name}: WA {s['wa']:.3f}  UA {s['ua']:.3f}  (C {best[1]}, gamma {best[2]}, val UA {best[0]:.3f})")
    res = {"protocol": "emobox", "protocol_note": "actor-disjoint: EmoBox 6 folds; C, gamma chosen on "
           "validation actors", "features": "eGeMAPSv02 functionals (openSMILE)", "model": "SVC rbf",
           "folds": rows, "machine": machine(), "seconds": time.perf_counter() - t0}
    res.update(fold_means(rows, ("wa", "ua", "f1")))
    print(f"eGeMAPS + SVM: WA {100 * res['wa']:.1f} ± {100 * res['wa_std']:.1f}  UA {100 * res['ua']:.1f} ± {100 * res['ua_std']:.1f}")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(res, indent=2) + "\n")
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
