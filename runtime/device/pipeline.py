"""The one composition of a device's pipeline, used by ``run``, ``demo`` and ``serve`` alike.

    executor (segments on the board's providers, or paced to an emulated board)
      -> peer client (link estimate, first probe) [through a software link replaying a bandwidth recording]
      -> controller (strategy, bounds, state window) -> device loop -> trace store
    sensors: a sampler at the board's rate feeding the energy proxy into the state and the trace rows

``Pipeline(bundle, strategy, bounds, PipelineSettings(...))`` builds and opens every part;
``close()`` releases them in order. What differs between commands is only the settings: a live
board config (providers, threads, sensors) or an emulated board (pacing, clock, energy model), a
peer address with or without CurveZMQ keys, a bandwidth recording, the trace store's settings.
"""
import logging
import os
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from edgesplit.runtime.controller.controller import Controller
from edgesplit.runtime.controller.reward import Bounds
from edgesplit.runtime.controller.state import FEATURES
from edgesplit.runtime.controller.strategies import Strategy
from edgesplit.runtime.device.loop import DeviceLoop
from edgesplit.runtime.emulation.pacing import Emulation
from edgesplit.runtime.errors import InputError
from edgesplit.runtime.executor.executor import Executor
from edgesplit.runtime.emulation.link.recording_readers import BandwidthRecording
from edgesplit.runtime.traces import TraceStore, default_versions
from edgesplit.runtime.traces.writer_process import ProcessTraceStore
from edgesplit.runtime.transport.failover import PeerFailover

log = logging.getLogger(__name__)

PROBE_BYTES = 4 * 1024           # probes about the size of an offload measure what an offload would see
START_PROBES = (0, 0, PROBE_BYTES)  # payload bytes of the set-up probes, in order
FIRST_PROBE_TIMEOUT_S = 1.0      # a peer that is away delays start-up by at most this (then: marked down)


@dataclass
class LinkSetup:
    """A bandwidth recording replayed by an in-process software link between this device and the peer."""

    recording: BandwidthRecording
    rtt_s: float = 0.020
    recording_speed: float = 1.0  # recorded seconds per emulated second
    link_scale: float = 1.0       # the recording's rates are multiplied by this (emulated tensor sizes)
    name: str = ""

    def describe(self) -> Dict[str, Any]:
        return {"emulated_link": True, "recording": self.name or self.recording.source, "rtt_ms": 1e3 * self.rtt_s,
                "recording_speed": self.recording_speed, "link_scale": self.link_scale,
                "recording_summary": self.recording.summary()}


@dataclass
class StoreSettings:
    """Where and how the trace store writes (``[traces]`` of the daemon config)."""

    path: str
    batch_size: int = 16
    flush_interval_s: float = 0.5
    max_bytes: Optional[int] = None
    background_commit: bool = True  # a writer commits, so no task waits for an fsync (TraceStore)
    writer: str = "process"  # "process": SQLite in a writer process (writer_process.py); "thread": in this one


def open_store(settings: StoreSettings):
    """The trace store the settings ask for: a TraceStore, or a ProcessTraceStore (the same API).

    A frozen application (PyInstaller and the like) has no interpreter to start the writer with (its
    ``sys.executable`` is the application itself), so it gets the thread writer, logged."""
    writer = settings.writer
    if writer == "process" and (getattr(sys, "frozen", False) or not sys.executable):
        log.warning("%s: a frozen application (or no sys.executable) cannot start the trace writer process; "
                    "the trace rows are written by a thread instead ([traces] writer = \"thread\")", settings.path)
        writer = "thread"
    if settings.background_commit and writer == "process":
        return ProcessTraceStore(settings.path, batch_size=settings.batch_size,
                                 flush_interval_s=settings.flush_interval_s, max_bytes=settings.max_bytes)
    if settings.writer not in ("process", "thread"):
        raise ValueError("StoreSettings.writer must be 'process' or 'thread', got %r" % settings.writer)
    return TraceStore(settings.path, batch_size=settings.batch_size, flush_interval_s=settings.flush_interval_s,
                      max_bytes=settings.max_bytes, background_commit=settings.background_commit)


