"""The strategies a learned policy is compared with, each a runtime ``Strategy`` run in the same environment.

Every baseline is chosen from profiling data (the bundle's exit statistics and cost model) and the
TRAINING bandwidth recordings only, never from the recording it is evaluated on:

- ``local-only``: every task on the board, the bundle's default exit thresholds.
- ``remote-only``: the input goes to the peer at cut 0, which runs the whole model to its final exit.
- ``neurosurgeon``: the static cut with the lowest predicted latency at the mean training bandwidth,
  no early exits (``runtime.controller.planner.best_static_cut``, Kang et al. 2017).
- ``single-threshold``: the static (cut, one threshold for every exit) with the best mean predicted
  satisfaction rate over the training bandwidths within 1.5 accuracy points of the most accurate
  (``codegen.policy_build.best_static_single_threshold``; the demo's "one threshold" row).
- ``moea``: NSGA-III (pymoo) over a static action's per-exit thresholds and cut, objectives
  (-SR, -accuracy, mean latency) predicted by the planner over the training bandwidths; from the
  Pareto front: the highest SR among the actions within 1.5 accuracy points of the front's most
  accurate, then the lower latency (EdgeML's MOEA baseline, made static: see ``moea_action``).
- ``edgeml-t1`` / ``edgeml-tl`` / ``edgeml-nonbranch``: EdgeML's ablations (IoTDI '21, sec. 5.1) of the
  evaluated policy: its action with every side exit's threshold set to the first side exit's (T1) or
  the last side exit's (TL), or with no early exits at all (NonBranch); cut and interval unchanged.
- ``planner``: the shipped planner-built policy (``build-policy``), as ``PolicyStrategy``.
- ``oracle``: per action window, from the same environment state, every action of a grid is tried on
  a clone and the one with the best window reward is kept. It sees the future link and inputs: an
  UPPER BOUND, not a deployable strategy (``run_oracle``).
"""
import logging
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from edgesplit.runtime.controller.planner import CostModel, ExitStats, best_static_cut, predict
from edgesplit.runtime.controller.reward import Bounds
from edgesplit.runtime.controller.strategies import Action, Strategy, StaticStrategy

log = logging.getLogger(__name__)

ACCURACY_ALLOWANCE = 0.015  # accuracy points a static choice may give up for SR (the single-threshold budget)
MOEA_BANDWIDTH_SAMPLES = 16  # quantiles of the training rates the planner predicts each candidate at
ORACLE_THRESHOLDS = (0.0, 0.1, 0.3, 0.6, 1.01)  # per-exit thresholds the oracle tries (1.01: always exit)
ORACLE_INTERVAL = 1  # the oracle re-decides every task: the finest window


@dataclass
class Profiling:
    """What a baseline may look at: the bundle's profiles and the training recordings, nothing of the evaluation."""

    stats: ExitStats
    cost: CostModel
    bounds: Bounds
    train_bandwidths_bps: np.ndarray  # every step's rate of the training recordings (x link scale)
    default_thresholds: Tuple[float, ...]  # the bundle manifest's per-side-exit thresholds

    @property
    def n_exits(self) -> int:
        return len(self.cost.head_s)

    @property
    def n_cuts(self) -> int:
        return len(self.cost.main_s) + 1

    @property
    def last_cut(self) -> int:
        return len(self.cost.main_s)

    def bandwidth_samples(self, count: int = MOEA_BANDWIDTH_SAMPLES) -> np.ndarray:
        """``count`` quantile midpoints of the training rates (a floor of 1 bit/s: the planner divides by it)."""
        rates = np.asarray(self.train_bandwidths_bps, dtype=float)
        return np.maximum(np.quantile(rates, (np.arange(count) + 0.5) / count), 1.0)


# ---------------------------------------------------------------- static baselines


def local_only(p: Profiling) -> StaticStrategy:
    return StaticStrategy("local-only", Action(tuple(p.default_thresholds), p.last_cut, 1, True))


def remote_only(p: Profiling) -> StaticStrategy:
    return StaticStrategy("remote-only", Action(tuple([0.0] * p.n_exits), 0, 1, False))


def neurosurgeon(p: Profiling) -> StaticStrategy:
    mean_bps = float(np.mean(p.train_bandwidths_bps))
    chosen = best_static_cut(p.cost, mean_bps, p.stats, p.bounds)
    return StaticStrategy("neurosurgeon", Action(tuple([0.0] * p.n_exits), int(chosen["cut"]), 1, False))


def single_threshold(p: Profiling) -> StaticStrategy:
    from edgesplit.codegen.policy_build import best_static_single_threshold

    thresholds, cut = best_static_single_threshold(list(p.bandwidth_samples()), p.stats, p.cost, p.bounds,
                                                   p.n_exits, p.n_cuts)
    return StaticStrategy("single-threshold", Action(tuple(thresholds), int(cut), 1, True))


