"""Run configurations: YAML recipes merged over defaults, with ``a.b=value`` overrides.

Every hyper-parameter lives here or in ``configs/*.yaml``; nothing is hard-coded in the loop.
"""

from __future__ import annotations

import copy
from pathlib import Path

import yaml

from .features import FeatureConfig

DEFAULTS: dict = {
    "name": "resnet18-mel",
    "seed": 0,
    "threads": 2,
    # corpus: a name or a list of NAME / NAME=DIR; labels: all (emovox's 8) | union | intersection
    "data": {"corpus": "ravdess", "root": None, "test_corpora": None, "cache_dir": None, "labels": "all"},
    "preprocessing": {"features": FeatureConfig().to_dict(), "trim_db": 30.0, "clip_seconds": 2.5,
                      "margin_seconds": 0.05},
    "model": {"name": "resnet18", "width": 32, "dropout": 0.2, "pretrained": None},
    "training": {
        "epochs": 40,
        "batch_size": 32,
        "max_lr": 3.0e-3,        # a number, or "auto": run the LR range test first and use its bounds
        "div_factor": 25.0,      # one-cycle starts at max_lr / div_factor
        "final_div_factor": 1.0e4,
        "pct_start": 0.3,
        "weight_decay": 0.05,
        "label_smoothing": 0.1,
        "bf16": True,            # bf16 autocast on CPUs that support it; fp32 otherwise
        "channels_last": True,
        "val_speakers": 4,       # validation actors drawn from the training actors (0: none)
        "select_on": "val_ua",   # model selection metric on the validation actors
        "balance": "none",       # none | sampler (classes drawn equally often) | loss (inverse-frequency weights)
        "speaker_p": 0.0,        # "bins" normalisation: chance a clip uses its speaker's statistics, not its own
    },
    "lr_find": {"start_lr": 1.0e-6, "end_lr": 1.0, "steps": 100},
    # training-time augmentation; null = off (see emovox.augment): of the feature windows
    # (spec_augment, mixup) and of the waveforms (wave: {speed, reverb, noise, codec, ...})
    "augment": {"spec_augment": None, "mixup": None, "wave": None},
}


def _merge(base: dict, update: dict, where: str = "") -> dict:
    out = copy.deepcopy(base)
    for key, value in update.items():
        if key not in base:
            raise ValueError(f"unknown config key {where + key!r}")
        if isinstance(base[key], dict) and key != "features":
            if not isinstance(value, dict):
                raise ValueError(f"config key {where + key!r} must be a mapping")
            out[key] = _merge(base[key], value, f"{where}{key}.")
        elif key == "features":
            out[key] = {**base[key], **value}
            FeatureConfig.from_dict(out[key])  # validates names and values
        else:
            _check_type(where + key, base[key], value)
            out[key] = value
    return out


def _check_type(name: str, default, value) -> None:
    """Numbers stay numbers and flags stay flags (``None`` defaults accept anything)."""
    if default is None or value is None:
        return
    if isinstance(default, bool) and not isinstance(value, bool):
        raise ValueError(f"config key {name!r} must be true or false, not {value!r}")
    if isinstance(default, (int, float)) and not isinstance(default, bool):
        if name.endswith("max_lr") and value == "auto":
            return
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"config key {name!r} must be a number, not {value!r}")


def parse_override(text: str) -> dict:
    """``"training.epochs=5"`` → ``{"training": {"epochs": 5}}`` (value parsed as YAML)."""
    if "=" not in text:
        raise ValueError(f"override {text!r} must look like section.key=value")
    path, raw = text.split("=", 1)
    value = yaml.safe_load(raw)
    for part in reversed(path.strip().split(".")):
        value = {part: value}
    return value


def load_config(path: str | Path | None = None, overrides: list[str] = ()) -> dict:
    """Defaults, then the YAML file, then each override, validated at every step."""
    cfg = copy.deepcopy(DEFAULTS)
    if path is not None:
        data = yaml.safe_load(Path(path).read_text()) or {}
        if not isinstance(data, dict):
            raise ValueError(f"{path}: a config must be a mapping of sections (see configs/*.yaml)")
        cfg = _merge(cfg, data)
    for text in overrides:
        cfg = _merge(cfg, parse_override(text))
    return cfg


def save_config(cfg: dict, path: str | Path) -> None:
    from .safeio import atomic_write_text

    atomic_write_text(path, yaml.safe_dump(cfg, sort_keys=False))
