"""The device task loop: action -> local segments -> offload at the cut -> local fallback -> trace row.

For each input: the controller gives the action; the executor runs the main branch locally up to
the action's cut, taking any confident exit on the way; if the task has not exited, the live tensors
go to the peer with the task's remaining deadline as the timeout. When the peer is known down, does
not answer in time or refuses, the task finishes locally from the cut at the deepest exit it can
still reach before its deadline (or the first exit after the cut when none can), and is marked as a
fallback. Every task gets a result from a real model output and a trace row; none is dropped.

Time: ``clock`` gives seconds on the run's clock (emulated seconds under ``--board``); the peer
client works in real seconds and ``to_real`` / ``to_emulated`` convert at that boundary.
"""
import logging
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from edgesplit.runtime.clocks import sleep_until
from edgesplit.runtime.controller.controller import Controller
from edgesplit.runtime.controller.reward import TaskOutcome
from edgesplit.runtime.controller.strategies import Action
from edgesplit.runtime.executor.executor import ExecutionResult, Executor
from edgesplit.runtime.executor.exit_rule import fallback_target
from edgesplit.runtime.traces import TraceStore
from edgesplit.runtime.transport.client import TIMEOUT

log = logging.getLogger(__name__)

FORCE_EXIT = 2.0  # a threshold above any normalised entropy (max 1.0): the exit is always taken
IDLE_POLL_S = 0.002  # while waiting for the next arrival, look for probe replies this often


@dataclass
class TaskResult:
    task_id: int
    arrival_s: float
    start_s: float
    finish_s: float
    exit_id: int
    cut: Optional[int]            # cut offloaded at (None: finished on the device)
    planned_cut: int
    fallback: bool
    fallback_reason: str
    bytes_sent: int
    transfer_s: Optional[float]
    local_compute_s: float
    energy: float
    bandwidth_bps: Optional[float]
    result: int
    label: Optional[int]
    peer_alive: bool
    segment_times: Dict[str, float] = field(default_factory=dict)

    @property
    def latency_s(self) -> float:
        return self.finish_s - self.arrival_s


