"""Policy search: a cross-entropy method over a gated policy, scored in the environment on training recordings.

The policy (``GatedPolicy``) is two EdgeML actions and a gate: the *remote* action while the peer is
alive and the estimated bandwidth (the runtime's ``bandwidth_mbps`` state feature) is at least
``gate_mbps``, the *local* action otherwise. Each action is per-exit thresholds and a cut; both share
one action interval. It is written as a policies_lite MLP with the ``edgeml`` decoder (one tanh unit
that switches between the two actions, ``to_layers``), and every candidate is scored through that very
MLP (``PolicyStrategy``), so the frozen file decides on the board exactly as it did in the search.

The search (``search``) is the cross-entropy method on the policy's genes (all in [0, 1]): draw a
population from a Gaussian, score every candidate on the same episodes (random training recordings
from random seconds, random seeds of the inputs and timing noise), refit the Gaussian to the elite,
repeat. Generation 0 also scores gate seeds (``gate_seeds``): gates where the board's estimate falls. The score is the satisfaction rate with the accuracy allowance as a penalty:
``SR - penalty x max(0, floor - accuracy)``, ``floor`` being the reference accuracy (the most accurate of
the reference strategies, local-only with the bundle's thresholds and remote-only, and the candidate's own
EdgeML-T1, -TL and -NonBranch ablations, as ``evaluate`` measures "the most accurate baseline") minus the allowance plus a
safety margin (``Args.accuracy_margin``: the floor is that much above what ``evaluate`` allows). The reference runs on the same episodes as the candidates (the same inputs), so the
constraint compares accuracies paired, as ``evaluate`` does on a recording, not against a noisy level. The
candidate's local action alone (the gate shut, run on the board) is held to the floor too, and at least to the final exit's accuracy
less the allowance (``Args.per_action_floor``: the policy's accuracy is a mix of its two actions', and a link worse
more of the time shifts the mix to the local one), its SR weighs in the score (``Args.local_sr_weight``), and each
of its EdgeML-T1/-TL ablations within the allowance whose SR is higher costs it that lead
(``Args.ablation_sr_term``: ``evaluate`` counts them as strategies); ``score`` has the formula. The finalists (the
last generations' elites and the best ever scored) are then run on VALIDATION recordings, training
recordings the search never scored, and the one with the best validation score is frozen. Nothing here
sees a held-out recording. With ``Args.tied_thresholds`` each action has one threshold for all its exits (one
gene), so the policy's T1 and TL ablations decide exactly as the policy does. With ``Args.memory`` the policy has
a third action, a *fast* local one (one threshold for every exit, at the local action's cut), taken instead of the
local action while the gate is shut and the state's ``remote_share`` (the share of the last tasks run under a cut-0
action) is at least ``share_gate``: where the link kept most tasks remote, their final exits leave accuracy to spend
on earlier exits. The local action alone (the gate always shut: no remote tasks, so never the fast one) is still
what the per-action floor holds. With ``Args.fast_remote`` (and a memory) the remote action has its fast twin too: one
threshold for every exit at the remote action's cut, taken instead of it while the gate is open and the share is at
the share gate, so that on a link that keeps most tasks remote the remote tasks may also spend accuracy on earlier
exits (a part of what the policy's TL ablation did where it led on the fresh recordings; most of its lead was its
local thresholds: docs/learning.md, rule 18). With ``Args.fast_steps`` K > 1 the fast local action is graded: K equal
steps, the k-th from remote_share >= k/K of the share gate, so the local thresholds move toward the fast one as the
share of recent remote tasks rises instead of all at once at the share gate (the same two genes; rule 19).
With ``Args.episode_floor`` the accuracy floor is held episode by episode against the most accurate rival, as
``evaluate`` counts its allowance recording by recording, besides over every task pooled (rule 20).
"""
import logging
import math
import time
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from edgesplit.policies_lite import save_policy
from edgesplit.policies_lite.format import parse_meta
from edgesplit.policies_lite.io import content_id
from edgesplit.policies_lite.policy import FrozenPolicy
from edgesplit.runtime.controller.state import EDGEML_FEATURES, FEATURES, REMOTE_WINDOW
from edgesplit.runtime.controller.strategies import Action, PolicyStrategy, StaticStrategy, Strategy

log = logging.getLogger(__name__)

ALGORITHM = "search"
GATE_SLOPE = 1e5      # tanh slope per Mbit/s at the gate: tanh is exactly +-1 from 0.0002 Mbit/s either side
PEER_DOWN_MBPS = 1e4  # a dead peer counts as this many Mbit/s below the gate (more than any link carries)
# The share gate: remote_share is k / n (n <= REMOTE_WINDOW = 50) and the gate has four decimals, so a share that is
# not the gate is at least 1 / (10000 x 50) = 2e-6 from it; with the share counted as at the gate from 1e-7 below
# and a slope of 1e9, the unit is tanh(+-100) or beyond for every share a board can report: never a blend.
SHARE_SLOPE = 1e9
SHARE_TOLERANCE = 1e-7
AND_SLOPE = 10.0      # the second layer's units: tanh(10) is 1 within 5e-9, so a saturated unit passes as +-1
SHARE_GATE_MIN = 1.0 / REMOTE_WINDOW  # the share gate's range: at least one remote task in the memory (a gate at 0
# would take the fast action with no remote task at all, where the per-action floor holds only the local action) ..
SHARE_GATE_MAX = 1.0 + 2.0 / REMOTE_WINDOW  # .. this (above 1: never the fast action)
# The hysteresis: at most this share of the gate, so that with every recent task remote the gate is still a quarter of
# itself (a hysteresis as large as the gate would latch it open: no estimate could shut it while the peer answers).
HYSTERESIS_MAX_SHARE = 0.75
HYSTERESIS_START = 0.1  # the search starts its gene here, off the boundary (half of a draw around 0 would clip to 0)
STARTS = ("local-only", "moea")
NEEDS_MEMORY = "a fast remote action needs a memory (its share gate)"
MAX_FAST_STEPS = 10  # a graded fast action has at most this many steps (each is two units of the MLP)
RESTART_SEED_STEP = 1000  # restart r of seed S draws with S + 1000 r (as DDPG's restarts)


def check_fast_steps(steps: Any, memory: bool) -> None:
    """A graded fast action: a whole number of steps in 1..MAX_FAST_STEPS, more than one only with a memory."""
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or not 1 <= steps <= MAX_FAST_STEPS:
        raise ValueError("fast steps %r: a whole number from 1 to %d" % (steps, MAX_FAST_STEPS))
    if steps > 1 and not memory:
        raise ValueError("a graded fast action needs a memory (the fast action and its share gate)")


