"""Build the bundled model: train the recipe on all 24 RAVDESS speech actors, store it in float16,
and write its model card with the recipe's measured figures.

    python scripts/bundle_model.py --config configs/resnet18-mel.yaml --run runs/bundled
    python scripts/bundle_model.py --card-only     # refresh MODEL_CARD.md from benchmarks/results

The number of epochs is the config's; with no actor held out the last epoch is kept (in the
cross-validated runs the epoch selected on validation actors was near the end of the one-cycle
schedule). Writes src/emovox/assets/model/{config.json,model.safetensors,MODEL_CARD.md}.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from emovox.cli import main as cli
from emovox.inference.export import export_onnx
from emovox.models.folder import load_bundle, save_bundle

ROOT = Path(__file__).resolve().parents[1]
ASSETS = ROOT / "src" / "emovox" / "assets" / "model"
RESULTS = ROOT / "benchmarks" / "results"


def figure(name: str) -> str:
    path = RESULTS / f"{name}.json"
    if not path.exists():
        return "not measured yet"
    r = json.loads(path.read_text())
    return (f"WA {100 * r['wa']:.1f} ± {100 * r['wa_std']:.1f} %, UA {100 * r['ua']:.1f} ± {100 * r['ua_std']:.1f} %, "
            f"macro-F1 {100 * r['f1']:.1f} ± {100 * r['f1_std']:.1f} % over {len(r['folds'])} fold(s)")


def write_card() -> None:
    cfg = json.loads((ASSETS / "config.json").read_text())
    name = cfg["provenance"]["name"]
    feats = cfg["preprocessing"]["features"]
    size_mb = (ASSETS / "model.safetensors").stat().st_size / 1e6
    card = f"""# emovox bundled model — `{name}`

**What it does.** Recognises one of eight acted emotions ({", ".join(cfg["labels"])}) in
English speech and returns the probability of each.

**Model.** ResNet18 ({cfg["model"]["width"]} channels in the first stage; the first convolution
takes one channel, the last layer has one output per emotion), trained from scratch (no external
weights). Input: {feats["n_mels"]}-band log-mel images (16 kHz, {feats["n_fft"]}-point FFT,
{feats["hop_length"]}-sample hop) of the voiced part of the clip (ends quieter than
{cfg["preprocessing"]["trim_db"]} dB below the loudest frame cut), in {cfg["preprocessing"]["clip_seconds"]} s
windows, each standardised; a clip's prediction averages its overlapping windows.
Weights stored in float16 ({size_mb:.1f} MB), loaded as float32.

**Training.** `python scripts/bundle_model.py` — RAVDESS speech, all 24 actors (1440 clips),
{cfg["provenance"]["training"]["epochs"]} epochs of the one-cycle policy between the bounds of an LR
range test, AdamW, label smoothing {cfg["provenance"]["training"]["label_smoothing"]}, seed
{cfg["provenance"]["seed"]}, {"bf16 autocast" if cfg["provenance"]["training"]["bf16"] else "fp32"}, on a 2-core CPU.

**How well the recipe does** (the same configuration, measured with held-out data; this file
itself has seen every actor, so no figure can be measured on it honestly):
- actor-disjoint, EmoBox 6 folds of RAVDESS speech (test actors never heard in training):
  {figure(name + "-emobox")} — `bash benchmarks/seed_recipe.sh`
- random 80/20 files (the seed recipe's protocol; the same actors in training and test):
  {figure(name + "-random")}

**Data licence.** RAVDESS (Livingstone & Russo 2018, PLoS ONE 13(5): e0196391, Zenodo 1188976)
is licensed CC BY-NC-SA 4.0. This model is derived from it and carries the same terms:
attribution, **non-commercial use only**, share-alike.

**Limits.** Trained on 24 professional North-American actors saying two fixed sentences with
acted emotions in a studio. Expect much lower accuracy on spontaneous, conversational, noisy,
accented or non-English speech, on children and on telephone audio. Emotions are acted
categories, not a measure of what someone feels: do not use it to make decisions about people.
"""
    (ASSETS / "MODEL_CARD.md").write_text(card)


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--config", default="configs/resnet18-mel.yaml")
    p.add_argument("--run", default="runs/bundled")
    p.add_argument("--resume", action="store_true")
    p.add_argument("--card-only", action="store_true")
    args = p.parse_args()
    if not args.card_only:
        argv = ["train", "--config", args.config, "--set", "training.val_speakers=0", "--out", args.run]
        code = cli(argv + (["--resume"] if args.resume else []))
        if code:
            sys.exit(code)
        bundle = load_bundle(Path(args.run) / "best")
        bundle.extra["provenance"].update({"data": "RAVDESS speech, all 24 actors (1440 clips)",
                                           "licence": "CC BY-NC-SA 4.0 (inherited from RAVDESS)"})
        save_bundle(bundle, ASSETS, half=True)
        export_onnx(ASSETS, ASSETS / "model.onnx")  # the same weights for the onnxruntime backend
        print(f"wrote {ASSETS}")
    write_card()
