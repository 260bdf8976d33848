"""A model is a folder: ``config.json`` + ``model.safetensors`` (+ ``model.onnx`` once exported);
an ensemble is a folder whose ``config.json`` names member folders. Loading never unpickles.

A folder that does not match (a config that is not JSON or lacks a key, settings of the wrong
type or out of range, weights that are a pickle or not safetensors, tensors with other names
or shapes than the network the config describes, non-finite weights, an ensemble naming a
member outside its folder) raises :class:`ModelFolderError` naming the file and the problem.
The weights' names and shapes are checked against a network built on the ``meta`` device
(no memory) before the real one is built, so an absurd size in a config allocates nothing.
Saving writes each file atomically (temporary file, fsync, rename), the weights first and
``config.json`` last.

The one module that knows the format. torch is imported only by the functions that build or
save networks, so the ONNX backend can check a folder (:func:`is_ensemble`,
:func:`fingerprint`) without importing it (cold start).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ..labels import EMOTIONS

if TYPE_CHECKING:
    from torch import nn

    from ..pipeline import Preprocessing

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
ONNX_NAME = "model.onnx"
MODEL_FORMAT = "emovox-model/1"
ENSEMBLE_FORMAT = "emovox-ensemble/1"


#: largest config.json read (a real one is a few KB)
MAX_CONFIG_BYTES = 1_000_000
#: bounds of the settings a model folder may ask for (beyond them it is not a real model)
_LIMITS = {"width": (1, 4096), "labels": (2, 1000), "sample_rate": (1000, 384_000), "n_fft": (16, 65536),
           "n_mels": (1, 1024), "n_mfcc": (1, 1024), "clip_seconds": (0.05, 600.0)}


class ModelFolderError(ValueError):
    """A model folder whose files are damaged, do not match, or are not what they should be."""


def read_config(folder: str | Path) -> dict:
    """``folder/config.json`` as a dict; :class:`ModelFolderError` if it is not a JSON object."""
    path = Path(folder) / CONFIG_NAME
    if not path.is_file():
        raise FileNotFoundError(f"{folder} is not an emovox model folder: {CONFIG_NAME} is missing")
    if path.stat().st_size > MAX_CONFIG_BYTES:
        raise ModelFolderError(f"{path}: {path.stat().st_size} bytes, too large for a model config")
    try:
        cfg = json.loads(path.read_text(encoding="utf-8"), parse_constant=_no_constant)
    except (ValueError, RecursionError) as err:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise ModelFolderError(f"{path} is not valid JSON ({str(err)[:200]})") from None
    if not isinstance(cfg, dict):
        raise ModelFolderError(f"{path}: expected a JSON object, got {type(cfg).__name__}")
    return cfg


def _no_constant(name: str):
    raise ValueError(f"{name} is not a valid number in a model config")


def is_ensemble(folder: str | Path) -> bool:
    path = Path(folder) / CONFIG_NAME
    return path.is_file() and read_config(folder).get("format") == ENSEMBLE_FORMAT


def member_folders(folder: str | Path) -> list[Path]:
    """The model folders of ``folder``: its members if it is an ensemble, else itself.

    Raises :class:`ModelFolderError` when an ensemble's ``members`` is not a non-empty list of
    distinct folder names inside it (``../x``, absolute paths and links leading out are refused).
    """
    folder = Path(folder)
    if not is_ensemble(folder):
        return [folder]
    members = read_config(folder).get("members")
    where = folder / CONFIG_NAME
    if not isinstance(members, list) or not members or not all(isinstance(m, str) and m for m in members):
        raise ModelFolderError(f"{where}: 'members' must be a non-empty list of member folder names")
    if len(set(members)) != len(members):
        raise ModelFolderError(f"{where}: 'members' names a folder twice")
    root = folder.resolve()
    out = []
    for m in members:
        if "\x00" in m or os.path.isabs(m) or m.startswith(("/", "\\")) or ".." in Path(m.replace("\\", "/")).parts:
            raise ModelFolderError(f"{where}: member {m!r} is outside the ensemble folder (use a plain folder name)")
        path = folder / m
        if path.resolve() != root and root not in path.resolve().parents:
            raise ModelFolderError(f"{where}: member {m!r} leads outside the ensemble folder")
        if path.resolve() == root:
            raise ModelFolderError(f"{where}: member {m!r} is the ensemble folder itself")
        out.append(path)
    return out


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
    pipeline: Preprocessing
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


def new_bundle(pipeline: Preprocessing, model_name: str = "resnet18", labels=EMOTIONS, **options) -> ModelBundle:
    """A freshly initialised network for ``pipeline``'s feature images."""
    from .registry import build_model

    model = build_model(model_name, len(labels), pipeline.features.channels, **options)
    return ModelBundle(model, pipeline, tuple(labels), model_name, dict(options))