@dataclass
class Args:
    """The search's settings (every one goes into the policy's provenance)."""

    seed: int = 0                    # seeds the Gaussian's draws and the episodes
    generations: int = 12            # rounds of draw, score, refit
    population: int = 24             # candidates per generation
    elite: int = 6                   # the best this many refit the Gaussian
    sigma0: float = 0.25             # the Gaussian's initial spread per gene (genes are in [0, 1])
    sigma_floor: float = 0.02        # the spread never shrinks below this (keeps exploring)
    smoothing: float = 0.7           # new mean/spread = smoothing x elite's + (1 - smoothing) x old
    episodes: int = 12               # episodes per generation, shared by every candidate (common random numbers)
    episode_tasks: int = 500         # tasks per episode (train's --episode-tasks)
    accuracy_allowance: float = 0.015  # accuracy a policy may give up against the most accurate reference
    accuracy_margin: float = 0.002   # kept in hand against the allowance: other baselines, other inputs
    penalty: float = 10.0            # SR points lost per accuracy point under the floor
    per_action_floor: bool = True    # the policy's local action alone (the gate shut) must meet the floor too
    ablation_sr_term: bool = True    # SR points lost per point an eligible T1/TL ablation scores above the policy
    local_sr_weight: float = 0.5     # the score's SR: (1 - w) x the policy's + w x its local action's alone (the worst
    # mix a link can give it: the gate shut), so the action it falls back to is chosen for its SR too (needs
    # per_action_floor, which runs it)
    finalists: int = 4               # elites of the last generation validated, plus the best ever scored
    validation_seeds: int = 2        # seeds per validation recording
    gate_max_mbps: float = 2.0       # the gate's range: 0 .. this many Mbit/s (above the rates: never remote)
    seed_gate_quantiles: Tuple[float, ...] = (0.1, 0.25, 0.5, 0.75)  # generation 0 also tries the start's local
    # action gated with remote-only's at these quantiles of the estimate the board read on its episodes (gate_seeds)
    tied_thresholds: bool = False    # one threshold for every exit of an action (a gene per action, not per exit):
    # the policy's EdgeML-T1 and -TL ablations are then the policy itself (GatedPolicy.tied)
    start: str = "local-only"        # the local action the search starts from: "local-only" (the bundle's thresholds) or
    # "moea" (MOEA's static action's thresholds, chosen on the search's recordings: search_command.start_action)
    memory: bool = False             # a fast local action while remote_share >= a share gate (two more genes: its one
    # threshold and the share gate; the policy then reads the state's remote_share)
    restarts: int = 1                # independent cross-entropy runs from the same start (restart r draws with seed
    # seed + 1000 r; restart 0 is the run without restarts); every run's finalists are validated together
    rival_floor: bool = False        # the accuracy floor follows the most accurate of the rivals too (over the same
    # episodes), as evaluate's allowance is counted from its most accurate baseline, whichever it is
    fast_steps: int = 1              # with a memory: the fast local action comes in this many equal steps as remote_share
    # rises to the share gate (GatedPolicy.fast_steps; no gene: the same two genes, a graded shape)
    fast_remote: bool = False        # with a memory: a fast remote action (one threshold for every exit, at the remote
    # action's cut) taken instead of the remote action while the gate is open and remote_share >= the share gate (one
    # more gene): where the link kept most tasks remote, the remote tasks may spend accuracy on earlier exits too
    hysteresis: bool = False         # the gate opens at gate - hysteresis x remote_share (one more gene: 0 .. 0.75 x gate):
    # after a remote stretch a dip of the estimate does not shut it; the policy then reads the state's remote_share
    rival_term: bool = False         # per episode, the SR points by which the best rival within the allowance (evaluate's
    # baselines, given to search as rivals) beats the policy are charged, averaged over the episodes: the line is won
    # recording by recording, not on the mean
    episode_floor: bool = False      # the accuracy floor held episode by episode too: on each, the most accurate rival's
    # accuracy less the allowance plus the margin; the mean shortfall is charged the penalty (episode_shortfall), as
    # evaluate counts its allowance recording by recording
    ablation_rivals: bool = False    # with rival_term: the policy's own T1, TL and NonBranch ablations are rivals too,
    # episode by episode (their SR lead and, with episode_floor, their accuracy), instead of the ablations' lead over
    # every task pooled (ablation_sr_term): evaluate ranks them beside its baselines, recording by recording

    def __post_init__(self) -> None:
        if self.start not in STARTS:
            raise ValueError("start %r: one of %s" % (self.start, ", ".join(STARTS)))
        if self.restarts < 1:
            raise ValueError("restarts must be >= 1, got %r" % self.restarts)
        if self.fast_remote and not self.memory:
            raise ValueError("fast_remote needs memory: the fast remote action follows the memory's share gate")
        check_fast_steps(self.fast_steps, self.memory)
        if self.ablation_rivals and not self.rival_term:
            raise ValueError("ablation_rivals needs rival_term: the ablations join the rivals whose lead it charges")