def predict_over(p: Profiling, thresholds: Sequence[float], cut: int, use_exits: bool = True,
                 bandwidths_bps: Optional[Sequence[float]] = None) -> Tuple[float, float, float]:
    """(SR, accuracy, mean latency s) of a static action predicted by the planner, averaged over training rates."""
    rates = p.bandwidth_samples() if bandwidths_bps is None else bandwidths_bps
    preds = [predict(list(thresholds), cut, use_exits, float(b), True, p.stats, p.cost, p.bounds) for b in rates]
    return (float(np.mean([q.sr for q in preds])), float(np.mean([q.accuracy for q in preds])),
            float(np.mean([q.latency_s for q in preds])))


# ---------------------------------------------------------------- MOEA (NSGA-III)


@dataclass
class MoeaResult:
    action: Action
    front: List[Dict[str, Any]]  # every Pareto-front action with its predicted sr, accuracy, latency_s
    chosen: Dict[str, Any]


def decode_moea(x: Sequence[float], n_exits: int, n_cuts: int) -> Tuple[Tuple[float, ...], int]:
    """Genes -> (thresholds in [0, 1], cut): the cut gene lies in [0, n_cuts) and is floored (as DDPG does)."""
    thresholds = tuple(float(min(max(v, 0.0), 1.0)) for v in x[:n_exits])
    cut = int(min(max(np.floor(x[n_exits]), 0), n_cuts - 1))
    return thresholds, cut


def pick_from_front(front: List[Dict[str, Any]], allowance: float = ACCURACY_ALLOWANCE) -> Dict[str, Any]:
    """The stated rule: among the front's actions within ``allowance`` of its most accurate, the highest SR,
    then the lowest latency, then the highest accuracy."""
    best_accuracy = max(f["accuracy"] for f in front)
    eligible = [f for f in front if f["accuracy"] >= best_accuracy - allowance]
    return max(eligible, key=lambda f: (round(f["sr"], 9), -f["latency_s"], f["accuracy"]))


def moea_action(p: Profiling, seed: int = 0, generations: int = 40, population: int = 48) -> MoeaResult:
    """NSGA-III over one static action (per-exit thresholds, cut), scored by the planner on the training rates.

    EdgeML's MOEA baseline replaces the RL optimiser with NSGA-III minimising latency and energy while
    maximising accuracy; here the energy bound enters through SR (both bounds met), so the objectives
    are (-SR, -accuracy, mean latency). The search is deterministic for a seed.
    """
    from pymoo.algorithms.moo.nsga3 import NSGA3
    from pymoo.core.problem import Problem
    from pymoo.optimize import minimize
    from pymoo.util.ref_dirs import get_reference_directions

    n_exits, n_cuts = p.n_exits, p.n_cuts
    rates = p.bandwidth_samples()
    cache = {}  # type: Dict[Tuple[Tuple[float, ...], int], Tuple[float, float, float]]

    def score(x) -> Tuple[float, float, float]:
        thresholds, cut = decode_moea(x, n_exits, n_cuts)
        key = (tuple(round(t, 4) for t in thresholds), cut)
        if key not in cache:
            cache[key] = predict_over(p, key[0], cut, True, rates)
        return cache[key]

    class StaticActionProblem(Problem):
        def __init__(self):
            super().__init__(n_var=n_exits + 1, n_obj=3, xl=np.zeros(n_exits + 1),
                             xu=np.array([1.0] * n_exits + [n_cuts - 1e-9]))

        def _evaluate(self, xs, out, *args, **kwargs):
            rows = [score(x) for x in xs]
            out["F"] = np.array([[-sr, -acc, lat] for sr, acc, lat in rows])

    ref_dirs = get_reference_directions("das-dennis", 3, n_partitions=8)
    algorithm = NSGA3(pop_size=max(population, len(ref_dirs)), ref_dirs=ref_dirs)
    result = minimize(StaticActionProblem(), algorithm, ("n_gen", generations), seed=seed, verbose=False)
    xs = np.atleast_2d(result.X)
    front = []
    seen = set()
    for x in xs:
        thresholds, cut = decode_moea(x, n_exits, n_cuts)
        key = (tuple(round(t, 4) for t in thresholds), cut)
        if key in seen:
            continue
        seen.add(key)
        sr, acc, lat = score(x)
        front.append({"thresholds": list(key[0]), "cut": cut, "sr": sr, "accuracy": acc, "latency_s": lat})
    chosen = pick_from_front(front)
    action = Action(tuple(chosen["thresholds"]), int(chosen["cut"]), 1, True)
    log.info("moea: %d evaluations, %d actions on the front, chose %s", len(cache), len(front), chosen)
    return MoeaResult(action, front, chosen)


def moea(p: Profiling, seed: int = 0) -> StaticStrategy:
    return StaticStrategy("moea", moea_action(p, seed=seed).action)


# ---------------------------------------------------------------- EdgeML's ablations of a policy


