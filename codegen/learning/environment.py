"""The EdgeML loop in virtual time, built from the runtime's own parts (issue 12; docs/learning.md).

What runs is the board's code: ``Controller`` (with its ``StateWindow`` and EdgeML ``reward``) asks a
``Strategy`` for an ``Action`` and holds it for the action's interval; the exit rule is the
executor's (``runtime/executor/exit_rule.py``); the bandwidth the state sees is the runtime's own
``LinkEstimator`` fed by the transfers the virtual device makes, exactly as the device loop and its
peer client feed it (offload replies, probes when the estimate is stale or the peer is down, the
bound from an unanswered request). What is modelled instead of run:

- the model: per task one image of the bundle's profiling set, with each side exit's normalised
  entropy and each exit's correctness (``codegen/policy_build.exit_stats``, run once);
- compute: each segment's time on the board (``policy_build.cost_model``: the emulated board's MACs
  model or a measured profile, times the workload scale) and the board's power model for energy;
- the link: the software link (``virtual_link``) replaying a bandwidth recording, exact across rate
  steps, one FIFO per direction, half the base RTT each way; the peer's compute a constant;
- peer failures: in a ``peer_down`` window requests get no reply; the task times out at its
  deadline and finishes on the device (a fallback), and the client probes with the runtime's backoff;
- what the runtime's own machinery costs in time (per segment call, per task, per request/reply, the
  handling of a reply, how late a reply is still taken): figures measured from real runs
  (``reality.calibrate``), with their noise.

Time mirrors ``run``/``demo``: task ``i`` arrives at ``i x period_s``; a device still busy starts it
late (its latency includes the wait); the deadline is arrival + latency bound.
"""
import copy
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from edgesplit.runtime.controller.controller import Controller
from edgesplit.runtime.controller.reward import Bounds, TaskOutcome
from edgesplit.runtime.controller.state import DEFAULT_Q, FEATURES
from edgesplit.runtime.controller.strategies import Action, Strategy
from edgesplit.runtime.errors import InputError
from edgesplit.runtime.executor.exit_rule import fallback_target, takes_exit
from edgesplit.runtime.traces import TaskRecord, TraceStore, default_versions
from edgesplit.runtime.transport import wire

from edgesplit.codegen.learning.virtual_client import PROBE_BYTES, PROBE_TIMEOUT_S, VirtualPeerClient
from edgesplit.codegen.learning.virtual_link import Direction, LinkSchedule

log = logging.getLogger(__name__)

ENVIRONMENT_VERSION = "2"  # 2: the device's probes on a thread and socket of their own (virtual_client.py)
EXTRA_FEATURES = ("bandwidth_now_mbps", "bandwidth_min_mbps")
# Measured by bench/environment_reality.py (reality.calibrate) on the software link and emulated board at
# speedup 1.5 on the reference workstation; see docs/learning.md.
SEGMENT_OVERHEAD_S = 0.00014
TASK_OVERHEAD_S = 0.00088
EXCHANGE_OVERHEAD_S = 0.0058
EXCHANGE_JITTER_S = 0.0041
REPLY_OVERHEAD_S = 0.00083
# PeerClient polls in whole milliseconds rounded up, and on a busy host its thread wakes up late: a reply that
# arrived by the time the wait really ends is taken, though after the deadline.
TIMEOUT_GRACE_S = 0.0029
SEGMENT_HICCUP_P = 0.087
SEGMENT_HICCUP_S = 0.0016
START_MARGIN_S = 0.5  # the demo's set-up margin: the first probes happen this long before the first arrival


@dataclass
class Recording:
    """A bandwidth series in memory (e.g. Fig. 9's 15/6 Mbit/s square wave)."""

    name: str
    step_s: float
    rates_bps: np.ndarray