@dataclass(frozen=True)
class GatedPolicy:
    """The remote action while the peer is alive and bandwidth_mbps >= gate_mbps, else the local action; with a
    memory (``fast_threshold`` set), the fast local action instead of the local one while remote_share >=
    ``share_gate`` (less ``SHARE_TOLERANCE``), graded in ``fast_steps`` steps (``share_steps``) when more than one,
    and with ``fast_remote_threshold`` also the fast remote action instead of the remote one while remote_share >=
    ``share_gate``."""

    local_thresholds: Tuple[float, ...]
    local_cut: int
    remote_thresholds: Tuple[float, ...]
    remote_cut: int
    gate_mbps: float
    interval: int
    fast_threshold: Optional[float] = None  # the fast local action's one threshold (None: no memory)
    share_gate: float = SHARE_GATE_MAX
    hysteresis_mbps: Optional[float] = None  # the gate opens at gate_mbps - this x remote_share (None: no such gene);
    # at most HYSTERESIS_MAX_SHARE x gate_mbps
    fast_remote_threshold: Optional[float] = None  # with a memory: the fast remote action's one threshold, taken instead
    # of the remote action while the gate is open and remote_share >= share_gate (None: no such action)
    fast_steps: int = 1  # with a memory: the fast local action in this many equal steps, step k (of K) taken from
    # remote_share >= k/K of the share gate: the local thresholds move a k/K part of the way to the fast threshold

    def __post_init__(self) -> None:
        check_fast_steps(self.fast_steps, self.memory)
        object.__setattr__(self, "fast_steps", int(self.fast_steps))  # a numpy integer would reach the JSON provenance

    @property
    def memory(self) -> bool:
        return self.fast_threshold is not None

    @property
    def features(self) -> Tuple[str, ...]:
        """What its MLP reads: EdgeML's state, and remote_share with a memory or a hysteresis."""
        return FEATURES if self.memory or self.hysteresis_mbps is not None else EDGEML_FEATURES

    # ---- genes: every one in [0, 1]; cuts and interval floored as the edgeml decoder floors them

    @staticmethod
    def n_genes(n_exits: int, tied: bool = False, memory: bool = False, hysteresis: bool = False,
                fast_remote: bool = False) -> int:
        return ((6 if tied else 2 * n_exits + 4) + (2 if memory else 0) + (1 if hysteresis else 0)
                + (1 if fast_remote else 0))

    @classmethod
    def from_genes(cls, genes: Sequence[float], n_exits: int, n_cuts: int, max_interval: int,
                   gate_max_mbps: float, tied: bool = False, memory: bool = False,
                   hysteresis: bool = False, fast_remote: bool = False, fast_steps: int = 1) -> "GatedPolicy":
        """With ``tied`` the genes are (local threshold, local cut, remote threshold, remote cut, gate, interval):
        every exit of an action gets that action's one threshold. With ``memory`` two more follow: the fast
        action's threshold and the share gate (0..1 onto ``SHARE_GATE_MIN``..``SHARE_GATE_MAX``); with
        ``hysteresis`` one more: the hysteresis (0..1 onto 0..``HYSTERESIS_MAX_SHARE`` x the gate); with
        ``fast_remote`` (needs ``memory``) one more, last: the fast remote action's threshold. ``fast_steps`` is no
        gene: the graded shape of the memory's fast action (``fast_steps``)."""
        if fast_remote and not memory:
            raise ValueError(NEEDS_MEMORY)
        check_fast_steps(fast_steps, memory)
        g = np.clip(np.asarray(genes, dtype=float), 0.0, 1.0)
        e = n_exits
        expected = cls.n_genes(n_exits, tied, memory, hysteresis, fast_remote)
        if len(g) != expected:
            raise ValueError("%s genes are %d values, got %d"
                             % ("+".join(["tied" if tied else "untied"] + (["memory"] if memory else [])
                                         + (["hysteresis"] if hysteresis else [])
                                         + (["fast remote"] if fast_remote else [])), expected, len(g)))
        extra = {}  # type: Dict[str, Any]
        if fast_remote:
            extra["fast_remote_threshold"] = round(float(g[-1]), 4)
            g = g[:-1]
        hysteresis_share = None  # type: Optional[float]
        if hysteresis:
            hysteresis_share = float(g[-1])
            g = g[:-1]
        if memory:
            share_gate = SHARE_GATE_MIN + float(g[-1]) * (SHARE_GATE_MAX - SHARE_GATE_MIN)
            extra.update(fast_threshold=round(float(g[-2]), 4), share_gate=round(share_gate, 4))
            if fast_steps > 1:
                extra["fast_steps"] = fast_steps
            g = g[:-2]
        if tied:
            g = np.concatenate([np.repeat(g[0], e), g[1:2], np.repeat(g[2], e), g[3:]])

        def index(value: float, count: int) -> int:
            return int(min(math.floor(value * count), count - 1))

        gate = round(float(g[2 * e + 2]) * gate_max_mbps, 4)
        if hysteresis_share is not None:
            extra["hysteresis_mbps"] = round(hysteresis_share * HYSTERESIS_MAX_SHARE * gate, 4)
        return cls(tuple(round(float(v), 4) for v in g[:e]), index(g[e], n_cuts),
                   tuple(round(float(v), 4) for v in g[e + 1:2 * e + 1]), index(g[2 * e + 1], n_cuts),
                   gate, 1 + index(g[2 * e + 3], max_interval), **extra)

    def genes(self, n_cuts: int, max_interval: int, gate_max_mbps: float, tied: bool = False) -> np.ndarray:
        """The middle of this policy's cell in gene space (``from_genes`` of it gives the policy back; with ``tied``,
        the tied policy's: each action's threshold is the mean of its exits')."""
        local, remote = list(self.local_thresholds), list(self.remote_thresholds)
        if tied:
            local, remote = [float(np.mean(local))], [float(np.mean(remote))]
        share = (self.share_gate - SHARE_GATE_MIN) / (SHARE_GATE_MAX - SHARE_GATE_MIN)
        memory = [self.fast_threshold, min(max(share, 0.0), 1.0)] if self.memory else []
        hysteresis = [] if self.hysteresis_mbps is None else [
            min(self.hysteresis_mbps / (HYSTERESIS_MAX_SHARE * self.gate_mbps), 1.0) if self.gate_mbps > 0 else 0.0]
        fast_remote = [] if self.fast_remote_threshold is None else [self.fast_remote_threshold]
        return np.array(local + [(self.local_cut + 0.5) / n_cuts] + remote + [(self.remote_cut + 0.5) / n_cuts]
                        + [min(self.gate_mbps / gate_max_mbps, 1.0), (self.interval - 0.5) / max_interval] + memory
                        + hysteresis + fast_remote)

    def tied(self) -> "GatedPolicy":
        """The same policy with each action's thresholds replaced by their mean (rounded as genes round)."""
        def tie(thresholds: Tuple[float, ...]) -> Tuple[float, ...]:
            return tuple([round(float(np.mean(thresholds)), 4)] * len(thresholds))

        return replace(self, local_thresholds=tie(self.local_thresholds), remote_thresholds=tie(self.remote_thresholds))

    def with_memory(self, share_gate: float = 0.8) -> "GatedPolicy":
        """This policy with a memory whose fast action starts as its local action tied (one threshold, their mean)."""
        if self.memory:
            return self
        return replace(self, fast_threshold=round(float(np.mean(self.local_thresholds)), 4), share_gate=share_gate)

    def with_fast_remote(self) -> "GatedPolicy":
        """This policy (with a memory) with a fast remote action that starts as its remote action tied (one
        threshold, their mean). From the search's start (``starting_policy``: every remote threshold 0) that is the
        remote action itself, so the start decides as without it; from a policy whose remote thresholds differ it is
        their mean, which decides differently while the gate is open and the share is at the share gate.
        ``remote_share`` counts tasks run at cut 0 only: a fast remote action at another cut lowers the share it
        depends on, so it cannot hold for long (every search so far chose cut 0 for the remote action)."""
        if self.fast_remote_threshold is not None:
            return self
        if not self.memory:
            raise ValueError(NEEDS_MEMORY)
        return replace(self, fast_remote_threshold=round(float(np.mean(self.remote_thresholds)), 4))

    def share_steps(self) -> Tuple[float, ...]:
        """The remote_share from which each step of the fast action is taken: k/K of the share gate (four decimals, as
        the gate; the last is the share gate itself). With a full window the share moves by 1/REMOTE_WINDOW a task,
        so steps closer than that (share gate / K < 1/50) are taken on the same task."""
        k = self.fast_steps
        return tuple(round(self.share_gate * (i + 1) / k, 4) for i in range(k - 1)) + (self.share_gate,)

    def with_gate(self, gate_mbps: float) -> "GatedPolicy":
        """This policy with another gate; a hysteresis keeps its share of the gate (its gene)."""
        if self.hysteresis_mbps is None or self.gate_mbps <= 0:
            return replace(self, gate_mbps=gate_mbps)
        share = self.hysteresis_mbps / self.gate_mbps
        return replace(self, gate_mbps=gate_mbps, hysteresis_mbps=round(share * gate_mbps, 4))

    def with_hysteresis(self, share: float = HYSTERESIS_START) -> "GatedPolicy":
        """This policy with a hysteresis gene, at ``share`` of its range (0: it decides as the plain gate)."""
        if self.hysteresis_mbps is not None:
            return self
        return replace(self, hysteresis_mbps=round(share * HYSTERESIS_MAX_SHARE * self.gate_mbps, 4))

    # ---- the MLP the board runs

    def to_layers(self, n_cuts: int, max_interval: int) -> List[Tuple[np.ndarray, np.ndarray]]:
        """Two layers over EDGEML_FEATURES: h = tanh(slope (bandwidth - gate) - slope x big x (1 - peer_alive)),
        then the decoder's outputs = local + (remote - local) (h + 1) / 2, with the ``clip`` thresholds and the
        ``unit`` cut/interval (the middle of each cell, so the floor lands on the action). With a hysteresis h
        also reads remote_share: tanh(slope (bandwidth - gate + hysteresis x remote_share) - ...), over FEATURES.

        With a memory, three layers over FEATURES: h as above and m = tanh(slope (remote_share - share gate +
        tolerance)); then g = tanh(10 h) (h passed on) and f = tanh(10 (m - h - 1)), +1 only when m is +1 and h
        is -1 (the memory says fast and the gate is shut); outputs = local + (remote - local) (g + 1) / 2 +
        (fast - local) (f + 1) / 2, the fast action being its threshold at every exit, the local cut and interval.
        A graded fast action (``fast_steps`` K > 1) has K share units m_k, one per ``share_steps`` gate, and K units
        f_k = tanh(10 (m_k - h - 1)) each adding (fast - local) (f_k + 1) / 2K: with the gate shut and the share at
        the k-th step's gate, the thresholds are k/K of the way from the local action's to the fast one's.
        With a fast remote action one more unit r = tanh(10 (m + h - 1)), +1 only when m (the share gate's unit, the
        last step's) and h are both +1 (the memory says fast and the gate is open), adds (fast remote - remote)
        (r + 1) / 2: its one threshold at every exit, the remote cut and interval."""
        features = list(self.features)
        if self.fast_remote_threshold is not None and not self.memory:
            raise ValueError(NEEDS_MEMORY)
        if self.memory and not self.share_gate >= SHARE_GATE_MIN:
            raise ValueError("share gate %r: at least %g (one remote task of the last %d), or the fast action is "
                             "taken where no task went remote" % (self.share_gate, SHARE_GATE_MIN, REMOTE_WINDOW))
        if self.hysteresis_mbps is not None and not (
                0.0 <= self.hysteresis_mbps <= HYSTERESIS_MAX_SHARE * self.gate_mbps + 1e-9):
            raise ValueError("hysteresis %r Mbit/s: in [0, %g x the gate %g] (a larger one would latch the gate open)"
                             % (self.hysteresis_mbps, HYSTERESIS_MAX_SHARE, self.gate_mbps))
        check_fast_steps(self.fast_steps, self.memory)
        steps = self.share_steps() if self.memory else ()
        units = 1 + len(steps)
        w0 = np.zeros((units, len(features)))
        w0[0, features.index("bandwidth_mbps")] = GATE_SLOPE
        w0[0, features.index("peer_alive")] = GATE_SLOPE * PEER_DOWN_MBPS
        if self.hysteresis_mbps:
            w0[0, features.index("remote_share")] = GATE_SLOPE * self.hysteresis_mbps
        b0 = np.zeros(units)
        b0[0] = -GATE_SLOPE * (self.gate_mbps + PEER_DOWN_MBPS)
        interval = (self.interval - 0.5) / max_interval
        local = np.array(list(self.local_thresholds) + [(self.local_cut + 0.5) / n_cuts, interval])
        remote = np.array(list(self.remote_thresholds) + [(self.remote_cut + 0.5) / n_cuts, interval])
        if not self.memory:
            w1 = ((remote - local) / 2.0).reshape(-1, 1)
            b1 = (remote + local) / 2.0
            return [(w0, b0), (w1, b1)]
        k = len(steps)
        for i, share_gate in enumerate(steps):
            w0[1 + i, features.index("remote_share")] = SHARE_SLOPE
            b0[1 + i] = -SHARE_SLOPE * (share_gate - SHARE_TOLERANCE)
        w1 = np.zeros((units, units))
        w1[:, 0] = [AND_SLOPE] + [-AND_SLOPE] * k
        w1[np.arange(1, units), np.arange(1, units)] = AND_SLOPE
        b1 = np.array([0.0] + [-AND_SLOPE] * k)
        fast = np.array([float(self.fast_threshold)] * len(self.local_thresholds)
                        + [(self.local_cut + 0.5) / n_cuts, interval])
        w2 = np.stack([(remote - local) / 2.0] + [(fast - local) / (2.0 * k)] * k, axis=1)
        b2 = local + (remote - local) / 2.0 + (fast - local) / 2.0
        if self.fast_remote_threshold is not None:
            top = np.zeros(units)
            top[0] = top[k] = AND_SLOPE
            w1 = np.vstack([w1, top])
            b1 = np.append(b1, -AND_SLOPE)
            fast_remote = np.array([float(self.fast_remote_threshold)] * len(self.remote_thresholds)
                                   + [(self.remote_cut + 0.5) / n_cuts, interval])
            w2 = np.hstack([w2, ((fast_remote - remote) / 2.0).reshape(-1, 1)])
            b2 = b2 + (fast_remote - remote) / 2.0
        return [(w0, b0), (w1, b1), (w2, b2)]

    def hidden_sizes(self) -> List[int]:
        """The hidden layers' widths ``to_layers`` builds."""
        if not self.memory:
            return [1]
        units = 1 + self.fast_steps
        return [units, units + (0 if self.fast_remote_threshold is None else 1)]

    def activations(self) -> List[str]:
        return ["tanh", "tanh", "identity"] if self.memory else ["tanh", "identity"]

    def meta(self, n_exits: int, n_cuts: int, max_interval: int, provenance: Dict[str, Any]) -> Dict[str, Any]:
        features = list(self.features)
        return {"format_version": 1, "kind": "mlp", "features": features,
                "normalisation": {"mean": [0.0] * len(features), "std": [1.0] * len(features)},
                "layer_sizes": [len(features)] + self.hidden_sizes() + [n_exits + 2],
                "activations": self.activations(),
                "decoder": {"type": "edgeml", "n_exits": n_exits, "n_cuts": n_cuts, "max_interval": max_interval,
                            "thresholds": "clip", "scale": "unit"},
                "provenance": dict(provenance)}

    def strategy(self, n_exits: int, n_cuts: int, max_interval: int, name: str = "policy") -> PolicyStrategy:
        """The policy as the board runs it: its MLP through policies_lite, decided by ``PolicyStrategy``."""
        layers = self.to_layers(n_cuts, max_interval)
        arrays = {}
        for i, (w, b) in enumerate(layers):
            arrays["W%d" % i], arrays["b%d" % i] = w, b
        meta = self.meta(n_exits, n_cuts, max_interval, {"traces": [], "algorithm": ALGORITHM, "date": "in search",
                                                           "policy_id": "pending"})
        meta["provenance"]["policy_id"] = content_id(meta, arrays)
        return PolicyStrategy(FrozenPolicy(parse_meta(meta), arrays), name)

    def export(self, path, n_exits: int, n_cuts: int, max_interval: int, provenance: Dict[str, Any]) -> str:
        """Write the MLP with ``save_policy``; return its policy id."""
        return save_policy(path, features=list(self.features), layers=self.to_layers(n_cuts, max_interval),
                           activations=self.activations(),
                           decoder={"type": "edgeml", "n_exits": n_exits, "n_cuts": n_cuts,
                                    "max_interval": max_interval, "thresholds": "clip", "scale": "unit"},
                           provenance=dict(provenance, gated_policy=self.describe()), kind="mlp")

    @classmethod
    def from_description(cls, described: Dict[str, Any]) -> "GatedPolicy":
        """The policy ``describe`` wrote (a search policy's provenance keeps it as ``gated_policy``)."""
        fast = described.get("fast")
        extra = {"fast_threshold": float(fast["threshold"]), "share_gate": float(fast["share_gate"]),
                 "fast_steps": fast.get("steps", 1)} if fast else {}  # checked as built: a whole number
        if described.get("hysteresis_mbps") is not None:
            extra["hysteresis_mbps"] = float(described["hysteresis_mbps"])
        fast_remote = described.get("fast_remote")
        if fast_remote:
            extra["fast_remote_threshold"] = float(fast_remote["threshold"])
        return cls(tuple(float(t) for t in described["local"]["thresholds"]), int(described["local"]["cut"]),
                   tuple(float(t) for t in described["remote"]["thresholds"]), int(described["remote"]["cut"]),
                   float(described["gate_mbps"]), int(described["interval"]), **extra)

    def describe(self) -> Dict[str, Any]:
        out = {"local": {"thresholds": list(self.local_thresholds), "cut": self.local_cut},
               "remote": {"thresholds": list(self.remote_thresholds), "cut": self.remote_cut},
               "gate_mbps": self.gate_mbps, "interval": self.interval}  # type: Dict[str, Any]
        if self.memory:
            out["fast"] = {"threshold": self.fast_threshold, "cut": self.local_cut, "share_gate": self.share_gate,
                           "remote_window_tasks": REMOTE_WINDOW}
            if self.fast_steps > 1:  # graded: step k of K from remote_share >= k/K of the share gate
                out["fast"]["steps"] = self.fast_steps
        if self.hysteresis_mbps is not None:
            out["hysteresis_mbps"] = self.hysteresis_mbps  # the gate: gate_mbps - this x remote_share
        if self.fast_remote_threshold is not None:
            out["fast_remote"] = {"threshold": self.fast_remote_threshold, "cut": self.remote_cut,
                                  "share_gate": self.share_gate}
        return out


