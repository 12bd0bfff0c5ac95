"""The seed paper's model-selection simulation (000, Section IV-C, Table II, Fig. 3), one readable file.

Each round an edge device asks for one of A models; arm a's context x_{t,a} is uniform in [0,1]^d and
its expected QoE is x^T theta. The learner's choice is rated ``delay`` rounds later (uniform in
1..t_c) with noise N(0, lambda_eta + lambda_v(delay)), lambda_v(d) = 5/d^2: later ratings are more
accurate. Strategies, all on the same contexts:

- ``linucb``: ``policies_lite.LinUCB``, each rating weighted by its delay-dependent variance (eq. 6-9);
- ``plain_linucb``: the same learner, delta and alpha, but every rating weighted alike (by the mean
  variance over the delay distribution): LinUCB that ignores the delay-dependent noise. It sees the
  same ratings (same noise draws) for the same choices;
- ``oracle``: knows theta, plays argmax x^T theta; ``worst``: argmin;
- ``static``: the one arm with the highest total expected QoE over all T rounds (in hindsight).

Reported per run: the learnt theta and its L2 error, the time-average expected QoE over the last 500
rounds per strategy, and the normalised time-average QoE curve of Fig. 3 ((s - worst)/(oracle - worst)
of the running means). numpy and policies_lite only, so it also runs where matplotlib does not.
"""
import heapq
from dataclasses import asdict, dataclass, field
from typing import Dict, List, Sequence, Tuple

import numpy as np

from edgesplit.policies_lite.linucb import LinUCB, LinUCBConfig

STRATEGIES = ("linucb", "plain_linucb", "oracle", "static", "worst")
LEARNERS = ("linucb", "plain_linucb")


@dataclass(frozen=True)
class Args:
    rounds: int = 2000                 # T
    arms: int = 10                     # A
    dim: int = 4                       # d
    max_delay: int = 40                # t_c: delays are uniform in 1..max_delay
    alpha: float = 1.5                 # exploration weight
    delta: float = 0.1                 # prior precision
    lambda_eta: float = 0.4            # model-mismatch noise variance
    lambda_v_scale: float = 5.0        # observation noise variance 5 / d^2
    lambda_v_power: float = 2.0
    theta: Tuple[float, ...] = (-0.5, 0.37, -0.36, 0.69)
    tail: int = 500                    # rounds at the end averaged for qoe_last_500
    runs: int = 10
    seed: int = 0


@dataclass
class RunResult:
    seed: int
    theta_learned: List[float]
    theta_error: float
    theta_learned_plain: List[float]
    theta_error_plain: float
    qoe_last_500: Dict[str, float]
    normalised_last_500: Dict[str, float]
    curve: Dict[str, np.ndarray] = field(repr=False)   # normalised time-average QoE per round


def learner_config(args: Args) -> LinUCBConfig:
    return LinUCBConfig(dim=args.dim, alpha=args.alpha, delta=args.delta, lambda_eta=args.lambda_eta,
                        lambda_v_scale=args.lambda_v_scale, lambda_v_power=args.lambda_v_power)


def mean_noise_variance(args: Args) -> float:
    """The rating noise variance averaged over the delay distribution: plain LinUCB's one weight."""
    config = learner_config(args)
    return float(np.mean([config.noise_variance(d) for d in range(1, args.max_delay + 1)]))


def plain_config(args: Args) -> LinUCBConfig:
    # lambda_v_scale 0: every rating gets the same variance, the mean one, whatever its delay.
    return LinUCBConfig(dim=args.dim, alpha=args.alpha, delta=args.delta, lambda_eta=mean_noise_variance(args),
                        lambda_v_scale=0.0)


def _play(learner: LinUCB, contexts: np.ndarray, expected: np.ndarray, delays: np.ndarray,
          noise: np.ndarray) -> np.ndarray:
    """Run one learner over the rounds; return the arm it played each round.

    A rating for round t arrives at round t + delay and is usable from that round's choice on
    (Algorithm 1 line 10: feedback observed at round t is folded in before choosing at t).
    """
    rounds = contexts.shape[0]
    played = np.empty(rounds, dtype=np.int64)
    pending = []  # heap of (arrival round, round played)
    for t in range(rounds):
        while pending and pending[0][0] <= t:
            _, s = heapq.heappop(pending)
            x = contexts[s, played[s]]
            learner.update(x, expected[s, played[s]] + noise[s], delays[s])
        played[t] = learner.choose(contexts[t])
        heapq.heappush(pending, (t + int(delays[t]), t))
    return played


