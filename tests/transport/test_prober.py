"""The peer client's probe thread keeps the single-threaded client's rules (runtime/transport/prober.py).

Against a ROUTER in a thread that answers each request when its script says, without holding up the others
(``support.scripted_peer.TimedPeer``).
"""
import threading
import time

import numpy as np
import zmq

from edgesplit.runtime.transport import wire
from edgesplit.runtime.transport.client import PeerClient
from edgesplit.runtime.transport.failover import PeerFailover
from edgesplit.runtime.transport.link_estimate import LinkEstimator

from support import scripted_peer
from support.waiting import wait_until

BUNDLE = "cd" * 32


def _reply(request):
    tensors = {"y": np.zeros((1, 2), np.float32)} if request.kind == "infer" else {}
    return wire.encode_reply(request.request_id, "ok", exit_id=0, tensors=tensors)


def _peer(answer_after):
    return scripted_peer.TimedPeer(answer_after, _reply)


def _client(peer, **options):
    estimator = LinkEstimator(min_bandwidth_bytes=3000, stale_after_s=0.05, rtt_refresh_s=0.05)
    return PeerClient(peer.endpoint, BUNDLE, estimator=estimator, probe_bytes=4096, **options)


def test_no_probe_goes_out_while_an_offload_is_on_the_link():
    peer = _peer(lambda request, now: 0.6 if request.kind == "infer" else 0.0)
    try:
        with _client(peer) as client:
            client.start_background_probes()
            assert wait_until(lambda: len(peer.probes()) >= 3)  # due every 50 ms: probes flow
            outcome = client.offload(0, {"x": np.zeros((1, 4), np.float32)}, 2.0)
            assert outcome.ok
            after = len(peer.probes())
            assert wait_until(lambda: len(peer.probes()) >= after + 3)  # and flow again once it is answered
    finally:
        peer.stop()
    sent, = [at for at, kind, _ in peer.log if kind == "infer"]
    during = [at for at, _ in peer.probes() if sent + 0.01 < at < sent + 0.59]
    assert not during, [round(at - sent, 3) for at in during]
    # They come from a socket of their own.
    assert {who for _, who in peer.probes()} != {who for _, kind, who in peer.log if kind == "infer"}


def test_an_answer_to_a_probe_sent_before_the_peer_was_marked_down_is_dropped():
    # Probes answered after 0.4 s, offloads never: the offload's timeout marks the peer down while the first
    # probe is out; that probe's answer must not bring the peer back (its socket would have been dropped).
    peer = _peer(lambda request, now: None if request.kind == "infer" else 0.4)
    try:
        with _client(peer, probe_backoff_s=(1.0, 2.0)) as client:
            client.start_background_probes()
            assert wait_until(lambda: len(peer.probes()) >= 1)
            started = time.monotonic()
            outcome = client.offload(0, {"x": np.zeros((1, 4), np.float32)}, 0.2)
            assert outcome.status == "timeout" and not client.peer_alive
            time.sleep(max(0.0, started + 0.6 - time.monotonic()))  # the first probe's answer came at ~0.4 s
            assert not client.peer_alive
            assert len(peer.probes()) == 1  # the next waits for the backoff (1 s)
            # The backoff's probe is answered and brings it back, with nobody calling maybe_probe.
            assert wait_until(lambda: client.peer_alive, timeout_s=3.0)
    finally:
        peer.stop()


def test_the_probe_thread_marks_a_silent_peer_down_and_finds_it_again():
    opened = time.monotonic()
    peer = _peer(lambda request, now: None if now - opened < 1.0 else 0.0)
    seen_down = []
    try:
        with _client(peer, probe_timeout_s=0.3, probe_backoff_s=(0.1, 0.2)) as client:
            client.start_background_probes()
            assert wait_until(lambda: not client.peer_alive, timeout_s=2.0)
            seen_down.append(time.monotonic() - opened)
            assert wait_until(lambda: client.peer_alive, timeout_s=3.0)
    finally:
        peer.stop()
    assert seen_down[0] < 1.0


