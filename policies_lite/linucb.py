"""LinUCB on an LMMSE estimate, for feedback that arrives late and noisy (seed paper 000, Algorithm 1).

The expected reward of an arm is linear in its context, ``E[r] = x^T theta``. A feedback ``y`` for a
choice made ``delay`` rounds earlier has noise variance ``lambda_eta + lambda_v(delay)``: the model
mismatch plus an observation noise that shrinks with the delay (``lambda_v(d) = scale / d**power``).

Estimator, eq. (6)/(7): ``C_e = (delta I + X C_n^-1 X^T)^-1`` and ``theta = C_e X C_n^-1 y``. Both are
kept incrementally: the precision ``P = delta I + sum w x x^T`` and ``b = sum w y x`` (w = 1/variance),
and ``C_e`` by a Sherman-Morrison rank-one update, so a feedback costs O(d^2) and nothing grows with
the number of rounds. Choice, eq. (8)/(9): ``argmax_a x_a^T theta + alpha sqrt(x_a^T C_e x_a)``, one
(A, d) x (d, d) product; uniformly random until the first feedback arrives.

State (``LearnerState``) is plain arrays and counts; ``edgesplit.policies_lite.linucb_state`` saves it
atomically and checks it on load.
"""
import math
from dataclasses import dataclass, field
from typing import Dict, Optional, Sequence, Tuple

import numpy as np

from edgesplit.policies_lite.errors import PolicyError


