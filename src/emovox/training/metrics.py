"""WA, UA, macro-F1 and confusion matrices (scikit-learn), the figures every table reports."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import confusion_matrix, f1_score, recall_score


def scores(y_true, y_pred, n_classes: int) -> dict[str, float]:
    """``wa`` accuracy, ``ua`` mean per-class recall, ``f1`` macro-F1 (classes absent from
    ``y_true`` are left out of UA and F1)."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    present = np.unique(y_true)
    return {
        "wa": float(np.mean(y_true == y_pred)),
        "ua": float(recall_score(y_true, y_pred, labels=present, average="macro", zero_division=0)),
        "f1": float(f1_score(y_true, y_pred, labels=present, average="macro", zero_division=0)),
    }


def confusion(y_true, y_pred, n_classes: int) -> np.ndarray:
    """Counts ``[true, predicted]`` over all ``n_classes``."""
    return confusion_matrix(y_true, y_pred, labels=list(range(n_classes)))


def mean_std(values) -> tuple[float, float]:
    """Mean and population std across folds."""
    a = np.asarray(values, dtype=float)
    return float(a.mean()), float(a.std())


def fold_means(rows: list[dict], keys, get=lambda row, key: row[key]) -> dict[str, float]:
    """``{key: mean, key_std: std}`` across fold rows, for each of ``keys``."""
    out = {}
    for key in keys:
        out[key], out[f"{key}_std"] = mean_std([get(r, key) for r in rows])
    return out
