"""Audio → feature images, the sequence every path shares.

``load → trim silence → features → fixed-width windows``. Training crops one window at a
random position; evaluation and prediction average the model over all windows of a clip.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np
import torch

from . import audio
from .features import FeatureConfig, FeatureExtractor, windows


@dataclass(frozen=True)
class Pipeline:
    """Preprocessing settings stored with every model.

    Parameters
    ----------
    features : the feature image settings.
    trim_db : cut leading/trailing audio quieter than this many dB below the peak
        (``None``: keep everything). RAVDESS clips carry about 1.5 s of silence.
    clip_seconds : width of the model's input window.
    """

    features: FeatureConfig = field(default_factory=FeatureConfig)
    trim_db: float | None = 30.0
    clip_seconds: float = 2.5

    @property
    def sample_rate(self) -> int:
        return self.features.sample_rate

    @property
    def clip_frames(self) -> int:
        return self.features.frames(int(round(self.clip_seconds * self.sample_rate)))

    def to_dict(self) -> dict:
        return {"features": self.features.to_dict(), "trim_db": self.trim_db, "clip_seconds": self.clip_seconds}

    @classmethod
    def from_dict(cls, d: dict) -> "Pipeline":
        d = dict(d)
        feats = FeatureConfig.from_dict(d.pop("features", {}))
        names = {f.name for f in dataclasses.fields(cls)} - {"features"}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"unknown preprocessing settings: {', '.join(sorted(unknown))}")
        return cls(features=feats, **d)

    def key(self) -> str:
        """Cache key covering every setting that changes an image."""
        return f"{self.features.key()}-t{self.trim_db}"

    def extractor(self) -> FeatureExtractor:
        return FeatureExtractor(self.features)

    def prepare(self, wave: np.ndarray) -> np.ndarray:
        """Trim silence from a waveform already at the working rate."""
        if self.trim_db is None:
            return wave
        return audio.trim_silence(wave, top_db=self.trim_db, sample_rate=self.sample_rate)

    def image(self, wave: np.ndarray, extractor: FeatureExtractor | None = None) -> torch.Tensor:
        """One clip's feature image ``[channels, bins, frames]`` (trimmed first)."""
        extractor = extractor or self.extractor()
        with torch.no_grad():
            return extractor(torch.from_numpy(np.ascontiguousarray(self.prepare(wave))))[0]

    def windows(self, image: torch.Tensor) -> torch.Tensor:
        """Model inputs for one clip: ``[n_windows, channels, bins, clip_frames]``."""
        return windows(image, self.clip_frames)