def starting_policy(local: Action, n_exits: int, gate_max_mbps: float) -> GatedPolicy:
    """A static action as a gated policy whose gate never opens (the search's starting point)."""
    return GatedPolicy(tuple(float(t) for t in local.thresholds), int(local.cut), tuple([0.0] * n_exits), 0,
                       float(gate_max_mbps), int(local.interval))


def gate_seeds(env, start: GatedPolicy, specs: Sequence["EpisodeSpec"], args: Args) -> List[GatedPolicy]:
    """The start's local action gated with remote-only's at ``args.seed_gate_quantiles`` of the bandwidth estimate
    the board read on ``specs`` under those two actions.

    The estimate is not the link's rate: under a local action it comes from small probes once a second, whose
    exchange overheads count as serialisation, and it lags the link. From a shut gate the search has no signal where the gate would open (every gate above the estimates
    scores the same), so generation 0 also scores gates where the estimate falls."""
    from edgesplit.runtime.controller.strategies import remote_only

    if not args.seed_gate_quantiles:
        return []
    local = StaticStrategy("start-local", Action(tuple(start.local_thresholds), start.local_cut, start.interval, True))
    estimates = []
    for strategy in (local, remote_only(env.n_exits)):
        for spec in specs:
            episode = env.run(strategy, seed=spec.seed, recording=spec.recording, start_s=spec.start_s)
            estimates.append(np.asarray(episode.per_task["estimate_bps"], dtype=float) / 1e6)
    pooled = np.concatenate(estimates) if estimates else np.zeros(0)
    pooled = pooled[np.isfinite(pooled) & (pooled > 0)]
    if not len(pooled):
        return []
    seeds = []  # type: List[GatedPolicy]
    for q in args.seed_gate_quantiles:
        gate = round(float(min(np.quantile(pooled, q), args.gate_max_mbps)), 4)
        policy = replace(start, remote_thresholds=tuple([0.0] * env.n_exits), remote_cut=0).with_gate(gate)
        if policy not in seeds:
            seeds.append(policy)
    return seeds