@dataclass
class Scenario:
    bundle_dir: Path
    board: str
    recordings: List[Union[Path, Recording]]
    link_scale: float = 1.0
    link_format: Optional[str] = None
    rtt_s: float = 0.02
    workload_scale: float = 1.0
    measured_profile: Optional[str] = None
    latency_bound_s: float = 0.1
    energy_bound: Optional[float] = None
    period_s: float = 0.1
    episode_tasks: int = 500
    images: Optional[Path] = None
    labels: Optional[Path] = None
    peer_down: Sequence[Tuple[float, float]] = ()
    # Added beyond the contract:
    recording_speed: float = 1.0   # recorded seconds per emulated second (the demo replays twice as fast)
    peer_s: float = 0.001          # the peer's compute per request (emulated seconds)
    q: int = DEFAULT_Q             # the controller's state window (action intervals)
    max_interval: int = 5          # the longest action interval (tasks), as the edgeml decoder's
    draw: str = "random"           # "random": each task draws an image; "sequential": image i for task i
    setup_margin_s: float = START_MARGIN_S  # the set-up probes happen this long before the first arrival
    # What the runtime's own machinery adds (emulated seconds), measured against real runs (reality.calibrate):
    segment_overhead_s: float = SEGMENT_OVERHEAD_S    # per segment call beyond its paced time
    task_overhead_s: float = TASK_OVERHEAD_S          # per task outside segments (controller, executor, trace)
    exchange_overhead_s: float = EXCHANGE_OVERHEAD_S  # per request/reply beyond serialisation and RTT
    reply_overhead_s: float = REPLY_OVERHEAD_S        # the device's handling of an answered offload, after the reply
    timeout_grace_s: float = TIMEOUT_GRACE_S          # mean lateness (exponential) of noticing the deadline: a reply
                                                      # that arrives within it still counts as answered
    # Timing noise (0: deterministic): an exponential extra with this mean per request/reply; per segment call, with
    # this probability a hiccup (a late wake-up of the paced sleep, a busy host) of exponential length with this mean.
    exchange_jitter_s: float = EXCHANGE_JITTER_S
    segment_hiccup_p: float = SEGMENT_HICCUP_P
    segment_hiccup_s: float = SEGMENT_HICCUP_S
    # Measured timing, drawn from instead of the figures above when given (reality.calibrate): each segment call's
    # time beyond its modelled time, and each request/reply's time beyond serialisation and RTT.
    segment_excess_s: Sequence[float] = ()
    exchange_excess_s: Sequence[float] = ()


def demo_scenario() -> Scenario:
    """The demo's settings (``runtime/emulation/scenario.py`` DEMO) on the default bundle."""
    from edgesplit.runtime.default_bundle import default_bundle_path
    from edgesplit.runtime.emulation.link.shipped import resolve_recording
    from edgesplit.runtime.emulation.scenario import DEMO

    return Scenario(bundle_dir=default_bundle_path(), board=DEMO["board"],
                    recordings=[resolve_recording(DEMO["recording"])], link_scale=DEMO["link_scale"],
                    rtt_s=DEMO["rtt_s"], workload_scale=DEMO["workload_scale"],
                    latency_bound_s=DEMO["latency_bound_s"], energy_bound=DEMO["energy_bound_mj"],
                    period_s=DEMO["period_s"], episode_tasks=500, recording_speed=DEMO["recording_speed"])


@dataclass
class Step:
    state: Dict[str, float]
    reward: float
    done: bool
    info: Dict[str, Any]


@dataclass
class Episode:
    strategy: str
    sr: float
    accuracy: float
    mean_latency_ms: float
    reward: float
    tasks: int
    fallbacks: int
    per_task: Dict[str, np.ndarray]

    def to_dict(self) -> Dict[str, Any]:
        return {"strategy": self.strategy, "sr": self.sr, "accuracy": self.accuracy,
                "mean_latency_ms": self.mean_latency_ms, "reward": self.reward, "tasks": self.tasks,
                "fallbacks": self.fallbacks}


# ---------------------------------------------------------------- what is computed once


