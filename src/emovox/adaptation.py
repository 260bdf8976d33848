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

#: log(0) guard: a class the model rules out entirely stays ruled out, without infinities
_FLOOR = 1e-12


class AnswerReference(NamedTuple):
    """One speaker's usual answer: the mean log-probability of each class over their clips."""

    mean_log: np.ndarray  # [n_classes]
    clips: int


def answer_reference(probs: np.ndarray) -> AnswerReference:
    """The reference of one speaker from the probabilities ``[n_clips, n_classes]`` of several
    of their clips (or of a recording's speech windows)."""
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim != 2 or len(probs) == 0:
        raise ValueError("a speaker reference needs the probabilities of at least one clip")
    return AnswerReference(np.log(np.maximum(probs, _FLOOR)).mean(0), len(probs))


def centre_answers(probs: np.ndarray, reference: AnswerReference) -> np.ndarray:
    """``probs`` ``[n, n_classes]`` judged against ``reference``: softmax(log p - the speaker's
    mean log p). A clip that answers like the speaker's average comes out uniform."""
    logits = np.log(np.maximum(np.asarray(probs, dtype=np.float64), _FLOOR)) - reference.mean_log
    logits -= logits.max(1, keepdims=True)
    out = np.exp(logits)
    return (out / out.sum(1, keepdims=True)).astype(np.float32)


def centre_by_speaker(probs: np.ndarray, speakers: Sequence[Hashable]) -> np.ndarray:
    """Each speaker's clips judged against the reference of all their clips (the
    speaker-adaptive protocol of an evaluation): ``speakers[i]`` is clip ``i``'s speaker."""
    probs = np.asarray(probs)
    if len(speakers) != len(probs):
        raise ValueError(f"{len(probs)} clips but {len(speakers)} speakers")
    out = np.empty(probs.shape, np.float32)
    groups: dict = {}
    for i, s in enumerate(speakers):
        groups.setdefault(s, []).append(i)
    for idx in groups.values():
        out[idx] = centre_answers(probs[idx], answer_reference(probs[idx]))
    return out