# ---------------------------------------------------------------- scoring


@dataclass(frozen=True)
class EpisodeSpec:
    recording: int
    start_s: float
    seed: int


@dataclass
class Score:
    sr: float
    accuracy: float
    reference_accuracy: float  # the reference strategy's, on the same episodes
    t1_accuracy: float         # the candidate's EdgeML-T1 ablation's
    nonbranch_accuracy: float  # the candidate's EdgeML-NonBranch ablation's
    floor: float
    value: float  # the SR term - penalty x (every shortfall under the floor) - every eligible ablation's lead (score())
    local_accuracy: float = float("nan")   # the local action alone (the gate shut), on the same episodes
    local_floor: float = float("nan")      # what it is held to: max(floor, final-exit accuracy - allowance + margin)
    local_sr: float = float("nan")         # its SR
    t1_sr: float = float("nan")            # the T1 ablation's SR
    tl_sr: float = float("nan")            # the TL ablation's SR
    tl_accuracy: float = float("nan")      # the TL ablation's accuracy
    rival_lead: float = float("nan")       # with Args.rival_term: the mean per-episode lead of the best eligible rival
    episode_shortfall: float = float("nan")  # with Args.episode_floor: the mean per-episode shortfall under the most
    # accurate rival less the allowance plus the margin

    def to_dict(self) -> Dict[str, float]:
        return {k: round(float(v), 5) for k, v in asdict(self).items() if not math.isnan(float(v))}


