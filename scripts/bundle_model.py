"""Build the bundled model from evaluated configurations: each member is retrained on all 24
RAVDESS speech actors with exactly the config of its 6-fold evaluation run, stored in float16,
and calibrated with the median temperature its folds fitted on their validation actors (no
actor is left to fit it on once all are trained on). Several members make an ensemble folder;
one makes a plain model folder (its --ensemble-results, from benchmarks/ensemble.py on its one run, add
the speaker-adaptive figures to the card).

    python scripts/bundle_model.py --member mel runs/bench/mel-mixup \\
        --member mfcc runs/bench/mfcc-mixup --member spectrogram runs/bench/spectrogram-mixup \\
        --ensemble-results benchmarks/results/ablations/ens-mixup.json
    python scripts/bundle_model.py --member distilled runs/bench/distilled \\
        --teacher runs/teacher-v1      # one network distilled from a copy of the v1 ensemble
    # --keep reuses members of a bundled *ensemble* (v1-v5; v6 is one network, see git history for those):
    python scripts/bundle_model.py --keep mel-deltas --keep mfcc \\
        --ensemble-results benchmarks/results/ablations/ens-meldeltas-mfcc.json   # drop members, no retraining
    python scripts/bundle_model.py --member mfcc runs/amx/mfcc-consistent-e60 \\
        --ensemble-results benchmarks/results/ablations/mfcc60-consistent-amx.json   # one network (v6)
    python scripts/bundle_model.py --keep mel-deltas --member mfcc runs/zen4/mfcc-consistent \\
        --ensemble-results ENS.json   # keep one member, retrain another
    python scripts/bundle_model.py --card-only     # refresh MODEL_CARD.md
    python scripts/bundle_model.py --onnx-only     # re-export model.onnx (int8 convolutions, calibrated)
    python scripts/bundle_model.py --speaker-model configs/functionals-prosody.yaml \\
        --speaker-results benchmarks/results/functionals-prosody-emobox.json

The speaker-adaptive model (``--speaker-model``, src/emovox/assets/speaker-model/, used by
``--speaker-norm`` and ``Recognizer.load(speaker_adaptive=True)``) is a functionals config
retrained on all 24 actors; with no actor left for validation its C and both temperatures (per
clip, speaker-adaptive) come from a 6-fold cross-validation over the 24 actors (4 held out per
fold, as in EmoBox): ``training.cv_folds=6``.

The number of epochs is the config's; with no actor held out the last epoch is kept (in the
cross-validated runs the epoch selected on validation actors was near the end of the one-cycle
schedule). Writes src/emovox/assets/model/ (config.json, member folders, model.onnx, MODEL_CARD.md).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
from pathlib import Path

from emovox.config import load_config
from emovox.inference.export import export_onnx
from emovox.models.folder import CONFIG_NAME, ONNX_NAME, WEIGHTS_NAME, is_ensemble, save_bundle, save_ensemble
from emovox.training.evaluate import train_on_fold

ROOT = Path(__file__).resolve().parents[1]
ASSETS = ROOT / "src" / "emovox" / "assets" / "model"
SPEAKER_ASSETS = ASSETS.parent / "speaker-model"


def fold_temperatures(run: Path) -> list[float]:
    return [json.loads(p.read_text())["calibration"]["temperature"]
            for p in sorted(run.glob("*/best/config.json")) if "calibration" in json.loads(p.read_text())]


def training_corpora(cfg) -> list[dict]:
    """Each corpus a member learns from (its config's ``data.corpus``, every speaker): what it is, how many
    clips, and the licence it passes on — for the member's provenance and the card."""
    from emovox.corpora import CORPORA, open_corpus
    from emovox.training.data import corpus_root, parse_spec

    single = not isinstance(cfg.data.corpus, list)  # then data.root names its folder, as in training
    out = []
    for spec in [cfg.data.corpus] if single else cfg.data.corpus:
        name, root = parse_spec(spec)
        utts = open_corpus(name, corpus_root(name, root or (cfg.data.root if single else None))).utterances()
        who = "actors" if name.startswith("ravdess") else "speakers"
        label = CORPORA[name].description.split(":")[0]  # "RAVDESS speech", "SAVEE"
        out.append({"corpus": name, "label": label, "terms": CORPORA[name].terms,
                    "what": f"{label}, all {len({u.speaker_id for u in utts})} {who} ({len(utts)} clips)"})
    return out


def licence_of(corpora: list[dict]) -> str:
    """The provenance's licence: each distinct set of terms once, with the corpora it comes from."""
    by_terms: dict[str, list[str]] = {}
    for c in corpora:
        if c["terms"]:
            by_terms.setdefault(c["terms"].split(" (")[0], []).append(c["label"])
    return "; ".join(f"{terms} (inherited from {' and '.join(names)})" for terms, names in by_terms.items())


def train_member(name: str, eval_run: Path, out: Path, resume: bool, teacher: Path | None = None):
    cfg = load_config(eval_run / "config.yaml", ["training.val_speakers=0"])  # every actor trains
    if cfg.training.distill:  # the folds' teachers heard 20 actors each; this member learns from one that heard all 24
        if teacher is None:
            raise SystemExit(f"{eval_run} distils: give --teacher FOLDER, a model trained on all 24 actors "
                             "(e.g. a copy of the ensemble it replaces)")
        cfg = cfg.merged({"training": {"distill": {**cfg.training.distill, "teachers": [str(teacher)]}}})
    bundle = train_on_fold(cfg, out, resume=resume).best
    temps = fold_temperatures(eval_run)
    if not temps:
        raise SystemExit(f"{eval_run} has no calibrated folds; evaluate the config again with this emovox")
    results = json.loads((eval_run / "results.json").read_text())
    bundle.extra["calibration"] = {"temperature": round(statistics.median(temps), 4),
                                   "fitted_on": f"median of the {len(temps)} EmoBox folds' temperatures, each fitted "
                                                "on that fold's validation actors",
                                   "fold_temperatures": temps,
                                   "test_ece_before": results.get("test_ece_before"),
                                   "test_ece_after": results.get("test_ece_after")}
    corpora = training_corpora(cfg)
    bundle.extra["provenance"].update({"data": "; ".join(c["what"] for c in corpora), "corpora": corpora,
                                       "licence": licence_of(corpora),
                                       "evaluated_as": str(eval_run.relative_to(ROOT) if eval_run.is_absolute() else eval_run),
                                       "emobox": {k: results[k] for k in ("wa", "wa_std", "ua", "ua_std")}})
    print(f"{name}: {cfg.name}, T = {bundle.extra['calibration']['temperature']}")
    return bundle


def pct(r: dict, key: str) -> str:
    return f"{100 * r[key]:.1f} ± {100 * r[key + '_std']:.1f} %"


def export_bundled_onnx() -> Path:
    """``model.onnx``: the bundled model as one graph with int8 convolutions (static quantisation,
    7-bit weights), calibrated on 64 RAVDESS speech clips spread over all 24 actors (the clips it
    was trained on). Its accuracy against float32 is measured on the recipe's fold models with
    ``benchmarks/quantize_folds.py --static`` on the members' evaluation runs (the card quotes the
    result whose runs match, :func:`quant_results`); rerun that after changing the members."""
    from emovox.corpora import open_corpus
    from emovox.inference.export import calibration_waves
    from emovox.models.folder import load_members
    from emovox.training.data import corpus_root

    rate = load_members(ASSETS)[0].pipeline.sample_rate
    sources = sorted((u.source() for u in open_corpus("ravdess", corpus_root("ravdess", None)).utterances()), key=str)
    return export_onnx(ASSETS, ASSETS / ONNX_NAME, quantize="static", calibration=calibration_waves(sources, 64, rate))


def quant_results() -> Path | None:
    """The int8 check of this recipe: the ``benchmarks/quantize_folds.py --static --name NAME`` result
    whose fold runs are the members' evaluation runs (the last by name if several)."""
    names = json.loads((ASSETS / CONFIG_NAME).read_text()).get("members", [""])
    runs = [json.loads((ASSETS / n / CONFIG_NAME).read_text())["provenance"].get("evaluated_as") for n in names]
    found = []
    for p in sorted((ROOT / "benchmarks" / "results").glob("quantize-static*.json")):
        r = json.loads(p.read_text())
        if r.get("sources") == runs and f"--name {p.stem}" in r.get("command", ""):  # its command remakes it
            found.append(p)
    return found[-1] if found else None


def _onnx_note() -> str:
    """What the card says of ``model.onnx``: float32, or int8 with the quantisation check of the recipe."""
    import onnx

    meta = {p.key: p.value for p in onnx.load(str(ASSETS / ONNX_NAME), load_external_data=False).metadata_props}
    if meta.get("quantized") != "static":
        return "`model.onnx` is the same model as one graph for onnxruntime."
    text = ("`model.onnx` is the same model as one graph for onnxruntime, its convolutions in int8 (static "
            "quantisation calibrated on 64 RAVDESS training clips, 7-bit weights so that every x86 CPU gives "
            "the same answers; `python scripts/bundle_model.py --onnx-only`).")
    check = quant_results()
    if check is not None:
        r = json.loads(check.read_text())
        text += (f" Checked on this recipe's fold models ({', '.join(Path(s).name for s in r['sources'])}, each "
                 f"fold's {'ensemble' if len(r['sources']) > 1 else 'network'} calibrated on its training actors) against "
                 f"float32: EmoBox WA "
                 f"{100 * r['int8_wa']:.1f} against {100 * r['float32_wa']:.1f}, the same label for "
                 f"{100 * r['agreement']:.0f} % of test clips (`{r['command']}`).")
    return text


def card_text() -> str:
    """The bundled model's MODEL_CARD.md, from its folder and the benchmark results it cites."""
    top = json.loads((ASSETS / CONFIG_NAME).read_text())
    names = top["members"] if is_ensemble(ASSETS) else [""]
    members = [(n, json.loads((ASSETS / n / CONFIG_NAME).read_text())) for n in names]
    size_mb = sum((ASSETS / n / WEIGHTS_NAME).stat().st_size for n in names) / 1e6
    rows = []
    for n, cfg in members:
        prov, cal = cfg["provenance"], cfg.get("calibration", {})
        em = prov.get("emobox", {})
        rows.append(f"| {n or prov.get('name', 'network')} | {_features(cfg['preprocessing']['features'])} | {_augment(prov)} | "
                    f"{pct(em, 'wa') if em else '—'} / {pct(em, 'ua') if em else '—'} |")
    ens = top.get("emobox")
    first = members[0][1]
    many = len(members) > 1
    card = f"""# emovox bundled model{' — ensemble of ' + str(len(members)) if many else ''}

**What it does.** Recognises one of eight acted emotions ({", ".join(top["labels"])}) in
English speech and returns the probability of each.

**Model.** {"An average of " + str(len(members)) + " ResNet18s, one per feature type" if many else "A ResNet18"}
({first["model"]["width"]} channels in the first stage; the first convolution takes one channel,
the last layer has one output per emotion), trained from scratch (no external weights). {"Each member" if many else "It"}
turns the voiced part of the clip (ends quieter than {first["preprocessing"]["trim_db"]} dB below the
loudest frame cut) into {first["preprocessing"]["clip_seconds"]} s windows of its feature image, each
standardised; a clip's prediction averages its windows{", then the members" if many else ""}. Weights stored in
float16 ({size_mb:.1f} MB), loaded as float32. {_onnx_note()}
{_distilled(first)}
| {"member" if many else "network"} | features | augmentation | EmoBox 6 folds WA / UA{" (this member's config alone)" if many else ""} |
|---|---|---|---|
{chr(10).join(rows)}

**Training.** `python scripts/bundle_model.py` (command in its docstring) — {"each member" if many else "the network"} with the
exact config of its evaluation run, on {"; ".join(c["what"] for c in _corpora(first))},
{first["provenance"]["training"]["epochs"]} epochs of the one-cycle policy between the bounds of an LR range
test, AdamW, label smoothing {first["provenance"]["training"]["label_smoothing"]}, seed {first["provenance"]["seed"]}, on a 2-core CPU.

**How well it does** (measured with the same configuration on held-out actors; this file itself
has seen every actor, so no figure can be measured on it honestly):
{"- the " + ("ensemble" if many else "network") + ", actor-disjoint EmoBox 6 folds: WA " + pct(ens, "wa") + ", UA " + pct(ens, "ua") + " (`" + _ensemble_command(ens, members) + "`; per-fold figures in `" + ens.get("source", "") + "`)" if ens else ""}
{"- each member alone: the table above." if many else ""}

{_cross_corpus(first)}{_speaker_adaptive(ens, first)}{_robustness()}
**Calibration.** Probabilities are temperature-scaled, T = {first.get("calibration", {}).get("temperature", 1.0)}
({first.get("calibration", {}).get("fitted_on", "not calibrated")}).
{_ece(top, members)}
Use `--min-confidence` (CLI) or `Recognizer.load(min_confidence=...)` to get `uncertain` below a
threshold.

**Data licence.** RAVDESS (Livingstone & Russo 2018, PLoS ONE 13(5): e0196391, Zenodo 1188976)
is licensed CC BY-NC-SA 4.0. This model is derived from it and carries the same terms:
attribution, **non-commercial use only**, share-alike.{_other_licences(first)}

**Limits.** Trained on 24 professional North-American actors saying two fixed sentences with
acted emotions in a studio{_other_voices(first)}. Expect much lower accuracy on spontaneous, conversational, noisy,
accented or non-English speech, on children and on telephone audio. Emotions are acted
categories, not a measure of what someone feels: do not use it to make decisions about people.
"""
    return card


def write_card() -> None:
    (ASSETS / "MODEL_CARD.md").write_text(card_text())


def _corpora(cfg: dict) -> list[dict]:
    """The corpora a member's provenance names (models bundled before it did: RAVDESS speech)."""
    return cfg["provenance"].get("corpora") or [{"corpus": "ravdess", "label": "RAVDESS speech", "terms": None,
                                                 "what": cfg["provenance"].get("data", "RAVDESS speech")}]


def _others(cfg: dict) -> list[dict]:
    return [c for c in _corpora(cfg) if not c["corpus"].startswith("ravdess")]


def _other_licences(cfg: dict) -> str:
    """The card's licence lines for corpora beside RAVDESS (each one's terms apply too)."""
    lines = [f"\nIt also learned from {c['label']}, whose terms it carries too: "
             f"{c['terms'] or 'see that corpus'}." for c in _others(cfg)]
    if any("-ND" in (c["terms"] or "") for c in _others(cfg)):
        lines.append(" A NoDerivatives licence may not allow sharing a model derived from that corpus at all: "
                     "check before distributing it.")
    if any("research use" in (c["terms"] or "") for c in _others(cfg)):
        lines.append(" Together: **non-commercial research use only**.")
    return "".join(lines)


def _other_voices(cfg: dict) -> str:
    from emovox.corpora import CORPORA

    return "".join(f", and on {CORPORA[c['corpus']].description.split(' (')[0]}" for c in _others(cfg))


def _newest_bundled(kind: str) -> Path | None:
    """The newest bundled model's result of one benchmark (``benchmarks/results/KIND/bundled-vN.json``)."""
    found = sorted((ROOT / "benchmarks" / "results" / kind).glob("bundled-v[0-9].json"))
    return found[-1] if found else None


def _heard_savee(cfg: dict) -> bool:
    return any(c["corpus"] == "savee" for c in _corpora(cfg))


def _cross_corpus(cfg: dict) -> str:
    """The bundled model on a corpus it never heard (benchmarks/cross_corpus.py --model ... bundled-vN)."""
    if _heard_savee(cfg):  # the development corpus is in its training data: nothing left here to measure it on
        return ("**Other voices**: SAVEE, the development corpus, is in its training data, so no corpus here is left "
                "to measure other voices on; the recipe's cross-corpus figures (trained without SAVEE) are in the "
                "README's cross-corpus table.\n")
    path = _newest_bundled("cross")
    if path is None:
        return ""
    d = json.loads(path.read_text())
    four, own = d["emobox-4"]["per-clip"]["restricted"], d["all"]["per-clip"]["own"]
    return (f"**Other voices** (cross-corpus, SAVEE: 4 male British speakers it never heard; a development "
            f"figure): {100 * four['wa']:.1f} % on EmoBox's balanced 4-emotion list (chance 25 %), "
            f"{100 * own['wa']:.1f} % over all 480 clips with its own answer (chance 14 %); it answers sad for "
            f"{own['predicted']['sad']} of them"
            + (f"; answering among SAVEE's 7 emotions with calm counted as neutral (`--emotions`), "
               f"{100 * d['all']['per-clip']['folded']['wa']:.1f} % (4-emotion list "
               f"{100 * d['emobox-4']['per-clip']['folded']['wa']:.1f} %)" if "folded" in d["all"]["per-clip"] else "")
            + f". `python benchmarks/cross_corpus.py --model src/emovox/assets/model "
            f"{path.stem}`; see the README's cross-corpus table.\n")


def _speaker_adaptive(ens: dict | None, cfg: dict) -> str:
    """The same model judging several clips of one speaker against their mean answer (emovox.adaptation)."""
    source = ROOT / ens["source"] if ens and ens.get("source") else None
    r = json.loads(source.read_text()) if source is not None and source.is_file() else {}
    cross = None if _heard_savee(cfg) else _newest_bundled("cross")  # SAVEE heard in training: no SAVEE figure
    d = json.loads(cross.read_text()) if cross is not None else {}
    if "speaker_adaptive_wa" not in r or (cross is not None and "speaker-adaptive" not in d.get("emobox-4", {})):
        return ""
    savee = (f"; SAVEE's 4-emotion list, each speaker against their listed clips: "
             f"{100 * d['emobox-4']['speaker-adaptive']['restricted']['wa']:.1f} % (development)" if d else "")
    return (f"**Several clips of one speaker** (`--speaker-norm`, `Recognizer.predict_speakers`, "
            f"`timeline(speaker_norm=True)`, `?speaker_norm=1`): each clip judged against the speaker's mean answer "
            f"(audio only; at least 2 clips of speech, best of several emotions). Actor-disjoint EmoBox 6 folds, each "
            f"test actor against all their test clips: WA {100 * r['speaker_adaptive_wa']:.1f} ± "
            f"{100 * r['speaker_adaptive_wa_std']:.1f} %, UA {100 * r['speaker_adaptive_ua']:.1f} %{savee}. The bundled "
            "speaker-adaptive model (prosody functionals, `src/emovox/assets/speaker-model/`)"
            + (" does better on SAVEE and" if d else "") + " is what `--speaker-norm` uses when no model is named "
            "(torch backend).\n")


def _robustness() -> str:
    """The recipe's fold models under degraded audio (benchmarks/robustness.py bundled-vN --folds ...)."""
    path = _newest_bundled("robustness")
    if path is None:
        return ""
    d = json.loads(path.read_text())
    folds = d.get("ravdess_folds")
    if not folds:
        return ""
    cells = [f"{name} {100 * r['accuracy']:.1f} % ({100 * r['agreement']:.0f} %)"
             for name, r in folds.items() if isinstance(r, dict) and name != "clean"]
    return (f"\n**Degraded audio** (this recipe's fold models on their EmoBox test actors, each clip degraded; "
            f"accuracy, in brackets the answers unchanged from the clean clip; clean {100 * folds['clean']['accuracy']:.1f} %): {'; '.join(cells)}. `{d['command']}`; see the "
            f"README's robustness table.\n")


def _ensemble_command(ens: dict, members) -> str:
    """The command that measured the ensemble's EmoBox figures from its members' evaluation runs."""
    runs = [cfg["provenance"].get("evaluated_as", "RUN") for _, cfg in members]
    return f"python benchmarks/ensemble.py {Path(ens.get('source', 'NAME')).stem} {' '.join(runs)}"


def _distilled(cfg: dict) -> str:
    d = cfg["provenance"]["training"].get("distill")
    if not d:
        return ""
    return (f"\n**Distilled.** Trained on the labels and on the soft targets of a teacher that heard the same "
            f"actors (`{', '.join(cfg['provenance'].get('teachers', d['teachers']))}`): loss (1 − {d['weight']})·CE + "
            f"{d['weight']}·T²·KL at T = {d['temperature']} (`emovox.training.distill`). Its EmoBox figures below "
            "come from the same recipe where each fold's student learned from teachers trained on that fold's "
            "training actors only.\n")


def _features(f: dict) -> str:
    stft = f"{f['n_fft']}-point FFT, {f['hop_length']}-sample hop"
    if f["kind"] == "mel":
        what = f"{f['n_mels']}-band log-mel" + (" + deltas, delta-deltas" if f.get("deltas") else "")
    elif f["kind"] == "mfcc":
        what = f"{f['n_mfcc']} MFCC from {f['n_mels']} mel bands" + (" + deltas" if f.get("deltas") else "")
    else:
        what = f"{f['n_fft'] // 2 + 1}-bin log spectrogram"
    return f"{what} ({stft})"


def _augment(prov: dict) -> str:
    aug = dict(prov.get("augment") or {})
    wave = aug.pop("wave", None) or {}
    on = [f"{k} {v}" for k, v in aug.items() if v is not None]
    if wave:  # waveform augmentations with their chances
        on.append("waveform: " + ", ".join(f"{k} p {v.get('p', 1.0)}" for k, v in wave.items()))
    weight = (prov.get("training") or {}).get("consistency")
    if weight:
        on.append(f"consistency training (clean and augmented view of each clip, weight {weight})")
    return ", ".join(on) if on else "none"


def _ece(top: dict, members) -> str:
    ens = top.get("emobox") or {}
    if ens.get("test_ece_before") is not None:
        return (f"Expected calibration error on the EmoBox test actors (15 bins, mean over folds): "
                f"{100 * ens['test_ece_before']:.1f} % before, {100 * ens['test_ece_after']:.1f} % after.")
    cal = members[0][1].get("calibration", {})
    if cal.get("test_ece_before") is not None:
        return (f"Expected calibration error on the EmoBox test actors (15 bins, mean over folds): "
                f"{100 * cal['test_ece_before']:.1f} % before, {100 * cal['test_ece_after']:.1f} % after.")
    return ""


def bundle_speaker_model(config: Path, results: Path, out: Path, resume: bool) -> None:
    """Retrain the functionals ``config`` on every actor (C and temperatures by 6-fold CV) into SPEAKER_ASSETS."""
    cfg = load_config(config, ["training.val_speakers=0", "training.cv_folds=6"])
    bundle = train_on_fold(cfg, out, resume=resume).best
    r = json.loads(results.read_text())
    bundle.extra["provenance"].update({
        "data": "RAVDESS speech, all 24 actors (1440 clips)", "licence": "CC BY-NC-SA 4.0 (inherited from RAVDESS)",
        "config": _relative(config), "emobox": {"source": _relative(results), "per_clip": {k: r[k] for k in ("wa", "wa_std", "ua", "ua_std")},
                                          "speaker_adaptive": r["speaker_adaptive"]}})
    shutil.rmtree(SPEAKER_ASSETS, ignore_errors=True)
    save_bundle(bundle, SPEAKER_ASSETS)
    cal = bundle.extra["calibration"]
    print(f"wrote {SPEAKER_ASSETS}: C = {bundle.extra['provenance']['C']}, T = {cal['temperature']} per clip, "
          f"{cal['speaker_temperature']} speaker-adaptive")


def _relative(path: Path) -> str:
    path = path.resolve()
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def write_speaker_card() -> None:
    cfg = json.loads((SPEAKER_ASSETS / CONFIG_NAME).read_text())
    prov, cal, feat = cfg["provenance"], cfg["calibration"], cfg["preprocessing"]["features"]
    em = prov["emobox"]
    cross = ROOT / "benchmarks" / "results" / "cross" / "bundled-speaker-model.json"
    other = ""
    if cross.is_file():
        d = json.loads(cross.read_text())
        four, every = d["emobox-4"], d["all"]
        other = (f"\n**Other voices** (cross-corpus, SAVEE: 4 male British speakers it never heard; development figures, "
                 f"`python benchmarks/cross_corpus.py --model src/emovox/assets/speaker-model bundled-speaker-model`):\n"
                 f"speaker-adaptive {100 * four['speaker-adaptive']['restricted']['wa']:.1f} % on EmoBox's balanced 4-emotion "
                 f"list (argmax over its 4 emotions; chance 25 %), {100 * every['speaker-adaptive']['restricted']['wa']:.1f} % "
                 f"over all 480 clips (argmax over SAVEE's 7; chance 14 %); per clip "
                 f"{100 * four['per-clip']['restricted']['wa']:.1f} % and {100 * every['per-clip']['restricted']['wa']:.1f} %.\n")
    card = f"""# emovox bundled speaker-adaptive model

**What it does.** Recognises one of eight acted emotions ({", ".join(cfg["labels"])}) in
English speech, judging each clip **against its speaker's other clips**: give it several clips
of one speaker (a folder, a call, a speaker column: `emovox predict --speaker-norm`,
`Recognizer.predict_speakers`, `timeline(speaker_norm=True)`, the server's `?speaker_norm=1`) and
each clip's statistics are standardised with that speaker's, so "high pitch" means higher than
this speaker's usual. Alone, a clip is standardised with the training clips' statistics (per
clip), and it is worse than the bundled network that way: use that one for single clips.

**Model.** Utterance functionals + multinomial logistic regression (no network). Per clip, over
its voiced frames (ends quieter than {cfg["preprocessing"]["trim_db"]} dB below the loudest frame cut):
for each of {feat["n_mels"]} log-mel bands and {feat["n_mfcc"]} MFCC the mean, spread, delta spread and 3 quantiles, and
the F0 contour's level, range, movement and voicing (YIN in tensor ops, `emovox.pitch`). DC is
removed first. One linear layer on the standardised vector; float32 weights.

**Training.** `python scripts/bundle_model.py --speaker-model {prov["config"]}` (see its docstring):
RAVDESS speech, all 24 actors (1440 clips), class-balanced, L2 strength C = {prov["C"]} chosen from
the config's grid by 6-fold cross-validation over the actors (4 held out per fold; speaker-adaptive
UA), seed {prov["seed"]}.

**How well it does** (the same config on held-out actors, EmoBox 6 folds, C chosen on 4
validation actors per fold; this file has seen every actor; `{em["source"]}`):
speaker-adaptive (each test actor's clips standardise each other; audio only, no labels)
WA {100 * em["speaker_adaptive"]["wa"]:.1f} ± {100 * em["speaker_adaptive"]["wa_std"]:.1f} %, UA {100 * em["speaker_adaptive"]["ua"]:.1f} ± {100 * em["speaker_adaptive"]["ua_std"]:.1f} %;
per clip WA {100 * em["per_clip"]["wa"]:.1f} ± {100 * em["per_clip"]["wa_std"]:.1f} %, UA {100 * em["per_clip"]["ua"]:.1f} ± {100 * em["per_clip"]["ua_std"]:.1f} %.
{other}
**Calibration.** Two temperatures, both fitted on the cross-validation's out-of-fold logits
(every training clip judged by a fit that did not see its speaker): T = {cal["temperature"]} per clip
(ECE {100 * cal["ece_before"]:.1f} → {100 * cal["ece_after"]:.1f} %), T = {cal["speaker_temperature"]} speaker-adaptive (ECE
{100 * cal["speaker_ece_before"]:.1f} → {100 * cal["speaker_ece_after"]:.1f} %).

**A reference needs several clips** of the same speaker (at least 2; the more, and the more
varied in emotion, the better: a speaker heard only angry makes "angry" their usual). A
speaker-adaptive timeline takes its reference from the recording's own speech windows.

**Data licence.** RAVDESS (Livingstone & Russo 2018, PLoS ONE 13(5): e0196391, Zenodo 1188976)
is licensed CC BY-NC-SA 4.0. This model is derived from it and carries the same terms:
attribution, **non-commercial use only**, share-alike.

**Limits.** Trained on 24 professional North-American actors saying two fixed sentences with
acted emotions in a studio. Expect lower accuracy on spontaneous, conversational, noisy,
accented or non-English speech, on children and on telephone audio. Emotions are acted
categories, not a measure of what someone feels: do not use it to make decisions about people.
"""
    (SPEAKER_ASSETS / "MODEL_CARD.md").write_text(card)


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--member", nargs=2, action="append", metavar=("NAME", "EVAL_RUN"),
                   help="a member: its name and the 6-fold evaluation run whose config it retrains")
    p.add_argument("--ensemble-results", help="benchmarks/ensemble.py JSON of these members (for the card)")
    p.add_argument("--runs", default="runs/bundled", help="where the training runs go")
    p.add_argument("--teacher", type=Path, help="for members whose config distils: the teacher model folder "
                                                "(trained on all 24 actors; not the assets folder being replaced)")
    p.add_argument("--resume", action="store_true")
    p.add_argument("--card-only", action="store_true")
    p.add_argument("--onnx-only", action="store_true", help="re-export the bundled model.onnx (and its card) only")
    p.add_argument("--keep", action="append", metavar="NAME",
                   help="keep these members of the current bundled ensemble as they are (no retraining), beside "
                        "any --member, and drop the others; give the new ensemble's --ensemble-results")
    p.add_argument("--speaker-model", type=Path, metavar="CONFIG",
                   help="build the speaker-adaptive model from this functionals config instead")
    p.add_argument("--speaker-results", type=Path, default=ROOT / "benchmarks" / "results" / "functionals-prosody-emobox.json",
                   help="that config's EmoBox 6-fold results (for the card)")
    args = p.parse_args()
    if args.onnx_only:
        print(f"wrote {export_bundled_onnx()}")
        write_card()
        raise SystemExit(0)
    if args.speaker_model or (args.card_only and SPEAKER_ASSETS.is_dir()):
        if args.speaker_model and not args.card_only:
            bundle_speaker_model(args.speaker_model, args.speaker_results, Path(args.runs) / "speaker-model", args.resume)
        write_speaker_card()
        if args.speaker_model:
            raise SystemExit(0)
    if not args.card_only:
        if not args.member and not args.keep:
            p.error("give --member NAME EVAL_RUN (retrain) and/or --keep NAME (reuse)")
        if set(args.keep or []) & {name for name, _ in args.member or []}:
            p.error("a member is either kept or retrained, not both")
        if args.keep and not args.ensemble_results:
            p.error("--keep needs --ensemble-results: the kept members' shared temperature and figures")
        if args.ensemble_results and args.member and not args.keep:  # before any training: T and figures must be these members'
            runs = sorted(Path(run).resolve() for _, run in args.member)
            measured = sorted((ROOT / run).resolve() for run in json.loads(Path(args.ensemble_results).read_text()).get("ensemble_of", []))
            if runs != measured:
                p.error(f"{args.ensemble_results} measured {[str(m) for m in measured]}, not the members' runs "
                        f"{[str(m) for m in runs]}")
        if args.keep and not is_ensemble(ASSETS):
            p.error(f"--keep needs the bundled model to be an ensemble; {ASSETS} is one network: retrain the members "
                    "you want with --member NAME EVAL_RUN (or restore an ensemble from git history first)")
        if args.teacher and args.teacher.resolve() == ASSETS.resolve():
            p.error("--teacher must not be the assets folder this script replaces: copy it first")
        from emovox.models.folder import load_bundle

        members = {name: load_bundle(ASSETS / name) for name in args.keep or []}  # before the folder is rewritten
        members.update({name: train_member(name, Path(run), Path(args.runs) / name, args.resume, args.teacher)
                        for name, run in args.member or []})
        shutil.rmtree(ASSETS, ignore_errors=True)
        extra = {"provenance": {"name": "+".join(members)}}
        if args.ensemble_results:
            r = json.loads(Path(args.ensemble_results).read_text())
            for bundle in members.values():  # one temperature shared by the members (see ensemble.py)
                bundle.extra["calibration"].update({
                    "temperature": round(r["temperature_median"], 4),
                    "fitted_on": f"median of the 6 EmoBox folds' {'ensemble ' if len(members) > 1 else ''}temperatures, each fitted on that "
                                 "fold's validation actors", "fold_temperatures": [f["temperature"] for f in r["folds"]],
                    "test_ece_before": r["test_ece_before"], "test_ece_after": r["test_ece_after"]})
            extra["emobox"] = {k: r.get(k) for k in ("wa", "wa_std", "ua", "ua_std", "test_ece_before",
                                                    "test_ece_after")}
            extra["emobox"]["source"] = args.ensemble_results
        if len(members) == 1:  # one network: a plain model folder, its figures beside its weights
            (bundle,) = members.values()
            if "emobox" in extra:
                bundle.extra["emobox"] = extra["emobox"]
            save_bundle(bundle, ASSETS, half=True)
        else:
            save_ensemble(members, ASSETS, half=True, extra=extra)
        export_bundled_onnx()
        print(f"wrote {ASSETS}")
    write_card()