class StaticModel:
    """Everything that does not change during an episode; shared by an environment and its clones."""

    def __init__(self, scenario: Scenario):
        check_scenario(scenario)
        from edgesplit.codegen.policy_build import (check_profiling_images, cost_model, exit_stats,
                                                    warn_if_exit_training_data)
        from edgesplit.runtime.bundle.store import load_bundle
        from edgesplit.runtime.emulation.board import load_emulated_board
        from edgesplit.runtime.profiling.store import load_profile

        self.scenario = scenario
        bundle = load_bundle(str(scenario.bundle_dir))
        self.bundle = bundle
        manifest = bundle.manifest
        images, labels, self.images_source = _profiling_set(scenario)
        check_profiling_images(bundle, images, labels, self.images_source,
                               str(scenario.labels) if scenario.labels is not None else None)
        if scenario.images is not None:
            warn_if_exit_training_data(bundle, str(scenario.images))
        self.stats = exit_stats(bundle, images, labels)
        measured = load_profile(bundle, scenario.measured_profile) if scenario.measured_profile else None
        self.cost = cost_model(bundle, scenario.board, scenario.workload_scale, scenario.rtt_s, scenario.peer_s,
                               measured=measured)
        self.board = load_emulated_board(scenario.board)
        self.bounds = Bounds(scenario.latency_bound_s,
                             math.inf if scenario.energy_bound is None else float(scenario.energy_bound))
        side = [e for e in manifest.exits if e.head is not None]
        self.n_side = len(side)
        self.n_exits_total = len(manifest.exits)
        self.last_cut = len(manifest.main)
        self.n_cuts = len(manifest.cuts)
        self.final_exit = manifest.exits[-1].id
        self.side_ids = [e.id for e in side]
        self.main_ids = [s.id for s in manifest.main]
        self.head_ids = [e.head for e in side]
        # Per cut c: the side exits evaluated at c, as (side index, head seconds).
        extra = 0.0 if scenario.segment_excess_s else scenario.segment_overhead_s
        self.main_s = [t + extra for t in self.cost.main_s]
        self.head_s = [t + extra for t in self.cost.head_s]
        self.heads_at = [[(k, self.head_s[k]) for k, e in enumerate(side) if e.cut == c]
                         for c in range(self.last_cut + 1)]
        # Per cut: exact wire bytes of the request (header + tensors) and of a reply (header + final scores).
        thresholds = [0.1234] * self.n_side
        self.request_bytes = []
        for cut in manifest.cuts:
            tensors = {t.name: np.zeros([1] + list(t.shape[1:]), dtype=t.dtype) for t in cut.tensors}
            frames = wire.encode_request(12345, "infer", bundle.wire_hash, cut.id, 0.0812345, tensors, thresholds)
            self.request_bytes.append(wire.message_bytes(frames))
        out = manifest.outputs[0]
        reply = wire.encode_reply(12345, "ok", "", self.final_exit, 0.0012345, 0.0012345,
                                  {out.name: np.zeros([1] + list(out.shape[1:]), dtype=out.dtype)})
        self.reply_bytes = wire.message_bytes(reply)
        self.probe_request_bytes = {n: wire.message_bytes(wire.encode_request(
            12345, "probe", bundle.wire_hash, 0, PROBE_TIMEOUT_S,
            {wire.PROBE_PAYLOAD: np.zeros(n, dtype=np.uint8)} if n else {})) for n in (0, PROBE_BYTES)}
        self.probe_reply_bytes = wire.message_bytes(wire.encode_reply(12345, "ok", service_s=0.0001234))
        self.recordings = [_read(r, scenario) for r in scenario.recordings]
        if not self.recordings:
            raise ValueError("a scenario needs at least one bandwidth recording")
        self.entropies = self.stats.entropies.tolist()
        self.correct = self.stats.correct.tolist()
        self.n_images = len(self.entropies)
        self.labels = [int(v) for v in labels]


