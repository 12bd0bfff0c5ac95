"""The daemon's composition root: builds every part from the config, serves, reloads, drains.

Threads: the main thread handles signals, systemd notifications (READY, STATUS, WATCHDOG) and the
metrics file; the API thread owns the ipc socket; the serving thread runs tasks through the device
loop. Nothing else holds global state.

Signals: SIGTERM/SIGINT stop accepting, drain the queued and running tasks (each gets its answer),
close the controller interval and the trace store (commit + checkpoint), then exit 0. SIGHUP re-reads
the config and the policy file: a policy that does not load is refused with a log line and the old
one keeps serving; keys that need a restart are named in the log. SIGUSR2 freezes the serving loop,
only with ``[debug] allow_freeze = true`` (a test hook proving the watchdog).
"""
import dataclasses
import logging
import os
import signal
import threading
import time
from typing import Any, Dict, List, Optional

from edgesplit.runtime.api.server import ApiHandlers, ApiServer
from edgesplit.runtime.bundle.store import Bundle, load_bundle
from edgesplit.runtime.controller.reward import Bounds
from edgesplit.runtime.controller.strategies import EnergyInput, Strategy, fixed, load_policy_strategy, local_only
from edgesplit.runtime.daemon.config import (RELOADABLE, DaemonConfig, DaemonConfigError, changed_keys, key_location,
                                             load_daemon_config)
from edgesplit.runtime.daemon.logs import LEVELS
from edgesplit.runtime.daemon.metrics import render, write_textfile
from edgesplit.runtime.daemon.sd_notify import SystemdNotifier
from edgesplit.runtime.daemon.serving import ServingLoop
from edgesplit.runtime.device.pipeline import LinkSetup, Pipeline, PipelineSettings, StoreSettings, detect_live_board
from edgesplit.runtime.emulation.board import ENERGY_UNIT
from edgesplit.runtime.errors import EdgesplitError, InputError
from edgesplit.runtime.fair_queue import FairJobQueue
from edgesplit.runtime.thread_names import name_native_threads
from edgesplit.runtime.traces import TraceStore

log = logging.getLogger(__name__)

STATUS_EVERY_S = 5.0
DRAIN_TIMEOUT_S = 60.0


