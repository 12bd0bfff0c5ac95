"""The peer answers offloads over real ZeroMQ sockets exactly as local execution would."""
import numpy as np
import pytest
import zmq

from edgesplit.runtime.transport import wire
from edgesplit.runtime.transport.client import PeerClient


def _input(rows=1, seed=0):
    return np.random.default_rng(seed).standard_normal((rows, 4)).astype(np.float32)


@pytest.mark.parametrize("cut", [0, 1])
def test_offload_from_any_cut_matches_local_execution(peer_thread, executor, tiny_bundle, cut):
    x = _input(rows=3)
    local = executor.run(x, thresholds=[0.0])
    live = executor.run(x, thresholds=[0.0], stop_at_cut=cut).live
    with PeerClient(peer_thread.endpoint, tiny_bundle.hash) as client:
        outcome = client.offload(cut, live, deadline_s=5.0, thresholds=[0.0])
    assert outcome.ok, outcome.message
    assert outcome.exit_id == local.exit_id == 1
    np.testing.assert_allclose(outcome.output, local.output, rtol=1e-6)
    assert outcome.bytes_sent > sum(a.nbytes for a in live.values())
    assert outcome.round_trip_s >= outcome.peer_service_s >= outcome.peer_compute_s >= 0.0


def test_peer_takes_an_early_exit_with_the_devices_thresholds(peer_thread, executor, tiny_bundle):
    x = _input()
    with PeerClient(peer_thread.endpoint, tiny_bundle.hash) as client:
        early = client.offload(0, {"x": x}, 5.0, thresholds=[1.0])
        none = client.offload(0, {"x": x}, 5.0, use_exits=False)
    assert early.exit_id == 0 and early.output.shape == (1, 3)
    np.testing.assert_allclose(early.output, executor.run(x, thresholds=[1.0]).output, rtol=1e-6)
    assert none.exit_id == 1


def test_probe_answers_and_feeds_the_link_estimate(peer_thread, tiny_bundle):
    with PeerClient(peer_thread.endpoint, tiny_bundle.hash) as client:
        assert client.probe(5.0).ok  # the first answer also paid for the handshake: no RTT sample
        assert client.probe(5.0).ok
        big = client.probe(5.0, payload_bytes=256 * 1024)
        assert big.ok and big.bytes_sent > 256 * 1024
        estimate = client.link_estimate()
    assert estimate.base_rtt_s is not None and estimate.base_rtt_s > 0
    assert estimate.bandwidth_bps is not None and estimate.bandwidth_bps > 1e6


def test_other_bundle_is_refused(peer_thread, other_bundle):
    with PeerClient(peer_thread.endpoint, other_bundle.hash) as client:
        outcome = client.offload(0, {"x": _input()}, 5.0)
        assert outcome.status == "refused" and outcome.peer_status == "bundle_mismatch"
        assert other_bundle.hash in outcome.message
        assert not client.peer_alive
        assert client.probe(5.0).peer_status == "bundle_mismatch"
    assert peer_thread.stats.bundle_mismatches == 2 and peer_thread.stats.served == 0


def test_wrong_tensors_for_the_cut_get_bad_request(peer_thread, tiny_bundle):
    with PeerClient(peer_thread.endpoint, tiny_bundle.hash) as client:
        wrong_name = client.offload(1, {"x": _input()}, 5.0)
        wrong_shape = client.offload(1, {"h": np.zeros((1, 5), np.float32)}, 5.0)
        wrong_thresholds = client.offload(0, {"x": _input()}, 5.0, thresholds=[0.1, 0.2, 0.3])
        fine = client.offload(0, {"x": _input()}, 5.0)
    for outcome in (wrong_name, wrong_shape, wrong_thresholds):
        assert outcome.status == "error" and outcome.peer_status == "bad_request", outcome
    assert "missing tensor" in wrong_name.message and "shape" in wrong_shape.message
    assert fine.ok


def test_request_already_expired_is_not_run(peer_thread, tiny_bundle):
    context = zmq.Context.instance()
    dealer = context.socket(zmq.DEALER)
    dealer.setsockopt(zmq.LINGER, 0)
    dealer.connect(peer_thread.endpoint)
    try:
        x = _input()
        dealer.send_multipart(wire.encode_request(7, "infer", tiny_bundle.hash, 0, -0.5, {"x": x}), copy=False)
        assert dealer.poll(5000)
        reply = wire.decode_reply(dealer.recv_multipart(copy=False))
    finally:
        dealer.close()
    assert reply.request_id == 7 and reply.status == "expired"
    assert peer_thread.stats.expired == 1 and peer_thread.stats.served == 0


def test_several_devices_are_served_independently(peer_thread, executor, tiny_bundle):
    clients = [PeerClient(peer_thread.endpoint, tiny_bundle.hash) for _ in range(4)]
    try:
        for round_ in range(5):
            for index, client in enumerate(clients):
                x = _input(seed=10 * round_ + index)
                outcome = client.offload(0, {"x": x}, 5.0, thresholds=[0.0])
                assert outcome.ok
                np.testing.assert_allclose(outcome.output, executor.run(x, thresholds=[0.0]).output, rtol=1e-6)
    finally:
        for client in clients:
            client.close()