def draw_episodes(env, count: int, rng: np.random.RandomState) -> List[EpisodeSpec]:
    """Random recordings from random whole seconds, random seeds."""
    specs = []
    for _ in range(count):
        index = int(rng.randint(len(env.static.recordings)))
        _, rates, step_s = env.static.recordings[index]
        specs.append(EpisodeSpec(index, float(rng.randint(max(1, int(len(rates) * step_s)))),
                                 int(rng.randint(2 ** 31))))
    return specs


def episode_results(env, strategy, specs: Sequence[EpisodeSpec]) -> List[Tuple[float, float, int]]:
    """(SR, accuracy, tasks) of each episode of ``specs``."""
    out = []
    for spec in specs:
        episode = env.run(strategy, seed=spec.seed, recording=spec.recording, start_s=spec.start_s)
        out.append((episode.sr, episode.accuracy, episode.tasks))
    return out


def rival_results(env, rivals: Sequence[Strategy], specs: Sequence[EpisodeSpec]) -> List[List[Tuple[float, float, int]]]:
    """Each rival's ``episode_results`` (run once per set of episodes: every candidate is compared with the same)."""
    return [episode_results(env, rival, specs) for rival in rivals]


def rival_lead(policy: Sequence[Tuple[float, float, int]], rivals: Sequence[Sequence[Tuple[float, float, int]]],
               allowance: float) -> float:
    """The mean over episodes of how far the best rival within ``allowance`` of the most accurate rival on that episode
    is above the policy's SR (0 where none is): ``evaluate``'s verdict, recording by recording, as a number."""
    if not rivals or not policy:
        return 0.0
    leads = []
    for i, (sr, _, _) in enumerate(policy):
        rows = [r[i] for r in rivals]
        best_accuracy = max(row[1] for row in rows)
        eligible = [row[0] for row in rows if row[1] >= best_accuracy - allowance]
        leads.append(max(0.0, max(eligible) - sr))
    return float(np.mean(leads))


def episode_shortfall(policy: Sequence[Tuple[float, float, int]], rivals: Sequence[Sequence[Tuple[float, float, int]]],
                      allowance: float, margin: float) -> float:
    """The mean over episodes of how far the policy's accuracy is under the most accurate rival's on that episode less
    ``allowance`` plus ``margin`` (0 where it is not): ``evaluate``'s allowance, recording by recording, as a number.
    A floor met over every task pooled can hide episodes far under it, where the policy spent accuracy the allowance
    leaves only on others."""
    if not rivals or not policy:
        return 0.0
    return float(np.mean([max(0.0, max(r[i][1] for r in rivals) - allowance + margin - accuracy)
                          for i, (_, accuracy, _) in enumerate(policy)]))


def run_episodes(env, strategy, specs: Sequence[EpisodeSpec]) -> Tuple[float, float]:
    """(SR, accuracy) over every task of ``specs``."""
    return pooled(episode_results(env, strategy, specs))


def reference_accuracy(env, reference: Union[Strategy, Sequence[Strategy]], specs: Sequence[EpisodeSpec]) -> float:
    """The highest accuracy on ``specs`` of the reference strategy or strategies (``evaluate`` measures the policy
    against the most accurate baseline, which on a fast link is remote-only, not local-only)."""
    references = [reference] if isinstance(reference, Strategy) else list(reference)
    return max(run_episodes(env, r, specs)[1] for r in references)


def final_exit_accuracy(env, specs: Sequence[EpisodeSpec]) -> float:
    """Every task to the final exit, on the board (it never falls back): what remote-only reaches on a steady link
    whatever the link of ``specs`` was (an early exit can still be right where the final one is wrong)."""
    return run_episodes(env, StaticStrategy("final-exit", Action(tuple([0.0] * env.n_exits), env.n_cuts - 1, 1,
                                                                 False)), specs)[1]


