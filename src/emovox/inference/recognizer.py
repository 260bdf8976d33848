"""The public face: ``Recognizer.load().predict("clip.wav")``."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
import torch

from .. import audio
from ..labels import probabilities as to_mapping
from ..models.folder import ModelBundle, load_bundle
from ..pipeline import ClipClassifier
from .engine import predict_clips

BUNDLED_MODEL = Path(__file__).resolve().parents[1] / "assets" / "model"


@dataclass
class Prediction:
    """One clip's answer: the most probable emotion and every emotion's probability."""

    label: str
    probabilities: dict[str, float]
    path: str | None = None
    extra: dict = field(default_factory=dict)

    @property
    def confidence(self) -> float:
        return self.probabilities[self.label]

    def to_dict(self) -> dict:
        return {"path": self.path, "label": self.label, "probabilities": self.probabilities, **self.extra}


class Recognizer:
    """Emotion recognition with one model: audio in, :class:`Prediction` out.

    Parameters
    ----------
    bundle : a loaded model folder (see :meth:`load`).
    threads : CPU threads for torch (default: all cores, at most 4).
    """

    def __init__(self, bundle: ModelBundle, threads: int | None = None) -> None:
        self.bundle = bundle
        self.pipeline = bundle.pipeline
        self.labels = bundle.labels
        self.classifier = ClipClassifier(bundle.model, bundle.pipeline).eval()
        torch.set_num_threads(threads or min(4, os.cpu_count() or 1))
        bundle.model.eval()

    @classmethod
    def load(cls, path: str | os.PathLike | None = None, *, threads: int | None = None) -> "Recognizer":
        """Load a model folder; ``None`` loads the model bundled with emovox (offline)."""
        folder = Path(path) if path is not None else BUNDLED_MODEL
        if path is None and not (folder / "model.safetensors").is_file():
            raise FileNotFoundError(f"the bundled model is missing from {folder}; reinstall emovox")
        return cls(load_bundle(folder), threads=threads)

    def _wave(self, source, sample_rate: int | None) -> np.ndarray:
        if isinstance(source, np.ndarray):
            if sample_rate is None:
                raise ValueError("predicting from an array needs its sample_rate")
            return audio.from_array(source, sample_rate, self.pipeline.sample_rate)
        return audio.load(source, self.pipeline.sample_rate)

    def predict(self, source, sample_rate: int | None = None) -> Prediction:
        """Emotion of one recording: a path, bytes, a binary file object, or an array with
        its ``sample_rate``. Raises :class:`emovox.AudioError` for unusable audio."""
        wave = self._wave(source, sample_rate)
        db, voiced = self.pipeline.analyse(wave, self.classifier.extractor)
        probs = predict_clips(self.classifier, [db], [voiced])[0]
        name = str(source) if isinstance(source, (str, os.PathLike)) else None
        return self._prediction(probs, name)

    def predict_many(self, sources: Iterable, *, batch_size: int = 16) -> Iterator[tuple[object, Prediction | audio.AudioError]]:
        """Predict many files in batches, yielding ``(source, result)`` in input order; an
        unreadable file yields its :class:`AudioError` instead of stopping the run."""
        pending: list[tuple[object, tuple | audio.AudioError]] = []

        def flush():
            ok = [item for _, item in pending if not isinstance(item, audio.AudioError)]
            probs = iter(predict_clips(self.classifier, [db for db, _ in ok], [v for _, v in ok]))
            for src, item in pending:
                yield src, item if isinstance(item, audio.AudioError) else self._prediction(next(probs), str(src))
            pending.clear()

        n_images = 0
        for src in sources:
            try:
                pending.append((src, self.pipeline.analyse(self._wave(src, None), self.classifier.extractor)))
                n_images += 1
            except audio.AudioError as err:
                pending.append((src, err))
            if n_images >= batch_size:
                yield from flush()
                n_images = 0
        yield from flush()

    def _prediction(self, probs: np.ndarray, path: str | None) -> Prediction:
        return Prediction(self.labels[int(np.argmax(probs))], to_mapping(probs, self.labels), path)
