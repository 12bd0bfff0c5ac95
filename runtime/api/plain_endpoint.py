"""The local API's second endpoint: the same messages on a plain Unix stream socket (``api.sock.plain``).

Why a second endpoint: a round trip through ZeroMQ's ``ipc`` transport wakes six threads (the
client, its I/O thread, the daemon's I/O thread, the API thread, and back), which on a small board
costs more than a small model's whole task. Here a connection has its own thread, blocked in
``recv``: a request wakes it, it checks the request exactly as the ZeroMQ endpoint does
(``ApiServer.answer``), runs a short task itself when the direct path allows (else queues it for the
serving loop, which writes the answer to the connection), and writes the answer: two wake-ups per
round trip. ``ApiClient`` uses this endpoint when the daemon offers it; the ZeroMQ socket and its
contract stay for every other client.

A hostile or broken client costs at most its own connection: limits are checked before anything
is read (runtime/api/stream.py), a message must arrive whole within ``MESSAGE_TIMEOUT_S``, an answer
that finds the client's socket buffer full (it is not reading) closes its connection, a broken message is
answered ``bad_request`` (when its header could be read) and closes it, and beyond
``MAX_CONNECTIONS`` a new connection is closed at once (``ApiClient`` then uses the ZeroMQ socket).
"""
import itertools
import logging
import os
import socket
import threading
import time
from typing import Any, List, Optional, Set, Tuple

from edgesplit.runtime.api import protocol
from edgesplit.runtime.api.stream import HELLO, MessageReader, StreamClosed, StreamRefused, send_message, timeval
from edgesplit.runtime.thread_names import name_native_thread

log = logging.getLogger(__name__)

PLAIN_SUFFIX = ".plain"  # api.socket is at most 100 bytes (config), so this path stays within sun_path's 107
MAX_CONNECTIONS = 64
RECEIVE_POLL_S = 1  # how often an idle connection's thread looks at the stop flag
_connection_ids = itertools.count(1)


def plain_path(socket_path: str) -> str:
    """Where the plain endpoint of the API socket ``socket_path`` lives."""
    return socket_path + PLAIN_SUFFIX


class _Stopping(Exception):
    pass


