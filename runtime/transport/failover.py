"""An ordered list of peers (the front ends of a pool, or plain peers) used as one ``PeerClient``.

Each offload goes to the first peer in the list that is not marked down; a peer is marked down by
its own ``PeerClient`` (no answer in time, ``overloaded`` or ``bundle_mismatch``), so the next offload
goes to the next peer in the list. An offload is never retried on another peer: a timeout has used
the task's deadline, and the task falls back locally as with one peer. ``maybe_probe()`` keeps every
peer's state fresh (or, after ``start_background_probes``, each peer's probe thread does), so a preferred peer
that answers a probe again gets the offloads back. ``peer_alive`` is true while any peer is usable. The peers
share one ``LinkUse`` (the device's uplink): while any has an offload out, no peer's probe thread sends. Its
offloads belong to one thread, like ``PeerClient``'s.
"""
import logging
from typing import Mapping, Optional, Sequence

import numpy as np

from edgesplit.runtime.transport.client import LinkUse, OffloadOutcome, PeerClient
from edgesplit.runtime.transport.link_estimate import LinkEstimate, LinkEstimator

log = logging.getLogger(__name__)


class PeerFailover:
    """``clients`` in order of preference, one ``PeerClient`` per peer."""

    def __init__(self, clients: Sequence[PeerClient]):
        if not clients:
            raise ValueError("PeerFailover needs at least one peer client")
        self.clients = list(clients)
        shared = LinkUse()
        for client in self.clients:  # one uplink for all of them
            client.link_use = shared
        self.clock = self.clients[0].clock
        self._last = self.clients[0]  # the peer that took the last offload (its estimator learns from it)

    @classmethod
    def connect(cls, addresses: Sequence[str], bundle_hash: str, estimator_options: Optional[dict] = None,
                **client_options) -> "PeerFailover":
        """A ``PeerClient(address, bundle_hash, **client_options)`` per address, each with its own link estimate."""
        clients = []  # type: list
        try:
            for address in addresses:
                clients.append(PeerClient(address, bundle_hash, estimator=LinkEstimator(**(estimator_options or {})),
                                          **client_options))
        except BaseException:
            for client in clients:
                client.close()
            raise
        return cls(clients)

    @property
    def active(self) -> PeerClient:
        """The first peer not marked down (the first peer when all are)."""
        for client in self.clients:
            if client.peer_alive:
                return client
        return self.clients[0]

    @property
    def address(self) -> str:
        return self.active.address

    @property
    def addresses(self) -> Sequence[str]:
        return [client.address for client in self.clients]

    @property
    def estimator(self) -> LinkEstimator:
        """The link estimate of the peer that took the last offload (a timeout is news about its link)."""
        return self._last.estimator

    @property
    def peer_alive(self) -> bool:
        return any(client.peer_alive for client in self.clients)

    @peer_alive.setter
    def peer_alive(self, alive: bool) -> None:
        # The daemon marks the peer down when upkeep fails; with a list that means every peer.
        for client in self.clients:
            client.peer_alive = alive

    def offload(self, cut_id: int, tensors: Mapping[str, np.ndarray], deadline_s: float,
                thresholds: Optional[Sequence[float]] = None, use_exits: bool = True) -> OffloadOutcome:
        client = self._last = self.active
        outcome = client.offload(cut_id, tensors, deadline_s, thresholds, use_exits)
        if not client.peer_alive and self.peer_alive:
            log.warning("peer %s marked down: offloads go to %s next", client.address, self.active.address)
        return outcome

    def probe(self, timeout_s: float, payload_bytes: int = 0) -> OffloadOutcome:
        """A blocking probe of the active peer."""
        return self.active.probe(timeout_s, payload_bytes)

    def maybe_probe(self) -> bool:
        """Non-blocking upkeep of every peer (see ``PeerClient.maybe_probe``). Returns ``peer_alive``."""
        for client in self.clients:
            client.maybe_probe()
        return self.peer_alive

    def link_estimate(self) -> LinkEstimate:
        return self.active.link_estimate()

    def start_background_probes(self) -> None:
        """Every peer's probes on a thread of its own (see ``PeerClient.start_background_probes``)."""
        for client in self.clients:
            client.start_background_probes()

    @property
    def probe_in_flight(self) -> bool:
        """Some peer's probe awaits its answer (see ``PeerClient.probe_in_flight``)."""
        return any(client.probe_in_flight for client in self.clients)

    def close(self) -> None:
        for client in self.clients:
            client.close()

    def __enter__(self) -> "PeerFailover":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