@dataclass
class PipelineSettings:
    """Everything that shapes a device's pipeline besides the bundle, strategy and bounds."""

    board: Any = None                         # live BoardConfig: providers, threads, sensors, energy proxy
    emulation: Optional[Emulation] = None     # an emulated board instead: pacing, clock, energy model
    peer: Optional[str] = None                # the peer's ZeroMQ endpoint(s), comma-separated in order of
                                              # preference (failover); None = every task local
    curve: Any = None                         # CurveClientKeys pinning the peer; None = plain ZMTP
    link: Optional[LinkSetup] = None          # replay a bandwidth recording between this device and the peer
    threads: Optional[int] = None             # per-session threads; None = the board's, else by segment size
    deadline_s: Optional[float] = None        # offload timeout after arrival; None = the latency bound
    q: int = 3                                # state window: the last q action intervals
    store: Optional[StoreSettings] = None     # open a trace store here ...
    shared_store: Optional[TraceStore] = None  # ... or log into one the caller owns (demo: one file, 5 runs)
    sensors: bool = True                      # sample the live board's sensors (no effect when emulated)
    run_config: Dict[str, Any] = field(default_factory=dict)  # recorded in the run's metadata


def open_relay(peer: str, link: LinkSetup, speedup: float):
    """A BackgroundLink relaying to ``peer`` that plays ``link`` at emulated time ``speedup``."""
    from edgesplit.runtime.emulation.link.relay import BackgroundLink, parse_tcp_endpoint

    try:
        target = parse_tcp_endpoint(peer, "--peer")
    except ValueError as exc:
        raise InputError(str(exc)) from None
    scaled = BandwidthRecording(link.recording.bps * link.link_scale * speedup, link.recording.source,
                                link.recording.format, link.recording.step_s)
    return BackgroundLink(target, scaled, rtt_s=link.rtt_s / speedup, time_scale=link.recording_speed * speedup)


def open_sampler(board):
    """The live board's sensors on their own thread at ``[sensors] rate_hz``, and its energy proxy."""
    from edgesplit.runtime.sensors.catalog import Hardware, build_sensors
    from edgesplit.runtime.sensors.proxy import EnergyProxy
    from edgesplit.runtime.sensors.sampler import Sampler
    from edgesplit.runtime.sensors.sysroot import SysRoot

    s = board.sensors
    kinds = list(s.enabled)
    proxy = board.policy.energy_proxy
    needed = {"gpu_freq": "gpu", "cpu_freq": "cpu_freq"}.get(proxy, "power")
    if needed not in kinds:
        kinds.append(needed)  # the energy proxy is always sampled
    sensors = build_sensors(Hardware(SysRoot.from_env()), kinds, s.gpu_sources, s.power_sources,
                            s.total_power_rails, s.thermal_zones)
    sampler = Sampler(sensors, s.rate_hz, history_s=max(60.0, 10 * s.window_s))
    sampler.sample_once()  # the first task already sees the board's figures
    sampler.start()
    return sampler, EnergyProxy(sampler, proxy, s.window_s)


