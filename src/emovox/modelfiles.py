"""Facts about model folders that need no torch: which kind a folder is, and its fingerprint.
The ONNX backend uses them without importing torch (cold start)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
ENSEMBLE_FORMAT = "emovox-ensemble/1"


def is_ensemble(folder: str | Path) -> bool:
    path = Path(folder) / CONFIG_NAME
    return path.is_file() and json.loads(path.read_text()).get("format") == ENSEMBLE_FORMAT


def fingerprint(folder: str | Path) -> str:
    """Short hash of everything that changes a folder's predictions: each member's weights
    and calibration. Ties an ONNX export to the folder it came from."""
    folder = Path(folder)
    names = json.loads((folder / CONFIG_NAME).read_text())["members"] if is_ensemble(folder) else [""]
    h = hashlib.sha256()
    for name in names:
        member = folder / name if name else folder
        h.update((member / WEIGHTS_NAME).read_bytes())
        cal = json.loads((member / CONFIG_NAME).read_text()).get("calibration", {})
        h.update(repr(float(cal.get("temperature", 1.0))).encode())
    return h.hexdigest()[:12]