class AblatedPolicy(Strategy):
    """EdgeML-T1 / -TL / -NonBranch (IoTDI '21, sec. 5.1): the inner strategy's action, with every side exit's
    threshold tied to the first (``t1``) or last (``tl``) side exit's, or with early exits off (``nonbranch``)."""

    KINDS = ("t1", "tl", "nonbranch")

    def __init__(self, inner: Strategy, kind: str):
        if kind not in self.KINDS:
            raise ValueError("ablation %r: one of %s" % (kind, ", ".join(self.KINDS)))
        self.inner = inner
        self.kind = kind
        self.name = "edgeml-%s" % kind
        self.policy_id = "%s:%s" % (self.name, inner.policy_id)

    def decide(self, state) -> Action:
        a = self.inner.decide(state)
        if self.kind == "nonbranch":
            return Action(tuple(a.thresholds), a.cut, a.interval, False)
        if not a.thresholds:
            return a
        tied = a.thresholds[0] if self.kind == "t1" else a.thresholds[-1]
        return Action(tuple([tied] * len(a.thresholds)), a.cut, a.interval, a.use_exits)

    def describe(self) -> Dict[str, Any]:
        return dict(super().describe(), ablation=self.kind, of=self.inner.describe())


def static_baselines(p: Profiling, moea_seed: int = 0) -> List[Strategy]:
    """Every baseline that needs no policy, in the table's order."""
    return [local_only(p), remote_only(p), neurosurgeon(p), single_threshold(p), moea(p, seed=moea_seed)]


def ablations(policy: Strategy) -> List[Strategy]:
    return [AblatedPolicy(policy, kind) for kind in AblatedPolicy.KINDS]


# ---------------------------------------------------------------- hindsight oracle


def oracle_actions(n_exits: int, n_cuts: int, thresholds: Sequence[float] = ORACLE_THRESHOLDS,
                   interval: int = ORACLE_INTERVAL, extra: Sequence[Action] = ()) -> List[Action]:
    """The oracle's grid: every cut x every per-exit threshold combination, and every cut without exits,
    plus ``extra`` actions (the baselines' static actions, so the oracle can always do what they do)."""
    grids = np.array(np.meshgrid(*([list(thresholds)] * n_exits), indexing="ij")).reshape(n_exits, -1).T \
        if n_exits else np.zeros((1, 0))
    actions = []
    for cut in range(n_cuts):
        for row in grids:
            actions.append(Action(tuple(float(t) for t in row), cut, interval, True))
        actions.append(Action(tuple([0.0] * n_exits), cut, interval, False))
    for a in extra:
        candidate = Action(tuple(a.thresholds), a.cut, interval, a.use_exits)
        if candidate not in actions:
            actions.append(candidate)
    return actions



@dataclass
class Window:
    """One action window's outcome, from the environment's running totals before and after it."""

    sr: float
    accuracy: float
    reward: float
    latency_s: float

    @classmethod
    def between(cls, before: Dict[str, Any], after: Dict[str, Any], reward: float) -> "Window":
        # Step.info holds episode totals so far (tasks, sr, accuracy, latency_s means): a window is their difference.
        n0, n1 = int(before.get("tasks", 0)), int(after["tasks"])
        k = max(1, n1 - n0)

        def part(key: str) -> float:
            return (after[key] * n1 - before.get(key, 0.0) * n0) / k

        return cls(part("sr"), part("accuracy"), float(reward), part("latency_s"))

    def score(self) -> Tuple[float, float, float, float]:
        """How the oracle ranks windows: satisfaction rate first; then, if some task met the bounds, accuracy (it
        knows the labels), EdgeML's reward, the lower latency; if none did, the lower latency first (a late
        task delays the next ones), then accuracy and reward."""
        if self.sr > 0:
            return (round(self.sr, 9), round(self.accuracy, 9), self.reward, -self.latency_s)
        return (0.0, -self.latency_s, round(self.accuracy, 9), self.reward)


def run_oracle(env, candidates: Sequence[Action], seed: int = 0, recording: int = 0, start_s: float = 0.0,
               name: str = "oracle"):
    """The hindsight oracle: at every decision, run each candidate for one window on a clone of the environment
    (the same state, the same future inputs and link) and keep the best (``Window.score``). It sees the future:
    an UPPER BOUND, not a deployable strategy. Starts the episode as ``Environment.run`` does for the same
    seed, recording and start, so it sees the inputs the strategies saw. Returns the environment's ``Episode``.
    """
    if not candidates:
        raise ValueError("the oracle needs at least one candidate action")
    env.reset(seed=seed, recording=recording, start_s=start_s)
    before = {"tasks": 0}  # type: Dict[str, Any]
    while True:
        best, best_score = None, None
        for action in candidates:
            trial = env.clone()
            step = trial.step(action)
            score = Window.between(before, step.info, step.reward).score()
            if best_score is None or score > best_score:
                best, best_score = action, score
        step = env.step(best)
        before = step.info
        if step.done:
            break
    return env.episode(name)
