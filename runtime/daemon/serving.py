"""The serving loop: takes accepted API jobs one at a time and runs each through the device loop.

It owns the ``DeviceLoop`` (controller -> executor -> peer -> fallback -> trace) from its own thread,
answers every job (``ok``, ``expired`` when its deadline passed while it waited, ``error`` when the
model failed) and updates ``heartbeat`` on every pass, busy or idle: the daemon pings the systemd
watchdog only while the heartbeat is fresh. Policy and bounds changes are applied between tasks.

The direct path (``try_inline``): when nothing waits or runs, no peer is set and recent tasks were
short, the API thread runs a submit itself, under the same ``loop_lock`` the serving thread holds
for every task and upkeep, so the device loop is never used by two threads at once.
"""
import collections
import contextlib
import itertools
import logging
import queue
import threading
import time
from typing import Any, Callable, Deque, Dict, Optional, Tuple

from edgesplit.runtime.api.server import ApiServer, Job, ReplySender
from edgesplit.runtime.controller.reward import Bounds
from edgesplit.runtime.controller.strategies import Strategy
from edgesplit.runtime.device.loop import DeviceLoop
from edgesplit.runtime.memory import TRIM_AFTER_BYTES, release_free_memory

log = logging.getLogger(__name__)

IDLE_POLL_S = 0.2
# While a probe awaits its answer the serving thread looks for it this often between tasks: an answer read
# later than the peer client's MAX_UNREAD_S gives no link timing (docs/link.md, "What the estimate is fed").
# Only when the caller probes: the pipeline's client has a probe thread (its probe_in_flight is then False)
# unless that thread has ended, when maybe_probe takes the probing back.
PROBE_POLL_S = 0.002
# The API thread runs a submit itself (no thread hops) only while the last INLINE_HISTORY tasks each
# ran within INLINE_MAX_TASK_S: a status request then waits at most about that long. Only without a
# peer: an offload may wait on the network up to the task's deadline.
INLINE_MAX_TASK_S = 0.005
INLINE_HISTORY = 16


