"""Classification metrics on score matrices ``(N, K)`` and integer labels ``(N,)``."""

from __future__ import annotations

import numpy as np


def topk_correct(scores: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """Per sample: is the label among the ``k`` highest scores (ties broken by index)."""
    scores = np.asarray(scores)
    labels = np.asarray(labels)
    k = min(k, scores.shape[1])
    top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return (top == labels[:, None]).any(axis=1)


def topk_accuracy(scores: np.ndarray, labels: np.ndarray, k: int = 1) -> float:
    if len(labels) == 0:
        return float("nan")
    return float(topk_correct(scores, labels, k).mean())


def confusion_matrix(labels: np.ndarray, predictions: np.ndarray, num_classes: int) -> np.ndarray:
    """``matrix[true, predicted]`` counts."""
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(matrix, (np.asarray(labels), np.asarray(predictions)), 1)
    return matrix


def per_class_accuracy(matrix: np.ndarray) -> np.ndarray:
    """Recall of each class (NaN for a class with no sample)."""
    totals = matrix.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(totals > 0, np.diag(matrix) / np.maximum(totals, 1), np.nan)