def score(env, policy: GatedPolicy, specs: Sequence[EpisodeSpec], reference_accuracy: float, args: Args,
          ceiling: Optional[float] = None, rivals: Optional[Sequence[Sequence[Tuple[float, float, int]]]] = None
          ) -> Score:
    """``value = (1 - w) SR + w local SR - penalty x shortfall - ablation lead``.

    ``floor`` = max(reference, T1, TL, NonBranch accuracy) - allowance + margin (``evaluate``'s most accurate
    non-oracle row counts the policy's ablations). The shortfall is the policy's accuracy under the floor plus, with
    ``args.per_action_floor``, its local action's, run alone (the gate shut) and on the board (at the last cut, whatever
    its own: where the gate shuts, an offload at an earlier cut falls back) on the same episodes: the policy's accuracy is a mix of its two actions' in the proportion the link opens the gate, so a mix
    that meets the floor on these episodes falls under it on a recording whose link is worse more of the time unless
    the action it falls back to meets it alone. The local action's floor is also at least the final exit's accuracy
    (``ceiling``, ``final_exit_accuracy``; computed here when not given) less the allowance plus the margin: its
    accuracy does not depend on the link, and on a steady link remote-only reaches the final exit's accuracy, above
    remote-only's on these episodes, whose slow stretches cost it fallbacks. (The remote action alone is not held to it: alone it offloads on slow
    stretches the gate keeps it off, and its deadline fallbacks' early exits would count against it.) With ``args.ablation_sr_term``, each of the policy's T1 and TL ablations
    whose accuracy is at least ``floor - 2 x margin`` (best - allowance - margin: a little inside what ``evaluate``
    could count as eligible) and whose SR is above the policy's costs the policy that lead: ``evaluate`` counts them as strategies.
    With ``args.per_action_floor`` the SR term weighs the local action's SR alone by ``args.local_sr_weight`` (``w``;
    else ``w`` is 0): the policy's SR is a mix too, and on the search's episodes, where the gate is mostly open, the
    local action's SR had too little weight to be searched (its thresholds ended dominated by static actions). With
    ``args.episode_floor`` the shortfall also counts ``episode_shortfall``: the floor held on each episode against
    the most accurate rival there (the policy's own ablations, which the pooled floor counts, are left out of it
    unless ``args.ablation_rivals``), as ``evaluate`` counts its allowance recording by recording. With
    ``args.ablation_rivals`` (and ``args.rival_term``) the T1, TL and NonBranch ablations' rows join the rivals', episode
    by episode, and their lead over every task pooled is no longer charged (it would be charged twice)."""
    from edgesplit.codegen.learning.baselines import AblatedPolicy

    strategy = policy.strategy(env.n_exits, env.n_cuts, env.max_interval)
    per_episode = episode_results(env, strategy, specs)
    sr, accuracy = pooled(per_episode)
    ablations = [episode_results(env, AblatedPolicy(strategy, kind), specs) for kind in ("t1", "tl", "nonbranch")]
    (t1_sr, t1_accuracy), (tl_sr, tl_accuracy), (_, nonbranch_accuracy) = [pooled(rows) for rows in ablations]
    floor = (max(reference_accuracy, t1_accuracy, tl_accuracy, nonbranch_accuracy) - args.accuracy_allowance
             + args.accuracy_margin)
    shortfall = max(0.0, floor - accuracy)
    local_accuracy = local_floor = local_sr = float("nan")
    sr_term = sr
    if args.per_action_floor:
        # On the board whatever its cut: the gate shuts when the link is slow or the peer down, where an offload at
        # an earlier cut falls back and ends on the board; on these mostly fast episodes it would not.
        local = StaticStrategy("local-action", Action(tuple(policy.local_thresholds), env.n_cuts - 1,
                                                      policy.interval, True))
        local_sr, local_accuracy = run_episodes(env, local, specs)
        if ceiling is None:
            ceiling = final_exit_accuracy(env, specs)
        local_floor = max(floor, ceiling - args.accuracy_allowance + args.accuracy_margin)
        shortfall += max(0.0, local_floor - local_accuracy)
        sr_term = (1.0 - args.local_sr_weight) * sr + args.local_sr_weight * local_sr
    lead = 0.0
    if args.ablation_rivals:
        rivals = list(rivals or []) + ablations
    elif args.ablation_sr_term:
        eligible = floor - 2 * args.accuracy_margin
        for ablation_sr, ablation_accuracy in ((t1_sr, t1_accuracy), (tl_sr, tl_accuracy)):
            if ablation_accuracy >= eligible:
                lead += max(0.0, ablation_sr - sr)
    below = float("nan")
    if args.episode_floor and rivals:
        below = episode_shortfall(per_episode, rivals, args.accuracy_allowance, args.accuracy_margin)
        shortfall += below
    rivals_ahead = float("nan")
    if args.rival_term and rivals:
        rivals_ahead = rival_lead(per_episode, rivals, args.accuracy_allowance)
        lead += rivals_ahead
    return Score(sr, accuracy, reference_accuracy, t1_accuracy, nonbranch_accuracy, floor,
                 sr_term - args.penalty * shortfall - lead, local_accuracy, local_floor, local_sr, t1_sr, tl_sr,
                 tl_accuracy, rivals_ahead, below)


# ---------------------------------------------------------------- the search


@dataclass
class Generation:
    index: int
    best: Dict[str, Any]
    mean_value: float
    sigma_mean: float
    restart: int = 0


@dataclass
class SearchResult:
    policy: GatedPolicy
    start: GatedPolicy
    train_score: Score        # the chosen policy on the last generation's episodes
    start_train_score: Score  # the starting point on the same episodes
    validation: Dict[str, Any]  # every finalist's validation score and the chosen one's
    generations: List[Generation] = field(default_factory=list)
    evaluations: int = 0
    seconds: float = 0.0
    seeded: List[Dict[str, Any]] = field(default_factory=list)  # generation 0's gate seeds (gate_seeds), every run's
    # (with restarts each carries its run's "restart")


def search(env, start: GatedPolicy, reference: Union[Strategy, Sequence[Strategy]], args: Args, validation_env=None,
           on_generation: Optional[Callable[[Generation], None]] = None,
           rivals: Sequence[Strategy] = ()) -> SearchResult:
    """The cross-entropy method from ``start``, ``args.restarts`` times; every run's finalists are chosen among on
    ``validation_env`` (if given; without it, the first run's first finalist). ``reference`` (one strategy or several:
    the most accurate counts) sets the accuracy floor, run on the same episodes as the candidates. ``rivals`` (with
    ``args.rival_term``): the strategies whose per-episode lead is charged (``rival_lead``); with ``args.rival_floor`` the
    most accurate of them also raises the accuracy floor (``scoring_setting``), with ``args.episode_floor`` on each
    episode (``episode_shortfall``)."""
    if (args.rival_term or args.rival_floor or args.episode_floor) and not rivals:
        raise ValueError("rival_term, rival_floor and episode_floor need rivals: the strategies evaluate would rank the "
                         "policy against")
    started = time.perf_counter()
    if args.tied_thresholds:
        start = start.tied()
    if args.memory:
        start = replace(start.with_memory(), fast_steps=args.fast_steps)
    if args.hysteresis:
        start = start.with_hysteresis()
    if args.fast_remote:
        start = start.with_fast_remote()
    runs = [_run(env, start, reference, args, r, on_generation, rivals) for r in range(args.restarts)]
    finalists = []  # type: List[GatedPolicy]
    home = {}  # type: Dict[GatedPolicy, _Run]  # the run that found each finalist (the first, if several did)
    for run in runs:
        for policy in run.finalists:
            if policy not in home:
                finalists.append(policy)
                home[policy] = run
    evaluations = sum(run.evaluations for run in runs)
    if validation_env is not None:
        chosen, validation = validate(validation_env, finalists, reference, args, rivals)
        evaluations += len(finalists)
    else:
        chosen, validation = finalists[0], {"finalists": [], "chosen": finalists[0].describe()}
    if args.restarts > 1:
        validation["restart"] = home[chosen].restart
    # the chosen one and the start, scored on the last episodes of the run that found it
    specs, reference_floor, ceiling, rows = home[chosen].last
    final_score = score(env, chosen, specs, reference_floor, args, ceiling, rows)
    start_score = score(env, start, specs, reference_floor, args, ceiling, rows)
    return SearchResult(chosen, start, final_score, start_score, validation,
                        [g for run in runs for g in run.generations], evaluations, time.perf_counter() - started,
                        [dict(p.describe(), restart=run.restart) if args.restarts > 1 else p.describe()
                         for run in runs for p in run.seeded])