def test_close_ends_the_probe_thread():
    peer = _peer(lambda request, now: 0.0)
    try:
        with _client(peer) as client:
            client.start_background_probes()
            assert wait_until(lambda: len(peer.probes()) >= 2)
            assert client.background_probes and not client.probe_in_flight
    finally:
        peer.stop()
    assert not [t for t in threading.enumerate() if t.name == "edgesplit-probe"]


def test_the_probe_thread_goes_on_after_an_unexpected_error(caplog):
    # It is what finds a peer that came back: an error must cost a retry, not the thread.
    peer = _peer(lambda request, now: 0.0)
    try:
        with _client(peer) as client:
            plan, calls = client.probe_plan, []

            def flaky(now):
                calls.append(now)
                if len(calls) == 1:
                    raise RuntimeError("boom")
                return plan(now)

            client.probe_plan = flaky
            client.start_background_probes()
            assert wait_until(lambda: len(peer.probes()) >= 2, timeout_s=5.0)
            assert client.background_probes and client.peer_alive
    finally:
        peer.stop()
    assert "probing %s failed" % peer.endpoint in caplog.text


def test_the_probe_thread_goes_on_when_its_socket_cannot_be_opened(caplog):
    peer = _peer(lambda request, now: 0.0)
    try:
        with _client(peer) as client:
            open_socket, opened = client.open_socket, []

            def failing_twice():
                opened.append(time.monotonic())
                if len(opened) <= 2:
                    raise zmq.ZMQError(24, "Too many open files")
                return open_socket()

            client.open_socket = failing_twice
            client.start_background_probes()
            assert wait_until(lambda: len(peer.probes()) >= 2, timeout_s=6.0)
            assert client.background_probes and len(opened) == 3
    finally:
        peer.stop()
    assert caplog.text.count("probing %s failed" % peer.endpoint) == 1  # logged once, not per retry


def test_a_probe_timeout_replaces_the_probe_socket():
    # The first probe goes unanswered: the next one must come from a new connection (a late answer on the old
    # socket can never be read as the new probe's).
    answered = []

    def answer_after(request, now):
        if request.kind != "probe":
            return 0.0
        answered.append(request.request_id)
        return None if len(answered) == 1 else 0.0

    peer = _peer(answer_after)
    try:
        with _client(peer, probe_timeout_s=0.3, probe_backoff_s=(0.05, 0.1)) as client:
            client.start_background_probes()
            assert wait_until(lambda: len(peer.probes()) >= 3, timeout_s=5.0)
    finally:
        peer.stop()
    first, second = peer.probes()[0][1], peer.probes()[1][1]
    assert first != second


def test_the_first_answer_on_the_probe_socket_gives_no_timing():
    # It also paid the TCP and ZMTP handshakes. The first probe is answered after 0.2 s, the next ones at once.
    answered = []

    def answer_after(request, now):
        answered.append(now)
        return 0.2 if len(answered) == 1 else 0.3

    peer = _peer(answer_after)
    try:
        with _client(peer) as client:
            client.start_background_probes()
            assert wait_until(lambda: client.peer_alive and len(peer.probes()) >= 2, timeout_s=3.0)
            # The first answer came; the second (0.3 s later) has not yet.
            assert client.estimator.last_rtt_at is None
            assert wait_until(lambda: client.estimator.last_rtt_at is not None, timeout_s=3.0)
    finally:
        peer.stop()


def test_no_peer_is_probed_while_another_has_an_offload_out():
    # A list of peers (a pool's front ends) shares one uplink: the other peers' probes would share it too.
    first = _peer(lambda request, now: 0.6 if request.kind == "infer" else 0.0)
    second = _peer(lambda request, now: 0.0)
    try:
        clients = [_client(first), _client(second)]
        with PeerFailover(clients) as failover:
            failover.start_background_probes()
            assert wait_until(lambda: len(second.probes()) >= 3)
            assert failover.offload(0, {"x": np.zeros((1, 4), np.float32)}, 2.0).ok
    finally:
        first.stop()
        second.stop()
    sent, = [at for at, kind, _ in first.log if kind == "infer"]
    for peer in (first, second):
        during = [at for at, _ in peer.probes() if sent + 0.01 < at < sent + 0.59]
        assert not during, [round(at - sent, 3) for at in during]
