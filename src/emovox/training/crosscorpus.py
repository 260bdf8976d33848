"""Cross-corpus evaluation: train on some corpora, test on another, on the emotions both have.

Model selection uses validation speakers of the training corpora only; the test corpus is read
once. Scores are reported three ways (EmoBox's cross-corpus track reads the second):

* ``own``: the model's answer over all its emotions (an answer the test corpus lacks, like
  RAVDESS's calm on SAVEE, counts as wrong);
* ``restricted``: the argmax over the emotions of the test set only;
* ``folded``: the same after each model emotion the test set lacks is folded into its nearest
  one there (RAVDESS's calm into neutral: :func:`emovox.labels.fold_into`, what
  ``Recognizer(emotions=...)`` and ``emovox predict --emotions`` answer).

Each way is given per clip (the clip alone) and speaker-adaptive (each test speaker judged
against all their clips' audio, no labels: their feature statistics for models that take them,
``features.normalize: bins`` and functionals; else their mean answer, :mod:`emovox.adaptation`):
a protocol of its own, reported beside the other.
"""

from __future__ import annotations

import csv
import json
import time
from pathlib import Path

import numpy as np

from ..config import RunConfig
from ..corpora import open_corpus
from ..labels import fold_into
from ..safeio import atomic_write_text
from .data import build_features, corpus_root, load_corpora, machine, parse_spec, speaker_of
from .metrics import confusion, scores


def test_utterances(spec: str, test_list: str | Path | None = None) -> list:
    """The utterances of the test corpus ``NAME[=DIR]``, restricted to ``test_list`` if given."""
    name, root = parse_spec(spec)
    where = corpus_root(name, root)
    utts = open_corpus(name, where).utterances()
    return [utts[i] for i in read_test_list(test_list, utts, where)] if test_list else utts


def read_test_list(path: str | Path, utts: list, root: Path) -> list[int]:
    """Indices of the utterances ``utts`` named by a CSV list with a ``file`` (or ``path``)
    column, relative to the corpus ``root`` (the extension may differ: ``.wav`` lists match
    ``.flac`` files)."""
    def stem(p: str) -> str:
        return str(Path(p).with_suffix("")).replace("\\", "/")

    index = {}
    for i, u in enumerate(utts):
        rel = Path(u.path)
        if u.archive is None:
            try:
                rel = rel.resolve().relative_to(root.resolve())
            except ValueError:
                pass
        index[stem(str(rel))] = i
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        raise ValueError(f"{path}: an empty test list")
    column = "file" if "file" in rows[0] else "path" if "path" in rows[0] else None
    if column is None:
        raise ValueError(f"{path}: a test list needs a 'file' or 'path' column")
    missing = [r[column] for r in rows if stem(r[column]) not in index]
    if missing:
        raise ValueError(f"{path}: {len(missing)} listed files are not in the test corpus (e.g. {missing[0]})")
    return sorted(index[stem(r[column])] for r in rows)


def score_ways(probs: np.ndarray, truth: np.ndarray, model_labels: tuple[str, ...]) -> dict:
    """WA/UA/F1, per-class recall and confusion, ``own``, ``restricted`` and ``folded`` (see above).

    ``truth`` indexes ``model_labels``; the test emotions are those present in ``truth``.
    """
    present = sorted(set(truth.tolist()))
    names = [model_labels[i] for i in present]
    out = {"test_labels": names}
    own = probs.argmax(1)
    restricted = np.asarray(present)[probs[:, present].argmax(1)]
    folded = np.asarray(present)[fold_into(probs, tuple(model_labels), names).argmax(1)]
    for way, pred in (("own", own), ("restricted", restricted), ("folded", folded)):
        s = scores(truth, pred, len(model_labels))
        cm = confusion(truth, pred, len(model_labels))
        s["recall"] = {model_labels[c]: float((pred[truth == c] == c).mean()) for c in present}
        s["confusion"] = cm[present].tolist() if way == "own" else cm[np.ix_(present, present)].tolist()
        s["predicted"] = {model_labels[c]: int((pred == c).sum()) for c in range(len(model_labels))}
        out[way] = s
    return out


def test_predictions(members: list, utts: list, cache_dir=None) -> dict[str, np.ndarray]:
    """Per-clip probabilities of a model (or the mean of an ensemble's ``members``) on ``utts``,
    and speaker-adaptive ones, as the recognizer makes them: each speaker's feature statistics
    when every member takes them, else each speaker's mean answer (:mod:`emovox.adaptation`)."""
    from ..adaptation import centre_by_speaker
    from ..pipeline import ClipClassifier, ensemble_mean, predict_clips, speaker_feature_probabilities

    by_features = speaker_adaptation(members) == "features"
    per_clip, adaptive = [], []
    for bundle in members:
        fs = build_features(utts, bundle.pipeline, labels=tuple(bundle.labels), cache_dir=cache_dir, progress=False)
        if len(fs) != len(utts):
            raise ValueError(f"{len(utts) - len(fs)} test clips could not be decoded")
        classifier = ClipClassifier.from_bundle(bundle)
        per_clip.append(predict_clips(classifier, fs.images, fs.bounds))
        if by_features:
            adaptive.append(speaker_feature_probabilities(classifier, fs.images, fs.bounds, fs.speakers))
    out = {"per-clip": ensemble_mean(per_clip)}
    out["speaker-adaptive"] = (ensemble_mean(adaptive) if by_features
                               else centre_by_speaker(out["per-clip"], [speaker_of(u) for u in utts]))
    return out


