"""Spinning for a message (``ApiClient(spin_us=...)``, the daemon's ``[api] spin_us``): the same answers as
without it, spinning only while messages come within the spin, and every time limit still holds."""
import os
import socket
import struct
import threading

import numpy as np
import pytest

from edgesplit.runtime.api import ApiClient, ApiUnavailable
from edgesplit.runtime.api.stream import HELLO, MessageReader, send_message
from support.daemon_process import heldout


def _reader(sock: socket.socket, spin_s: float) -> MessageReader:
    return MessageReader(sock, 4, 1024, 1 << 20, spin_s=spin_s)


def test_the_reader_spins_only_while_messages_come_within_the_spin():
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    with ours, theirs:
        reader = _reader(ours, spin_s=0.05)
        assert reader.spinning
        send_message(theirs, [b"first", b"\x01\x02"])
        assert reader.read() == [b"first", b"\x01\x02"]
        assert reader.spinning  # it came at once: the next wait spins too

        # One that comes long after the spin: the wait blocks, and the next one does not spin.
        timer = threading.Timer(0.4, send_message, (theirs, [b"late"]))
        timer.start()
        assert reader.read() == [b"late"]
        timer.join()
        assert not reader.spinning

        # A message that comes soon after a blocking wait turns the spin back on.
        send_message(theirs, [b"soon"])
        assert reader.read() == [b"soon"]
        assert reader.spinning


def test_a_spinning_reader_reads_large_and_split_messages_whole():
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    with ours, theirs:
        ours.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, struct.pack("ll", 5, 0))
        reader = _reader(ours, spin_s=0.001)
        big = os.urandom(300 * 1024)
        writer = threading.Thread(target=send_message, args=(theirs, [b"header", big]))
        writer.start()
        header, tensor = reader.read()
        writer.join()
        assert header == b"header" and bytes(tensor) == big
        # The peer closing cleanly between messages is seen while spinning.
        theirs.shutdown(socket.SHUT_WR)
        with pytest.raises(Exception) as closed:
            reader.read()
        assert getattr(closed.value, "clean", False), closed.value


def test_spinning_clients_and_daemon_give_the_same_answers(make_daemon):
    daemon = make_daemon("spin_us = 200.0\n").start()  # the [api] table's
    images = heldout(12)
    with daemon.client(spin_us=300.0) as spinning, daemon.client(transport="zmq") as reference:
        assert spinning.transport == "plain"
        for i in range(12):
            a, b = spinning.submit(images[i:i + 1], deadline_ms=500), reference.submit(images[i:i + 1], deadline_ms=500)
            assert a.ok and b.ok, (a, b)
            assert (a.result, a.exit, a.cut) == (b.result, b.exit, b.cut)
        answers = spinning.submit_many(images)
        assert [x.result for x in answers] == [spinning.submit(images[i:i + 1]).result for i in range(12)]
        assert spinning.ping()
        assert spinning.status()["tasks"]["ok"] == 12 * 4
    assert daemon.stop() == 0


@pytest.mark.parametrize("spin_us", [-1, 1e9, float("nan"), "10"])
def test_the_client_refuses_a_spin_outside_its_range(tmp_path, spin_us):
    with pytest.raises(ValueError, match="spin_us"):
        ApiClient(str(tmp_path / "api.sock"), spin_us=spin_us)


@pytest.mark.parametrize("spin_us", [0.0, 2000.0])
def test_a_daemon_that_never_answers_times_the_client_out(tmp_path, spin_us):
    """A plain endpoint that greets, reads and never answers: the call ends with ApiUnavailable after its
    time limit (the kernel's SO_RCVTIMEO now), spinning or not."""
    path = str(tmp_path / "api.sock")
    open(path, "w").close()  # the ZeroMQ socket's path, which ApiClient looks for first
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path + ".plain")
    listener.listen(1)
    held = []

    def silent() -> None:
        conn, _ = listener.accept()
        held.append(conn)
        conn.sendall(HELLO)
        while conn.recv(65536):
            pass

    thread = threading.Thread(target=silent, daemon=True)
    thread.start()
    outcome = []

    def call() -> None:
        with ApiClient(path, timeout_s=0.3, transport="plain", spin_us=spin_us) as client:
            try:
                client.submit(np.zeros((1, 1, 28, 28), np.float32))
            except ApiUnavailable as exc:
                outcome.append(exc)

    caller = threading.Thread(target=call, daemon=True)
    caller.start()
    caller.join(30.0)
    assert not caller.is_alive(), "the client waited past its time limit"
    assert len(outcome) == 1 and "no answer" in str(outcome[0]) and "0.3 s" in str(outcome[0]), outcome
    for conn in held:
        conn.close()
    listener.close()