def save_bundle(bundle: ModelBundle, folder: str | Path, *, half: bool = False) -> Path:
    """Write ``config.json`` and ``model.safetensors`` (float16 weights when ``half``)."""
    from safetensors.torch import save_file

    from ..safeio import atomic_path, atomic_write_text

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous().clone() for k, v in bundle.model.state_dict().items()}
    if half:
        state = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
    with atomic_path(folder / WEIGHTS_NAME) as tmp:
        save_file(state, str(tmp))
    atomic_write_text(folder / CONFIG_NAME, json.dumps(bundle.config(), indent=2) + "\n")
    return folder


def load_bundle(folder: str | Path) -> ModelBundle:
    """Read a model folder written by :func:`save_bundle` (weights returned as float32)."""
    from safetensors.torch import load_file

    from ..pipeline import Preprocessing
    from .registry import build_model

    import torch

    folder = Path(folder)
    cfg_path, weights = folder / CONFIG_NAME, folder / WEIGHTS_NAME
    for p in (cfg_path, weights):
        if not p.is_file():
            raise FileNotFoundError(f"{folder} is not an emovox model folder: {p.name} is missing")
    cfg = read_config(folder)
    labels, name, model_cfg, pipeline = _check_config(cfg, cfg_path, Preprocessing)
    shapes = _safetensors_shapes(weights)
    try:  # built on the CPU, not the meta device: initialising on meta imports torch._dynamo (1-2.5 s)
        model = build_model(name, len(labels), pipeline.features.channels, **model_cfg)
        expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    except (TypeError, ValueError, RuntimeError) as err:
        raise ModelFolderError(f"{cfg_path}: cannot build model {name!r} with {model_cfg} ({err})") from None
    _compare(weights, expected, shapes)
    try:
        tensors = load_file(str(weights))
    except Exception as err:  # safetensors' own error types
        raise ModelFolderError(f"{weights}: damaged safetensors file ({str(err)[:200]})") from None
    bad = [k for k, v in tensors.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise ModelFolderError(f"{weights}: NaN or infinite values in {', '.join(sorted(bad)[:5])}")
    model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in tensors.items()})
    model.eval()
    extra = {k: v for k, v in cfg.items() if k not in ("format", "labels", "model", "preprocessing")}
    return ModelBundle(model, pipeline, labels, name, model_cfg, extra)


def _check_config(cfg: dict, where: Path, Preprocessing):
    """``(labels, model name, model options, pipeline)`` of a model config, or ModelFolderError."""
    if cfg.get("format", MODEL_FORMAT) != MODEL_FORMAT:
        raise ModelFolderError(f"{where}: format {cfg.get('format')!r}, expected {MODEL_FORMAT!r}")
    missing = [k for k in ("labels", "model", "preprocessing") if k not in cfg]
    if missing:
        raise ModelFolderError(f"{where}: missing {', '.join(missing)}")
    labels = cfg["labels"]
    lo, hi = _LIMITS["labels"]
    if not isinstance(labels, list) or not all(isinstance(x, str) and x for x in labels) \
            or len(set(labels)) != len(labels) or not lo <= len(labels) <= hi:
        raise ModelFolderError(f"{where}: 'labels' must be a list of {lo}..{hi} distinct emotion names")
    model_cfg = cfg["model"]
    if not isinstance(model_cfg, dict) or not isinstance(model_cfg.get("name"), str):
        raise ModelFolderError(f"{where}: 'model' must be an object with a 'name'")
    model_cfg = dict(model_cfg)
    name = model_cfg.pop("name")
    from .resnet import check_pooling

    try:  # the one setting that is a name
        check_pooling(model_cfg.get("pooling", "avg"), name)
    except ValueError as err:
        raise ModelFolderError(f"{where}: model {err}") from None
    for key, value in model_cfg.items():
        if key == "pooling":  # checked above, kept for the builder
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ModelFolderError(f"{where}: model setting {key!r} must be a finite number, got {value!r}")
    if "width" in model_cfg and (not isinstance(model_cfg["width"], int)
                                 or not _LIMITS["width"][0] <= model_cfg["width"] <= _LIMITS["width"][1]):
        raise ModelFolderError(f"{where}: model width must be an integer in {_LIMITS['width']}, got {model_cfg['width']!r}")
    if "dropout" in model_cfg and not 0 <= model_cfg["dropout"] < 1:
        raise ModelFolderError(f"{where}: dropout must be in [0, 1), got {model_cfg['dropout']!r}")
    pre = cfg["preprocessing"]
    if not isinstance(pre, dict) or not isinstance(pre.get("features", {}), dict):
        raise ModelFolderError(f"{where}: 'preprocessing' must be an object (with a 'features' object)")
    for section in (pre, pre.get("features", {})):
        for key, value in section.items():
            if isinstance(value, float) and not math.isfinite(value):
                raise ModelFolderError(f"{where}: preprocessing setting {key!r} is {value!r}")
            if key in _LIMITS and (isinstance(value, bool) or not isinstance(value, (int, float))
                                   or not _LIMITS[key][0] <= value <= _LIMITS[key][1]):
                raise ModelFolderError(f"{where}: preprocessing setting {key!r} must be in {_LIMITS[key]}, got {value!r}")
    for key in ("win_length", "hop_length"):
        value = pre.get("features", {}).get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise ModelFolderError(f"{where}: preprocessing setting {key!r} must be a positive integer, got {value!r}")
    cal = cfg.get("calibration", {})
    temp = cal.get("temperature", 1.0) if isinstance(cal, dict) else None
    if isinstance(temp, bool) or not isinstance(temp, (int, float)) or not math.isfinite(temp) or temp <= 0:
        raise ModelFolderError(f"{where}: 'calibration' must be an object with a positive 'temperature'")
    try:
        pipeline = Preprocessing.from_dict(pre)
    except (TypeError, ValueError) as err:
        raise ModelFolderError(f"{where}: bad preprocessing settings ({err})") from None
    return tuple(labels), name, model_cfg, pipeline