def check_scenario(scenario: Scenario) -> None:
    """Refuse a scenario the environment cannot run, naming the field and what it needs."""
    positive = ("period_s", "recording_speed", "link_scale", "latency_bound_s", "workload_scale")
    non_negative = ("rtt_s", "peer_s", "setup_margin_s", "segment_overhead_s", "task_overhead_s",
                    "exchange_overhead_s", "reply_overhead_s", "timeout_grace_s", "exchange_jitter_s",
                    "segment_hiccup_s")
    problems = ["%s must be > 0, got %r" % (k, getattr(scenario, k)) for k in positive
                if not getattr(scenario, k) > 0]
    problems += ["%s must be >= 0, got %r" % (k, getattr(scenario, k)) for k in non_negative
                 if not getattr(scenario, k) >= 0]
    for k in ("episode_tasks", "q", "max_interval"):
        if not (isinstance(getattr(scenario, k), int) and getattr(scenario, k) >= 1):
            problems.append("%s must be an integer >= 1, got %r" % (k, getattr(scenario, k)))
    if not 0.0 <= scenario.segment_hiccup_p <= 1.0:
        problems.append("segment_hiccup_p must be in [0, 1], got %r" % scenario.segment_hiccup_p)
    if scenario.draw not in ("random", "sequential"):
        problems.append("draw must be 'random' or 'sequential', got %r" % (scenario.draw,))
    if scenario.energy_bound is not None and not scenario.energy_bound > 0:
        problems.append("energy_bound must be > 0 (None: no bound), got %r" % scenario.energy_bound)
    if not scenario.recordings:
        problems.append("recordings is empty: give at least one bandwidth recording (file or Recording)")
    for i, window in enumerate(scenario.peer_down):
        if len(window) != 2 or not window[0] < window[1]:
            problems.append("peer_down[%d] must be (start_s, end_s) with start < end, got %r" % (i, window))
    if problems:
        raise InputError("scenario: " + "; ".join(problems))


def _profiling_set(scenario: Scenario):
    if scenario.images is not None:
        if scenario.labels is None:
            raise ValueError("Scenario.images needs Scenario.labels (one label per image)")
        from edgesplit.runtime.inputs import read_npy

        return read_npy(str(scenario.images), "--images"), read_npy(str(scenario.labels), "--labels"), str(scenario.images)
    from edgesplit.runtime.default_bundle import default_bundle_path

    if Path(scenario.bundle_dir).resolve() != Path(default_bundle_path()).resolve():
        raise ValueError("%s: a bundle other than the default one needs its own profiling set: set "
                         "Scenario.images and Scenario.labels (.npy)" % scenario.bundle_dir)
    from edgesplit.codegen.default_model.data import split_mnist
    from edgesplit.runtime.default_bundle import load_heldout

    # build-policy's profiling set for the default bundle: never the held-out images the demo runs.
    splits = split_mnist()
    shipped = len(load_heldout()[1])
    images = np.concatenate([splits.validation.images, splits.test.images[shipped:]])
    labels = np.concatenate([splits.validation.labels, splits.test.labels[shipped:]])
    return images, labels, "default model validation split + unshipped test images"


def _read(recording: Union[Path, str, Recording], scenario: Scenario) -> Tuple[str, List[float], float]:
    """(name, rates in bit/s x link scale, step seconds) of a recording file or an in-memory series."""
    if isinstance(recording, Recording):
        rates = np.asarray(recording.rates_bps, dtype=float)
        return recording.name, (rates * scenario.link_scale).tolist(), float(recording.step_s)
    from edgesplit.runtime.emulation.link.recording_readers import read_recording
    from edgesplit.runtime.emulation.link.shipped import resolve_recording

    read = read_recording(resolve_recording(str(recording)), scenario.link_format or "auto")
    return Path(str(recording)).name, (np.asarray(read.bps, dtype=float) * scenario.link_scale).tolist(), read.step_s


# ---------------------------------------------------------------- the environment


class _Injected(Strategy):
    """The strategy ``step`` hands the controller: it decides whatever ``step`` was given."""

    name = "step"
    policy_id = "environment.step"

    def __init__(self):
        self.next_action = None  # type: Optional[Action]

    def decide(self, state: Mapping[str, float]) -> Action:
        return self.next_action


