"""Levers on the prosody functionals model (issue 13), each a fit of seconds on the same features.

    python benchmarks/functionals_levers.py [--out benchmarks/results/functionals-levers.json]

The functionals of every RAVDESS speech and SAVEE clip are computed once through the model's own
pipeline (``configs/functionals-prosody.yaml``: mel + MFCC + pitch statistics, cached features),
then each variant is a scikit-learn fit on them:

- RAVDESS: EmoBox 6 folds, actor-disjoint, WA over the test actors (each fit sees the other 20);
- SAVEE (the development corpus: these are development figures): a fit on all 24 actors, argmax
  over EmoBox's 4-emotion list and over SAVEE's 7 emotions.

Speaker-adaptive rows standardise each speaker with their own clips (the 4-emotion list's clips
with each other, as ``benchmarks/cross_corpus.py`` does; all 120 of a speaker's clips for the 7);
per-clip rows with the training clips pooled. C is fixed per row (no selection), and every fit
is deterministic: one run is the figure. Written to find out which levers are worth a product
change; none here beat the shipped recipe by more than SAVEE's noise (about 5 points on 240 clips).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SAVEE_LIST = ROOT.parent / "shared" / "data" / "savee" / "emobox-track2-savee-4class.csv"
FOUR = ["angry", "happy", "neutral", "sad"]


def load(config: Path) -> dict:
    """Functionals ``f``, emotions ``y`` and speakers ``s`` of RAVDESS speech and SAVEE, and which
    SAVEE clips are on the 4-emotion list."""
    import torch

    from emovox.config import load_config
    from emovox.models.folder import new_bundle
    from emovox.training.crosscorpus import read_test_list, test_utterances
    from emovox.training.data import build_features, corpus_root

    cfg = load_config(config, [])
    torch.set_num_threads(cfg.threads)
    pipe = cfg.preprocessing
    out = {}
    for name in ("ravdess", "savee"):
        utts = test_utterances(name)
        fs = build_features(utts, pipe)
        model = new_bundle(pipe, "functionals", fs.label_names, bins=pipe.features.bins, pitch_rows=2).model
        with torch.inference_mode():
            f = model.functionals(fs.images, fs.bounds).double().numpy()
        out[name] = {"f": f, "y": np.array([u.emotion for u in fs.utterances]),
                     "s": np.array(fs.speakers)}
        if name == "savee":
            listed = set(read_test_list(SAVEE_LIST, fs.utterances, corpus_root("savee", None)))
            out[name]["in4"] = np.array([i in listed for i in range(len(fs.utterances))])
    out["spectral_rows"] = pipe.features.bins - 2
    return out


def by_group(x: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Each row standardised with its group's rows (a speaker's clips): the model's own speaker standardisation."""
    import torch

    from emovox.training.functionals import group_standardised

    return group_standardised(torch.from_numpy(x), list(groups)).numpy()


def pooled(train: np.ndarray, *rows: np.ndarray) -> list[np.ndarray]:
    mean, std = train.mean(0), np.clip(train.std(0), 1e-6, None)
    return [(r - mean) / std for r in (train, *rows)]


def channel_invariant(f: np.ndarray, bins: int) -> np.ndarray:
    """Only statistics that a fixed filter (a microphone, a room's colour: a constant dB per band)
    leaves unchanged: spreads, and the quantiles relative to the mean; pitch as it is."""
    from emovox.models.functionals import N_STATS

    s = f[:, :bins * N_STATS].reshape(len(f), N_STATS, bins)
    spreads, q = s[:, 1:3], s[:, 3:] - s[:, :1]
    return np.concatenate([spreads.reshape(len(f), -1), q.reshape(len(f), -1), f[:, bins * N_STATS:]], 1)


def emotion_mix_references(x, y, s, copies: int, rng) -> tuple[np.ndarray, np.ndarray]:
    """The rows standardised with their speaker's clips, plus ``copies`` more, each with the
    speaker's clips weighted by a random mix of emotions (a session's unknown emotion mix)."""
    xs, ys = [by_group(x, s)], [y]
    for _ in range(copies):
        out = np.empty_like(x)
        for g in np.unique(s):
            m = s == g
            emos, counts = np.unique(y[m], return_counts=True)
            mix = dict(zip(emos, rng.dirichlet(np.ones(len(emos))) / counts))
            w = np.array([mix[e] for e in y[m]])
            w /= w.sum()
            mean = w @ x[m]
            std = np.sqrt(w @ (x[m] - mean) ** 2)
            out[m] = (x[m] - mean) / np.clip(std, 1e-6, None)
        xs.append(out)
        ys.append(y)
    return np.concatenate(xs), np.concatenate(ys)


def answer(clf, x: np.ndarray, allowed: list[str], calm_is_neutral: bool = False, speakers=None) -> np.ndarray:
    """The argmax over ``allowed`` emotions (``calm_is_neutral``: calm's probability folded into
    neutral's, emovox.labels.fold_into; ``speakers``: each clip's answer then judged against its
    speaker's mean answer, emovox.adaptation)."""
    from emovox.adaptation import centre_by_speaker
    from emovox.labels import fold_into

    p = clf.predict_proba(x).copy()
    if speakers is not None:
        p = centre_by_speaker(p, list(speakers))
    cls = tuple(clf.classes_)
    if calm_is_neutral:
        return np.array(allowed)[fold_into(p, cls, allowed).argmax(1)]
    return np.array(allowed)[p[:, [cls.index(e) for e in allowed]].argmax(1)]


