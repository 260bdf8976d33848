"""The README's cross-corpus table from benchmarks/results/cross/*.json.

    python benchmarks/cross_table.py > benchmarks/results/cross.md

One row per model and protocol: RAVDESS speech → SAVEE, all 480 clips (7 emotions) and EmoBox's
balanced 4-emotion list, each read two ways (the model's own answer over its 8 emotions; the
argmax over the test emotions). SAVEE is the development corpus: development figures.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results" / "cross"


def pct(x):
    return f"{100 * x:.1f}"


def consistency_label(weight: float) -> str:
    return f"consistency training (weight {weight:g})"


def protocol_label(d: dict, protocol: str) -> str:
    """The protocol column: the speaker-adaptive protocol says how it adapts (results before
    answer adaptation existed only ever adapted feature statistics)."""
    if protocol == "speaker-adaptive" and d["all"].get("speaker_adaptation") == "answers":
        return "speaker-adaptive (mean answer)"
    return protocol


def recipe(d: dict) -> str:
    """What the run changed, read from its config (bundled models: their folder name)."""
    cfg = d.get("config")
    if not cfg and isinstance(d["model"], list):  # several folders averaged: runs' models, e.g. two seeds
        names = [Path(m).parts[-3] if Path(m).parts[-2:] == ("train", "best") else m for m in d["model"]]
        return f"average of the {', '.join(f'`{n}`' for n in names)} runs' models"
    if not cfg:
        parts = d["model"].rstrip("/").split("/")
        if "assets" not in parts:  # a run's model, e.g. runs/bench/cross/mfcc/train/best
            return f"the `{parts[-3]}` run's model (20 RAVDESS actors)"
        if parts[-1] == "speaker-model":
            return ("**bundled speaker-adaptive model**: prosody functionals (mel + MFCC + pitch), class-balanced, "
                    "24 actors, C by 6-fold CV over them")
        trained = (", waveform augmentation" if d.get("wave_augment") else "") + (
            f", {consistency_label(d['consistency'])}" if d.get("consistency") else "") + (
            f", {d['epochs']} epochs" if d.get("epochs") and d["epochs"] != 40 else "")
        if d.get("members") and parts[-1] == "model":  # recorded since v2: the folder changes, the JSON stays
            version = d["name"].removeprefix("bundled-")
            if d["members"] == [parts[-1]]:  # a plain model folder (v6 on): one network
                return f"**bundled model {version}**: one network on {', '.join(d.get('features') or ['?'])}{trained} (24 actors)"
            return f"**bundled model {version}**: ensemble of {', '.join(d['members'])}{trained} (24 actors)"
        if d.get("members"):  # one member of a bundled model, named bundled-vN-MEMBER
            version = d["name"].removeprefix("bundled-").split("-")[0]
            return f"bundled model {version}, its {parts[-1]} member alone{trained} (24 actors)"
        return ("bundled model v1: ensemble of mel+deltas, MFCC, spectrogram (24 actors)" if parts[-1] == "model"
                else f"bundled model v1, its {parts[-1]} member alone (24 actors)")
    f, t, a = cfg["preprocessing"]["features"], cfg["training"], cfg["augment"]
    if cfg["model"]["name"] == "functionals":
        rows = f["kind"] + (" + MFCC" if f.get("append_mfcc") else "") + (" + pitch" if f.get("pitch") else "")
        parts = [f"**utterance functionals of {rows}** (mean, spread, delta spread, 3 quantiles"
                 + ("; F0 level, range, movement, voicing" if f.get("pitch") else "") + ") + logistic regression, no network"]
        if t.get("balance", "none") != "none":
            parts.append("class-balanced")
        if t.get("cv_folds"):
            parts.append(f"C by {t['cv_folds']}-fold CV over the training actors")
        if t.get("copies"):
            parts.append(f"{t['copies']} augmented copies of each training clip (each speaker's copy through one degradation)")
        parts += [f"seed {cfg['seed']} (validation actors)"] if cfg.get("seed") else []
        return ", ".join(parts + _trained_on(d, cfg))
    parts = [f["kind"] + (" + deltas" if f.get("deltas") else "")]
    if f.get("normalize") not in (None, True, "window"):
        parts.append(f"normalize {f['normalize']}")
    if f.get("remove_dc"):
        parts.append("DC removed")
    if f.get("f_min"):
        parts.append(f"mel bands from {f['f_min']:g} Hz")
    if f.get("relative_db"):
        parts.append("dB relative to the loudest bin")
    if cfg["preprocessing"].get("clip_seconds") != 2.5:
        parts.append(f"{cfg['preprocessing']['clip_seconds']} s windows")
    if t.get("speaker_p"):
        parts.append(f"speaker references p={t['speaker_p']}")
    if a.get("wave"):
        parts.append("waveform augmentation")
        eq = a["wave"].get("eq")
        pitch = a["wave"].get("pitch")
        if pitch is not None:
            parts.append(f"**pitch shifting** (p={pitch.get('p', 1.0):g}: {pitch.get('low', -3):g} to "
                         f"{pitch.get('high', 3):g} semitones at the same tempo)")
        if eq is not None:
            gain = eq.get("gain", (-12, 12))
            parts.append(f"**equaliser augmentation** (p={eq.get('p', 1.0):g}: shelves and a peak, {gain[0]:g} to {gain[1]:g} dB)")
    if t.get("consistency"):
        parts.append(consistency_label(t["consistency"]))
    if t.get("speaker_groups"):
        share = t.get("centred_weight", 0.5)
        parts.append(f"**speaker-centred training** (groups of {t['speaker_groups']}, "
                     + ("centred answers only" if share == 1 else f"centred answers {share:g} of the loss")
                     + "; validation UA of adapted answers)")
    if t.get("speaker_adversary"):
        parts.append(f"**speaker-adversarial training** (weight {t['speaker_adversary']:g})")
    if t.get("intensity_head"):
        parts.append(f"**intensity head** (RAVDESS normal / strong, weight {t['intensity_head']:g})")
    if t.get("mixstyle"):
        parts.append(f"**Freq-MixStyle** (p={t['mixstyle']:g} per batch, input bins)" if t.get("mixstyle_on") == "bins"
                     else f"**MixStyle** (p={t['mixstyle']:g} per batch, stages 1-2)")
    if cfg["model"].get("pooling", "avg") != "avg":
        parts.append(f"**{cfg['model']['pooling']} pooling** over time (mean and spread)")
    if t.get("epochs", 40) != 40:
        parts.append(f"{t['epochs']} epochs")
    if cfg["model"].get("width", 32) != 32:  # the table's networks are ResNet18 w32 unless named
        parts.append(f"**ResNet18 w{cfg['model']['width']}**")
    if "amx" in (d.get("machine") or ""):  # the table's rows are AMD EPYC unless they say so
        parts.append("Intel AMX")
    elif "AMD" in (d.get("machine") or "") and "family 26 " in d["machine"]:
        parts.append("AMD Zen 5")
    elif "AMD" in (d.get("machine") or "") and "family 25 " in d["machine"]:  # named since the Zen 5 rows
        parts.append("AMD Zen 4")
    if cfg.get("seed"):
        parts.append(f"seed {cfg['seed']}")
    if d.get("note"):  # e.g. a run made before a fix, with the commit that reproduces it
        parts.append(d["note"])
    return ", ".join(parts + _trained_on(d, cfg))


def _trained_on(d: dict, cfg: dict) -> list[str]:
    if d.get("train") and d["train"] != ["ravdess"]:
        return [f"trained on {' + '.join(d['train'])} (validation speakers {cfg['training']['val_speakers']})"]
    return []


def main() -> int:
    print("| recipe (trained on 20 RAVDESS actors; ResNet18 w32 unless named) | protocol | SAVEE 4-emotion list, argmax over 4: WA | all 480, own answer: WA / UA | "
          "all 480, argmax over 7: WA / UA | calm counted as neutral (`--emotions`): 4-emotion list WA; all 480 WA / UA | "
          "RAVDESS validation UA | source |")
    print("|---|---|---|---|---|---|---|---|")
    others = []
    for path in sorted(RESULTS.glob("*.json")):
        d = json.loads(path.read_text())
        if "emobox-4" not in d:
            others.append((path, d))
            continue
        val = d.get("validation") or {}
        for protocol in ("per-clip", "speaker-adaptive"):
            if protocol not in d["all"]:
                continue
            four = d["emobox-4"][protocol]["restricted"]
            own, seven = d["all"][protocol]["own"], d["all"][protocol]["restricted"]
            f4, f7 = d["emobox-4"][protocol].get("folded"), d["all"][protocol].get("folded")
            folded = f"{pct(f4['wa'])}; {pct(f7['wa'])} / {pct(f7['ua'])}" if f4 and f7 else "—"  # older results: not read
            print(f"| {recipe(d)} | {protocol_label(d, protocol)} | {pct(four['wa'])} | {pct(own['wa'])} / {pct(own['ua'])} | "
                  f"{pct(seven['wa'])} / {pct(seven['ua'])} | {folded} | {pct(val['val_ua']) if 'val_ua' in val else '—'} | "
                  f"`{path.relative_to(RESULTS.parents[1])}` |")
    if others:
        print("\n| direction | recipe | protocol | own answer: WA / UA | argmax over the test emotions: WA / UA | source |")
        print("|---|---|---|---|---|---|")
        for path, d in others:
            for protocol in ("per-clip", "speaker-adaptive"):
                if protocol in d["all"]:
                    own, rest = d["all"][protocol]["own"], d["all"][protocol]["restricted"]
                    print(f"| {' + '.join(d['train'] or ['RAVDESS speech'])} → {d['test']} | {recipe(d)} | "
                          f"{protocol_label(d, protocol)} | "
                          f"{pct(own['wa'])} / {pct(own['ua'])} | {pct(rest['wa'])} / {pct(rest['ua'])} | "
                          f"`{path.relative_to(RESULTS.parents[1])}` |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