class PlainEndpoint:
    """The listening socket, its accept thread and one thread per connection. ``server``: the ApiServer
    whose ``answer`` handles requests (and whose handlers, queue and limits they share)."""

    def __init__(self, server: Any, path: str, spin_us: float = 0.0):
        self.server = server
        self.path = path
        self.spin_s = spin_us / 1e6  # each connection's MessageReader spins this long for a request (api.spin_us)
        self._listener = None  # type: Optional[socket.socket]
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._connections = set()  # type: Set[socket.socket]
        self._threads = []  # type: List[threading.Thread]
        self._full_logged = False
        self._accepting = threading.Thread(target=self._accept_loop, name="edgesplit-api-accept", daemon=True)

    @property
    def connections(self) -> int:
        """Clients connected now."""
        with self._lock:
            return len(self._connections)

    def bind(self) -> None:
        """Bind and listen (the caller sets the umask, mode and group, as for the ZeroMQ socket)."""
        if os.path.exists(self.path):
            os.unlink(self.path)  # a stale file from a killed daemon: the caller holds the lock
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            listener.bind(self.path)
            listener.listen(64)
            listener.settimeout(0.2)  # accept() wakes to look at the stop flag
        except OSError:
            listener.close()
            raise
        self._listener = listener

    def start(self) -> None:
        self._accepting.start()

    def stop(self, timeout_s: float = 2.0) -> None:
        """Close the listener and every connection (answers still owed are dropped, as on ZeroMQ)."""
        self._stop.set()
        if self._accepting.is_alive():
            self._accepting.join(timeout_s)
        with self._lock:
            connections = list(self._connections)
        for conn in connections:
            try:
                conn.shutdown(socket.SHUT_RDWR)  # wakes its thread out of recv
            except OSError:
                pass
        for thread in list(self._threads):
            thread.join(timeout_s)
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        try:
            os.unlink(self.path)
        except OSError:
            pass

    # ------------------------------------------------------------ threads

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except socket.timeout:
                continue
            except OSError as exc:  # EMFILE and the like: the ZeroMQ endpoint still serves; try again soon
                log.warning("the plain API endpoint cannot accept a connection: %s", exc)
                self._stop.wait(0.5)
                continue
            with self._lock:
                full = len(self._connections) >= MAX_CONNECTIONS
                if not full:
                    self._connections.add(conn)
            if full:
                if not self._full_logged:
                    log.warning("%d connections on the plain API endpoint: further clients are turned to the "
                                "ZeroMQ socket", MAX_CONNECTIONS)
                    self._full_logged = True
                conn.close()
                continue
            thread = threading.Thread(target=self._serve, args=(conn,), name="edgesplit-api-conn", daemon=True)
            self._threads = [t for t in self._threads if t.is_alive()] + [thread]
            thread.start()

    def _serve(self, conn: socket.socket) -> None:
        name_native_thread()
        connection = _Connection(conn, b"plain-%d" % next(_connection_ids))
        sender = None  # a ZeroMQ ReplySender, made in this thread when a ZeroMQ client's job is pushed out
        try:
            # A blocking recv with a kernel time limit: it wakes to look at the stop flag.
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, timeval(RECEIVE_POLL_S))
            conn.sendall(HELLO)
            server = self.server
            reader = MessageReader(conn, protocol.MAX_TENSORS + 1, protocol.MAX_HEADER_BYTES, server.max_input_bytes,
                                   spin_s=self.spin_s)
            replies = _ConnectionReplies()
            while True:
                try:
                    frames = reader.read(self._idle_check)
                except StreamRefused as refused:
                    connection.write(self._refusal(refused))
                    log.debug("plain API connection %s closed: %s", connection.identity, refused.detail)
                    return
                arrival = time.perf_counter()
                pushed_out = []  # type: List[Tuple[Any, bytes]]
                written = connection.writes
                reply = server.answer(connection.identity, frames, arrival, replies, pushed_out, connection.write)
                if reply is not None:
                    connection.write(reply)
                elif connection.writes == written:
                    # Queued: the serving loop answers it, and this client's next request waits for that answer
                    # (a spin now would take the serving thread's core and GIL while it runs the task).
                    reader.pause_spin()
                for other, other_reply in pushed_out:
                    if other.reply_to is not None:
                        other.reply_to(other_reply)
                    else:
                        sender = sender or server.reply_sender()
                        sender.deliver(other, other_reply)
        except (StreamClosed, _Stopping, OSError) as exc:
            log.debug("plain API connection %s closed: %s", connection.identity, exc)
        finally:
            connection.close()
            with self._lock:
                self._connections.discard(conn)
            if sender is not None:
                sender.close()

    def _idle_check(self) -> None:
        if self._stop.is_set():
            raise _Stopping("the daemon is stopping")

    def _refusal(self, refused: StreamRefused) -> bytes:
        request_id = None
        if refused.header is not None:
            try:
                request_id = protocol.request_id_of(protocol.decode_header(refused.header))
            except protocol.BadMessage:
                pass
        self.server.handlers.refused("bad_request")
        return protocol.encode_reply(request_id, "bad_request", refused.detail + ": the connection is closed")


class _Connection:
    """One client's socket: answers come from its own thread or the serving loop's, one at a time."""

    def __init__(self, conn: socket.socket, identity: bytes):
        self.conn = conn
        self.identity = identity
        self._write_lock = threading.Lock()
        self._closed = False
        self.writes = 0  # answers written (or dropped because the client left): the connection's thread reads it

    def write(self, reply: bytes) -> None:
        with self._write_lock:
            self.writes += 1
            if self._closed:
                return  # the client went away: its answer has nowhere to go
            try:
                # Never waits: the serving loop writes here too, and a client that leaves its socket
                # buffer full (hundreds of answers unread) is not reading them anyway.
                send_message(self.conn, [reply], socket.MSG_DONTWAIT)
            except OSError as exc:  # gone, or not reading its answers: drop the connection
                log.debug("answer to %s dropped: %s", self.identity, exc)
                self._close_locked()

    def close(self) -> None:
        with self._write_lock:
            self._close_locked()

    def _close_locked(self) -> None:
        if not self._closed:
            self._closed = True
            try:
                self.conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self.conn.close()


class _ConnectionReplies:
    """The direct path's ``replies`` on a connection's thread: every job it runs has ``reply_to``."""

    @staticmethod
    def send(job: Any, code: str, message: str = "", **fields: Any) -> None:
        job.reply_to(protocol.encode_reply(job.request_id, code, message, **fields))

    @staticmethod
    def deliver(job: Any, reply: bytes) -> None:
        job.reply_to(reply)