class Pipeline:
    """Everything one device holds open while it runs tasks."""

    def __init__(self, bundle, strategy: Strategy, bounds: Bounds, settings: Optional[PipelineSettings] = None):
        settings = settings or PipelineSettings()
        self.bundle = bundle
        self.settings = settings
        self.emulation = emulation = settings.emulation
        self.board = settings.board if emulation is None else None
        self.relay = None
        self.client = None
        self.sampler = None
        self.energy_proxy = None
        self.store = None  # type: Optional[TraceStore]
        self.run_id = None  # type: Optional[str]
        clock = emulation.clock if emulation is not None else time.perf_counter
        try:
            self.executor = self._executor(settings, clock)
            if self.board is not None and settings.sensors:
                self.sampler, self.energy_proxy = open_sampler(self.board)
            self.client = self._peer(settings)
            store = settings.shared_store
            if store is None and settings.store is not None:
                st = settings.store
                self.store = store = open_store(st)
            if store is not None:
                self.run_id = store.start_run(board=self.board_label(), bundle_hash=bundle.hash,
                                              versions=default_versions(),
                                              config=self._run_config(strategy, bounds))
            self.controller = Controller(strategy, bounds, q=settings.q, store=store, clock=clock,
                                         run_id=self.run_id)
            energy = emulation.energy if emulation is not None else self.energy_proxy
            self.loop = DeviceLoop(self.executor, self.controller, client=self.client, store=store, clock=clock,
                                   run_id=self.run_id,
                                   sleep_until=emulation.sleep_until if emulation else None,
                                   to_real=emulation.to_real if emulation else (lambda s: s),
                                   to_emulated=emulation.to_emulated if emulation else (lambda s: s),
                                   energy=energy,
                                   deadline_s=settings.deadline_s if settings.deadline_s is not None
                                   else bounds.latency_s)
        except BaseException:
            self.close()
            raise

    # ------------------------------------------------------------ parts

    def _executor(self, settings: PipelineSettings, clock, bundle=None) -> Executor:
        bundle = bundle or self.bundle
        threads = settings.threads
        if self.emulation is not None:
            # Paced compute sleeps; meanwhile the loop collects probe replies (see DeviceLoop.idle).
            factory = self.emulation.runner_factory(idle=self._idle)
            return Executor(bundle, threads=threads or 1, clock=clock, runner_factory=factory)
        if self.board is not None:
            from edgesplit.runtime.segments.providers import runner_factory_for_board

            return Executor(bundle, threads=threads, clock=clock, runner_factory=runner_factory_for_board(self.board))
        return Executor(bundle, threads=threads, clock=clock)

    def variant_loop(self, bundle, strategy: Strategy, arm: str) -> DeviceLoop:
        """A device loop for another variant of the task (``[model] variants``): its own executor on the same
        providers and controller, sharing this pipeline's sensors and trace store; every task runs on the board.

        Its controller logs no transitions (their steps would collide with the first variant's in the run).
        """
        clock = self.loop.clock
        controller = Controller(strategy, self.controller.bounds, q=self.settings.q, store=None, clock=clock,
                                run_id=self.run_id)
        loop = DeviceLoop(self._executor(self.settings, clock, bundle), controller, client=None,
                          store=self.loop.store, clock=clock, energy=self.loop.energy, deadline_s=self.loop.deadline_s,
                          run_id=self.run_id)
        loop.arm = arm
        return loop

    def _peer(self, settings: PipelineSettings) -> Optional[PeerFailover]:
        if settings.peer is None:
            return None
        # An ordered list of peers (a pool's front ends): the first usable one takes each offload.
        endpoints = [address.strip() for address in settings.peer.split(",")]
        speed = self.emulation.speedup if self.emulation is not None else 1.0
        if settings.link is not None:
            if len(endpoints) > 1:
                raise InputError("--link relays to one peer, got %d (%s): give one address with --link"
                                 % (len(endpoints), settings.peer))
            self.relay = open_relay(settings.peer, settings.link, speed)
            endpoints = [self.relay.endpoint]
        return connect_peers(endpoints, self.bundle.wire_hash, speed, settings.curve,
                             names=[address.strip() for address in settings.peer.split(",")])

    def _idle(self) -> None:
        loop = getattr(self, "loop", None)
        if loop is not None:
            loop.idle()

    # ------------------------------------------------------------ figures

    def board_label(self) -> Optional[str]:
        if self.emulation is not None:
            return self.emulation.label
        return self.board.name if self.board is not None else None

    def providers(self) -> List[str]:
        """The execution providers the segments really got (read back from each session), most used first."""
        seen = []  # type: List[str]
        for runner in self.executor.runners.values():
            for name in getattr(runner, "providers", None) or [type(runner).__name__]:
                if name not in seen:
                    seen.append(name)
        return seen

    def sensors(self) -> Dict[str, Any]:
        """Which sensors are live: each sampled reading with its value or the reason it is unavailable."""
        if self.emulation is not None:
            return {"emulated": True, "energy_model": self.emulation.describe().get("energy_model")}
        if self.sampler is None:
            return {"sampled": False}
        readings = {}
        for name in self.sampler.names():
            if "." in name:
                continue  # per-core / per-rail detail stays in `edgesplit board show`
            r = self.sampler.latest(name)
            readings[name] = ({"value": r.value, "unit": r.unit, "source": r.source} if r.available
                              else {"unavailable": r.reason})
        return {"sampled": True, "rate_hz": 1.0 / self.sampler.period_s, "readings": readings,
                "energy_proxy": self.energy_proxy.describe()}

    def describe(self) -> Dict[str, Any]:
        return {"board": self.board_label(), "providers": self.providers(), "sensors": self.sensors(),
                "peer": self.settings.peer, "secure": self.settings.curve is not None}

    def _run_config(self, strategy: Strategy, bounds: Bounds) -> Dict[str, Any]:
        s = self.settings
        config = dict(s.run_config)
        config.update({"strategy": strategy.describe(),
                       "bounds": {"latency_s": bounds.latency_s,
                                  "energy": bounds.energy if bounds.energy != float("inf") else None},
                       "state_features": list(FEATURES), "peer": s.peer,
                       "emulation": self.emulation.describe() if self.emulation else {"emulated": False},
                       "link": s.link.describe() if s.link else None,
                       "providers": self.providers(), "sensors": self.sensors(),
                       "energy_unit": self.energy_unit()})
        return config

    def energy_unit(self) -> Optional[str]:
        if self.emulation is not None:
            return "mJ"
        return self.board.bounds.energy_unit if self.board is not None else None

    # ------------------------------------------------------------ lifetime

    def close(self) -> None:
        """Every part is closed even when one fails to (the first error is raised after): a peer client left open
        would keep its probe thread probing."""
        first = None  # type: Optional[BaseException]
        for name, stop in (("store", "close"), ("client", "close"), ("relay", "stop"), ("sampler", "stop")):
            part = getattr(self, name)
            if part is None:
                continue
            setattr(self, name, None)
            try:
                getattr(part, stop)()
            except BaseException as exc:  # noqa: BLE001 - re-raised below, once the rest is closed
                log.error("closing the pipeline's %s failed: %s", name, exc)
                first = first or exc
        if first is not None:
            raise first

    def __enter__(self) -> "Pipeline":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def detect_live_board():
    """The board config of the machine this runs on (``EDGESPLIT_SYSROOT`` points at a fake tree in tests)."""
    from edgesplit.runtime.boards.config import load_all_boards, load_named_board
    from edgesplit.runtime.boards.detect import detect_board
    from edgesplit.runtime.sensors.sysroot import SysRoot

    detection = detect_board(SysRoot(os.environ.get("EDGESPLIT_SYSROOT", "/")), load_all_boards())
    log.info("board: %s (%s)", detection.board, detection.reason)
    return load_named_board(detection.board)


