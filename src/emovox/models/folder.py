"""A model is a folder: ``config.json`` + ``model.safetensors`` (+ ``model.onnx`` once exported);
an ensemble is a folder whose ``config.json`` names member folders. Loading never unpickles.

The one module that knows the format. torch is imported only by the functions that build or
save networks, so the ONNX backend can check a folder (:func:`is_ensemble`,
:func:`fingerprint`) without importing it (cold start).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ..labels import EMOTIONS

if TYPE_CHECKING:
    from torch import nn

    from ..pipeline import Pipeline

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
ONNX_NAME = "model.onnx"
MODEL_FORMAT = "emovox-model/1"
ENSEMBLE_FORMAT = "emovox-ensemble/1"


def is_ensemble(folder: str | Path) -> bool:
    path = Path(folder) / CONFIG_NAME
    return path.is_file() and json.loads(path.read_text()).get("format") == ENSEMBLE_FORMAT


def member_folders(folder: str | Path) -> list[Path]:
    """The model folders of ``folder``: its members if it is an ensemble, else itself."""
    folder = Path(folder)
    if is_ensemble(folder):
        return [folder / m for m in json.loads((folder / CONFIG_NAME).read_text())["members"]]
    return [folder]


def fingerprint(folder: str | Path) -> str:
    """Short hash of everything that changes a folder's predictions: each member's weights
    and calibration. Ties an ONNX export to the folder it came from."""
    h = hashlib.sha256()
    for member in member_folders(folder):
        h.update((member / WEIGHTS_NAME).read_bytes())
        cal = json.loads((member / CONFIG_NAME).read_text()).get("calibration", {})
        h.update(repr(float(cal.get("temperature", 1.0))).encode())
    return h.hexdigest()[:12]


@dataclass
class ModelBundle:
    """A network with everything needed to reproduce its predictions."""

    model: nn.Module
    pipeline: Pipeline
    labels: tuple[str, ...] = EMOTIONS
    model_name: str = "resnet18"
    model_options: dict = field(default_factory=dict)
    extra: dict = field(default_factory=dict)  # provenance, calibration, metrics

    def config(self) -> dict:
        return {
            "format": MODEL_FORMAT,
            "labels": list(self.labels),
            "model": {"name": self.model_name, **self.model_options},
            "preprocessing": self.pipeline.to_dict(),
            **self.extra,
        }


def new_bundle(pipeline: Pipeline, model_name: str = "resnet18", labels=EMOTIONS, **options) -> ModelBundle:
    """A freshly initialised network for ``pipeline``'s feature images."""
    from .registry import build_model

    model = build_model(model_name, len(labels), pipeline.features.channels, **options)
    return ModelBundle(model, pipeline, tuple(labels), model_name, dict(options))


def save_bundle(bundle: ModelBundle, folder: str | Path, *, half: bool = False) -> Path:
    """Write ``config.json`` and ``model.safetensors`` (float16 weights when ``half``)."""
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous().clone() for k, v in bundle.model.state_dict().items()}
    if half:
        state = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
    save_file(state, str(folder / WEIGHTS_NAME))
    (folder / CONFIG_NAME).write_text(json.dumps(bundle.config(), indent=2) + "\n")
    return folder


def load_bundle(folder: str | Path) -> ModelBundle:
    """Read a model folder written by :func:`save_bundle` (weights returned as float32)."""
    from safetensors.torch import load_file

    from ..pipeline import Pipeline
    from .registry import build_model

    folder = Path(folder)
    cfg_path, weights = folder / CONFIG_NAME, folder / WEIGHTS_NAME
    for p in (cfg_path, weights):
        if not p.is_file():
            raise FileNotFoundError(f"{folder} is not an emovox model folder: {p.name} is missing")
    cfg = json.loads(cfg_path.read_text())
    model_cfg = dict(cfg["model"])
    name = model_cfg.pop("name")
    pipeline = Pipeline.from_dict(cfg["preprocessing"])
    labels = tuple(cfg["labels"])
    model = build_model(name, len(labels), pipeline.features.channels, **model_cfg)
    state = {k: v.float() if v.is_floating_point() else v for k, v in load_file(str(weights)).items()}
    model.load_state_dict(state)
    model.eval()
    extra = {k: v for k, v in cfg.items() if k not in ("format", "labels", "model", "preprocessing")}
    return ModelBundle(model, pipeline, labels, name, model_cfg, extra)


# ---------------------------------------------------------------- ensembles


def save_ensemble(members: dict[str, ModelBundle], folder: str | Path, *, half: bool = False,
                  extra: dict | None = None) -> Path:
    """An ensemble folder: ``config.json`` naming the members, one model folder per member.
    Predictions average the members' (calibrated) probabilities."""
    folder = Path(folder)
    labels = {tuple(b.labels) for b in members.values()}
    rates = {b.pipeline.sample_rate for b in members.values()}
    if len(labels) != 1 or len(rates) != 1:
        raise ValueError("ensemble members must share their labels and sample rate")
    for name, bundle in members.items():
        save_bundle(bundle, folder / name, half=half)
    cfg = {"format": ENSEMBLE_FORMAT, "labels": list(labels.pop()), "members": list(members),
           "sample_rate": rates.pop(), "clip_seconds": max(b.pipeline.clip_seconds for b in members.values()),
           **(extra or {})}
    (folder / CONFIG_NAME).write_text(json.dumps(cfg, indent=2) + "\n")
    return folder


def load_members(folder: str | Path) -> list[ModelBundle]:
    """The models of a folder: its members if it is an ensemble, else the one model."""
    return [load_bundle(m) for m in member_folders(folder)]
