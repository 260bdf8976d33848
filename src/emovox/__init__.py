"""emovox: speech emotion recognition — a recording in, the emotion and its probabilities out.

>>> from emovox import Recognizer
>>> Recognizer.load().predict("clip.wav")            # doctest: +SKIP
"""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["AudioError", "EMOTIONS", "Prediction", "Recognizer", "load"]


def __getattr__(name: str):
    # lazy: `import emovox` stays cheap; torch loads only when a Recognizer is asked for
    if name in ("Recognizer", "Prediction"):
        from .inference import recognizer

        return getattr(recognizer, name)
    if name in ("AudioError", "load"):
        from . import audio

        return getattr(audio, name)
    if name == "EMOTIONS":
        from .labels import EMOTIONS

        return EMOTIONS
    raise AttributeError(f"module 'emovox' has no attribute {name!r}")
