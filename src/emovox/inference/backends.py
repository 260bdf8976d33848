"""Where the probabilities come from: PyTorch or onnxruntime, behind one small interface.

Both run the same inference path (:class:`emovox.pipeline.ClipClassifier`): the torch backend
calls it directly (windows of many clips batched together), the ONNX backend runs its export.
The ONNX backend imports neither torch nor librosa, so it starts fast.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

ONNX_NAME = "model.onnx"


def weights_digest(path: str | os.PathLike) -> str:
    """Short hash of a weights file: ties an ONNX export to the weights it came from."""
    import hashlib

    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:12]


class TorchBackend:
    """A model folder (config.json + model.safetensors) run with PyTorch."""

    name = "torch"

    def __init__(self, folder: str | os.PathLike, threads: int | None = None) -> None:
        import torch

        from ..models.folder import load_bundle
        from ..pipeline import ClipClassifier

        torch.set_num_threads(threads or min(4, os.cpu_count() or 1))
        self.bundle = load_bundle(folder)
        self.labels = self.bundle.labels
        self.sample_rate = self.bundle.pipeline.sample_rate
        self.clip_seconds = self.bundle.pipeline.clip_seconds
        self.calibration = self.bundle.extra.get("calibration", {})
        self.classifier = ClipClassifier.from_bundle(self.bundle).eval()

    def analyse(self, wave: np.ndarray):
        """Per-clip work that can run before batching: the dB image and voiced frames."""
        return self.bundle.pipeline.analyse(wave, self.classifier.extractor)

    def probabilities(self, analysed: list) -> np.ndarray:
        from .engine import predict_clips

        return predict_clips(self.classifier, [db for db, _ in analysed], [v for _, v in analysed])


class OnnxBackend:
    """A single ONNX graph (waveform → probabilities) run with onnxruntime."""

    name = "onnx"

    def __init__(self, path: str | os.PathLike, threads: int | None = None) -> None:
        import onnxruntime as ort

        path = Path(path)
        folder = path if path.is_dir() else None
        if folder is not None:
            path = folder / ONNX_NAME
        if not path.is_file():
            hint = f" --model {folder}" if folder is not None else ""
            raise FileNotFoundError(f"no ONNX model at {path}; create one with `emovox export{hint} -o {path}`")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads or min(4, os.cpu_count() or 1)
        opts.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        meta = self.session.get_modelmeta().custom_metadata_map
        if "labels" not in meta:
            raise ValueError(f"{path} is not an emovox ONNX export (no 'labels' metadata)")
        self.labels = tuple(json.loads(meta["labels"]))
        self.sample_rate = int(meta["sample_rate"])
        config = json.loads(meta.get("config", "{}"))
        self.clip_seconds = float(config.get("preprocessing", {}).get("clip_seconds", 2.5))
        self.calibration = config.get("calibration", {})
        self.input_name = self.session.get_inputs()[0].name
        weights = folder / "model.safetensors" if folder is not None else None
        if weights is not None and weights.is_file() and "model_id" in meta:
            if not meta["model_id"].endswith("@" + weights_digest(weights)):
                raise ValueError(f"{path} was exported from other weights than {weights}; re-export it with "
                                 f"`emovox export --model {folder} -o {path}`")
            folder_t = json.loads((folder / "config.json").read_text()).get("calibration", {}).get("temperature", 1.0)
            if abs(float(meta.get("temperature", 1.0)) - float(folder_t)) > 1e-6:
                raise ValueError(f"{path} was exported with another calibration than {folder / 'config.json'}; "
                                 f"re-export it with `emovox export --model {folder} -o {path}`")

    def analyse(self, wave: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(wave, dtype=np.float32)

    def probabilities(self, analysed: list) -> np.ndarray:
        return np.stack([self.session.run(None, {self.input_name: w})[0] for w in analysed]) if analysed \
            else np.zeros((0, len(self.labels)), np.float32)