def process_age_s() -> Optional[float]:
    """Seconds since this process was started by the kernel (Linux), for honest start-up figures."""
    try:
        with open("/proc/self/stat") as handle:
            start_ticks = float(handle.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/uptime") as handle:
            uptime = float(handle.read().split()[0])
    except (OSError, IndexError, ValueError):
        return None
    return max(0.0, uptime - start_ticks / os.sysconf("SC_CLK_TCK"))


def resolve_board(spec: str):
    """The board config named by ``model.board``: "auto", a name, a .toml path, or "" for none."""
    from edgesplit.runtime.boards.config import load_board_config, load_named_board

    if not spec:
        return None
    if spec.endswith(".toml"):
        return load_board_config(spec)
    if spec == "auto":
        return detect_live_board()
    return load_named_board(spec)


def build_strategy(config: DaemonConfig, bundle: Bundle, board=None) -> Strategy:
    """The policy file when one is set, else the static [action]; raises EdgesplitError when unusable.

    With ``board`` (a BoardConfig) a policy built for another energy unit than its proxy's is refused."""
    manifest = bundle.manifest
    side = [e.threshold for e in manifest.exits if e.head is not None]
    if config.model.policy:
        energy = None if board is None else EnergyInput(board.policy.energy_proxy, board.bounds.energy_unit,
                                                        "board %s" % board.name)
        if config.emulation.board:
            energy = EnergyInput("emulated", ENERGY_UNIT, "the emulated board %s" % config.emulation.board)
        try:
            return load_policy_strategy(config.model.policy, len(side), len(manifest.cuts), energy=energy,
                                        bundle=bundle, board_name=config.emulation.board or (
                                            board.name if board is not None else None))
        except EdgesplitError as exc:  # the policy's own message, placed at the key that names the file
            raise DaemonConfigError("%s: %s" % (key_location(config, "model", "policy"), exc)) from None
    cut = config.action.cut
    if cut == -1:
        return local_only(len(side), len(manifest.main), side)
    if cut > len(manifest.main):
        raise DaemonConfigError("%s: cut %d does not exist (the bundle's cuts are 0..%d)"
                                % (key_location(config, "action", "cut"), cut, len(manifest.main)))
    return fixed("static cut %d" % cut, cut, side)


def build_emulation(config: DaemonConfig):
    """``(Emulation, LinkSetup or None)`` for ``[emulation]``, or ``(None, None)`` when it is off.

    Emulated time runs at real speed here (no speedup): API arrivals and deadlines are real seconds."""
    section = config.emulation
    if not section.board:
        return None, None
    from edgesplit.runtime.emulation.board import load_emulated_board
    from edgesplit.runtime.emulation.pacing import Emulation

    try:
        emulation = Emulation(load_emulated_board(section.board), workload_scale=section.workload_scale)
    except EdgesplitError as exc:  # placed at the key that names the board, as every config problem is
        raise DaemonConfigError("%s: %s" % (key_location(config, "emulation", "board"), exc)) from None
    link = None
    if section.link:
        from edgesplit.runtime.emulation.link.recording_readers import read_recording
        from edgesplit.runtime.emulation.link.shipped import resolve_recording

        try:
            recording = read_recording(resolve_recording(section.link))
        except EdgesplitError as exc:
            raise DaemonConfigError("%s: %s" % (key_location(config, "emulation", "link"), exc)) from None
        link = LinkSetup(recording, rtt_s=section.rtt_ms / 1e3, link_scale=section.link_scale, name=section.link)
    return emulation, link


def build_bounds(config: DaemonConfig, board) -> Bounds:
    latency_ms = config.bounds.latency_ms or (board.bounds.latency_ms if board is not None else 100.0)
    energy = config.bounds.energy or (board.bounds.energy if board is not None else float("inf"))
    return Bounds(latency_ms / 1e3, energy)


def _apply_reloadable(old: DaemonConfig, new: DaemonConfig) -> DaemonConfig:
    """``old`` with the values of every RELOADABLE key taken from ``new``."""
    result = dataclasses.replace(old, log_level=new.log_level)
    for dotted in RELOADABLE:
        if "." not in dotted:
            continue
        section, key = dotted.split(".")
        merged = dataclasses.replace(getattr(result, section), **{key: getattr(getattr(new, section), key)})
        result = dataclasses.replace(result, **{section: merged})
    return result


class _Handlers(ApiHandlers):
    def __init__(self, daemon: "Daemon"):
        self.daemon = daemon
        self.refusals = {}  # type: Dict[str, int]
        self._refusals_lock = threading.Lock()  # the plain endpoint's connection threads count too

    def accepting(self):
        if self.daemon.stopping.is_set():
            return False, "the daemon is stopping: retry when it is back"
        return True, ""

    def check_inputs(self, inputs):
        executor = self.daemon.executor
        specs = executor.manifest.inputs
        if list(inputs) == ["*"]:
            if len(specs) != 1:
                raise InputError("the model has %d inputs (%s): send them by name"
                                 % (len(specs), ", ".join(s.name for s in specs)))
            inputs = {specs[0].name: inputs["*"]}
        executor.check_inputs(inputs, 0)
        return inputs

    def default_deadline_s(self) -> float:
        return self.daemon.config.api.default_deadline_ms / 1e3

    def status(self):
        return self.daemon.status()

    def feedback(self, task_id: int, label: Optional[int], rating: Optional[float]):
        self.daemon.serving.wait_traced(task_id)  # an answer just sent may still be writing its row
        if self.daemon.store.set_feedback(task_id, label=label, rating=rating):
            if rating is not None and self.daemon.selector is not None:
                self.daemon.selector.feedback(task_id, rating)
            return "ok", ""
        return "unknown_task", ("task %d is not in this run's trace (not finished yet, from before the last restart, "
                                "or dropped by the size cap)" % task_id)

    def refused(self, status: str) -> None:
        with self._refusals_lock:
            self.refusals[status] = self.refusals.get(status, 0) + 1

    def run_now(self, job, replies) -> bool:
        serving = self.daemon.serving
        return serving is not None and serving.try_inline(job, replies)


class Daemon:
    """``Daemon(config).start()`` then ``serve_until_stopped()``; or ``run()`` for both."""

    def __init__(self, config: DaemonConfig, notifier: Optional[SystemdNotifier] = None):
        self.config = config
        self.notifier = notifier or SystemdNotifier.from_environment()
        self.stopping = threading.Event()
        self._wake = threading.Event()
        self._reload_requested = False
        self._started_mono = time.monotonic()
        self.startup_s = None  # type: Optional[float]
        self.policy_note = ""
        self.restart_needed = []  # type: List[str]
        self.bundle = None
        self.executor = None
        self.store = None  # type: Optional[TraceStore]
        self.client = None
        self.pipeline = None  # type: Optional[Pipeline]
        self.api = None  # type: Optional[ApiServer]
        self.serving = None  # type: Optional[ServingLoop]
        self.selector = None  # chooses among [model] variants per task (runtime/selection)
        # Fair per API client: one client's flood waits behind its own requests, not the others'.
        self.jobs = FairJobQueue(maxsize=config.api.queue_size)
        self.handlers = _Handlers(self)

    # ------------------------------------------------------------ start-up

    def start(self) -> None:
        config = self.config
        try:
            self._build(config)
        except BaseException:
            self._close_resources()
            raise
        self.api.start()
        self.serving.start()
        name_native_threads()  # top -H shows es-api, es-serving, trace-writer, ... (runtime/thread_names.py)
        self.startup_s = process_age_s()
        if config.peer.address and not config.model.policy and config.action.cut == -1 and not config.model.variants:
            log.warning("[peer] address is set but there is no [model] policy and [action] cut = -1 (local): no "
                        "task is offloaded; set [action] cut (0 sends the input) or a policy to use the peer")
        log.info("serving %s (bundle %s) on %s; peer %s; policy %s; ready %.2f s after process start",
                 self.bundle.manifest.name, self.bundle.hash[:12], self.api.socket_path,
                 config.peer.address or "none (local only)", self.serving.strategy.policy_id,
                 self.startup_s if self.startup_s is not None else float("nan"))
        self.notifier.ready(self.status_line())

    def _build(self, config: DaemonConfig) -> None:
        from edgesplit.runtime.default_bundle import default_bundle_path

        variants = None
        if config.model.variants:
            from edgesplit.runtime.selection.variants import load_variants

            variants = load_variants(config.model.variants, str(default_bundle_path()))
            self.bundle = variants[0].bundle  # the pipeline is built for the first; the others join it below
        else:
            self.bundle = load_bundle(config.model.bundle or default_bundle_path())
        emulation, link = build_emulation(config)
        # An emulated board replaces the live one: its pacing, clock and power model (mJ).
        board = None if emulation is not None else resolve_board(config.model.board)
        strategy = build_strategy(config, self.bundle, board)
        curve = None
        if config.peer.address and config.peer.server_key:
            from edgesplit.runtime.security.curve import client_keys

            curve = client_keys(config.peer.server_key, config.peer.device_key)
        settings = PipelineSettings(
            board=board, emulation=emulation, link=link, peer=config.peer.address or None, curve=curve, threads=config.model.threads or None,
            deadline_s=config.api.default_deadline_ms / 1e3,
            store=StoreSettings(config.traces.path, batch_size=config.traces.batch_size,
                                flush_interval_s=config.traces.flush_interval_s,
                                max_bytes=int(config.traces.max_mb * 1024 * 1024), writer=config.traces.writer),
            run_config=dict(config.to_dict(), command="serve"))
        # The same pipeline as `edgesplit run`: executor warmed up on the board's providers, sensors
        # sampled at the board's rate, first probe of the peer, controller, trace store.
        self.pipeline = Pipeline(self.bundle, strategy, build_bounds(config, board), settings)
        self.executor = self.pipeline.executor
        self.store = self.pipeline.store
        self.client = self.pipeline.client
        self.api = ApiServer(config.api.socket, self.handlers, self.jobs,
                             max_input_bytes=int(config.api.max_input_mb * 1024 * 1024), group=config.api.group,
                             spin_us=config.api.spin_us)
        if variants:
            from edgesplit.runtime.selection.wiring import build_selector

            self.selector = build_selector(self.pipeline, variants, config.linucb, build_bounds(config, board).latency_s)
        # API arrivals are time.perf_counter() readings; an emulated loop counts from its own origin.
        arrival = emulation.clock_at if emulation is not None else None
        self.serving = ServingLoop(self.pipeline.loop, self.jobs, self.api, selector=self.selector,
                                   arrival_clock=arrival)
        self.board = board
        live = self.pipeline.describe()
        log.info("board %s; providers %s; energy proxy %s", live["board"] or "none", ", ".join(live["providers"]),
                 _proxy_line(live["sensors"]))

    # ------------------------------------------------------------ signals and the main loop

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, self._on_stop)
        signal.signal(signal.SIGINT, self._on_stop)
        signal.signal(signal.SIGHUP, self._on_reload)
        signal.signal(signal.SIGUSR2, self._on_freeze)

    def _on_stop(self, signum, frame) -> None:
        self.stopping.set()
        self._wake.set()

    def _on_reload(self, signum, frame) -> None:
        self._reload_requested = True
        self._wake.set()

    def _on_freeze(self, signum, frame) -> None:
        if self.config.debug.allow_freeze:
            self.serving.freeze.set()
        else:
            log.warning("SIGUSR2 ignored: the freeze hook is off ([debug] allow_freeze)")

    def serve_until_stopped(self) -> int:
        last_status = last_metrics = 0.0
        while not self.stopping.is_set():
            self._wake.wait(0.25)
            self._wake.clear()
            if self._reload_requested:
                self._reload_requested = False
                self.reload()
            now = time.monotonic()
            if self.healthy(now):
                self.notifier.watchdog_if_due(now)
            if now - last_status >= STATUS_EVERY_S:
                last_status = now
                self.notifier.status(self.status_line())
            if self.config.metrics.path and now - last_metrics >= self.config.metrics.interval_s:
                last_metrics = now
                self.write_metrics()
        return self.shutdown()

    def run(self) -> int:
        self.install_signal_handlers()
        self.start()
        return self.serve_until_stopped()

    def healthy(self, now: float) -> bool:
        """Both working threads have looped recently (a task may run up to its deadline)."""
        limit = max(5.0, 2.0 * self.config.api.default_deadline_ms / 1e3)
        if self.notifier.watchdog_s is not None:
            limit = min(limit, max(1.0, self.notifier.watchdog_s / 2.0))
        return now - self.serving.heartbeat < limit and now - self.api.heartbeat < limit

    # ------------------------------------------------------------ reload

    def reload(self) -> bool:
        """SIGHUP: re-read the config and the policy; keep everything as it was when they are bad."""
        self.notifier.reloading()
        try:
            new = load_daemon_config(self.config.path)
        except DaemonConfigError as exc:
            log.error("reload refused, still serving the previous config: %s", exc)
            self.policy_note = "config reload refused: %s" % exc  # status says why, not only the log
            self.notifier.ready(self.status_line())
            return False
        changed = changed_keys(self.config, new)
        self.restart_needed = [k for k in changed if k not in RELOADABLE]
        if self.restart_needed:
            log.warning("reload: %s changed but need a restart (systemctl restart edgesplit); kept the old values",
                        ", ".join(self.restart_needed))
        candidate = _apply_reloadable(self.config, new)
        try:
            strategy = build_strategy(candidate, self.bundle, self.board)
        except EdgesplitError as exc:
            log.error("reload: new policy refused, still serving %s: %s", self.serving.strategy.policy_id, exc)
            self.policy_note = "policy reload refused: %s" % exc
            self.notifier.ready(self.status_line())
            return False
        if strategy.policy_id != self.serving.strategy.policy_id and "model.policy" not in changed:
            changed = list(changed) + ["the policy file's content"]  # the same path, a new file: a change all the same
        logging.getLogger().setLevel(LEVELS[candidate.log_level])
        self.serving.use_strategy(strategy)
        self.serving.use_bounds(build_bounds(candidate, self.board))
        self.config = candidate
        self.policy_note = ""
        log.info("reloaded: policy %s, changed %s", strategy.policy_id, ", ".join(changed) or "nothing")
        self.notifier.ready(self.status_line())
        return True

    # ------------------------------------------------------------ stop

    def shutdown(self) -> int:
        """Drain: refuse new work, finish and answer what was accepted, flush the traces."""
        queued = self.jobs.qsize()
        log.info("stopping: draining %d queued task(s)", queued)
        self.notifier.stopping("draining %d queued task(s)" % queued)
        code = 0
        if self.serving is not None:
            self.serving.draining.set()
            if not self.serving.join(DRAIN_TIMEOUT_S):
                log.error("the serving loop did not drain within %.0f s; exiting without it", DRAIN_TIMEOUT_S)
                code = 1
        if self.config.metrics.path and self.api is not None:
            self.write_metrics()
        self._close_resources()
        log.info("stopped")
        self.notifier.close()
        return code

    def _close_resources(self) -> None:
        if self.api is not None:
            self.api.stop()
        if self.pipeline is not None:
            self.pipeline.close()  # trace store (commit + checkpoint), peer client, sampler
            self.client = None

    # ------------------------------------------------------------ figures

    def status(self) -> Dict[str, Any]:
        serving = self.serving
        snapshot = serving.snapshot
        counters = serving.counters.as_dict()
        counters["latency_sum_s"] = serving.counters.latency_sum_s
        counters["direct"] = serving.inline_tasks  # run on the API thread (the direct path)
        strategy = snapshot.get("strategy", {})
        return {
            # "stopped" when the serving thread is gone although no stop was asked: never claim to serve then.
            "state": "draining" if self.stopping.is_set() else ("serving" if serving.alive else "stopped"),
            "pid": os.getpid(),
            "uptime_s": round(time.monotonic() - self._started_mono, 3),
            "startup_s": None if self.startup_s is None else round(self.startup_s, 3),
            "queue": {"length": self.jobs.qsize(), "capacity": self.jobs.maxsize},
            # the plain endpoint as it runs: its clients now, and how long a connection spins for a request
            "api": {"plain_connections": self.api.plain.connections, "spin_us": round(self.api.plain.spin_s * 1e6, 3)},
            "current_task": serving.current_task,
            "current_action": snapshot.get("action"),
            "policy": {"policy_id": strategy.get("policy_id"), "name": strategy.get("name"),
                       "source": strategy.get("source"), "note": self.policy_note},
            "peer": {"address": self.config.peer.address or None, "alive": bool(snapshot.get("peer_alive")),
                     "secure": bool(self.config.peer.server_key), "bandwidth_bps": snapshot.get("bandwidth_bps"),
                     "rtt_s": snapshot.get("rtt_s")},
            "tasks": counters,
            "refused": dict(self.handlers.refusals),
            "transitions": snapshot.get("transitions"),
            "bundle": {"name": self.bundle.manifest.name, "sha256": self.bundle.hash},
            "traces": {"path": str(self.store.path), "committed_rows": self.store.committed_rows,
                       "run_id": self.store.run_id, "writable": self.store.writable,
                       "backlog_rows": self.store.backlog_rows, "unwritten_rows": self.store.unwritten_rows,
                       "refused_rows": self.store.refused_rows,
                       "writer_deaths": getattr(self.store, "writer_deaths", 0),  # the writer process's
                       "last_error": self.store.last_error},
            "restart_needed_for": list(self.restart_needed),
            "board": self.pipeline.board_label(),
            "providers": self.pipeline.providers(),
            "sensors": self.pipeline.sensors(),
            "selector": None if self.selector is None else self.selector.describe(),
        }

    def status_line(self) -> str:
        s = self.status()
        bandwidth = s["peer"]["bandwidth_bps"]
        peer = "local only" if not s["peer"]["address"] else "peer %s%s" % (
            "up" if s["peer"]["alive"] else "down", ", %.1f Mbit/s" % (bandwidth / 1e6) if bandwidth else "")
        note = s["policy"]["note"]
        return "%d answered, %d fallbacks, queue %d/%d, %s, policy %s%s" % (
            s["tasks"]["ok"], s["tasks"]["fallbacks"], s["queue"]["length"], s["queue"]["capacity"], peer,
            (s["policy"]["policy_id"] or "?")[:16], " (%s)" % note if note else "")

    def write_metrics(self) -> None:
        try:
            write_textfile(self.config.metrics.path, render(self.status()))
        except OSError as exc:
            log.warning("cannot write metrics file %s: %s", self.config.metrics.path, exc)


def _proxy_line(sensors: Dict[str, Any]) -> str:
    if sensors.get("emulated"):
        return "the emulated board's power model (mJ)"
    proxy = sensors.get("energy_proxy")
    if not proxy:
        return "none (no board config: tasks record energy 0)"
    if proxy["available"]:
        return "%s = %.6g %s (%s)" % (proxy["reading"], proxy["latest"], proxy["unit"], proxy["source"])
    return "%s unavailable (%s): tasks record energy 0" % (proxy["reading"], proxy["source"])
