"""Property-based fuzzing with structured hostile JSON against a real peer and a real daemon process.

Headers are generated as JSON *text*, so they can hold what a JSON library would never write:
duplicate keys, integer literals thousands of digits long, ``NaN``/``Infinity`` tokens, lone
surrogate escapes, control characters and nesting far past Python's recursion limit. Each header
mixes valid fields with hostile ones. After every message a well-behaved client must still get its
answer, and at the end neither process may have logged a traceback.
"""
import json

import numpy as np
import pytest
import zmq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgesplit.runtime.transport import wire
from edgesplit.runtime.transport.client import PeerClient
from support.daemon_process import heldout

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))

numbers = st.one_of(
    st.integers(300, 4000).map(lambda digits: "1" + "0" * digits),
    st.integers(300, 4000).map(lambda digits: "-9" + "9" * digits),
    st.sampled_from(["NaN", "Infinity", "-Infinity", "1e999", "-1e999", "1e-999", "0.0", "-0", "2e308"]),
    st.integers(-2 ** 64, 2 ** 64).map(str),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
)
strings = st.one_of(
    st.text(max_size=40).map(json.dumps),
    st.text(max_size=40).map(lambda t: json.dumps(t, ensure_ascii=False)),
    st.sampled_from(['"\\ud800"', '"\\udfff\\ud800"', '"line\\nFORGED"', '"\\u0000"', '"\\u2028"', '"%s%s%n"']),
)
scalars = st.one_of(numbers, strings, st.sampled_from(["true", "false", "null"]))


def _nested(depth_and_kind):
    depth, kind = depth_and_kind
    return ("[" * depth + "]" * depth) if kind else ('{"a":' * depth + "1" + "}" * depth)


deep = st.tuples(st.integers(2, 8000), st.booleans()).map(_nested)
values = st.recursive(scalars | deep, lambda inner: st.one_of(
    st.lists(inner, max_size=4).map(lambda items: "[%s]" % ",".join(items)),
    st.lists(st.tuples(st.text(max_size=6).map(json.dumps), inner), max_size=4).map(
        lambda pairs: "{%s}" % ",".join("%s:%s" % p for p in pairs))), max_leaves=10)


def _object(pairs):
    return "{%s}" % ",".join("%s:%s" % (json.dumps(key), value) for key, value in pairs)


@st.composite
def hostile_header(draw, valid):
    """``valid``: field -> JSON text of a good value. Some fields turn hostile, some repeat, some go."""
    pairs = []
    for key, good in valid.items():
        roll = draw(st.integers(0, 9))
        if roll < 5:
            pairs.append((key, good))
        elif roll < 9:
            pairs.append((key, draw(values)))
        if draw(st.integers(0, 9)) == 0:  # a duplicate key: which one wins is the parser's choice
            pairs.append((key, draw(values)))
    if draw(st.booleans()):
        pairs.append((draw(st.text(max_size=10)), draw(values)))
    pairs = draw(st.permutations(pairs))
    return _object(pairs).encode("utf-8", "surrogatepass")


@pytest.fixture(scope="module")
def fuzz_peer(tiny_bundle):
    from support.peer_process import PeerProcess

    peer = PeerProcess(tiny_bundle.root)
    yield peer
    code, _, err = peer.stop()
    assert code == 0 and "Traceback" not in err, err[-3000:]


@FUZZ
@given(data=st.data())
def test_hostile_json_headers_never_harm_the_peer(fuzz_peer, tiny_bundle, data):
    valid = {"v": "1", "kind": '"infer"', "id": "5", "bundle": json.dumps(tiny_bundle.hash), "cut": "0",
             "thresholds": "null", "use_exits": "true", "deadline_s": "5.0",
             "tensors": '[{"name":"x","dtype":"float32","shape":[1,4]}]'}
    header = data.draw(hostile_header(valid))
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(fuzz_peer.endpoint)
    try:
        sock.send_multipart([header, np.ones((1, 4), np.float32).tobytes()])
        assert sock.poll(10000), "no answer to %r" % header[:200]
        reply = wire.decode_reply(sock.recv_multipart(copy=False))
        assert not isinstance(reply, wire.WireError), reply
        assert reply.status in ("ok", "bad_request", "bundle_mismatch", "expired"), reply
    finally:
        sock.close()
    with PeerClient(fuzz_peer.endpoint, tiny_bundle.hash) as client:
        assert client.offload(0, {"x": np.ones((1, 4), np.float32)}, 10.0).ok


@pytest.fixture(scope="module")
def fuzz_daemon(tmp_path_factory):
    from support.daemon_process import DaemonProcess

    daemon = DaemonProcess(tmp_path_factory.mktemp("fuzzd")).start()
    yield daemon
    assert daemon.stop() == 0
    log = daemon.log.read_text()
    daemon.cleanup()
    assert "Traceback" not in log, log[-3000:]


@FUZZ
@given(data=st.data())
def test_hostile_json_requests_never_harm_the_daemon(fuzz_daemon, data):
    image = heldout(1)
    op = data.draw(st.sampled_from(['"submit"', '"feedback"', '"status"', '"ping"']))
    valid = {"v": "1", "op": op, "id": "7", "deadline_ms": "2000", "label": "3", "task_id": "1", "rating": "0.5",
             "tensors": '[{"name":"*","dtype":"float32","shape":[1,1,28,28]}]'}
    header = data.draw(hostile_header(valid))
    with fuzz_daemon.client(timeout_s=10.0, transport="zmq") as client:
        client._sock.send_multipart([header, image.tobytes()])
        assert client._sock.poll(10000), "no answer to %r" % header[:200]
        reply = json.loads(client._sock.recv_multipart()[-1])
        assert reply["status"] in ("ok", "bad_request", "unknown_task", "expired", "queue_full"), reply
        assert client.submit(image).ok