def speaker_adaptation(members: list) -> str:
    """How the speaker-adaptive protocol judges a model's clips: ``"features"`` (each speaker's
    statistics, when every member takes them) or ``"answers"`` (each speaker's mean answer)."""
    from ..pipeline import ClipClassifier, speaker_adaptation as adaptation

    return adaptation([ClipClassifier.from_bundle(b) for b in members])


def evaluate_test_set(members, utts: list, cache_dir=None) -> dict:
    """Every score of a model (a bundle, or an ensemble's list of member bundles) on the clips
    ``utts``; clips whose emotion the model lacks are left out and named."""
    members = members if isinstance(members, list) else [members]
    labels = tuple(members[0].labels)
    keep = [u for u in utts if u.emotion in labels]
    dropped = sorted({u.emotion for u in utts if u.emotion not in labels})
    truth = np.array([labels.index(u.emotion) for u in keep])
    res = {"n_test": len(keep), "dropped_emotions": dropped,
           "intersection": [e for e in labels if e in {u.emotion for u in keep}],
           "speaker_adaptation": speaker_adaptation(members)}
    for protocol, probs in test_predictions(members, keep, cache_dir).items():
        res[protocol] = score_ways(probs, truth, labels)
    return res


def cross_corpus(cfg: RunConfig, train_specs: list[str], test_spec: str, out_dir: str | Path, *,
                 test_list: str | None = None, progress: bool = True) -> dict:
    """Train on ``train_specs`` (validation speakers drawn from them), test on ``test_spec``;
    write ``results.json`` and ``results.md`` to ``out_dir`` (a finished training is reused)."""
    from ..config import save_config
    from ..models.folder import load_bundle
    from ..splits import no_test_fold
    from .trainer import CHECKPOINT, train

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    data = load_corpora(train_specs, cfg.preprocessing, cache_dir=cfg.data.cache_dir, progress=progress)
    run_dir = out / "train"
    t0 = time.perf_counter()
    if (run_dir / "best" / "config.json").exists() and (run_dir / "report.md").exists():
        bundle = load_bundle(run_dir / "best")
    else:
        fold = no_test_fold(data.utterances, cfg.training.val_speakers, cfg.seed)
        result = train(cfg, run_dir, data.subset(fold.train), data.subset(fold.val) if fold.val else None,
                       resume=(run_dir / CHECKPOINT).exists(), progress=progress,
                       provenance={"protocol": "cross-corpus", "train": train_specs})
        bundle = result.best
    save_config(cfg, out / "config.yaml")
    utts = test_utterances(test_spec, test_list)
    res = {"protocol": "cross-corpus", "train": train_specs, "test": test_spec, "test_list": test_list,
           "config": cfg.to_dict(), "model_labels": list(bundle.labels),
           **evaluate_test_set(bundle, utts, cfg.data.cache_dir),
           "validation": bundle.extra.get("validation", {}), "seconds": time.perf_counter() - t0}
    res["machine"] = machine()
    atomic_write_text(out / "results.json", json.dumps(res, indent=2) + "\n")
    atomic_write_text(out / "results.md", results_table(res))
    from ..plots import plot_confusion

    for protocol in ("per-clip", "speaker-adaptive"):
        if protocol in res:
            scored = res[protocol]
            plot_confusion(np.array(scored["restricted"]["confusion"]), scored["test_labels"],
                           out / f"confusion_{protocol}.png", title=f"{res['test']} ({protocol}, argmax over its emotions)")
    return res


def results_table(res: dict) -> str:
    """Markdown: one row per protocol and way, then the per-class recall."""
    lines = [f"# cross-corpus: {' + '.join(res['train'])} → {res['test']}"
             + (f" (list {Path(res['test_list']).name})" if res.get("test_list") else ""), "",
             f"Emotions both have: {', '.join(res['intersection'])}"
             + (f"; test emotions the model lacks (left out): {', '.join(res['dropped_emotions'])}"
                if res["dropped_emotions"] else ""), "",
             "| protocol | answer | WA % | UA % | macro-F1 % | recall per emotion |", "|---|---|---|---|---|---|"]
    for protocol in ("per-clip", "speaker-adaptive"):
        if protocol not in res:
            continue
        for way, label in (("own", "model's own (all its emotions)"), ("restricted", "argmax over the test emotions")):
            s = res[protocol][way]
            recall = " ".join(f"{k} {100 * v:.0f}" for k, v in s["recall"].items())
            lines.append(f"| {protocol} | {label} | {100 * s['wa']:.1f} | {100 * s['ua']:.1f} | {100 * s['f1']:.1f} "
                         f"| {recall} |")
    lines += ["", f"{res['n_test']} test clips. Machine: {res['machine']}", ""]
    return "\n".join(lines)


def leave_one_corpus_out(cfg: RunConfig, specs: list[str], out_dir: str | Path, *, progress: bool = True) -> list[dict]:
    """Each corpus of ``specs`` tested once, with a model trained on all the others."""
    if len(specs) < 2:
        raise ValueError("leave-one-corpus-out needs at least two corpora")
    results = []
    for held in specs:
        rest = [s for s in specs if s != held]
        results.append(cross_corpus(cfg, rest, held, Path(out_dir) / parse_spec(held)[0], progress=progress))
    return results
