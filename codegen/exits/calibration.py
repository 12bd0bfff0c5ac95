"""Default thresholds for the exits, and what they give: accuracy, exit shares, compute per task.

The rule: of every combination of per-exit thresholds on THRESHOLD_GRID, the one that saves the
most compute on the calibration split while the cascade's accuracy there (each task leaves at the
first exit whose normalised entropy is below its threshold, as the executor does) stays within
``tolerance`` of the final exit's accuracy on the same images; ties go to the more accurate. A
task's compute is the main branch's MACs up to the exit it leaves at plus every head it passed.
The test split is then measured with the chosen thresholds and nothing is fitted to it.
"""
import itertools
from dataclasses import dataclass
from typing import Dict, List, Sequence, Tuple

import numpy as np

from edgesplit.runtime.executor.entropy import normalised_entropy

THRESHOLD_GRID = (0.0, 0.01, 0.02, 0.03, 0.05, 0.07, 0.1, 0.13, 0.16, 0.2, 0.25, 0.3, 0.35, 0.4, 0.5, 0.6, 0.7,
                  0.8, 1.0)
DEFAULT_TOLERANCE = 0.01  # 1 point on calibration leaves half a point of the 1.5-point budget for new data


@dataclass(frozen=True)
class ExitOutcomes:
    """Per image: the normalised entropy at each side exit and whether each exit (finals last) is right."""

    entropies: np.ndarray  # (N, side exits)
    correct: np.ndarray  # (N, side exits + 1), bool

    @classmethod
    def from_logits(cls, side_logits: Sequence[np.ndarray], final_scores: np.ndarray, labels: np.ndarray
                    ) -> "ExitOutcomes":
        # One row at a time: the executor computes each task's entropy so, and a threshold compares against it.
        entropies = np.array([[float(normalised_entropy(logits[i:i + 1])[0]) for logits in side_logits]
                              for i in range(len(labels))]).reshape(len(labels), len(side_logits))
        correct = np.stack([l.argmax(axis=1) == labels for l in list(side_logits) + [final_scores]], axis=1)
        return cls(entropies, correct)


@dataclass(frozen=True)
class CascadeCosts:
    exit_macs: Sequence[int]  # per exit (final last): main-branch MACs up to it plus every head passed
    model_macs: int  # the user's model alone: what "compute saved" is measured against

    @classmethod
    def build(cls, macs_before: Sequence[int], head_macs: Sequence[int], model_macs: int) -> "CascadeCosts":
        passed = [int(x) for x in np.cumsum(head_macs)]
        final = model_macs + (passed[-1] if passed else 0)
        return cls([int(m + h) for m, h in zip(macs_before, passed)] + [int(final)], int(model_macs))


def cascade(outcomes: ExitOutcomes, thresholds: Sequence[float]) -> Tuple[np.ndarray, np.ndarray]:
    """(exit index taken per image, correct per image) under the executor's rule."""
    n, sides = outcomes.entropies.shape
    taken = np.full(n, sides, dtype=np.int64)
    for i in reversed(range(sides)):  # the earliest confident exit wins: assign from the last to the first
        taken[outcomes.entropies[:, i] < thresholds[i]] = i
    return taken, outcomes.correct[np.arange(n), taken]


def summary(outcomes: ExitOutcomes, thresholds: Sequence[float], costs: CascadeCosts) -> Dict:
    taken, correct = cascade(outcomes, thresholds)
    sides = outcomes.entropies.shape[1]
    shares = np.bincount(taken, minlength=sides + 1) / float(len(taken))
    mean_macs = float(np.mean(np.asarray(costs.exit_macs, dtype=np.float64)[taken]))
    return {"accuracy": float(correct.mean()), "final_accuracy": float(outcomes.correct[:, -1].mean()),
            "exit_shares": [round(float(s), 4) for s in shares], "mean_macs": mean_macs,
            "compute_saved": 1.0 - mean_macs / float(costs.model_macs), "images": int(len(taken))}


def choose_thresholds(outcomes: ExitOutcomes, costs: CascadeCosts, tolerance: float = DEFAULT_TOLERANCE
                      ) -> List[float]:
    sides = outcomes.entropies.shape[1]
    floor = outcomes.correct[:, -1].mean() - tolerance
    exit_macs = np.asarray(costs.exit_macs, dtype=np.float64)
    best, best_key = [0.0] * sides, None
    for combo in itertools.product(THRESHOLD_GRID, repeat=sides):
        taken, correct = cascade(outcomes, combo)
        accuracy = correct.mean()
        if accuracy < floor - 1e-12:
            continue
        key = (-exit_macs[taken].mean(), accuracy, [-t for t in combo])
        if best_key is None or key > best_key:
            best, best_key = list(combo), key
    return best


def entropy_quantiles(entropies: np.ndarray) -> Dict[str, float]:
    qs = (0.1, 0.25, 0.5, 0.75, 0.9)
    return {"p%d" % round(100 * q): round(float(np.quantile(entropies, q)), 4) for q in qs}
