"""Confidence of an exit: the normalised entropy of its softmax (BranchyNet), in [0, 1]."""
import numpy as np


def as_probabilities(scores: np.ndarray) -> np.ndarray:
    """Softmax over the last axis, unless the rows already are probability vectors.

    Exported heads give logits; some model-zoo graphs end in their own Softmax. Rows that are
    non-negative and sum to one are taken as they are.
    """
    scores = np.asarray(scores, dtype=np.float64)
    if scores.min() >= 0.0 and np.allclose(scores.sum(axis=-1), 1.0, atol=1e-4):
        return scores
    shifted = scores - scores.max(axis=-1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=-1, keepdims=True)


def normalised_entropy(scores: np.ndarray) -> np.ndarray:
    """Entropy of each row's distribution divided by log(classes): 0 = certain, 1 = uniform."""
    probs = as_probabilities(scores.reshape(-1, scores.shape[-1]) if scores.ndim != 2 else scores)
    classes = probs.shape[-1]
    if classes < 2:
        return np.zeros(probs.shape[0])
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(probs > 0.0, probs * np.log(probs), 0.0)
    return -terms.sum(axis=-1) / np.log(classes)
