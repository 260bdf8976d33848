"""Synthetic speech-like corpora for tests that train: no real recordings are trained on.

:func:`make_ravdess` writes a RAVDESS-named folder of short WAV files (tones whose pitch and
harmonics depend on the emotion, with an envelope and noise), so that every reader, protocol
and command that takes RAVDESS takes it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

RATE = 16_000


def clip(emotion: int, actor: int, seconds: float, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    f0 = 110.0 * (1 + 0.12 * emotion) * (1 + 0.03 * actor)
    wave = sum(np.sin(2 * np.pi * f0 * k * t + rng.uniform(0, 2 * np.pi)) / k for k in range(1, 2 + emotion % 4))
    envelope = np.clip(np.minimum(t, seconds - t) / 0.1, 0, 1) * (1 + 0.3 * np.sin(2 * np.pi * (2 + emotion) * t))
    return (0.25 * wave * envelope + 0.01 * rng.standard_normal(len(t))).astype(np.float32)


def make_ravdess(root: str | Path, actors=(1, 2, 3), emotions=range(1, 9), seconds: float = 1.2,
                 seed: int = 0) -> Path:
    """``root/Audio_Speech_Actors_01-24/Actor_AA/03-01-EE-01-01-01-AA.wav``, one clip per
    actor and emotion (two statements when ``seconds`` is a pair)."""
    rng = np.random.default_rng(seed)
    root = Path(root)
    for a in actors:
        folder = root / "Audio_Speech_Actors_01-24" / f"Actor_{a:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        for e in emotions:
            sf.write(folder / f"03-01-{e:02d}-01-01-01-{a:02d}.wav", clip(e, a, seconds, rng), RATE, subtype="PCM_16")
    return root


def tiny_overrides(root, cache, epochs: int = 3, batch_size: int = 8) -> list[str]:
    """``--set`` overrides of a seconds-long, deterministic training on :func:`make_ravdess` data:
    fp32 (no bf16), no dropout, one thread, a small network."""
    return [f"data.root={root}", f"data.cache_dir={cache}", "model.width=8", "model.dropout=0.0",
            f"training.epochs={epochs}", f"training.batch_size={batch_size}", "training.val_speakers=1",
            "training.max_lr=0.003", "training.bf16=false", "threads=1"]
