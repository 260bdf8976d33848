"""The emotion vocabulary shared by every corpus, model and output."""

from __future__ import annotations

import numpy as np

#: The eight RAVDESS emotions, in the order of the model's outputs.
EMOTIONS: tuple[str, ...] = (
    "neutral",
    "calm",
    "happy",
    "sad",
    "angry",
    "fearful",
    "disgust",
    "surprised",
)


#: One colour per emotion, and for the two answers that are not emotions, wherever answers are
#: drawn (figures, the live display); here so that a display needs neither matplotlib nor torch.
EMOTION_COLORS: dict[str, str] = {
    "neutral": "#9e9e9e", "calm": "#4db6ac", "happy": "#fbc02d", "sad": "#3f51b5", "angry": "#d32f2f",
    "fearful": "#7b1fa2", "disgust": "#689f38", "surprised": "#f57c00", "silence": "#ffffff", "uncertain": "#e0e0e0",
}


def index_of(emotion: str, labels: tuple[str, ...] = EMOTIONS) -> int:
    """Position of ``emotion`` in ``labels``; a clear error for unknown names."""
    try:
        return labels.index(emotion)
    except ValueError:
        raise ValueError(f"unknown emotion {emotion!r}; expected one of {', '.join(labels)}") from None


def probabilities(probs: np.ndarray, labels: tuple[str, ...] = EMOTIONS) -> dict[str, float]:
    """Map a probability vector to ``{emotion: probability}`` in label order."""
    return {name: float(p) for name, p in zip(labels, probs)}


#: Common label names (lower case) → emovox emotions, for folder trees and manifests.
SYNONYMS: dict[str, str] = {
    **{e: e for e in EMOTIONS},
    "anger": "angry", "happiness": "happy", "joy": "happy", "sadness": "sad", "fear": "fearful",
    "afraid": "fearful", "surprise": "surprised", "disgusted": "disgust",
}


def from_synonym(label: str) -> str | None:
    """The emovox emotion a label names (any case, see :data:`SYNONYMS`), or ``None``."""
    return SYNONYMS.get(label.strip().lower())


#: Where an emotion's probability goes when a label set lacks it: RAVDESS's calm is its near-twin
#: of neutral (low arousal, neither pleasant nor unpleasant), and corpora without calm (SAVEE,
#: CREMA-D, EmoDB, TESS) call such speech neutral. A SAVEE neutral clip is "calm" to RAVDESS models.
NEAREST: dict[str, str] = {"calm": "neutral"}


def check_emotions(allowed, labels: tuple[str, ...]) -> tuple[str, ...]:
    """``allowed`` (any iterable of names) as a tuple, or a clear ``ValueError``: it must name two
    or more different emotions of ``labels`` (a bare string is refused, not read letter by letter)."""
    if isinstance(allowed, str):
        raise ValueError(f"emotions must be a list of names, not the string {allowed!r}")
    allowed = tuple(allowed)
    if len(allowed) < 2 or len(set(allowed)) != len(allowed):
        raise ValueError(f"emotions must name two or more different emotions, got {', '.join(allowed) or 'none'}")
    for e in allowed:
        index_of(e, labels)
    return allowed


def fold_into(probs: np.ndarray, labels: tuple[str, ...], allowed) -> np.ndarray:
    """Probabilities ``[..., len(labels)]`` → ``[..., len(allowed)]``, over ``allowed`` emotions
    only (in its order): each keeps its own probability plus those of the model's emotions it
    stands for (:data:`NEAREST`, when the set lacks them); emotions with no place in the set are
    dropped, and the rest renormalised. ``allowed``: see :func:`check_emotions`."""
    allowed = check_emotions(allowed, labels)
    probs = np.asarray(probs, dtype=np.float64)
    out = np.stack([probs[..., labels.index(e)] for e in allowed], -1)
    for src, dest in NEAREST.items():
        if src in labels and src not in allowed and dest in allowed:
            out[..., allowed.index(dest)] += probs[..., labels.index(src)]
    total = out.sum(-1, keepdims=True)
    # an answer all on dropped emotions says nothing about these: uniform, not zeros
    return np.where(total > 0, out / np.where(total > 0, total, 1.0), 1.0 / len(allowed))


def parse_emotions(text: str | None) -> tuple[str, ...] | None:
    """``"angry, Happy,neutral,sad"`` (a command line's or a query's list) → the names, spaces,
    case and synonyms such as "anger" forgiven (an unknown name is kept for :func:`fold_into`'s
    clear error); ``None`` → ``None``."""
    if text is None:
        return None
    names = [e.strip() for e in text.split(",") if e.strip()]
    return tuple(from_synonym(e) or e for e in names)
