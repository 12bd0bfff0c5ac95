"""The peer fills reply headers into templates instead of calling json.dumps per reply: the bytes must be
exactly what ``dump_header`` gives for the same reply, and a device must decode them."""
import numpy as np
import pytest

from edgesplit.runtime.transport import wire
from edgesplit.runtime.transport.framing import dump_header, tensor_frames

CASES = [
    (17, "ok", "", 2, 0.0021, 1e-07, {"logits": np.zeros((3, 10), np.float32)}),
    (None, "bad_request", 'tensor "x"\n bad \u2028 \u00e9', None, 0.0, 0.0, None),
    (5, "expired", "m" * 2000, None, 0, 3, {'a"b': np.zeros((), np.int64), "c": np.zeros((0, 2), bool)}),
    (2 ** 53 - 1, "overloaded", "busy", 0, 99999.5, 123456.789, {"h": np.ones((2, 3, 4), np.float16)}),
]


@pytest.mark.parametrize("case", CASES)
def test_reply_header_is_the_json_dumps_bytes(case):
    request_id, status, message, exit_id, compute_s, service_s, tensors = case
    specs, _ = tensor_frames(tensors or {})
    expected = dump_header({"v": wire.PROTOCOL_VERSION, "id": request_id, "status": status, "message": message[:1024],
                            "exit": exit_id, "compute_s": float(compute_s), "service_s": float(service_s),
                            "tensors": specs})
    frames = wire.encode_reply(*case)
    assert frames[0] == expected
    reply = wire.decode_reply(frames)
    assert (reply.request_id, reply.status, reply.message, reply.exit_id) == (request_id, status, message[:1024],
                                                                              exit_id)


@pytest.mark.parametrize("array", [np.arange(30, dtype=np.float32).reshape(3, 10), np.float32(4.5) + np.zeros(()),
                                   np.arange(6, dtype=np.float32).reshape(2, 3).T])
def test_ok_reply_encoder_matches_encode_reply(array):
    array = array.astype(np.float32)
    fast = wire.OkReplyEncoder(2, "logits", "float32")(9, 0.00123, 4e-05, array)
    general = wire.encode_reply(9, "ok", "", 2, 0.00123, 4e-05, {"logits": array})
    assert fast[0] == general[0]
    decoded = wire.decode_reply([bytes(memoryview(np.ascontiguousarray(f)).cast("B")) if not isinstance(f, bytes)
                                 else f for f in fast])
    np.testing.assert_array_equal(decoded.tensors["logits"], array)


def test_non_finite_times_are_refused_not_sent():
    with pytest.raises(ValueError):
        wire.encode_reply(1, "ok", compute_s=float("nan"))
    with pytest.raises(ValueError):
        wire.OkReplyEncoder(2, "logits", "float32")(1, float("inf"), 0.0, np.zeros((1, 10), np.float32))
    with pytest.raises(ValueError):  # another dtype goes the general way
        wire.OkReplyEncoder(2, "logits", "float32")(1, 0.0, 0.0, np.zeros((1, 10), np.float64))


def test_a_batch_s_replies_are_the_frames_of_each_request_s_rows():
    encoder = wire.OkReplyEncoder(2, "logits", "float32")
    output = np.arange(40, dtype=np.float32).reshape(4, 10)
    replies = [(5, 0.001, 1), (6, 0.25, 2), (2 ** 53 - 1, 3e-05, 1)]
    start = 0
    frames = list(encoder.rows(replies, 0.0042, output))
    assert len(frames) == len(replies)
    for (request_id, service_s, count), (header, rows) in zip(replies, frames):
        alone = encoder(request_id, 0.0042, service_s, output[start:start + count])
        assert header == alone[0]
        np.testing.assert_array_equal(rows, alone[1])
        start += count
    assert start == len(output)
    with pytest.raises(ValueError):  # the rows asked for are not the output's
        encoder.rows(replies, 0.0, output[:3])
    with pytest.raises(ValueError):
        encoder.rows(replies, float("nan"), output)
    with pytest.raises(ValueError):
        encoder.rows(replies, 0.0, output.astype(np.float64))