def _safetensors_shapes(path: Path) -> dict[str, tuple[int, ...]]:
    """Tensor names and shapes from a safetensors header, refusing pickles and other formats."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(8)
        if head[:2] in (b"\x80\x02", b"\x80\x03", b"\x80\x04", b"\x80\x05") or head[:4] == b"PK\x03\x04":
            raise ModelFolderError(f"{path} is a pickle / torch.save file, not safetensors: emovox never unpickles "
                                   "weights; convert it with safetensors.torch.save_file(state_dict, ...)")
        if len(head) < 8:
            raise ModelFolderError(f"{path}: {size} bytes, too short for a safetensors file")
        n = int.from_bytes(head, "little")
        if not 2 <= n <= min(size - 8, 100_000_000):
            raise ModelFolderError(f"{path} is not a safetensors file (header length {n} for a {size}-byte file)")
        try:
            header = json.loads(f.read(n).decode("utf-8"))
        except (ValueError, RecursionError):
            raise ModelFolderError(f"{path} is not a safetensors file (its header is not JSON)") from None
    if not isinstance(header, dict):
        raise ModelFolderError(f"{path} is not a safetensors file (its header is not an object)")
    shapes = {}
    for k, v in header.items():
        if k == "__metadata__":
            continue
        if not isinstance(v, dict) or not isinstance(v.get("shape"), list) \
                or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in v["shape"]):
            raise ModelFolderError(f"{path}: damaged safetensors header (tensor {k!r})")
        shapes[k] = tuple(v["shape"])
    return shapes


def _compare(path: Path, expected: dict, found: dict) -> None:
    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected))
    wrong = sorted(k for k in set(expected) & set(found) if expected[k] != found[k])
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing ({', '.join(missing[:3])}{', ...' if len(missing) > 3 else ''})")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected ({', '.join(unexpected[:3])}{', ...' if len(unexpected) > 3 else ''})")
    if wrong:
        k = wrong[0]
        problems.append(f"{len(wrong)} of another shape (e.g. {k}: {list(found[k])} in the file, "
                        f"{list(expected[k])} for the config's network)")
    if problems:
        raise ModelFolderError(f"{path} does not match its config.json: tensors " + "; ".join(problems))


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
    for name in members:
        if not name or "/" in name or "\\" in name or name in (".", ".."):
            raise ValueError(f"ensemble member name {name!r}: use a plain folder name")
    for name, bundle in members.items():
        save_bundle(bundle, folder / name, half=half)
    cfg = {"format": ENSEMBLE_FORMAT, "labels": list(labels.pop()), "members": list(members),
           "sample_rate": rates.pop(), "clip_seconds": max(b.pipeline.clip_seconds for b in members.values()),
           **(extra or {})}
    from ..safeio import atomic_write_text

    atomic_write_text(folder / CONFIG_NAME, json.dumps(cfg, indent=2) + "\n")
    return folder


def load_members(folder: str | Path) -> list[ModelBundle]:
    """The models of a folder: its members if it is an ensemble, else the one model."""
    return [load_bundle(m) for m in member_folders(folder)]
