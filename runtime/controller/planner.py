"""Predicting what an action does from profiles, without running it.

Used off-board to build the demo policy (``codegen/policy_build.py``) and on the board to choose a
static baseline by profiling every cut (Neurosurgeon). Per image of a profiling set it needs the
normalised entropy at each side exit and whether each exit is right; per segment its time on the
board; per cut the bytes sent. For one action, bandwidth and peer state it walks every image
through the model exactly as the executor would (exit at the first side exit whose entropy is below
its threshold, offload at the cut), and returns the satisfaction rate, accuracy, mean latency and
energy.

Link model: transfer = 8 x bytes / bandwidth + RTT + the peer's compute. With the peer down the
rest runs locally (a fallback).
"""
from dataclasses import dataclass
from typing import Callable, Dict, List, Sequence

import numpy as np

from edgesplit.runtime.controller.reward import Bounds
from edgesplit.runtime.executor.exit_rule import takes_exit

HEADER_BYTES = 400  # the wire header (JSON) per request, roughly


@dataclass
class ExitStats:
    entropies: np.ndarray  # (N, side exits) normalised entropy at each side exit
    correct: np.ndarray    # (N, exits) bool, exit i's prediction is right


@dataclass
class CostModel:
    main_s: List[float]            # seconds of main segment i (cut i -> i + 1) on the board
    head_s: List[float]            # seconds of each side exit head
    head_cut: List[int]            # the cut each side exit sits on
    cut_bytes: List[int]           # bytes sent when offloading at cut i
    rtt_s: float
    peer_s: float
    energy: Callable[[np.ndarray, np.ndarray], np.ndarray]  # (busy_s, idle_s) -> energy per task


@dataclass
class Prediction:
    sr: float
    accuracy: float
    latency_s: float
    energy: float
    offloaded: float


def predict(thresholds: Sequence[float], cut: int, use_exits: bool, bandwidth_bps: float, peer_alive: bool,
            stats: ExitStats, cost: CostModel, bounds: Bounds) -> Prediction:
    n = stats.entropies.shape[0]
    last = len(cost.main_s)
    done = np.zeros(n, dtype=bool)
    exit_of = np.full(n, len(cost.head_s), dtype=np.int64)  # default: the final exit
    busy = np.zeros(n)
    idle = np.zeros(n)
    offloaded = np.zeros(n, dtype=bool)
    local_until = cut if peer_alive else last
    for c in range(0, last + 1):
        if c > 0:
            if c - 1 < local_until:
                busy[~done] += cost.main_s[c - 1]
            else:
                break
        for k, head_cut in enumerate(cost.head_cut):
            if head_cut != c or not use_exits or c == 0:
                continue
            if c <= local_until:
                active = ~done
                busy[active] += cost.head_s[k]
                taken = active & takes_exit(stats.entropies[:, k], thresholds[k])
            else:
                taken = np.zeros(n, dtype=bool)
            exit_of[taken] = k
            done |= taken
        if c == local_until and c < last:
            # Offload: the peer evaluates the later exits with the same thresholds.
            rest = ~done
            offloaded[rest] = True
            idle[rest] += 8.0 * cost.cut_bytes[c] / max(bandwidth_bps, 1.0) + cost.rtt_s + cost.peer_s
            if use_exits:
                for k, head_cut in enumerate(cost.head_cut):
                    if head_cut > c:
                        taken = rest & takes_exit(stats.entropies[:, k], thresholds[k])
                        exit_of[taken] = k
                        rest &= ~taken
            break
    latency = busy + idle
    energy = cost.energy(busy, idle)
    correct = stats.correct[np.arange(n), exit_of]
    ok = (latency <= bounds.latency_s) & (energy <= bounds.energy)
    return Prediction(float(ok.mean()), float(correct.mean()), float(latency.mean()), float(energy.mean()),
                      float(offloaded.mean()))


def best_static_cut(cost: CostModel, bandwidth_bps: float, stats: ExitStats, bounds: Bounds) -> Dict[str, float]:
    """Neurosurgeon: the cut with the lowest predicted latency, no early exits."""
    n_side = len(cost.head_s)
    scored = []
    for cut in range(len(cost.main_s) + 1):
        p = predict([0.0] * n_side, cut, False, bandwidth_bps, True, stats, cost, bounds)
        scored.append((p.latency_s, cut))
    latency, cut = min(scored)
    return {"cut": cut, "predicted_latency_s": latency}
