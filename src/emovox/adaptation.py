"""Speaker adaptation of answers: judge a speaker's clips against that speaker's usual answer.

A network that standardises each clip on its own cannot take a speaker's feature statistics
(``normalize: bins`` networks and functionals models can: :func:`emovox.pipeline.speaker_references`).
What every model can take is the speaker's mean answer. A voice, a microphone or a room pushes
all of one speaker's answers the same way (SAVEE's four speakers through a RAVDESS model: "sad"
for most clips); the mean log-probability over several clips of that speaker measures the push,
and subtracting it leaves what differs between the clips. Audio only, no labels, and the same on
every backend (it works on the answers, after the model). It assumes the clips span more than
one emotion: a speaker angry in every clip comes out as that speaker's usual voice.
"""

from __future__ import annotations

from typing import Hashable, NamedTuple, Sequence

import numpy as np

#: Probabilities below this count as this: the far tails of a confident model are noise that the
#: log would magnify (the bundled model's smallest answer on SAVEE is 8e-5: untouched).
FLOOR = 1e-6
#: A reference needs this many clips: one clip judged against itself comes out uniform.
MIN_CLIPS = 2


def floored_log(probs: np.ndarray) -> np.ndarray:
    """log p with the far tails at :data:`FLOOR`."""
    return np.log(np.maximum(probs, FLOOR))


class AnswerReference(NamedTuple):
    """One speaker's usual answer: the mean log-probability of each class over their clips."""

    mean_log: np.ndarray  # [n_classes]
    clips: int
    labels: tuple[str, ...] | None = None  # the model's classes, checked where it is used


def answer_reference(probs: np.ndarray, labels: Sequence[str] | None = None) -> AnswerReference:
    """The reference of one speaker from the probabilities ``[n_clips, n_classes]`` of at least
    :data:`MIN_CLIPS` of their clips (or of a recording's speech windows); more clips of more
    emotions make a steadier reference."""
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim != 2 or len(probs) < MIN_CLIPS:
        raise ValueError(f"a speaker reference needs at least {MIN_CLIPS} clips of speech "
                         f"(got {len(probs) if probs.ndim == 2 else 0}): one clip judged against itself says nothing")
    return AnswerReference(floored_log(probs).mean(0), len(probs),
                           tuple(labels) if labels is not None else None)


def centre_answers(probs: np.ndarray, reference: AnswerReference) -> np.ndarray:
    """``probs`` ``[n, n_classes]`` judged against ``reference``: softmax(log p - the speaker's
    mean log p). A clip that answers like the speaker's average comes out uniform."""
    probs = np.asarray(probs, dtype=np.float64)
    if probs.shape[-1] != len(reference.mean_log):
        raise ValueError(f"a speaker reference of {len(reference.mean_log)} classes for a model of {probs.shape[-1]}")
    logits = floored_log(probs) - reference.mean_log
    logits -= logits.max(1, keepdims=True)
    out = np.exp(logits)
    return (out / out.sum(1, keepdims=True)).astype(np.float32)


def indices_by(keys: Sequence[Hashable]) -> dict:
    """Each key's positions in ``keys`` (a speaker's clips), keys in first-seen order."""
    groups: dict = {}
    for i, k in enumerate(keys):
        groups.setdefault(k, []).append(i)
    return groups


def centre_by_speaker(probs: np.ndarray, speakers: Sequence[Hashable]) -> np.ndarray:
    """Each speaker's clips judged against the reference of all their clips (the
    speaker-adaptive protocol of an evaluation): ``speakers[i]`` is clip ``i``'s speaker."""
    probs = np.asarray(probs)
    if len(speakers) != len(probs):
        raise ValueError(f"{len(probs)} clips but {len(speakers)} speakers")
    out = np.empty(probs.shape, np.float32)
    for idx in indices_by(speakers).values():
        out[idx] = centre_answers(probs[idx], answer_reference(probs[idx]))
    return out


class RunningReference:
    """A speaker's reference built while they speak (a live microphone, one speaker): the mean
    log-probability of every answer so far. :meth:`judge` adds an answer and returns it judged
    against the reference once ``warmup`` answers are in (before that, as it is: a reference of
    a few windows is weak; two come out as mirror images of each other)."""

    def __init__(self, warmup: int = 4, labels: Sequence[str] | None = None) -> None:
        if warmup < MIN_CLIPS:
            raise ValueError(f"a running reference needs a warm-up of at least {MIN_CLIPS} answers, got {warmup}")
        self.warmup, self.labels = warmup, tuple(labels) if labels is not None else None
        self.clips = 0
        self._sum: np.ndarray | None = None

    @property
    def ready(self) -> bool:
        return self.clips >= self.warmup

    def reference(self) -> AnswerReference:
        if not self.clips:
            raise ValueError("no answers yet")
        return AnswerReference(self._sum / self.clips, self.clips, self.labels)

    def judge(self, probs: np.ndarray) -> np.ndarray:
        """Add one answer ``[n_classes]``; return it against the reference so far (itself included)."""
        probs = np.asarray(probs, dtype=np.float64)
        log = floored_log(probs)
        self._sum = log if self._sum is None else self._sum + log
        self.clips += 1
        if not self.ready:
            return probs.astype(np.float32)
        return centre_answers(probs[None], self.reference())[0]
