"""Putting a device run together: bundle, (emulated) board, link relay, peer client, store, controller.

``DeviceSession`` is what ``edgesplit run`` and ``edgesplit demo`` share. With an emulation the
executor's segments are paced to the board profile and every clock on the device side is the
emulated one; with a link trace an in-process relay replays it between this device and the peer
(scaled by the emulation's speed-up and by ``link_scale``).
"""
import logging
import time
from dataclasses import dataclass
from typing import Any, Dict, Optional

import numpy as np

from edgesplit.runtime.controller.controller import Controller
from edgesplit.runtime.controller.reward import Bounds
from edgesplit.runtime.controller.state import FEATURES
from edgesplit.runtime.controller.strategies import Strategy
from edgesplit.runtime.device.loop import DeviceLoop
from edgesplit.runtime.emulation.pacing import Emulation
from edgesplit.runtime.errors import InputError
from edgesplit.runtime.executor.executor import Executor
from edgesplit.runtime.link.trace_readers import BandwidthTrace
from edgesplit.runtime.traces import TraceStore, default_versions
from edgesplit.runtime.transport.client import PeerClient
from edgesplit.runtime.transport.link_estimate import LinkEstimator

log = logging.getLogger(__name__)

PROBE_BYTES = 4 * 1024


@dataclass
class LinkSetup:
    trace: BandwidthTrace
    rtt_s: float = 0.020
    trace_speed: float = 1.0      # trace seconds per emulated second
    link_scale: float = 1.0       # the trace's rates are multiplied by this (emulated tensors sizes)
    name: str = ""

    def describe(self) -> Dict[str, Any]:
        return {"emulated_link": True, "trace": self.name or self.trace.source, "rtt_ms": 1e3 * self.rtt_s,
                "trace_speed": self.trace_speed, "link_scale": self.link_scale,
                "trace_summary": self.trace.summary()}


def open_relay(peer: str, link: LinkSetup, speedup: float):
    """A BackgroundLink relaying to ``peer`` that plays ``link`` at emulated time ``speedup``."""
    from edgesplit.runtime.link.relay import BackgroundLink, parse_tcp_endpoint

    try:
        target = parse_tcp_endpoint(peer, "--peer")
    except ValueError as exc:
        raise InputError(str(exc)) from None
    scaled = BandwidthTrace(link.trace.bps * link.link_scale * speedup, link.trace.source, link.trace.format,
                            link.trace.step_s)
    return BackgroundLink(target, scaled, rtt_s=link.rtt_s / speedup, time_scale=link.trace_speed * speedup)


class DeviceSession:
    """Everything one device run holds open; ``close()`` releases it in order."""

    def __init__(self, bundle, strategy: Strategy, bounds: Bounds, peer: Optional[str] = None,
                 emulation: Optional[Emulation] = None, link: Optional[LinkSetup] = None,
                 traces: Optional[str] = None, deadline_s: Optional[float] = None, run_config: Optional[Dict] = None,
                 threads: Optional[int] = 1, q: int = 3, batch_size: int = 16,
                 shared_store: Optional[TraceStore] = None):
        self.bundle = bundle
        self.emulation = emulation
        self.relay = None
        self.client = None
        self.store = None
        clock = emulation.clock if emulation is not None else time.perf_counter
        # Paced compute sleeps; meanwhile the loop collects probe replies (see DeviceLoop.idle).
        factory = emulation.runner_factory(idle=self._idle) if emulation is not None else None
        kwargs = {"runner_factory": factory} if factory is not None else {}
        self.executor = Executor(bundle, threads=threads, clock=clock, **kwargs)
        try:
            endpoint = peer
            if peer is not None and link is not None:
                self.relay = open_relay(peer, link, emulation.speedup if emulation else 1.0)
                endpoint = self.relay.endpoint
            if endpoint is not None:
                speed = emulation.speedup if emulation else 1.0
                estimator = LinkEstimator(min_bandwidth_bytes=3000, stale_after_s=1.0 / speed)
                # Probes about the size of an offload measure what an offload would see.
                self.client = PeerClient(endpoint, bundle.wire_hash, estimator=estimator, probe_bytes=PROBE_BYTES,
                                         probe_backoff_s=(0.25 / speed, 5.0 / speed), probe_timeout_s=1.0 / speed)
                self._first_probe(speed)
            store = shared_store
            if traces is not None and shared_store is None:
                self.store = store = TraceStore(traces, batch_size=batch_size, flush_interval_s=0.5)
            self.run_id = None
            if store is not None:
                config = dict(run_config or {})
                config.update({"strategy": strategy.describe(), "bounds": {"latency_s": bounds.latency_s,
                                                                          "energy": bounds.energy if bounds.energy != float("inf") else None},
                               "state_features": list(FEATURES), "peer": peer,
                               "emulation": emulation.describe() if emulation else {"emulated": False},
                               "link": link.describe() if link else None})
                self.run_id = store.start_run(board=emulation.label if emulation else None,
                                     bundle_hash=bundle.hash, versions=default_versions(), config=config)
            self.controller = Controller(strategy, bounds, q=q, store=store, clock=clock, run_id=self.run_id)
            self.loop = DeviceLoop(self.executor, self.controller, client=self.client, store=store, clock=clock,
                                   run_id=self.run_id,
                                   sleep_until=emulation.sleep_until if emulation else None,
                                   to_real=emulation.to_real if emulation else (lambda s: s),
                                   to_emulated=emulation.to_emulated if emulation else (lambda s: s),
                                   energy=emulation.energy if emulation else None,
                                   deadline_s=deadline_s if deadline_s is not None else bounds.latency_s)
        except BaseException:
            self.close()
            raise

    def _first_probe(self, speed: float) -> None:
        # The first answer on a fresh socket also pays the handshakes: probe once plain, then with a payload.
        for payload in (0, PROBE_BYTES):
            outcome = self.client.probe(timeout_s=2.0, payload_bytes=payload)
            if not outcome.ok:
                log.warning("peer %s did not answer the first probe (%s): starting with the peer marked down",
                            self.client.address, outcome.message or outcome.status)
                return

    def _idle(self) -> None:
        loop = getattr(self, "loop", None)
        if loop is not None:
            loop.idle()

    def close(self) -> None:
        if self.store is not None:
            self.store.close()
            self.store = None
        if self.client is not None:
            self.client.close()
            self.client = None
        if self.relay is not None:
            self.relay.stop()
            self.relay = None

    def __enter__(self) -> "DeviceSession":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