def connect_peers(endpoints: List[str], bundle_hash: str, speed: float = 1.0, curve=None,
                  names: Optional[List[str]] = None, background_probes: bool = True) -> PeerFailover:
    """The device's peer client as every command gets it: one ``PeerClient`` per endpoint (in order of
    preference), each probed at once (blocking), then probing on a thread of its own (``runtime/transport/
    prober.py``) so that a board that is never idle still measures its link. ``speed``: emulated seconds per
    real second (the probes' pace follows the emulated clock); ``names``: the peers as the user gave them, for
    the log (a software link's relay stands in for its peer's address); ``background_probes=False``: probes only
    when the caller calls ``maybe_probe`` (the client before the probe thread; ``bench/busy_board_estimate.py``)."""
    client = PeerFailover.connect(endpoints, bundle_hash,
                                  estimator_options={"min_bandwidth_bytes": 3000, "stale_after_s": 1.0 / speed},
                                  probe_bytes=PROBE_BYTES, probe_backoff_s=(0.25 / speed, 5.0 / speed),
                                  probe_timeout_s=1.0 / speed, curve=curve)
    # The first answer on a fresh socket also pays the handshakes (no timing): probe plain twice, the second
    # for the base RTT, then with a payload. Without a base the payload probe's RTT counted as serialisation
    # and the first estimate read 0.7x the link (docs/link.md, "What the estimate is fed").
    try:
        for peer, name in zip(client.clients, names or endpoints):
            for payload in START_PROBES:
                outcome = peer.probe(timeout_s=FIRST_PROBE_TIMEOUT_S, payload_bytes=payload)
                if not outcome.ok:
                    log.warning("peer %s did not answer the first probe (%s): starting with it marked down; it is "
                                "probed again in the background", name, outcome.message or outcome.status)
                    break
        if background_probes:
            client.start_background_probes()
    except BaseException:  # Ctrl-C during the first probes, a thread that would not start: no socket or thread left
        client.close()
        raise
    return client
