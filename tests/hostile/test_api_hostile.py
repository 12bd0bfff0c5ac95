"""Defects 1 and 8 on the local API: deep JSON, numbers past float range and absurd shapes are
``bad_request`` answers with no traceback in the log, and the daemon keeps serving."""
import json

import zmq

from support.daemon_process import heldout

HUGE_INT = "1" + "0" * 400


def _raw(client, header_text, *frames):
    sock = client._sock
    sock.send_multipart([header_text.encode("utf-8") if isinstance(header_text, str) else header_text] + list(frames))
    assert sock.poll(10000, zmq.POLLIN), "no answer from the daemon"
    return json.loads(sock.recv_multipart()[-1])


def test_hostile_api_requests_are_bad_requests_without_tracebacks(make_daemon):
    daemon = make_daemon().start()
    image = heldout(1)
    spec = '[{"name":"*","dtype":"float32","shape":[1,1,28,28]}]'
    hostile = [
        b"[" * 15000,
        '{"v":1,"op":"ping","id":1,"x":' + "[" * 5000 + "]" * 5000 + "}",
        '{"v":1,"op":"submit","id":2,"deadline_ms":%s,"tensors":%s}' % (HUGE_INT, spec),
        '{"v":1,"op":"submit","id":3,"label":%s,"tensors":%s}' % (HUGE_INT, spec),
        '{"v":1,"op":"submit","id":4,"deadline_ms":1e999,"tensors":%s}' % spec,
        '{"v":1,"op":"submit","id":5,"deadline_ms":NaN,"tensors":%s}' % spec,
        '{"v":1,"op":"feedback","id":6,"task_id":1,"rating":%s}' % HUGE_INT,
        '{"v":1,"op":"feedback","id":7,"task_id":%s,"label":1}' % HUGE_INT,
        '{"v":1,"op":"submit","id":8,"tensors":[{"name":"*","dtype":"float32","shape":[0,%s]}]}' % (2 ** 62),
    ]
    with daemon.client(transport="zmq") as client:
        for number, header in enumerate(hostile):
            # A submit carries its input frame (empty for the zero-sized shape); other ops carry none.
            frames = [] if '"op":"submit"' not in str(header) else [b""] if "[0," in str(header) else [image.tobytes()]
            answer = _raw(client, header, *frames)
            assert answer["status"] == "bad_request", (number, answer)
        assert client.submit(image).ok
        assert client.status()["refused"]["bad_request"] == len(hostile)
    assert daemon.stop() == 0
    log = daemon.log.read_text()
    assert "Traceback" not in log, log[-3000:]