class ServingCounters:
    """Written by the serving thread only; read (racily, which is fine for figures) by the others."""

    def __init__(self) -> None:
        self.ok = 0
        self.fallbacks = 0
        self.offloaded = 0
        self.expired = 0
        self.errors = 0
        self.missed_deadline = 0
        self.latency_sum_s = 0.0
        self.recent_latency_s = collections.deque(maxlen=512)  # type: Deque[float]

    def as_dict(self) -> Dict[str, Any]:
        recent = sorted(self.recent_latency_s)
        p50 = recent[len(recent) // 2] if recent else None
        p95 = recent[min(len(recent) - 1, int(0.95 * len(recent)))] if recent else None
        return {"ok": self.ok, "fallbacks": self.fallbacks, "offloaded": self.offloaded, "expired": self.expired,
                "errors": self.errors, "missed_deadline": self.missed_deadline,
                "latency_ms": {"p50": None if p50 is None else round(1e3 * p50, 3),
                               "p95": None if p95 is None else round(1e3 * p95, 3),
                               "mean": round(1e3 * self.latency_sum_s / self.ok, 3) if self.ok else None}}


class ServingLoop:
    def __init__(self, device_loop: DeviceLoop, jobs: "queue.Queue[Job]", api: ApiServer, selector=None,
                 arrival_clock: Optional[Callable[[float], float]] = None):
        self.loop = device_loop
        # A job's arrival (time.perf_counter()) on the device loop's clock; identity unless emulated.
        self.arrival_clock = arrival_clock or (lambda real_s: real_s)
        self.selector = selector  # a VariantSelector: picks the variant (and its loop) per task
        self.jobs = jobs
        self.api = api
        self.counters = ServingCounters()
        self.heartbeat = time.monotonic()
        self.draining = threading.Event()
        self.freeze = threading.Event()  # test hook: [debug] allow_freeze + SIGUSR2
        self.current_task = None  # type: Optional[int]
        # The task answered whose trace row is still being written (feedback for it waits: wait_traced).
        self.untraced_task = None  # type: Optional[int]
        self.snapshot = {}  # type: Dict[str, Any]
        self._task_ids = itertools.count(1)
        self._pending_strategy = None  # type: Optional[Strategy]
        self._pending_bounds = None  # type: Optional[Bounds]
        self._lock = threading.Lock()
        self._probe_failing = False
        # Whoever runs a task or touches the device loop holds this: the serving thread, or the API
        # thread on the direct path (try_inline).
        self.loop_lock = threading.Lock()
        self._recent_run_s = collections.deque(maxlen=INLINE_HISTORY)  # type: Deque[float]
        self.inline_tasks = 0
        self._serving_waits = False  # the serving thread wants loop_lock: the direct path steps aside
        self._described = (None, {})  # type: Tuple[Optional[Strategy], Dict[str, Any]]
        self._action_shown = (None, None)  # type: Tuple[Any, Optional[Dict[str, Any]]]
        self._thread = threading.Thread(target=self._main, name="edgesplit-serving", daemon=True)
        # A daemon runs for months: keep only the latest result and decisions, not all of them.
        self.loop.results = collections.deque(maxlen=1)
        self.loop.controller.decisions = collections.deque(maxlen=64)
        self._refresh_snapshot()

    # ------------------------------------------------------------ control (any thread)

    def start(self) -> None:
        self._thread.start()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def join(self, timeout_s: float) -> bool:
        self._thread.join(timeout_s)
        return not self._thread.is_alive()

    def use_strategy(self, strategy: Strategy) -> None:
        """Take this strategy from the next decision on (the current interval is closed first)."""
        with self._lock:
            self._pending_strategy = strategy

    def use_bounds(self, bounds: Bounds) -> None:
        with self._lock:
            self._pending_bounds = bounds

    @property
    def strategy(self) -> Strategy:
        with self._lock:
            return self._pending_strategy or self.loop.controller.strategy

    # ------------------------------------------------------------ the thread

    def _main(self) -> None:
        sender = self.api.reply_sender()
        try:
            while True:
                self.heartbeat = time.monotonic()
                if self.freeze.is_set():
                    self._frozen()
                with self._loop_held():
                    self._apply_pending()
                try:
                    job = self.jobs.get(timeout=PROBE_POLL_S if self._probe_in_flight() else IDLE_POLL_S)
                except queue.Empty:
                    if self.draining.is_set():
                        break
                    with self._loop_held():
                        self._idle()
                    continue
                try:
                    with self._loop_held():
                        self._serve(job, sender)
                finally:
                    self.jobs.task_done()
                self._release(job)
                job = None
            with self._loop_held():
                self._close_interval()
        finally:
            sender.close()
        log.info("serving loop drained: %s", self.counters.as_dict())

    def try_inline(self, job: Job, replies) -> bool:
        """Run ``job`` now on the calling (API) thread when nothing waits or runs and recent tasks were
        short; answer it through ``replies``. False: the caller queues it as usual."""
        recent = self._recent_run_s
        if (self.loop.client is not None or self._serving_waits or self.freeze.is_set() or self.draining.is_set()
                or len(recent) < INLINE_HISTORY or max(recent) > INLINE_MAX_TASK_S or not self.jobs.idle()):
            return False
        if not self.loop_lock.acquire(blocking=False):
            return False
        try:
            # Another endpoint thread may queue a job meanwhile: the serving thread then waits for this
            # one task (loop_lock), and the direct path steps aside until the queue is idle again.
            if self.draining.is_set() or not self.jobs.idle():
                return False
            self._apply_pending()
            self.inline_tasks += 1
            self._serve(job, replies)
        finally:
            self.loop_lock.release()
        self._release(job)
        return True

    @contextlib.contextmanager
    def _loop_held(self):
        """loop_lock for the serving thread: while it waits, the direct path does not take the lock again,
        so back-to-back direct tasks cannot starve it (its heartbeat feeds the watchdog)."""
        self._serving_waits = True
        try:
            self.loop_lock.acquire()
        finally:
            self._serving_waits = False
        try:
            yield
        finally:
            self.loop_lock.release()

    @staticmethod
    def _release(job: Job) -> None:
        large = sum(a.nbytes for a in job.inputs.values()) >= TRIM_AFTER_BYTES
        job.inputs, job.frames = {}, []  # the request's buffers go now, not when the next job arrives
        if large:
            release_free_memory()

    def _frozen(self) -> None:
        log.warning("serving loop frozen on purpose ([debug] allow_freeze, SIGUSR2): the watchdog should "
                    "kill this process")
        while True:  # never returns: a stuck loop is what the hook imitates
            time.sleep(3600)

    def _probe_in_flight(self) -> bool:
        client = self.loop.client
        return client is not None and client.probe_in_flight

    def _idle(self) -> None:
        client = self.loop.client
        if client is not None:
            try:
                client.maybe_probe()  # reports peer_alive (the probe thread keeps it fresh), or probes if that ended
            except Exception:  # the peer's side of upkeep must never stop this thread: tasks run locally
                if not self._probe_failing:
                    log.exception("peer upkeep failed; tasks keep running (locally while the peer is down)")
                self._probe_failing = True
                client.peer_alive = False
            else:
                self._probe_failing = False
        self._refresh_snapshot()

    def _apply_pending(self) -> None:
        with self._lock:
            strategy, bounds = self._pending_strategy, self._pending_bounds
            self._pending_strategy = self._pending_bounds = None
        if strategy is None and bounds is None:
            return
        # Close the interval under the old policy, so its transition carries the old policy id.
        self._close_interval()
        controller = self.loop.controller
        if strategy is not None:
            log.info("policy %s -> %s from the next decision", controller.strategy.policy_id, strategy.policy_id)
            controller.strategy = strategy
        if bounds is not None:
            controller.bounds = bounds
        self._refresh_snapshot()

    def _close_interval(self) -> None:
        try:
            self.loop.finish()
        except Exception:  # a failing trace write must not stop serving; it is logged
            log.exception("closing the controller interval failed")

    def _serve(self, job: Job, sender) -> None:
        """Run one job and answer it through ``sender`` (a ReplySender, or the API thread's DirectReplies)."""
        if time.perf_counter() >= job.expires_at:
            self.counters.expired += 1
            sender.send(job, "expired", "the deadline (%.0f ms) passed while the request waited in the queue"
                        % (1e3 * job.deadline_s))
            return
        task_id = next(self._task_ids)
        self.current_task = task_id
        loop = self.loop if self.selector is None else self.selector.choose(task_id).loop
        loop.deadline_s = job.deadline_s
        try:
            # The API thread checked these inputs against the model (ApiHandlers.check_inputs).
            result = loop.process(task_id, job.inputs, job.label, arrival_s=self.arrival_clock(job.arrival_s),
                                  defer_trace=True, inputs_checked=True)
        except Exception as exc:  # one task's failure is its answer; the daemon keeps serving
            if self.selector is not None:
                self.selector.forget(task_id)
            self.counters.errors += 1
            log.exception("task %d failed", task_id)
            sender.send(job, "error", "task %d failed: %s" % (task_id, exc), task_id=task_id)
            return
        finally:
            self.current_task = None
        self._recent_run_s.append(result.finish_s - result.start_s)
        counters = self.counters
        counters.ok += 1
        counters.fallbacks += int(result.fallback)
        counters.offloaded += int(result.cut is not None)
        met = result.latency_s <= job.deadline_s
        counters.missed_deadline += int(not met)
        counters.latency_sum_s += result.latency_s
        counters.recent_latency_s.append(result.latency_s)
        if log.isEnabledFor(logging.DEBUG):  # its arguments cost a task a microsecond even when not logged
            log.debug("task %d: exit %d, cut %s, %.2f ms, energy proxy %.6g%s", task_id, result.exit_id, result.cut,
                      1e3 * result.latency_s, result.energy, " (fallback: %s)" % result.fallback_reason
                      if result.fallback else "")
        if self.selector is not None:
            # Before the answer goes out: a rating may come back at once.
            self.selector.answered(task_id, result.finish_s - result.start_s)
        self.untraced_task = task_id
        sender.send(job, "ok", result.fallback_reason, task_id=task_id, result=result.result, exit=result.exit_id,
                    cut=result.cut, fallback=result.fallback, latency_ms=round(1e3 * result.latency_s, 3),
                    met_deadline=met, policy_id=loop.controller.strategy.policy_id, arm=loop.arm)
        # The trace row is written while the answer travels: the client does not wait for it.
        try:
            loop.write_deferred_trace()
        except Exception:  # a failing trace write must not stop serving; it is logged
            log.exception("writing the trace row of task %d failed", task_id)
        finally:
            self.untraced_task = None
        self._refresh_snapshot()

    def wait_traced(self, task_id: int, timeout_s: float = 1.0) -> None:
        """Return once ``task_id``'s trace row is written (at once unless it was just answered)."""
        deadline = time.monotonic() + timeout_s
        while self.untraced_task == task_id and time.monotonic() < deadline:
            time.sleep(0.0002)

    def _refresh_snapshot(self) -> None:
        loop = self.loop
        action = loop.controller.current
        estimate = loop.client.link_estimate() if loop.client is not None else None
        strategy = loop.controller.strategy
        if self._described[0] is not strategy:  # once per strategy, not per task
            self._described = (strategy, strategy.describe())
        if self._action_shown[0] is not action:  # once per action (a static one holds for every task)
            self._action_shown = (action, None if action is None else action.to_dict())
        self.snapshot = {
            "action": self._action_shown[1],
            "strategy": self._described[1],
            "peer_alive": loop.peer_alive(),
            "bandwidth_bps": None if estimate is None else estimate.bandwidth_bps,
            "rtt_s": None if estimate is None else estimate.rtt_s,
            "transitions": loop.controller.step,
        }
