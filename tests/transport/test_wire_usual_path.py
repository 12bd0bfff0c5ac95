"""``decode_request`` first tries a lean path for the usual request (fewer calls per message on the peer) and
falls back to the field-by-field checks for anything else. The two must agree on every input: a corpus of
hostile headers and frames, decoded both ways, gives the same Request or the same refusal."""
import itertools
import json

import numpy as np
import pytest
import zmq

from edgesplit.runtime.transport import wire

BASE = {"v": 1, "kind": "infer", "id": 17, "bundle": "ab" * 32, "cut": 2, "thresholds": [0.3, 0.5],
        "use_exits": True, "deadline_s": 0.18, "tensors": [{"name": "h2", "dtype": "float32", "shape": [1, 4]}]}
HOSTILE = [True, False, None, 0, -1, 1, 2 ** 53, 10 ** 400, 1.0, 1.5, -0.0, float("nan"), float("inf"), "1", "",
           "x" * 200, [], [1], [0.2, 0.3], [True], [float("nan")], {}, {"a": 1}]
PAYLOAD = np.arange(4, dtype=np.float32).reshape(1, 4)


def _frames(header, payload=(PAYLOAD.tobytes(),), as_zmq=True):
    text = header if isinstance(header, str) else json.dumps(header)  # json.dumps writes NaN and Infinity
    frames = [text.encode("utf-8")] + list(payload)
    return [zmq.Frame(f) for f in frames] if as_zmq else frames


def _corpus():
    yield _frames(BASE)
    yield _frames(BASE, as_zmq=False)
    for key, value in itertools.product(BASE, HOSTILE):
        yield _frames(dict(BASE, **{key: value}))
    for key in BASE:
        yield _frames({k: v for k, v in BASE.items() if k != key})
    spec = BASE["tensors"][0]
    for key, value in itertools.product(spec, HOSTILE + ["float16", "complex64", [1, 2, 2], [-1, 4], [1, True]]):
        yield _frames(dict(BASE, tensors=[dict(spec, **{key: value})]))
    yield _frames(dict(BASE, tensors=[spec, spec]))
    yield _frames(dict(BASE, tensors=[dict(spec, extra=1)]))
    yield _frames(dict(BASE, thresholds=[0.1] * 65))
    yield _frames(dict(BASE, kind="probe", tensors=[]), payload=())
    yield _frames(dict(BASE, extra_key={"nested": [1, 2]}))
    yield _frames(BASE, payload=())
    yield _frames(BASE, payload=(b"\0" * 15,))
    yield _frames(BASE, payload=(PAYLOAD.tobytes(), b""))
    yield _frames('{"v": 1, "id": 3')
    yield _frames("[1, 2, 3]")
    yield _frames('{"v": 1}' + " " * 20000)
    yield [zmq.Frame(b"\xff\xfe{}")] + [zmq.Frame(PAYLOAD.tobytes())]
    yield [zmq.Frame(json.dumps(BASE).encode("utf-16"))] + [zmq.Frame(PAYLOAD.tobytes())]
    yield _frames(" " + json.dumps(BASE) + "\n")  # whitespace around the JSON: the checked path accepts it
    yield [bytearray(json.dumps(BASE).encode("utf-8")), PAYLOAD.tobytes()]
    yield [json.dumps(BASE).encode("utf-8"), memoryview(PAYLOAD.tobytes())]
    yield _frames(dict(BASE, tensors=[dict(spec, shape=[1, 4, 0]), dict(spec, name="h3", shape=[0, 2 ** 40])]),
                  payload=(b"", b""))
    yield []


def _same(a, b):
    if isinstance(a, wire.WireError) or isinstance(b, wire.WireError):
        return a == b
    arrays_equal = a.tensors.keys() == b.tensors.keys() and all(
        np.array_equal(a.tensors[k], b.tensors[k]) and a.tensors[k].dtype == b.tensors[k].dtype
        and a.tensors[k].shape == b.tensors[k].shape for k in a.tensors)
    plain = lambda r: (r.request_id, r.kind, r.bundle, r.cut, r.deadline_s, r.thresholds, r.use_exits, r.nbytes)
    return arrays_equal and plain(a) == plain(b) and all(type(x) is type(y) for x, y in zip(plain(a), plain(b)))


@pytest.mark.parametrize("frames", list(_corpus()))
def test_the_usual_path_and_the_checked_path_agree(frames):
    # The lean path itself (decode_request falls back to the checked one whenever it declines, so comparing that
    # with the checked path would compare the checked path with itself): it declines, or it agrees.
    try:
        usual = wire._usual_request(frames, wire.DEFAULT_LIMITS)
    except Exception:  # decode_request sends anything it raises the checked way
        usual = None
    if usual is not None:
        assert _same(usual, wire._checked_request(frames))
    assert _same(wire.decode_request(frames), wire._checked_request(frames))


def test_the_corpus_exercises_the_lean_path():
    # The agreement above means something only for requests the lean path takes: the corpus must hold many.
    taken = 0
    for frames in _corpus():
        try:
            taken += wire._usual_request(frames, wire.DEFAULT_LIMITS) is not None
        except Exception:
            pass
    assert taken >= 20, taken


def test_the_usual_request_takes_the_lean_path():
    assert isinstance(wire._usual_request(_frames(BASE), wire.DEFAULT_LIMITS), wire.Request)
    assert wire._usual_request(_frames(dict(BASE, v=True)), wire.DEFAULT_LIMITS) is None
