"""Garbage, truncated, oversized and inconsistent messages against a real ``edgesplit peer`` process.

A well-behaved device keeps offloading between the bad messages and must always get the right
answer; the peer must never die and its memory must stay bounded.
"""
import json
import signal
import time

import numpy as np
import pytest
import zmq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgesplit.runtime.executor.executor import Executor
from edgesplit.runtime.transport import wire
from edgesplit.runtime.transport.client import PeerClient
from support.peer_process import PeerProcess  # noqa: E402

MAX_BYTES = 1024 * 1024


@pytest.fixture(scope="module")
def fuzz_peer(tiny_bundle):
    peer = PeerProcess(tiny_bundle.root, extra=["--max-bytes", str(MAX_BYTES)])
    yield peer
    code, _, err = peer.stop(signal.SIGTERM)
    assert code == 0, err[-2000:]


@pytest.fixture(scope="module")
def good_device(fuzz_peer, tiny_bundle):
    x = np.random.default_rng(3).standard_normal((2, 4)).astype(np.float32)
    expected = Executor(tiny_bundle).run(x, thresholds=[0.0]).output
    client = PeerClient(fuzz_peer.endpoint, tiny_bundle.hash)

    def check():
        outcome = client.offload(0, {"x": x}, 5.0, thresholds=[0.0])
        assert outcome.ok, outcome
        np.testing.assert_allclose(outcome.output, expected, rtol=1e-6)

    yield check
    client.close()


@pytest.fixture(scope="module")
def bad_device(fuzz_peer):
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(fuzz_peer.endpoint)

    def send(frames):
        sock.send_multipart(frames)
        # Collect whatever the peer answered so far; answers are optional for garbage.
        while sock.poll(0):
            sock.recv_multipart()

    def ask(frames, timeout_ms=5000):
        while sock.poll(0):
            sock.recv_multipart()
        sock.send_multipart(frames)
        assert sock.poll(timeout_ms), "the peer did not answer a malformed request"
        reply = wire.decode_reply(sock.recv_multipart(copy=False))
        assert not isinstance(reply, wire.WireError), reply
        return reply

    send.ask = ask
    yield send
    sock.close()


def _header(bundle_hash, **changes):
    header = {"v": 1, "kind": "infer", "id": 5, "bundle": bundle_hash, "cut": 0, "thresholds": None,
              "use_exits": True, "deadline_s": 5.0, "tensors": [{"name": "x", "dtype": "float32", "shape": [1, 4]}]}
    header.update(changes)
    return json.dumps(header).encode()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2 ** 70, 2 ** 70) | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12)

header_fields = st.sampled_from(["v", "kind", "id", "bundle", "cut", "thresholds", "use_exits", "deadline_s",
                                 "tensors", "extra"])


@st.composite
def bad_messages(draw, bundle):
    choice = draw(st.integers(0, 5))
    if choice == 0:  # raw garbage frames
        return draw(st.lists(st.binary(max_size=300), min_size=1, max_size=4))
    if choice == 1:  # one header field replaced by any JSON value
        key = draw(header_fields)
        return [_header(bundle, **{key: draw(json_values)}), np.zeros((1, 4), np.float32).tobytes()]
    if choice == 2:  # tensor spec inconsistent with its frame
        shape = draw(st.lists(st.integers(-3, 2 ** 40), min_size=0, max_size=10))
        dtype = draw(st.sampled_from(["float32", "int64", "complex64", "object", "U8", "", "float128"]))
        frame = draw(st.binary(max_size=64))
        return [_header(bundle, tensors=[{"name": "x", "dtype": dtype, "shape": shape}]), frame]
    if choice == 3:  # frame count differs from the header
        frames = draw(st.integers(0, 5).filter(lambda n: n != 1))
        return [_header(bundle)] + [np.zeros((1, 4), np.float32).tobytes()] * frames
    if choice == 4:  # truncated header
        raw = _header(bundle)
        return [raw[:draw(st.integers(0, len(raw) - 1))], np.zeros((1, 4), np.float32).tobytes()]
    # valid header, truncated or padded tensor frame
    size = draw(st.integers(0, 40).filter(lambda n: n != 16))
    return [_header(bundle), b"\0" * size]


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_malformed_messages_never_harm_other_devices(fuzz_peer, good_device, bad_device, tiny_bundle, data):
    frames = data.draw(bad_messages(tiny_bundle.hash))
    bad_device(frames)
    good_device()
    assert fuzz_peer.proc.poll() is None


@pytest.mark.parametrize("changes, reason", [
    ({"tensors": [{"name": "x", "dtype": "object", "shape": [1, 4]}]}, "bad_dtype"),
    ({"tensors": [{"name": "x", "dtype": "float32", "shape": [2 ** 40, 2 ** 40]}]}, "too_large"),
    ({"v": 2}, "bad_version"),
    ({"deadline_s": "soon"}, "bad_header"),
])
def test_malformed_header_is_answered_bad_request_with_reason(fuzz_peer, bad_device, tiny_bundle, changes, reason):
    reply = bad_device.ask([_header(tiny_bundle.hash, **changes), np.zeros((1, 4), np.float32).tobytes()])
    assert reply.status == "bad_request" and reply.message.startswith(reason), reply.message
    assert reply.request_id == 5


def test_size_mismatch_is_named(fuzz_peer, bad_device, tiny_bundle):
    reply = bad_device.ask([_header(tiny_bundle.hash), b"\0" * 15])
    assert reply.status == "bad_request" and "needs 16 bytes, frame 1 has 15" in reply.message


def test_oversized_frame_is_cut_off_and_memory_stays_bounded(fuzz_peer, good_device, tiny_bundle):
    good_device()
    before = fuzz_peer.rss_kib()
    context = zmq.Context.instance()
    big = np.zeros(4 * MAX_BYTES, np.uint8)
    medium = np.zeros(MAX_BYTES // 2, np.uint8)
    for round_ in range(300):
        sock = context.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.connect(fuzz_peer.endpoint)
        if round_ % 10 == 0:
            # Larger than MAXMSGSIZE: libzmq drops the connection before allocating the frame.
            sock.send_multipart([_header(tiny_bundle.hash), big], copy=False)
        else:
            # Within the frame limit but inconsistent with its header: refused after the check.
            sock.send_multipart([_header(tiny_bundle.hash), medium], copy=False)
        time.sleep(0.002)
        sock.close(linger=0)
        if round_ % 50 == 0:
            good_device()
    good_device()
    after = fuzz_peer.rss_kib()
    assert fuzz_peer.proc.poll() is None
    # 300 messages of >= 512 KiB went in: had any been kept, RSS would grow by far more than this.
    assert after - before < 64 * 1024, (before, after)