def evaluate(data: dict, make, *, mode: str, transform=None, train_labels=None, fit_rows=None,
             calm_is_neutral=False, centre=False) -> dict:
    """One variant: RAVDESS 6-fold WA, SAVEE 4-emotion and 7-emotion WA (``centre``: each answer also
    judged against its speaker's mean answer, after the feature standardisation)."""
    from emovox.splits import EMOBOX_RAVDESS_FOLDS

    rav, sav = data["ravdess"], data["savee"]
    t = transform or (lambda f: f)
    xr, xs = t(rav["f"]), t(sav["f"])
    yr = train_labels(rav["y"]) if train_labels else rav["y"]
    actors = np.array([s.split(":")[-1] for s in rav["s"]])

    def fit(x, y, s):
        if fit_rows:
            x, y = fit_rows(x, y, s)
        return make().fit(x, y)

    was = []
    for test_actors in EMOBOX_RAVDESS_FOLDS.values():
        te = np.isin(actors, list(test_actors))
        if mode == "speaker":
            clf = fit(by_group(xr[~te], rav["s"][~te]), yr[~te], rav["s"][~te])
            x_test = by_group(xr[te], rav["s"][te])
        else:
            x_train, x_test = pooled(xr[~te], xr[te])
            clf = fit(x_train, yr[~te], rav["s"][~te])
        pred = answer(clf, x_test, list(clf.classes_), speakers=rav["s"][te]) if centre else clf.predict(x_test)
        was.append(float((pred == yr[te]).mean()))
    in4 = sav["in4"]
    if mode == "speaker":
        clf = fit(by_group(xr, rav["s"]), yr, rav["s"])
        x4, x7 = by_group(xs[in4], sav["s"][in4]), by_group(xs, sav["s"])
    else:
        x_train, x7 = pooled(xr, xs)
        clf = fit(x_train, yr, rav["s"])
        x4 = x7[in4]
    seven = list(np.unique(sav["y"]))
    s4, s7 = (sav["s"][in4], sav["s"]) if centre else (None, None)
    return {"ravdess_emobox_wa": 100 * float(np.mean(was)), "ravdess_emobox_wa_std": 100 * float(np.std(was)),
            "savee_4_wa": 100 * float((answer(clf, x4, FOUR, calm_is_neutral, s4) == sav["y"][in4]).mean()),
            "savee_7_wa": 100 * float((answer(clf, x7, seven, calm_is_neutral, s7) == sav["y"]).mean())}


def variants(data: dict) -> list[tuple[str, str, dict]]:
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier
    from sklearn.svm import SVC

    def lr(c):
        return lambda: LogisticRegression(C=c, max_iter=5000, class_weight="balanced")

    bins = data["spectral_rows"]
    rng = np.random.default_rng(0)
    rows = []
    for c in (0.003, 0.01, 0.03):
        rows.append((f"logistic regression C={c}" + (" (the shipped recipe's usual choice)" if c == 0.01 else ""),
                     "speaker", {"make": lr(c)}))
    for c in (0.3, 1.0, 3.0):
        rows.append((f"RBF SVM C={c}", "speaker",
                     {"make": lambda c=c: SVC(C=c, class_weight="balanced", probability=True, random_state=0)}))
    for a in (1.0, 10.0):
        rows.append((f"MLP, 64 hidden units, alpha={a}", "speaker",
                     {"make": lambda a=a: MLPClassifier((64,), alpha=a, max_iter=2000, random_state=0)}))
    rows.append(("logistic regression C=0.01, 4 extra references of random emotion mix", "speaker",
                 {"make": lr(0.01), "fit_rows": lambda x, y, s: emotion_mix_references(x, y, s, 4, rng)}))
    rows.append(("logistic regression C=0.01, calm trained as neutral (RAVDESS WA over 7 emotions)", "speaker",
                 {"make": lr(0.01), "train_labels": lambda y: np.where(y == "calm", "neutral", y)}))
    rows.append(("logistic regression C=0.01, calm's probability added to neutral's", "speaker",
                 {"make": lr(0.01), "calm_is_neutral": True}))
    for c in (0.003, 0.01, 0.03):
        rows.append((f"logistic regression C={c}, then judged against the speaker's mean answer", "speaker",
                     {"make": lr(c), "centre": True}))
    for c in (0.003, 0.01, 0.03):
        rows.append((f"logistic regression C={c}", "per-clip", {"make": lr(c)}))
        rows.append((f"logistic regression C={c}, channel-invariant statistics only", "per-clip",
                     {"make": lr(c), "transform": lambda f: channel_invariant(f, bins)}))
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default=str(ROOT / "configs" / "functionals-prosody.yaml"))
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "functionals-levers.json"))
    args = ap.parse_args(argv)
    from emovox.training.data import machine

    warnings.filterwarnings("ignore", category=UserWarning)
    warnings.filterwarnings("ignore", category=FutureWarning)
    data = load(Path(args.config))
    results = []
    print("| protocol | variant | RAVDESS EmoBox 6 folds WA | SAVEE 4-emotion list WA | SAVEE all 7 WA |")
    print("|---|---|---|---|---|")
    for name, mode, kw in variants(data):
        t0 = time.perf_counter()
        r = {"variant": name, "protocol": mode if mode == "per-clip" else "speaker-adaptive",
             **evaluate(data, mode=mode, **kw), "seconds": time.perf_counter() - t0}
        results.append(r)
        print(f"| {r['protocol']} | {name} | {r['ravdess_emobox_wa']:.1f} ± {r['ravdess_emobox_wa_std']:.1f} | "
              f"{r['savee_4_wa']:.1f} | {r['savee_7_wa']:.1f} |", flush=True)
    doc = {"command": "python benchmarks/functionals_levers.py " + " ".join(argv or sys.argv[1:]),
           "config": args.config, "machine": machine(), "results": results}
    Path(args.out).write_text(json.dumps(doc, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
