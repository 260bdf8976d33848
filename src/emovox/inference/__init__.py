import sys as _sys

if "torch" not in _sys.modules:
    # Idle OpenMP threads sleep instead of spinning on cores that other inferences or processes
    # need. Set here, when the inference code is first imported (`from emovox import Recognizer`,
    # every CLI command that predicts, each server process), because torch's OpenMP runtime reads
    # the variable once, when torch loads, and torch loads later (lazily). Only when the user has
    # not chosen a policy; training does not import this package, and keeps OpenMP's default.
    from ..threads import quiet_openmp as _quiet_openmp

    _quiet_openmp()

from .recognizer import BUNDLED_MODEL, BUNDLED_SPEAKER_MODEL, Prediction, Recognizer  # noqa: E402

__all__ = ["BUNDLED_MODEL", "BUNDLED_SPEAKER_MODEL", "Prediction", "Recognizer"]
