"""PeerClient against a scripted ROUTER: stale and malformed replies are dropped by id, timeouts
come from the deadline, and recovery needs no background thread."""
import threading
import time

import numpy as np

from edgesplit.runtime.transport import wire
from edgesplit.runtime.transport.client import PeerClient

from support.scripted_peer import ScriptedPeer

BUNDLE = "cd" * 32


def _ok(request_id, value=1.0):
    return wire.encode_reply(request_id, "ok", exit_id=0, tensors={"y": np.full((1, 2), value, np.float32)})


def test_stale_and_malformed_replies_are_dropped_by_id():
    def script(request):
        return [(0, _ok(request.request_id + 1000, value=-1.0)),  # someone else's answer
                (0, [b"not json"]),
                (0, wire.encode_reply(request.request_id, "ok", tensors={"y": np.zeros(2, np.float32)})[:1]),
                (0, _ok(request.request_id, value=2.0))]

    peer = ScriptedPeer(script)
    try:
        with PeerClient(peer.endpoint, BUNDLE) as client:
            outcome = client.offload(0, {"x": np.zeros((1, 4), np.float32)}, 2.0)
    finally:
        peer.stop()
    assert outcome.ok and outcome.output.tolist() == [[2.0, 2.0]]


def test_a_late_reply_never_answers_a_later_request():
    def script(request):
        if request.request_id == 1:
            return [(0.4, _ok(1, value=1.0))]  # arrives after the device gave up
        return [(0, _ok(request.request_id, value=float(request.request_id)))]

    peer = ScriptedPeer(script)
    try:
        with PeerClient(peer.endpoint, BUNDLE) as client:
            started = time.monotonic()
            first = client.offload(0, {"x": np.zeros((1, 4), np.float32)}, 0.15)
            waited = time.monotonic() - started
            time.sleep(0.5)
            second = client.offload(0, {"x": np.zeros((1, 4), np.float32)}, 2.0)
    finally:
        peer.stop()
    assert first.status == "timeout" and waited < 1.0
    assert second.ok and second.output[0, 0] == float(second.request_id) != 1.0


def test_no_time_left_means_no_send():
    peer = ScriptedPeer(lambda request: [(0, _ok(request.request_id))])
    try:
        with PeerClient(peer.endpoint, BUNDLE) as client:
            outcome = client.offload(0, {"x": np.zeros((1, 4), np.float32)}, 0.0)
    finally:
        peer.stop()
    assert outcome.status == "timeout" and outcome.bytes_sent == 0 and not peer.requests


def test_maybe_probe_does_not_block_and_recovers_the_peer():
    answering = threading.Event()

    def script(request):
        # Answered 0.3 s late: a maybe_probe that waited for its answer would take that long.
        return [(0.3, wire.encode_reply(request.request_id, "ok"))] if answering.is_set() else []

    peer = ScriptedPeer(script)
    try:
        client = PeerClient(peer.endpoint, BUNDLE, probe_backoff_s=(0.05, 0.2), probe_timeout_s=1.0)
        assert client.offload(0, {"x": np.zeros((1, 4), np.float32)}, 0.1).status == "timeout"
        assert not client.peer_alive
        answering.set()
        started = time.monotonic()
        slowest = 0.0
        alive = False
        while not alive and time.monotonic() - started < 5.0:
            call_started = time.monotonic()  # every call timed: the one that sends the probe too
            alive = client.maybe_probe()
            slowest = max(slowest, time.monotonic() - call_started)
            time.sleep(0.01)
        assert alive and client.peer_alive
        assert slowest < 0.2, "maybe_probe took %.3f s: it waited for the 0.3 s answer" % slowest
        probes = [r for r in peer.requests if r.kind == "probe"]
        assert probes and all(r.bundle == BUNDLE for r in probes)
        client.close()
    finally:
        peer.stop()


def test_idle_client_refreshes_a_stale_estimate_with_a_payload_probe():
    peer = ScriptedPeer(lambda request: [(0, wire.encode_reply(request.request_id, "ok"))])
    try:
        with PeerClient(peer.endpoint, BUNDLE, probe_bytes=64 * 1024) as client:
            client.estimator.stale_after_s = 0.0
            assert client.probe(2.0).ok  # an RTT sample first
            for _ in range(1000):
                client.maybe_probe()
                if client.link_estimate().bandwidth_bps:
                    break
                time.sleep(0.001)  # a reply read much later than it came gives no timing (docs/link.md)
            estimate = client.link_estimate()
    finally:
        peer.stop()
    assert estimate.bandwidth_bps and estimate.base_rtt_s
    sizes = [r.nbytes for r in peer.requests if r.kind == "probe"]
    assert sizes[0] == 0 and 64 * 1024 in sizes


def test_a_busy_client_still_refreshes_the_base_rtt_with_empty_probes():
    # Offloads keep the estimate fresh, so no stale-estimate probe goes out; the base RTT still needs
    # small round trips, which only an empty probe gives (docs/link.md, "Base RTT").
    peer = ScriptedPeer(lambda request: [(0, wire.encode_reply(request.request_id, "ok"))])
    try:
        with PeerClient(peer.endpoint, BUNDLE) as client:
            client.estimator.stale_after_s = 100.0
            client.estimator.rtt_refresh_s = 0.2
            assert client.probe(2.0).ok and client.probe(2.0).ok  # the first answer is not measured
            first_rtt_at = client.estimator.last_rtt_at
            big = {"x": np.zeros((1, 16 * 1024), np.float32)}  # 64 KiB: a bandwidth sample, no RTT sample
            for _ in range(3):
                assert client.offload(0, big, 2.0).ok
                time.sleep(0.1)
            assert not client.estimator.is_stale(client.clock())
            for _ in range(2000):
                client.maybe_probe()
                if client.estimator.last_rtt_at != first_rtt_at:
                    break
                time.sleep(0.001)  # a reply read much later than it came gives no timing (docs/link.md)
            refreshed = client.estimator.last_rtt_at != first_rtt_at
    finally:
        peer.stop()
    assert refreshed
    # Only empty probes: the two first and at least one refresh (a refresh whose answer was read late gives no
    # timing, so another may follow on a busy machine); a stale-estimate probe would carry a payload.
    sizes = [r.nbytes for r in peer.requests if r.kind == "probe"]
    assert len(sizes) >= 3 and set(sizes) == {0}, sizes