def simulate_run(args: Args, seed: int) -> RunResult:
    rng = np.random.default_rng(seed)
    theta = np.asarray(args.theta, dtype=np.float64)
    contexts = rng.random((args.rounds, args.arms, args.dim))
    expected = contexts @ theta                       # (T, A): the ground-truth expected QoE
    delays = rng.integers(1, args.max_delay + 1, size=args.rounds)
    config = learner_config(args)
    # One noise draw per round, shared by both learners: their difference is the weighting alone.
    stdev = np.sqrt([config.noise_variance(d) for d in delays])
    noise = rng.standard_normal(args.rounds) * stdev
    learners = {"linucb": LinUCB(config, seed=seed + 1), "plain_linucb": LinUCB(plain_config(args), seed=seed + 1)}
    rows = np.arange(args.rounds)
    qoe = {name: expected[rows, _play(learner, contexts, expected, delays, noise)]
           for name, learner in learners.items()}
    qoe["oracle"] = expected.max(axis=1)
    qoe["worst"] = expected.min(axis=1)
    qoe["static"] = expected[:, int(np.argmax(expected.sum(axis=0)))]
    counts = np.arange(1, args.rounds + 1)
    running = {name: np.cumsum(values) / counts for name, values in qoe.items()}
    span = running["oracle"] - running["worst"]
    curve = {name: (running[name] - running["worst"]) / span for name in STRATEGIES}
    tail = {name: float(qoe[name][-args.tail:].mean()) for name in STRATEGIES}
    tail_span = tail["oracle"] - tail["worst"]
    return RunResult(
        seed=seed,
        theta_learned=[float(v) for v in learners["linucb"].theta],
        theta_error=float(np.linalg.norm(learners["linucb"].theta - theta)),
        theta_learned_plain=[float(v) for v in learners["plain_linucb"].theta],
        theta_error_plain=float(np.linalg.norm(learners["plain_linucb"].theta - theta)),
        qoe_last_500=tail,
        normalised_last_500={name: (tail[name] - tail["worst"]) / tail_span for name in STRATEGIES},
        curve=curve,
    )


def simulate(args: Args) -> Tuple[List[RunResult], Dict[str, np.ndarray]]:
    """All runs (seeds seed, seed+1, ...) and the per-round median of their normalised curves."""
    results = [simulate_run(args, args.seed + i) for i in range(args.runs)]
    median_curve = {name: np.median(np.stack([r.curve[name] for r in results]), axis=0) for name in STRATEGIES}
    return results, median_curve


def summary(args: Args, results: Sequence[RunResult]) -> Dict[str, object]:
    """Medians over runs, and how often the delay-aware learner beat plain LinUCB."""
    def median(values):
        return float(np.median(values))

    normalised = {name: median([r.normalised_last_500[name] for r in results]) for name in STRATEGIES}
    gains = [r.normalised_last_500["linucb"] - r.normalised_last_500["plain_linucb"] for r in results]
    return {
        "median_theta_error": median([r.theta_error for r in results]),
        "median_theta_error_plain": median([r.theta_error_plain for r in results]),
        "median_normalised_last_500": normalised,
        "runs_linucb_beats_plain_qoe": sum(r.qoe_last_500["linucb"] > r.qoe_last_500["plain_linucb"] for r in results),
        "runs_linucb_beats_plain_theta": sum(r.theta_error < r.theta_error_plain for r in results),
        # Means over runs: the delay-aware weighting's gain is small next to the run-to-run spread.
        "mean_sq_theta_error": float(np.mean([r.theta_error ** 2 for r in results])),
        "mean_sq_theta_error_plain": float(np.mean([r.theta_error_plain ** 2 for r in results])),
        "mean_normalised_gain_over_plain": float(np.mean(gains)),
        "stderr_normalised_gain_over_plain": float(np.std(gains) / np.sqrt(len(gains))),
        "runs": len(results),
        "plain_linucb_variance": mean_noise_variance(args),
    }


def to_json(args: Args, results: Sequence[RunResult], median_curve: Dict[str, np.ndarray]) -> Dict[str, object]:
    params = asdict(args)
    params["theta"] = list(args.theta)
    return {
        "args": params,
        "runs": [{"seed": r.seed, "theta_learned": r.theta_learned, "theta_error": r.theta_error,
                  "theta_learned_plain": r.theta_learned_plain, "theta_error_plain": r.theta_error_plain,
                  "qoe_last_500": r.qoe_last_500, "normalised_last_500": r.normalised_last_500}
                 for r in results],
        "summary": summary(args, results),
        # Fig. 3: median over runs of the normalised time-average QoE after each round (round 1..T).
        "curve": {name: [round(float(v), 6) for v in values] for name, values in median_curve.items()},
    }
