from .recognizer import BUNDLED_MODEL, Prediction, Recognizer

__all__ = ["BUNDLED_MODEL", "Prediction", "Recognizer"]
