"""The wire format: round trips without copies, and every malformed header refused as a value."""
import json

import numpy as np
import pytest
import zmq

from edgesplit.runtime.transport import wire

BUNDLE = "ab" * 32


def _frames(**changes):
    frames = wire.encode_request(3, "infer", BUNDLE, 1, 0.25, {"h": np.arange(6, dtype=np.float32).reshape(2, 3)},
                                 thresholds=[0.5], use_exits=True)
    header = json.loads(frames[0])
    header.update(changes)
    return [json.dumps(header).encode()] + frames[1:]


def test_request_round_trip_over_real_sockets_without_copies():
    context = zmq.Context.instance()
    router, dealer = context.socket(zmq.ROUTER), context.socket(zmq.DEALER)
    try:
        port = router.bind_to_random_port("tcp://127.0.0.1")
        dealer.connect("tcp://127.0.0.1:%d" % port)
        big = np.random.default_rng(0).standard_normal((4, 64, 32, 32)).astype(np.float32)  # 1 MiB
        small = np.array([7, 8], dtype=np.int64)
        dealer.send_multipart(wire.encode_request(9, "infer", BUNDLE, 2, 1.0, {"a": big, "b": small}), copy=False)
        frames = router.recv_multipart(copy=False)
        request = wire.decode_request(frames[1:])
    finally:
        router.close(linger=0)
        dealer.close(linger=0)
    assert isinstance(request, wire.Request)
    assert (request.request_id, request.kind, request.bundle, request.cut) == (9, "infer", BUNDLE, 2)
    np.testing.assert_array_equal(request.tensors["a"], big)
    np.testing.assert_array_equal(request.tensors["b"], small)
    # np.frombuffer on the ZeroMQ frame: the array does not own a copy of the bytes.
    assert not request.tensors["a"].flags.owndata
    assert request.nbytes == big.nbytes + small.nbytes


def test_reply_round_trip():
    out = np.eye(3, dtype=np.float32)
    reply = wire.decode_reply(wire.encode_reply(4, "ok", exit_id=2, compute_s=0.01, service_s=0.02,
                                                tensors={"logits": out}))
    assert (reply.request_id, reply.status, reply.exit_id) == (4, "ok", 2)
    assert reply.compute_s == 0.01 and reply.service_s == 0.02
    np.testing.assert_array_equal(reply.tensors["logits"], out)


def test_zero_dim_and_empty_tensors_travel():
    frames = wire.encode_request(1, "infer", BUNDLE, 0, 1.0, {"s": np.float32(2.5).reshape(()),
                                                               "e": np.zeros((0, 3), np.int32)})
    request = wire.decode_request(frames)
    assert request.tensors["s"].shape == () and float(request.tensors["s"]) == 2.5
    assert request.tensors["e"].shape == (0, 3)


def test_unsupported_dtype_is_refused_when_encoding():
    with pytest.raises(ValueError, match="complex64"):
        wire.encode_request(1, "infer", BUNDLE, 0, 1.0, {"z": np.zeros(2, np.complex64)})


@pytest.mark.parametrize("frames, reason, detail", [
    ([], "frame_count", "empty"),
    ([b"\xff\xfe"], "bad_header", "UTF-8 JSON"),
    ([b"[1, 2]"], "bad_header", "JSON object"),
    ([b"x" * (wire.DEFAULT_LIMITS.max_header_bytes + 1)], "too_large", "header frame"),
    (_frames(v=0), "bad_version", "version 0"),
    (_frames(v=True), "bad_version", "version True"),
    (_frames(id=-1), "bad_header", "'id'"),
    (_frames(id="7"), "bad_header", "'id'"),
    (_frames(kind="exec"), "bad_header", "kind"),
    (_frames(cut=True), "bad_header", "'cut'"),
    (_frames(deadline_s=float("nan")), "bad_header", "deadline_s"),
    (_frames(thresholds=[0.5, 1.5]), "bad_header", "thresholds"),
    (_frames(thresholds="0.5"), "bad_header", "thresholds"),
    (_frames(use_exits=1), "bad_header", "use_exits"),
    (_frames(tensors=[{"name": "h", "dtype": "float32"}]), "bad_header", "tensors[0]"),
    (_frames(tensors=[{"name": "h", "dtype": "float32", "shape": [2, 3], "x": 1}]), "bad_header", "exactly"),
    (_frames(tensors=[{"name": "h", "dtype": "object", "shape": [2, 3]}]), "bad_dtype", "object"),
    (_frames(tensors=[{"name": "h", "dtype": "float32", "shape": [2, -3]}]), "bad_header", "non-negative"),
    (_frames(tensors=[{"name": "h", "dtype": "float32", "shape": [1] * 9}]), "bad_header", "at most 8"),
    (_frames(tensors=[{"name": "h", "dtype": "float32", "shape": [2 ** 13, 2 ** 13, 8]}]), "too_large", "more than"),
    (_frames(tensors=[{"name": "h", "dtype": "float32", "shape": [2 ** 31, 2 ** 31]}]), "too_large", "more than"),
    # Zero bytes in all, but numpy cannot even describe the shape (found by the fuzz test on numpy 1.24).
    (_frames(tensors=[{"name": "h", "dtype": "float32", "shape": [0, 2 ** 40, 2 ** 40]}]), "too_large", "dimension of more than"),
    (_frames(tensors=[{"name": "h", "dtype": "float32", "shape": [2, 3]}] * 2), "bad_header", "unique"),
    (_frames(tensors=[{"name": "h", "dtype": "float32", "shape": [3, 3]}]), "size_mismatch", "needs 36 bytes"),
    (_frames()[:1], "frame_count", "1 tensors but 0"),
    (_frames() + [b"extra"], "frame_count", "1 tensors but 2"),
    (_frames()[:1] + [b"\0" * 23], "size_mismatch", "frame 1 has 23"),
])
def test_malformed_requests_are_values_with_reasons(frames, reason, detail):
    error = wire.decode_request(frames)
    assert isinstance(error, wire.WireError)
    assert error.reason == reason and detail in error.detail, error


def test_request_id_is_kept_when_known_so_the_refusal_can_be_matched():
    error = wire.decode_request(_frames(kind="exec"))
    assert error.request_id == 3


def test_limits_are_configurable():
    frames = wire.encode_request(1, "probe", BUNDLE, 0, 1.0, {"payload": np.zeros(4096, np.uint8)})
    assert isinstance(wire.decode_request(frames), wire.Request)
    small = wire.Limits(max_total_bytes=4095)
    assert wire.decode_request(frames, small).reason == "too_large"


def test_probe_payload_must_be_one_uint8_tensor():
    frames = wire.encode_request(1, "probe", BUNDLE, 0, 1.0, {"payload": np.zeros(4, np.float32)})
    assert wire.decode_request(frames).reason == "bad_header"


def test_malformed_replies_are_values():
    assert wire.decode_reply([b"{}"]).reason == "bad_version"
    assert wire.decode_reply(wire.encode_reply(1, "fine")).reason == "bad_header"
    frames = wire.encode_reply(1, "ok", tensors={"y": np.zeros(3, np.float32)})
    assert wire.decode_reply(frames[:1] + [b"\0" * 11]).reason == "size_mismatch"


def test_one_dtype_list_for_manifest_wire_and_api():
    from edgesplit.runtime.bundle import manifest
    from edgesplit.runtime.transport import framing

    assert manifest.DTYPES is framing.DTYPES and wire.DTYPES is framing.DTYPES
    assert not hasattr(__import__("edgesplit.runtime.api.protocol", fromlist=["x"]), "DTYPES")