@dataclass
class _Run:
    """One cross-entropy run: its finalists, its curve, and its last generation's episodes (specs, the accuracy
    floor, the final exit's accuracy, the rivals' rows: what ``score`` takes after the policy)."""

    restart: int
    finalists: List[GatedPolicy]
    generations: List[Generation]
    evaluations: int
    seeded: List[GatedPolicy]
    last: Tuple[Any, ...]


def _run(env, start: GatedPolicy, reference, args: Args, restart: int,
         on_generation: Optional[Callable[[Generation], None]], rivals: Sequence[Strategy]) -> _Run:
    rng = np.random.RandomState(args.seed + RESTART_SEED_STEP * restart)
    n_exits, n_cuts, max_interval = env.n_exits, env.n_cuts, env.max_interval
    tied = args.tied_thresholds

    def decode(genes) -> GatedPolicy:
        return GatedPolicy.from_genes(genes, n_exits, n_cuts, max_interval, args.gate_max_mbps, tied, args.memory,
                                      args.hysteresis, args.fast_remote, args.fast_steps)

    mean = start.genes(n_cuts, max_interval, args.gate_max_mbps, tied)
    sigma = np.full(len(mean), args.sigma0)
    best_ever = None  # type: Optional[Tuple[float, GatedPolicy]]
    generations = []
    evaluations = 0
    cache = {}  # type: Dict[Tuple[GatedPolicy, int], Score]
    elite_policies = []  # type: List[GatedPolicy]
    last = ()  # type: Tuple[Any, ...]
    seeded = []  # type: List[GatedPolicy]
    for g in range(args.generations):
        specs = draw_episodes(env, args.episodes, rng)
        reference_floor, ceiling, rows = scoring_setting(env, reference, rivals, specs, args)
        last = (specs, reference_floor, ceiling, rows)
        population = [mean]
        if g == 0:
            seeded = gate_seeds(env, start, specs, args)[:max(0, args.population - 1)]
            population += [p.genes(n_cuts, max_interval, args.gate_max_mbps, tied) for p in seeded]
        population += [np.clip(mean + sigma * rng.randn(len(mean)), 0.0, 1.0)
                       for _ in range(args.population - len(population))]
        scored = []
        for genes in population:
            policy = decode(genes)
            key = (policy, g)
            if key not in cache:
                cache[key] = score(env, policy, specs, reference_floor, args, ceiling, rows)
                evaluations += 1
            scored.append((cache[key].value, genes, policy))
        scored.sort(key=lambda item: -item[0])
        elite = scored[:args.elite]
        genes_elite = np.array([item[1] for item in elite])
        mean = args.smoothing * genes_elite.mean(axis=0) + (1 - args.smoothing) * mean
        sigma = np.maximum(args.smoothing * genes_elite.std(axis=0) + (1 - args.smoothing) * sigma,
                           args.sigma_floor)
        if best_ever is None or elite[0][0] > best_ever[0]:
            best_ever = (elite[0][0], elite[0][2])
        elite_policies = [item[2] for item in elite]
        generation = Generation(g, dict(cache[(elite[0][2], g)].to_dict(), policy=elite[0][2].describe()),
                                float(np.mean([item[0] for item in scored])), float(sigma.mean()), restart)
        generations.append(generation)
        log.info("restart %d, generation %d: best %.4f (sr %.4f accuracy %.4f), mean %.4f", restart, g, elite[0][0],
                 cache[(elite[0][2], g)].sr, cache[(elite[0][2], g)].accuracy, generation.mean_value)
        if on_generation:
            on_generation(generation)
    finalists = []  # type: List[GatedPolicy]
    for policy in [decode(mean)] + elite_policies[:args.finalists] + ([best_ever[1]] if best_ever else []):
        if policy not in finalists:
            finalists.append(policy)
    return _Run(restart, finalists, generations, evaluations, seeded, last)


def scoring_setting(env, reference, rivals: Sequence[Strategy], specs: Sequence[EpisodeSpec], args: Args
                    ) -> Tuple[float, Optional[float], Optional[List[List[Tuple[float, float, int]]]]]:
    """What every candidate on ``specs`` is scored against: the reference accuracy (with ``rival_floor``, the most
    accurate rival's too, over every task of ``specs``), the final exit's accuracy (for the per-action floor), and the
    rivals' rows (with ``rival_term``, ``rival_floor`` or ``episode_floor``)."""
    floor = reference_accuracy(env, reference, specs)
    ceiling = final_exit_accuracy(env, specs) if args.per_action_floor else None
    rows = rival_results(env, rivals, specs) if args.rival_term or args.rival_floor or args.episode_floor else None
    if args.rival_floor and rows:
        floor = max([floor] + [pooled_accuracy(row) for row in rows])
    return floor, ceiling, rows


def pooled(episodes: Sequence[Tuple[float, float, int]]) -> Tuple[float, float]:
    """(SR, accuracy) over every task of (SR, accuracy, tasks) episodes (``run_episodes`` pools them so)."""
    tasks = max(1, sum(n for _, _, n in episodes))
    return sum(sr * n for sr, _, n in episodes) / tasks, sum(accuracy * n for _, accuracy, n in episodes) / tasks


def pooled_accuracy(episodes: Sequence[Tuple[float, float, int]]) -> float:
    """Accuracy over every task of (SR, accuracy, tasks) episodes, as ``run_episodes`` counts it."""
    return pooled(episodes)[1]


def validate(env, finalists: Sequence[GatedPolicy], reference: Union[Strategy, Sequence[Strategy]],
             args: Args, rivals: Sequence[Strategy] = ()) -> Tuple[GatedPolicy, Dict[str, Any]]:
    """The finalist with the best score on the validation recordings (then the higher SR), and every score."""
    specs = validation_episodes(env, args)
    reference_floor, ceiling, rival_rows = scoring_setting(env, reference, rivals, specs, args)
    ranked, rows = [], []
    for policy in finalists:
        v = score(env, policy, specs, reference_floor, args, ceiling, rival_rows)
        rows.append(dict(v.to_dict(), policy=policy.describe()))
        ranked.append((v.value, v.sr, policy))
    chosen = max(ranked, key=lambda item: (item[0], item[1]))[2]
    return chosen, {"finalists": rows, "chosen": chosen.describe()}


def validation_episodes(env, args: Args) -> List[EpisodeSpec]:
    """Every validation recording from its start, ``validation_seeds`` times, each with seeds of its own (the seed
    draws the inputs: one seed for every recording would replay the same inputs on each)."""
    rng = np.random.RandomState(args.seed + 104729)
    return [EpisodeSpec(i, 0.0, int(rng.randint(2 ** 31))) for i in range(len(env.static.recordings))
            for _ in range(args.validation_seeds)]


def hyperparameters(args: Args) -> Dict[str, Any]:
    return dict(asdict(args), gate_slope_per_mbps=GATE_SLOPE)