class Environment:
    """One scenario in virtual time; ``reset``/``step`` for learning, ``run`` for a whole strategy."""

    def __init__(self, scenario: Scenario, seed: int = 0, static: Optional[StaticModel] = None):
        self.scenario = scenario
        self.static = static or StaticModel(scenario)
        s = self.static
        self.features = tuple(FEATURES) + EXTRA_FEATURES
        self.n_exits = s.n_side
        self.n_cuts = s.n_cuts
        self.max_interval = scenario.max_interval
        self.bounds = s.bounds
        self.deadline_s = scenario.latency_bound_s
        self._seed = seed
        self.rng = np.random.RandomState(seed)
        self._injected = _Injected()
        self.reset(seed)

    # -------------------------------------------------------- episodes

    def reset(self, seed: Optional[int] = None, recording: Optional[int] = None,
              start_s: Optional[float] = None) -> Dict[str, float]:
        """A new episode; returns the first state. ``recording``: index into the scenario's recordings (None: drawn);
        ``start_s``: recorded seconds into it where the episode starts (None: drawn, whole seconds)."""
        return self._reset(seed, recording, start_s, self._injected, None)

    def _reset(self, seed, recording, start_s, strategy: Strategy, store: Optional[TraceStore]) -> Dict[str, float]:
        if seed is not None:
            self.rng = np.random.RandomState(seed)
        s = self.static
        if recording is None:
            recording = int(self.rng.randint(len(s.recordings)))
        name, rates, step_s = s.recordings[recording]
        if start_s is None:
            start_s = float(self.rng.randint(max(1, int(len(rates) * step_s))))
        self.recording_index = recording
        self.recording_name = name
        self.start_s = start_s
        schedule = LinkSchedule(rates, step_s, self.scenario.recording_speed, start_s)
        self.schedule = schedule
        one_way = self.scenario.rtt_s / 2.0
        self.peer = VirtualPeerClient(Direction(schedule, one_way), Direction(schedule, one_way),
                                      self.scenario.peer_down, self.scenario.peer_s, s)
        self.peer.noise.seed(int(self.rng.randint(2 ** 31)))
        # The pipeline's set-up probes, START_MARGIN_S before the first arrival, at the recording's start (the
        # relay started replaying then; the demo re-anchors it to the first arrival afterwards).
        setup = LinkSchedule(rates, step_s, self.scenario.recording_speed,
                             start_s + self.scenario.setup_margin_s * self.scenario.recording_speed)
        self.peer.up.schedule = self.peer.down.schedule = setup
        self.peer.start(-self.scenario.setup_margin_s)
        self.peer.up.schedule = self.peer.down.schedule = schedule
        self.peer.up.free_at = self.peer.down.free_at = -math.inf
        self.store = store
        self.run_id = None
        if store is not None:
            self.run_id = store.start_run(board="%s (emulated)" % self.scenario.board, bundle_hash=s.bundle.hash,
                                          versions=default_versions(), config=self.describe(strategy))
        self.controller = Controller(strategy, self.bounds, q=self.scenario.q, store=store,
                                     clock=lambda: self._now, run_id=self.run_id)
        self._now = 0.0
        self._task = 0
        self._free_at = -math.inf
        self._seen = set()  # segments the device loop has timed (its fallback estimates start empty)
        self._rewards = []  # type: List[float]
        self._totals = (0, 0, 0.0, 0)  # tasks met, correct, latency sum, fallbacks
        self._checked = None  # the last action checked (a strategy's action is checked once per decision)
        self._rows = {k: [] for k in ("latency_s", "correct", "exit", "cut", "offloaded", "fallback", "energy",
                                      "bandwidth_bps", "estimate_bps", "time_s", "met", "transfer_s")}
        return self._state_now()

    @property
    def done(self) -> bool:
        return self._task >= self.scenario.episode_tasks

    def _next_start(self) -> float:
        arrival = self._task * self.scenario.period_s
        return arrival if arrival > self._free_at else self._free_at

    def _state_now(self) -> Dict[str, float]:
        """The state the next decision sees (the controller's, plus this environment's extras)."""
        t = self._next_start()
        self.peer.advance(t)
        bandwidth = self.peer.bandwidth_bps()
        state = self.controller.window.state(self.peer.alive, bandwidth)
        samples = [o.bandwidth_bps for o in self.controller.window.tasks() if o.bandwidth_bps > 0]
        state["bandwidth_now_mbps"] = (bandwidth or 0.0) / 1e6
        state["bandwidth_min_mbps"] = min(samples) / 1e6 if samples else state["bandwidth_mbps"]
        return state

    def step(self, action: Action) -> Step:
        """Run ``action`` for its interval (fewer tasks at the episode's end) under the runtime's Controller."""
        if self.done:
            raise RuntimeError("the episode is over: call reset()")
        if self.controller.strategy is not self._injected:
            raise RuntimeError("this episode was started by run(): call reset() before step()")
        self.check_action(action)
        self._injected.next_action = action
        for _ in range(action.interval):
            self._one_task()
            if self.done:
                break
        state = self._close()
        return Step(state, self._rewards[-1], self.done, self._info())

    def check_action(self, action: Action) -> None:
        """Refuse an action this bundle cannot take, naming the field."""
        problems = []
        if len(action.thresholds) != self.n_exits:
            problems.append("%d thresholds for %d early exits" % (len(action.thresholds), self.n_exits))
        if not (isinstance(action.cut, (int, np.integer)) and 0 <= action.cut < self.n_cuts):
            problems.append("cut %r is not one of 0..%d" % (action.cut, self.n_cuts - 1))
        if not (isinstance(action.interval, (int, np.integer)) and action.interval >= 1):
            problems.append("interval %r is not an integer >= 1" % (action.interval,))
        if problems:
            raise InputError("action %s: %s" % (action, "; ".join(problems)))

    def _close(self) -> Dict[str, float]:
        """Close the interval with the link and peer state the next decision will see (the controller does
        the same lazily at the next task's ``action``)."""
        t = self._next_start()
        self.peer.advance(t)
        self._now = t
        self.controller.finish(self.peer.alive, self.peer.bandwidth_bps())
        self._rewards.append(float(self.controller.decisions[-1].get("reward", 0.0)))
        if self.controller.strategy is self._injected:
            del self.controller.decisions[:-1]  # step() keeps its own rewards; a clone then copies little
        return self._state_now()

    def _info(self) -> Dict[str, Any]:
        met, correct, latency, fallbacks = self._totals
        n = self._task
        return {"tasks": n, "sr": met / n if n else 0.0, "accuracy": correct / n if n else 0.0,
                "latency_s": latency / n if n else 0.0, "fallbacks": fallbacks, "time_s": self._now}

    def clone(self) -> "Environment":
        """A copy of the dynamic state (the profiled statistics are shared)."""
        other = copy.copy(self)
        # Shared, not copied: what no episode changes (profiles, the link's schedule, a run's strategy) and the
        # trace store (a clone logs nothing).
        memo = {id(self.static): self.static, id(self.scenario): self.scenario, id(self.schedule): self.schedule}
        if self.store is not None:
            memo[id(self.store)] = None
        if self.controller.strategy is not self._injected:
            memo[id(self.controller.strategy)] = self.controller.strategy
        for name in ("rng", "peer", "controller", "_injected"):
            setattr(other, name, copy.deepcopy(getattr(self, name), memo))
        other._seen = set(self._seen)
        other._rewards = list(self._rewards)
        other._rows = {k: list(v) for k, v in self._rows.items()}
        other.store = None
        other.controller.store = None
        other.controller.clock = lambda: other._now
        if self.controller.strategy is self._injected:
            other.controller.strategy = other._injected
        return other

    def run(self, strategy: Strategy, seed: int = 0, recording: Optional[int] = None,
            store: Optional[TraceStore] = None, start_s: Optional[float] = 0.0) -> Episode:
        """One episode under ``strategy`` (it decides through the Controller, as on the board)."""
        self._reset(seed, 0 if recording is None else recording, start_s, strategy, store)
        while not self.done:
            self._one_task()
        self._close()
        return self.episode(strategy.name)

    def episode(self, name: str) -> Episode:
        per_task = {k: np.asarray(v) for k, v in self._rows.items()}
        if self.controller.strategy is self._injected:
            rewards = self._rewards
        else:  # run(): the controller closed every interval itself
            rewards = [d["reward"] for d in self.controller.decisions if "reward" in d]
        n = len(self._rows["met"])
        return Episode(strategy=name, sr=float(per_task["met"].mean()) if n else 0.0,
                       accuracy=float(per_task["correct"].mean()) if n else 0.0,
                       mean_latency_ms=1e3 * float(per_task["latency_s"].mean()) if n else 0.0,
                       reward=float(np.mean(rewards)) if rewards else 0.0, tasks=n,
                       fallbacks=int(per_task["fallback"].sum()) if n else 0, per_task=per_task)

    # -------------------------------------------------------- one task, as runtime/device/loop.py runs it

    def _one_task(self) -> None:
        s = self.static
        i = self._task
        arrival = i * self.scenario.period_s
        start = arrival if arrival > self._free_at else self._free_at
        peer = self.peer
        peer.advance(start)
        self._now = start
        alive = peer.alive
        bandwidth = peer.bandwidth_bps()
        action = self.controller.action(alive, bandwidth, i)
        if action is not self._checked:
            self.check_action(action)
            self._checked = action
        image = i % s.n_images if self.scenario.draw == "sequential" else int(self.rng.randint(s.n_images))
        entropies = s.entropies[image]
        thresholds = action.thresholds
        deadline = arrival + self.deadline_s
        stop = action.cut
        busy = 0.0
        calls = 0
        exit_id = None
        seen = self._seen
        for c in range(stop + 1):
            if c > 0 and action.use_exits:
                for k, head_s in s.heads_at[c]:
                    busy += head_s
                    calls += 1
                    seen.add(s.head_ids[k])
                    if takes_exit(entropies[k], thresholds[k]):
                        exit_id = s.side_ids[k]
                        break
                if exit_id is not None:
                    break
            if c == stop:
                break
            busy += s.main_s[c]
            calls += 1
            seen.add(s.main_ids[c])
        busy += self._compute_noise(calls)
        now = start + busy + self.scenario.task_overhead_s
        offloaded, fallback, sent, transfer = None, False, 0, math.nan
        if exit_id is None and stop < s.last_cut:
            answered = False
            if peer.alive:
                peer.advance(now)
                asked = now
                answered, now, sent = peer.offload(now, stop, deadline - now)
            if answered:
                transfer = now - asked - self.scenario.peer_s
                now += self.scenario.reply_overhead_s
                offloaded = stop
                exit_id = self._peer_exit(stop, entropies, thresholds, action.use_exits)
            else:
                fallback = True
                exit_id, local_s = self._finish_locally(stop, entropies, thresholds, deadline - now)
                busy += local_s
                now += local_s
        elif exit_id is None:
            exit_id = s.final_exit
        self._free_at = now
        latency = now - arrival
        energy = s.board.energy_mj(busy, (now - start) - busy)
        outcome = TaskOutcome(latency, energy, bandwidth or 0.0, exit_id, s.n_exits_total)
        self.controller.record(outcome, i)
        correct = s.correct[image][exit_id]
        met = outcome.meets(self.bounds)
        rows = self._rows
        rows["latency_s"].append(latency)
        rows["correct"].append(correct)
        rows["exit"].append(exit_id)
        rows["cut"].append(stop)
        rows["offloaded"].append(offloaded is not None)
        rows["fallback"].append(fallback)
        rows["energy"].append(energy)
        rows["bandwidth_bps"].append(self.schedule.rate_at(arrival))
        rows["estimate_bps"].append(bandwidth or 0.0)
        rows["time_s"].append(arrival)
        rows["met"].append(met)
        rows["transfer_s"].append(transfer)
        t = self._totals
        self._totals = (t[0] + met, t[1] + correct, t[2] + latency, t[3] + fallback)
        if self.store is not None:
            self.store.log_task(TaskRecord(
                task_id=i, arrival_s=arrival, latency_s=latency, deadline_s=deadline, exit=exit_id, cut=offloaded,
                bytes_sent=sent, transfer_s=None if math.isnan(transfer) else transfer, entropies={str(s.side_ids[k]): entropies[k] for k in range(s.n_side)},
                bandwidth_bps=bandwidth, fallback=fallback, label=s.labels[image], policy_id=self.controller.strategy.policy_id,
                run_id=self.run_id, energy=energy))
        self._task = i + 1

    def _peer_exit(self, cut: int, entropies: Sequence[float], thresholds: Sequence[float], use_exits: bool) -> int:
        s = self.static
        if use_exits:
            for c in range(cut + 1, s.last_cut + 1):
                for k, _ in s.heads_at[c]:
                    if takes_exit(entropies[k], thresholds[k]):
                        return s.side_ids[k]
        return s.final_exit

    def _finish_locally(self, cut: int, entropies: Sequence[float], thresholds: Sequence[float],
                        remaining_s: float) -> Tuple[int, float]:
        """DeviceLoop._finish_locally: force the deepest exit reachable by the deadline (by the loop's own
        segment estimates: a segment it never timed counts 0 s), run from the cut; (exit id, seconds)."""
        s = self.static
        reach, exits, elapsed = [], [], 0.0
        for c in range(cut, s.last_cut):
            if s.main_ids[c] in self._seen:
                elapsed += s.main_s[c]
            for k, head_s in s.heads_at[c + 1]:
                if s.head_ids[k] in self._seen:
                    elapsed += head_s
                reach.append(elapsed)
                exits.append(k)
            if c + 1 == s.last_cut:
                reach.append(elapsed)
                exits.append(None)
        target = exits[fallback_target(reach, remaining_s)]
        spent, calls = 0.0, 0
        for c in range(cut, s.last_cut):
            spent += s.main_s[c]
            calls += 1
            self._seen.add(s.main_ids[c])
            for k, head_s in s.heads_at[c + 1]:
                spent += head_s
                calls += 1
                self._seen.add(s.head_ids[k])
                if k == target or takes_exit(entropies[k], thresholds[k]):
                    return s.side_ids[k], spent + self._compute_noise(calls)
        return s.final_exit, spent + self._compute_noise(calls)

    def _compute_noise(self, calls: int) -> float:
        """Extra on-device seconds for ``calls`` segment calls: measured excesses if given, else the hiccups."""
        noise = self.peer.noise
        measured = self.scenario.segment_excess_s
        if len(measured):
            return sum(noise.choice(measured) for _ in range(calls))
        p, mean = self.scenario.segment_hiccup_p, self.scenario.segment_hiccup_s
        if p <= 0 or mean <= 0:
            return 0.0
        return sum(noise.expovariate(1.0 / mean) for _ in range(calls) if noise.random() < p)

    # -------------------------------------------------------- description

    def describe(self, strategy: Optional[Strategy] = None) -> Dict[str, Any]:
        sc = self.scenario
        return {"command": "environment", "environment_version": ENVIRONMENT_VERSION,
                "strategy": strategy.describe() if strategy is not None else None,
                "bounds": {"latency_s": self.bounds.latency_s,
                           "energy": None if math.isinf(self.bounds.energy) else self.bounds.energy},
                "state_features": list(FEATURES), "energy_unit": "mJ",
                "emulation": {"emulated": True, "board": sc.board, "workload_scale": sc.workload_scale,
                              "measured_profile": sc.measured_profile},
                "link": {"emulated_link": True, "recording": getattr(self, "recording_name", None),
                         "start_s": getattr(self, "start_s", None), "link_scale": sc.link_scale,
                         "rtt_ms": 1e3 * sc.rtt_s, "recording_speed": sc.recording_speed},
                "period_s": sc.period_s, "peer_down": [list(w) for w in sc.peer_down],
                "images": str(self.static.images_source)}
