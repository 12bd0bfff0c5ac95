"""Spinning for a message (``ApiClient(spin_us=...)``, the daemon's ``[api] spin_us``): the same answers as
without it, spinning only while messages come within the spin, and every time limit still holds."""
import os
import socket
import threading
import time

import numpy as np
import pytest

from edgesplit.runtime.api import ApiClient, ApiUnavailable
from edgesplit.runtime.api.stream import HELLO, MessageReader, send_message, timeval
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
        # Told its next message will not come soon (the daemon queued the request), it sleeps for it.
        reader.pause_spin()
        assert not reader.spinning
        send_message(theirs, [b"queued"])
        assert reader.read() == [b"queued"] and reader.spinning


def test_a_spinning_reader_reads_large_and_split_messages_whole():
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    with ours, theirs:
        ours.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, timeval(5.0))
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
        status = spinning.status()
        assert status["tasks"]["ok"] == 12 * 4
        assert status["api"] == {"plain_connections": 1, "spin_us": 200.0}  # [api] spin_us reached the endpoint
    assert daemon.stop() == 0


@pytest.mark.parametrize("spin_us", [-1, 1e9, float("nan"), "10"])
def test_the_client_refuses_a_spin_outside_its_range(tmp_path, spin_us):
    with pytest.raises(ValueError, match="spin_us"):
        ApiClient(str(tmp_path / "api.sock"), spin_us=spin_us)


class _SilentDaemon:
    """A plain endpoint that greets and then never answers (``read``: it drains what it is sent; else it reads
    nothing, so a large request fills the socket and the client's send has to give up)."""

    def __init__(self, folder, read: bool):
        self.path = str(folder / "api.sock")
        open(self.path, "w").close()  # the ZeroMQ socket's path, which ApiClient looks for first
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(self.path + ".plain")
        self.listener.listen(1)
        self.held = []
        self.read = read
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        conn, _ = self.listener.accept()
        self.held.append(conn)
        conn.sendall(HELLO)
        while self.read and conn.recv(65536):
            pass

    def close(self) -> None:
        for conn in self.held:
            conn.close()
        self.listener.close()


def _submit_gives_up(path: str, spin_us: float, image: np.ndarray) -> float:
    """Seconds until submit raised ApiUnavailable (timeout 0.3 s); fails if it did not, or hung."""
    outcome = []

    def call() -> None:
        with ApiClient(path, timeout_s=0.3, transport="plain", spin_us=spin_us) as client:
            started = time.monotonic()
            try:
                client.submit(image)
            except ApiUnavailable as exc:
                outcome.append((time.monotonic() - started, exc))

    caller = threading.Thread(target=call, daemon=True)
    caller.start()
    caller.join(60.0)
    assert not caller.is_alive(), "the client waited past its time limit"
    assert len(outcome) == 1 and "no answer" in str(outcome[0][1]) and "0.3 s" in str(outcome[0][1]), outcome
    return outcome[0][0]


@pytest.mark.parametrize("spin_us", [0.0, 2000.0])
def test_a_daemon_that_never_answers_times_the_client_out(tmp_path, spin_us):
    """The call ends with ApiUnavailable after its time limit (the kernel's SO_RCVTIMEO now), spinning or not; a
    request the daemon never reads ends after the send's limit (SO_SNDTIMEO)."""
    silent = _SilentDaemon(tmp_path, read=True)
    try:
        waited = _submit_gives_up(silent.path, spin_us, np.zeros((1, 1, 28, 28), np.float32))
    finally:
        silent.close()
    assert waited < 5.0, waited  # a limit of 0.3 s, not MESSAGE_TIMEOUT_S (10 s) or the test's join
    (tmp_path / "deaf").mkdir()
    deaf = _SilentDaemon(tmp_path / "deaf", read=False)
    try:
        waited = _submit_gives_up(deaf.path, spin_us, np.zeros((1, 2, 1024, 1024), np.float32))  # 8 MiB
    finally:
        deaf.close()
    assert waited < 5.0, waited