class DeviceLoop:
    """Runs tasks one at a time. ``client`` is a PeerClient or None (then every task is local)."""

    def __init__(self, executor: Executor, controller: Controller, client=None, store: Optional[TraceStore] = None,
                 clock: Callable[[], float] = time.perf_counter, sleep_until: Optional[Callable[[float], None]] = None,
                 to_real: Callable[[float], float] = lambda s: s, to_emulated: Callable[[float], float] = lambda s: s,
                 energy: Optional[Callable[[float, float], float]] = None, deadline_s: float = 0.1,
                 segment_estimates: Optional[Dict[str, float]] = None, run_id: Optional[str] = None):
        self.executor = executor
        self.controller = controller
        self.client = client
        self.store = store
        self.clock = clock
        self.sleep_until = sleep_until or self._real_sleep_until
        self.to_real = to_real
        self.to_emulated = to_emulated
        self.energy = energy
        self.deadline_s = deadline_s
        self.run_id = run_id
        self.manifest = executor.manifest
        self.n_exits = len(self.manifest.exits)
        self._estimates = dict(segment_estimates or {})
        self.results = []  # type: List[TaskResult]
        self.arm = None  # type: Optional[str]  # the variant's name when a selector chooses among several
        # The last task's scores (the exit's output): kept once, not per result, so long runs of
        # models with many classes do not hold every output.
        self.last_scores = None  # type: Optional[np.ndarray]
        self._deferred = None  # type: Optional[tuple]  # (result, exit entropies, policy id) of defer_trace

    def _real_sleep_until(self, t: float, idle: Optional[Callable[[], object]] = None) -> None:
        sleep_until(self.clock, t, idle, IDLE_POLL_S)

    def idle(self) -> None:
        """Between and during tasks: collect probe replies when they arrive (so their timing is the link's)."""
        if self.client is not None:
            self.client.maybe_probe()

    # ------------------------------------------------------------ link state

    def peer_alive(self) -> bool:
        return self.client is not None and self.client.peer_alive

    def bandwidth_bps(self) -> Optional[float]:
        if self.client is None:
            return None
        estimate = self.client.link_estimate().bandwidth_bps
        # Real bits per real second -> bits per emulated second.
        return None if estimate is None else estimate / self.to_emulated(1.0)

    # ------------------------------------------------------------ one task

    def process(self, task_id: int, x: np.ndarray, label: Optional[int] = None,
                arrival_s: Optional[float] = None, defer_trace: bool = False,
                inputs_checked: bool = False) -> TaskResult:
        """Run one task. With ``defer_trace`` its trace row waits for ``write_deferred_trace()``: the
        daemon answers first and writes the row while the answer travels (feedback waits for it).
        ``inputs_checked``: the caller already ran ``executor.check_inputs`` on ``x`` (the daemon's API
        thread does, to answer bad_request), so the executor does not check the same arrays again."""
        if self._deferred is not None:
            self.write_deferred_trace()  # a caller that forgot: the row still lands, in order
        if self.client is None:
            return self._process_local(task_id, x, label, arrival_s, defer_trace, inputs_checked)
        clock, client = self.clock, self.client
        if arrival_s is None:
            arrival_s = clock()
        elif arrival_s > clock():  # a task that arrived already (the daemon's) has nothing to wait for
            self.sleep_until(arrival_s, self.idle)
        self.idle()
        alive = self.peer_alive()
        bandwidth = self.bandwidth_bps()
        controller = self.controller
        action = controller.action(alive, bandwidth, task_id)
        start = clock()
        deadline = arrival_s + self.deadline_s
        first = self.executor.run(x, thresholds=action.thresholds, use_exits=action.use_exits,
                                  stop_at_cut=action.cut, inputs_checked=inputs_checked)
        self._learn(first)
        segments = first.segment_seconds  # this pass's own dict: a fallback adds the rest of the run to it
        local_s = first.compute_seconds
        cut, fallback, reason, sent, transfer = None, False, "", 0, None
        output, exit_id = first.output, first.exit_id
        if exit_id is None:  # stopped at the cut with live tensors
            outcome = None
            if self.client is not None and self.client.peer_alive:
                remaining = deadline - self.clock()
                asked = self.client.clock()
                outcome = self.client.offload(first.stopped_at_cut, first.live, self.to_real(remaining),
                                              thresholds=action.thresholds, use_exits=action.use_exits)
                sent = outcome.bytes_sent
                if outcome.status == TIMEOUT:
                    # No reply in time still says something about the link: it is slower than that.
                    self.client.estimator.observe_unanswered(sent, self.client.clock() - asked, self.client.clock())
                if outcome.transfer_s is not None:
                    transfer = self.to_emulated(outcome.transfer_s)
            if outcome is not None and outcome.ok and outcome.output is not None and outcome.exit_id is not None:
                cut, output, exit_id = first.stopped_at_cut, np.array(outcome.output), outcome.exit_id
            else:
                fallback = True
                reason = "peer down" if outcome is None else "%s: %s" % (outcome.status, outcome.message)
                rest = self._finish_locally(first.stopped_at_cut, first.live, action, deadline)
                self._learn(rest)
                for name, seconds in rest.segment_seconds.items():
                    segments[name] = segments.get(name, 0.0) + seconds
                local_s += rest.compute_seconds
                output, exit_id = rest.output, rest.exit_id
        finish = self.clock()
        energy = self.energy(local_s, (finish - start) - local_s) if self.energy is not None else 0.0
        alive_after = self.peer_alive()
        result = TaskResult(task_id=task_id, arrival_s=arrival_s, start_s=start, finish_s=finish, exit_id=int(exit_id),
                            cut=cut, planned_cut=action.cut, fallback=fallback, fallback_reason=reason,
                            bytes_sent=int(sent), transfer_s=transfer, local_compute_s=local_s, energy=energy,
                            bandwidth_bps=bandwidth, result=int(output.argmax()), label=label,
                            peer_alive=alive_after, segment_times=segments)
        controller.record(TaskOutcome(finish - arrival_s, energy, bandwidth or 0.0, result.exit_id, self.n_exits),
                          task_id)
        if self.store is None:
            pass  # no row to write, now or later
        elif defer_trace:
            self._deferred = (result, first.entropies, controller.strategy.policy_id)
        else:
            self._log(result, first.entropies, controller.strategy.policy_id)
        self.last_scores = output
        self.results.append(result)
        return result

    def _process_local(self, task_id: int, x: np.ndarray, label: Optional[int], arrival_s: Optional[float],
                       defer_trace: bool, inputs_checked: bool) -> TaskResult:
        """``process`` without a peer (the daemon's default): every task runs to an exit on the board. Without a
        peer (none configured, not one that went down) the action's cut is not where the run stops: stopping there
        would only turn every task into a fallback.

        The same steps, results and rows as the general path with its peer-dependent parts taken as they are
        without a peer (not alive, no bandwidth, no cut to stop at, no segment estimates to learn): this runs
        once per task and its few microseconds are what the local API's tasks pay over the executor."""
        clock = self.clock
        if arrival_s is None:
            arrival_s = clock()
        elif arrival_s > clock():
            self.sleep_until(arrival_s, self.idle)
        controller = self.controller
        action = controller.action(False, None, task_id)
        start = clock()
        first = self.executor.run(x, action.thresholds, action.use_exits, None, inputs_checked)
        segments = first.segment_seconds
        local_s = sum(segments.values())  # first.compute_seconds
        finish = clock()
        energy = self.energy(local_s, (finish - start) - local_s) if self.energy is not None else 0.0
        output = first.output
        exit_id = int(first.exit_id)
        result = TaskResult(task_id, arrival_s, start, finish, exit_id, None, action.cut, False, "", 0, None, local_s,
                            energy, None, int(output.argmax()), label, False, segments)
        controller.record(TaskOutcome(finish - arrival_s, energy, 0.0, exit_id, self.n_exits), task_id)
        store = self.store
        if store is None:
            pass
        elif defer_trace:
            self._deferred = (result, first.entropies, controller.strategy.policy_id)
        else:
            # _log's row, built here without the call: raw values in TASK_FIELDS order.
            store.log_task_values((
                self.run_id, task_id, arrival_s, arrival_s + self.deadline_s, exit_id, None, segments, 0, None,
                first.entropies, None, False, result.result, label, None, finish - arrival_s,
                controller.strategy.policy_id, energy, self.arm))
        self.last_scores = output
        self.results.append(result)
        return result

    def finish(self) -> None:
        self.write_deferred_trace()
        self.controller.finish(self.peer_alive(), self.bandwidth_bps())

    # ------------------------------------------------------------ local fallback

    def _learn(self, result: ExecutionResult) -> None:
        if self.client is None:  # the estimates only choose a fallback's exit: without a peer there is none
            return
        estimates = self._estimates
        for name, seconds in result.segment_seconds.items():
            old = estimates.get(name)
            estimates[name] = seconds if old is None else 0.8 * old + 0.2 * seconds

    def reach_seconds(self, start_cut: int) -> List[float]:
        """Estimated local seconds from ``start_cut`` to each exit after it (None-free; by exit order)."""
        out = []
        elapsed = 0.0
        for cut_id in range(start_cut, len(self.executor.main)):
            elapsed += self._estimates.get(self.executor.main[cut_id].id, 0.0)
            for ex in self.manifest.exits_at(cut_id + 1):
                if ex.head is not None:
                    elapsed += self._estimates.get(ex.head, 0.0)
                out.append((ex, elapsed))
        return out

    def _finish_locally(self, cut: int, live: Dict[str, np.ndarray], action: Action, deadline: float) -> ExecutionResult:
        remaining = deadline - self.clock()
        reachable = self.reach_seconds(cut)
        target = reachable[fallback_target([seconds for _, seconds in reachable], remaining)][0]
        thresholds = list(action.thresholds)
        side = self.executor.side_exits
        if target.head is not None:
            thresholds[side.index(target)] = FORCE_EXIT
        return self.executor.run_from(cut, live, thresholds=thresholds, use_exits=True)

    # ------------------------------------------------------------ trace

    def write_deferred_trace(self) -> None:
        """Write the trace row of the last task run with ``defer_trace`` (nothing when there is none)."""
        deferred, self._deferred = self._deferred, None
        if deferred is not None:
            self._log(*deferred)

    def _log(self, result: TaskResult, exit_entropies: Sequence[Tuple[int, float]], policy_id: Optional[str]) -> None:
        if self.store is None:
            return
        # Raw values in TASK_FIELDS order: the store's writer thread checks and encodes them (JSON, NaN, ranges),
        # so the task's thread only builds this tuple. The dicts and lists in it are not changed after this.
        arrival = result.arrival_s
        self.store.log_task_values((
            self.run_id, result.task_id, arrival, arrival + self.deadline_s, result.exit_id, result.cut,
            result.segment_times, result.bytes_sent, result.transfer_s, exit_entropies, result.bandwidth_bps,
            result.fallback, result.result, result.label, None, result.finish_s - arrival, policy_id, result.energy,
            self.arm))


def run_stream(loop: DeviceLoop, inputs: np.ndarray, labels: Optional[Sequence[int]] = None,
               period_s: float = 0.0, limit: Optional[int] = None,
               on_task: Optional[Callable[[TaskResult], None]] = None,
               origin: Optional[float] = None) -> List[TaskResult]:
    """Every row of ``inputs`` as one task; arrivals every ``period_s`` from ``origin`` (0: back to back)."""
    count = inputs.shape[0] if limit is None else min(limit, inputs.shape[0])
    origin = loop.clock() if origin is None else origin
    for i in range(count):
        arrival = origin + i * period_s if period_s > 0 else None
        label = None if labels is None else int(labels[i])
        result = loop.process(i, inputs[i:i + 1], label, arrival)
        if on_task is not None:
            on_task(result)
    loop.finish()
    return loop.results