@dataclass(frozen=True)
class LinUCBConfig:
    """Hyper-parameters; the defaults are Table II of the paper."""

    dim: int
    alpha: float = 1.5           # exploration weight of the confidence width, eq. (8)
    delta: float = 0.1           # prior precision of theta, eq. (6)
    lambda_eta: float = 0.4      # model-mismatch noise variance
    lambda_v_scale: float = 5.0  # observation noise variance lambda_v(d) = scale / d**power
    lambda_v_power: float = 2.0
    # Names of the context entries, in order; a saved state is refused by a caller with other names.
    features: Tuple[str, ...] = ()

    def __post_init__(self):
        if not isinstance(self.dim, int) or isinstance(self.dim, bool) or self.dim < 1:
            raise PolicyError("linucb dim: expected a positive integer, got %r" % (self.dim,))
        for name in ("alpha", "delta", "lambda_eta", "lambda_v_scale", "lambda_v_power"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise PolicyError("linucb %s: expected a finite number, got %r" % (name, value))
            if value < 0:
                raise PolicyError("linucb %s: must be >= 0, got %r" % (name, value))
        if self.delta <= 0:
            raise PolicyError("linucb delta: must be > 0 (the prior keeps C_e invertible), got %r" % self.delta)
        if self.lambda_eta <= 0 and self.lambda_v_scale <= 0:
            raise PolicyError("linucb lambda_eta and lambda_v_scale are both 0: a feedback needs some noise "
                              "variance to be weighted by")
        if self.features and len(self.features) != self.dim:
            raise PolicyError("linucb features: %d names for dim %d" % (len(self.features), self.dim))

    def noise_variance(self, delay: float) -> float:
        """lambda_eta + lambda_v(delay); delays under one round count as one."""
        return self.lambda_eta + self.lambda_v_scale / max(float(delay), 1.0) ** self.lambda_v_power


@dataclass
class LearnerState:
    """Everything the learner needs to resume: the estimator and per-arm counts."""

    config: LinUCBConfig
    precision: np.ndarray   # (d, d): delta I + sum w x x^T
    b: np.ndarray           # (d,):   sum w y x
    covariance: np.ndarray  # (d, d): C_e = precision^-1, kept by Sherman-Morrison
    n_feedback: int = 0
    chosen: Dict[str, int] = field(default_factory=dict)   # arm label -> times chosen
    rated: Dict[str, int] = field(default_factory=dict)    # arm label -> feedbacks received

    @classmethod
    def prior(cls, config: LinUCBConfig) -> "LearnerState":
        eye = np.eye(config.dim)
        return cls(config, config.delta * eye, np.zeros(config.dim), eye / config.delta)


class LinUCB:
    """Choose with ``choose(contexts)``; learn with ``update(context, reward, delay)``.

    Not thread-safe: the daemon calls it from its one pipeline thread (or under a lock).
    """

    def __init__(self, config: LinUCBConfig, state: Optional[LearnerState] = None, seed: Optional[int] = None):
        self.config = config
        self.state = state if state is not None else LearnerState.prior(config)
        if self.state.config != config:
            raise PolicyError("linucb state was built with %r, not %r" % (self.state.config, config))
        self._rng = np.random.default_rng(seed)
        self._theta = self.state.covariance @ self.state.b

    @property
    def theta(self) -> np.ndarray:
        """The current estimate, eq. (6) (a copy)."""
        return self._theta.copy()

    @property
    def covariance(self) -> np.ndarray:
        """The error covariance C_e, eq. (7) (a copy)."""
        return self.state.covariance.copy()

    @property
    def n_feedback(self) -> int:
        return self.state.n_feedback

    def upper_bounds(self, contexts: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """Per row of ``contexts`` (A, d): the predicted reward and its standard deviation."""
        contexts = self._check_contexts(contexts)
        spread = np.einsum("ij,ij->i", contexts @ self.state.covariance, contexts)
        return contexts @ self._theta, np.sqrt(np.maximum(spread, 0.0))

    def choose(self, contexts: np.ndarray, labels: Optional[Sequence[str]] = None) -> int:
        """Index of the row of ``contexts`` (A, d) to play, eq. (9); random before any feedback.

        With ``labels`` (one per row) the chosen arm's count goes up.
        """
        contexts = self._check_contexts(contexts)
        if self.state.n_feedback == 0:
            arm = int(self._rng.integers(contexts.shape[0]))
        else:
            projected = contexts @ self.state.covariance
            # max(., 0): rounding can make x^T C_e x a hair negative for a near-null direction.
            width = np.sqrt(np.maximum((projected * contexts).sum(axis=1), 0.0))
            arm = int(np.argmax(contexts @ self._theta + self.config.alpha * width))
        if labels is not None:
            label = labels[arm]
            self.state.chosen[label] = self.state.chosen.get(label, 0) + 1
        return arm

    def update(self, context: np.ndarray, reward: float, delay: float, label: Optional[str] = None) -> None:
        """Fold in one feedback for a choice made ``delay`` rounds (or seconds) ago, eq. (6)/(7)."""
        x = np.asarray(context, dtype=np.float64)
        if x.shape != (self.config.dim,):
            raise PolicyError("linucb update: context has shape %s, expected (%d,)" % (x.shape, self.config.dim))
        reward = float(reward)
        if not (math.isfinite(reward) and np.isfinite(x).all()):
            raise PolicyError("linucb update: reward and context must be finite, got %r and %s" % (reward, x))
        if not math.isfinite(float(delay)) or delay < 0:
            raise PolicyError("linucb update: delay must be finite and >= 0, got %r" % (delay,))
        weight = 1.0 / self.config.noise_variance(delay)
        state = self.state
        cov_x = state.covariance @ x
        gain = cov_x * (weight / (1.0 + weight * float(x @ cov_x)))
        covariance = state.covariance - np.outer(gain, cov_x)
        # Sherman-Morrison loses symmetry to rounding; averaging with the transpose keeps C_e a covariance.
        state.covariance = 0.5 * (covariance + covariance.T)
        state.precision = state.precision + weight * np.outer(x, x)
        state.b = state.b + (weight * reward) * x
        state.n_feedback += 1
        if label is not None:
            state.rated[label] = state.rated.get(label, 0) + 1
        self._theta = state.covariance @ state.b

    def _check_contexts(self, contexts) -> np.ndarray:
        if type(contexts) is not np.ndarray or contexts.dtype != np.float64:
            contexts = np.asarray(contexts, dtype=np.float64)
        if contexts.ndim != 2 or contexts.shape[1] != self.config.dim or contexts.shape[0] == 0:
            raise PolicyError("linucb contexts: expected (arms >= 1, %d), got shape %s"
                              % (self.config.dim, contexts.shape))
        return contexts
