"""Confidence of an exit: the normalised entropy of its softmax (BranchyNet), in [0, 1].

This runs once per exit head passed, so it is written for a 1 x classes array: a handful of
numpy calls, no float64 round trip of the whole array.
"""
import math
import operator

import numpy as np

# Up to this many scores in one row, plain Python floats beat numpy's per-call overhead.
_SMALL_ROW = 64


def _looks_like_probabilities(scores: np.ndarray) -> bool:
    # Exported heads give logits; some model-zoo graphs end in their own Softmax.
    return bool(scores.min() >= 0.0) and bool(np.abs(scores.sum(axis=-1) - 1.0).max() <= 1e-4)


def as_probabilities(scores: np.ndarray) -> np.ndarray:
    """Softmax over the last axis, unless the rows already are probability vectors."""
    scores = np.asarray(scores, dtype=np.float64)
    if _looks_like_probabilities(scores):
        return scores
    exp = np.exp(scores - scores.max(axis=-1, keepdims=True))
    return exp / exp.sum(axis=-1, keepdims=True)


def normalised_entropy(scores: np.ndarray) -> np.ndarray:
    """Entropy of each row's distribution divided by log(classes): 0 = certain, 1 = uniform."""
    scores = np.asarray(scores)
    if scores.ndim != 2:
        scores = scores.reshape(-1, scores.shape[-1])
    classes = scores.shape[-1]
    if classes < 2:
        return np.zeros(scores.shape[0])
    if scores.shape[0] == 1 and classes <= _SMALL_ROW:
        return np.array([_row_entropy(scores.ravel().tolist()) / math.log(classes)])
    if _looks_like_probabilities(scores):  # NaN fails this test, so such rows go the logits way below
        probs = scores.astype(np.float64)
        logs = np.log(np.where(probs > 0.0, probs, 1.0))
        return -(probs * logs).sum(axis=-1) / np.log(classes)
    # From logits z (shifted so the max is 0): H = log(sum e^z) - sum(p * z), no log of each p.
    with np.errstate(invalid="ignore", over="ignore"):  # non-finite rows are replaced just below
        shifted = scores.astype(np.float64) - scores.max(axis=-1, keepdims=True)
        exp = np.exp(shifted)
        total = exp.sum(axis=-1)
        entropy = np.log(total) - (exp * shifted).sum(axis=-1) / total
    # A row with NaN or inf scores carries no confidence: entropy 1 (uniform), never an early exit.
    entropy = np.where(np.isfinite(scores).all(axis=-1), np.maximum(entropy, 0.0), np.log(classes))
    return entropy / np.log(classes)


def max_normalised_entropy(scores: np.ndarray) -> float:
    """``float(normalised_entropy(scores).max())``: the least confident row's entropy, as the executor asks
    it once per exit head passed; a single row of a few classes skips the arrays altogether."""
    if scores.ndim >= 1 and scores.size == scores.shape[-1] and 2 <= scores.size <= _SMALL_ROW:
        return _row_entropy(scores.ravel().tolist()) / math.log(scores.size)
    return float(normalised_entropy(scores).max())


def _row_entropy(row) -> float:
    total = sum(row)
    if total - total != 0.0 and not all(math.isfinite(v) for v in row):  # inf - inf and NaN are NaN
        return math.log(len(row))  # non-finite scores carry no confidence: the maximum (uniform) entropy
    if min(row) >= 0.0 and abs(total - 1.0) <= 1e-4:
        return -sum([p * math.log(p) for p in row if p > 0.0])
    top = max(row)
    shifted = [v - top for v in row]
    exps = list(map(math.exp, shifted))
    total = sum(exps)
    return max(0.0, math.log(total) - sum(map(operator.mul, exps, shifted)) / total)
