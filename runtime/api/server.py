"""The daemon side of the local API: a ROUTER on an ipc socket that only the owner and group can open.

One thread owns the socket. It answers ``status``, ``feedback`` and ``ping`` itself, checks each
``submit`` and hands it to the serving loop through a bounded queue: when the queue is full the
request is refused at once with ``queue_full`` (never left waiting). Answers come back from the
serving loop through an inproc socket (ZeroMQ sockets belong to one thread), so this thread never
blocks on long model work and ``status`` stays answerable while such a task runs.

The direct path: when nothing waits or runs and the recent tasks were short (a few milliseconds:
``ApiHandlers.run_now`` decides), the submit runs on this thread and its answer goes straight out,
saving the two thread hops that otherwise cost more than the task. A ``status`` then waits at most
one such short task.

The plain endpoint (``api.sock.plain``, runtime/api/plain_endpoint.py) shares all of this: its
connection threads call ``answer`` as this thread does, and a job it queues carries ``reply_to``, so
the serving loop writes that answer to the connection itself.

Permissions: the socket's folder is created 0770 and both socket files chmod-ed 0660 (group from
``api.group``), so only the daemon's user and that group can connect. A lock file beside the socket
keeps a second daemon from stealing a running one's socket.
"""
import errno
import fcntl
import grp
import itertools
import logging
import os
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np
import zmq

from edgesplit.runtime.api import protocol
from edgesplit.runtime.api.plain_endpoint import PlainEndpoint, plain_path
from edgesplit.runtime.errors import EdgesplitError

log = logging.getLogger(__name__)

_REPLIES = "inproc://edgesplit-api-replies-%d"
_instances = itertools.count(1)


class ApiSocketError(EdgesplitError):
    """The API socket cannot be created or is held by another daemon."""


@dataclass
class Job:
    """One accepted ``submit``: what the serving loop runs and where the answer goes."""

    identity: bytes
    request_id: int
    inputs: Dict[str, np.ndarray]
    deadline_s: float  # relative to arrival
    arrival_s: float  # time.perf_counter() when it arrived
    label: Optional[int] = None
    frames: List[Any] = field(default_factory=list)  # keeps the received buffers alive
    # Where the answer goes when not through the ZeroMQ socket: the plain endpoint's connection
    # (called from whichever thread answers; it never blocks long: runtime/api/plain_endpoint.py).
    reply_to: Optional[Callable[[bytes], None]] = None

    @property
    def expires_at(self) -> float:
        return self.arrival_s + self.deadline_s


class ApiHandlers(object):
    """What the API thread calls; the daemon supplies it. Every method must be quick and thread-safe."""

    def accepting(self) -> Tuple[bool, str]:
        return True, ""

    def check_inputs(self, inputs: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
        """The inputs by model input name; raise runtime.errors.InputError for tensors the model cannot take."""
        return inputs

    def default_deadline_s(self) -> float:
        return 1.0

    def status(self) -> Dict[str, Any]:
        return {}

    def feedback(self, task_id: int, label: Optional[int], rating: Optional[float]) -> Tuple[str, str]:
        """Store late feedback (label and/or rating, at least one given); answer (status, message)."""
        return "unknown_task", "no trace store"

    def refused(self, status: str) -> None:
        """Count a refusal (for status and metrics)."""

    def run_now(self, job: "Job", replies: "DirectReplies") -> bool:
        """Run ``job`` on the API thread and answer it through ``replies``, when that is safe and quick;
        False: queue it for the serving loop."""
        return False


class ReplySender:
    """Sends answers from the serving loop's thread to the API thread. Create it in that thread."""

    def __init__(self, context: zmq.Context, endpoint: str):
        self._sock = context.socket(zmq.PUSH)
        self._sock.setsockopt(zmq.LINGER, 1000)
        self._sock.connect(endpoint)

    def send(self, job: Job, code: str, message: str = "", **fields: Any) -> None:
        self.deliver(job, protocol.encode_reply(job.request_id, code, message, **fields))

    def deliver(self, job: Job, reply: bytes) -> None:
        if job.reply_to is not None:
            job.reply_to(reply)
        else:
            self._sock.send_multipart([job.identity, reply])

    def close(self) -> None:
        self._sock.close()


class DirectReplies:
    """``ReplySender.send`` for a job run on the thread that received it: the answer goes straight out,
    to the plain connection (``job.reply_to``) or the ZeroMQ router (API thread only)."""

    def __init__(self, server: "ApiServer", router: Optional[zmq.Socket]):
        self._server = server
        self._router = router

    def send(self, job: Job, code: str, message: str = "", **fields: Any) -> None:
        self.deliver(job, protocol.encode_reply(job.request_id, code, message, **fields))

    def deliver(self, job: Job, reply: bytes) -> None:
        if job.reply_to is not None:
            job.reply_to(reply)
        else:
            self._server._send(self._router, job.identity, reply)


class ApiServer:
    def __init__(self, socket_path: str, handlers: ApiHandlers, jobs: "queue.Queue[Job]", max_input_bytes: int,
                 group: str = "", context: Optional[zmq.Context] = None, spin_us: float = 0.0):
        self.socket_path = os.path.abspath(socket_path)
        self.endpoint = "ipc://" + self.socket_path
        self.handlers = handlers
        self.jobs = jobs
        self.max_input_bytes = max_input_bytes
        self.group = group
        self.context = context or zmq.Context.instance()
        self.replies_endpoint = _REPLIES % next(_instances)
        self.heartbeat = time.monotonic()
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._error = None  # type: Optional[BaseException]
        self._lock_fd = None  # type: Optional[int]
        self._failures_logged = set()  # type: set
        self._direct = None  # type: Optional[DirectReplies]
        # The same API on a plain Unix stream socket beside this one (runtime/api/plain_endpoint.py).
        self.plain = PlainEndpoint(self, plain_path(self.socket_path), spin_us)
        self._thread = threading.Thread(target=self._main, name="edgesplit-api", daemon=True)

    # ------------------------------------------------------------ lifecycle

    def start(self, timeout_s: float = 10.0) -> "ApiServer":
        self._take_lock()
        self._thread.start()
        if not self._ready.wait(timeout_s):
            raise ApiSocketError("the API thread did not start within %.0f s" % timeout_s)
        if self._error is not None:
            self._release_lock()
            raise self._error
        self.plain.start()
        return self

    def reply_sender(self) -> ReplySender:
        return ReplySender(self.context, self.replies_endpoint)

    def stop(self, timeout_s: float = 5.0) -> None:
        """Forward the answers still in flight, then close the socket and remove its file."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout_s)
        self.plain.stop()
        self._release_lock()

    def _take_lock(self) -> None:
        folder = os.path.dirname(self.socket_path)
        try:
            if not os.path.isdir(folder):
                os.makedirs(folder, mode=0o770)
                os.chmod(folder, 0o770)  # makedirs applies the umask
            fd = os.open(self.socket_path + ".lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o660)
        except OSError as exc:
            raise ApiSocketError("cannot create the API socket folder %s: %s (check api.socket and that the "
                                 "daemon's user may write there)" % (folder, exc.strerror or exc)) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EACCES):
                raise ApiSocketError("%s is in use by another edgesplit daemon: stop it first, or give this one "
                                     "another api.socket" % self.socket_path) from None
            raise
        self._lock_fd = fd

    def _release_lock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def _bind(self) -> Tuple[zmq.Socket, zmq.Socket]:
        router = self.context.socket(zmq.ROUTER)
        router.setsockopt(zmq.LINGER, 0)
        router.setsockopt(zmq.RCVHWM, 10000)
        router.setsockopt(zmq.SNDHWM, 10000)
        router.setsockopt(zmq.MAXMSGSIZE, self.max_input_bytes + protocol.MAX_HEADER_BYTES)
        if os.path.exists(self.socket_path):
            os.unlink(self.socket_path)  # a stale file from a killed daemon: we hold the lock
        old_umask = os.umask(0o117)  # the files are born 0660, never briefly world-writable
        try:
            router.bind(self.endpoint)
            self.plain.bind()
        except (zmq.ZMQError, OSError) as exc:
            router.close(0)
            raise ApiSocketError("cannot bind the API socket %s: %s" % (self.socket_path, exc)) from None
        finally:
            os.umask(old_umask)
        for path in (self.socket_path, self.plain.path):
            os.chmod(path, 0o660)
            if self.group:
                try:
                    os.chown(path, -1, grp.getgrnam(self.group).gr_gid)
                except (KeyError, OSError) as exc:
                    router.close(0)
                    self.plain.stop()
                    raise ApiSocketError("cannot give the API socket %s to group %r: %s (create the group or fix "
                                         "api.group)" % (path, self.group, exc)) from None
        pull = self.context.socket(zmq.PULL)
        pull.setsockopt(zmq.LINGER, 0)
        pull.bind(self.replies_endpoint)
        return router, pull

    # ------------------------------------------------------------ the thread

    def _main(self) -> None:
        try:
            router, pull = self._bind()
        except BaseException as exc:  # handed to start(), which raises it in the daemon's thread
            self._error = exc
            self._ready.set()
            return
        self._direct = DirectReplies(self, router)
        self._ready.set()
        poller = zmq.Poller()
        poller.register(router, zmq.POLLIN)
        poller.register(pull, zmq.POLLIN)
        try:
            while not self._stop.is_set():
                self.heartbeat = time.monotonic()
                events = dict(poller.poll(200))
                if pull in events:
                    self._forward(pull, router)
                if router in events:
                    self._intake(router)
            # Answers the serving loop sent while we were stopping still go out.
            while pull.poll(50, zmq.POLLIN):
                self._forward(pull, router)
        finally:
            router.close(0)
            pull.close(0)
            try:
                os.unlink(self.socket_path)
            except OSError:
                pass

    def _forward(self, pull: zmq.Socket, router: zmq.Socket) -> None:
        while True:
            try:
                frames = pull.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            self._send(router, frames[0], frames[1])

    def _send(self, router: zmq.Socket, identity: bytes, reply: bytes) -> None:
        try:
            router.send_multipart([identity, reply], zmq.NOBLOCK)
        except zmq.ZMQError as exc:  # the client went away: its answer has nowhere to go
            log.debug("answer to %s dropped: %s", identity.hex(), exc)

    def _intake(self, router: zmq.Socket) -> None:
        for _ in range(256):  # bounded burst, so replies are forwarded in between
            try:
                frames = router.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                return
            identity = frames[0].bytes
            self.heartbeat = time.monotonic()  # a burst may hold direct-path tasks: still alive between them
            if len(frames) < 2:
                continue
            pushed_out = []  # type: List[Tuple[Job, bytes]]
            reply = self.answer(identity, frames[1:], time.perf_counter(), self._direct, pushed_out)
            if reply is not None:
                self._send(router, identity, reply)
            for other, other_reply in pushed_out:
                self._direct.deliver(other, other_reply)

    def answer(self, identity: bytes, frames: List[Any], arrival: float, replies: Any,
               pushed_out: List[Tuple[Job, bytes]], reply_to: Optional[Callable[[bytes], None]] = None
               ) -> Optional[bytes]:
        """Check and handle one request (``frames``: header, then its tensors) from either endpoint.

        Returns the answer to send now, or None when the request was queued (the serving loop answers)
        or run on this thread (answered through ``replies``). Jobs of other clients pushed out of the
        queue to make room land in ``pushed_out`` with their ``queue_full`` answer. Any thread may call
        this: what it touches is thread-safe (the queue, the handlers, the direct path's lock)."""
        request_id = None
        try:
            header = protocol.decode_header(frames[0])
            request_id = protocol.request_id_of(header)
            if request_id is None:
                raise protocol.BadMessage("'id' must be an integer in [0, 2**53)")
            return self._handle(identity, header, frames, arrival, replies, pushed_out, reply_to)
        except protocol.BadMessage as exc:
            self.handlers.refused("bad_request")
            return protocol.encode_reply(request_id, "bad_request", str(exc))
        except EdgesplitError as exc:  # InputError from check_inputs, TraceError from feedback
            self.handlers.refused("bad_request")
            return protocol.encode_reply(request_id, "bad_request", str(exc))
        except Exception as exc:  # the serving threads must outlive any one request; the answer says what failed
            self._log_failure(request_id, exc)
            return protocol.encode_reply(request_id, "error", "the daemon failed answering: %s" % exc)

    def _log_failure(self, request_id: Optional[int], exc: Exception) -> None:
        """A traceback for the first failure of each kind, one line after: a client cannot flood the journal."""
        kind = type(exc).__name__
        if kind in self._failures_logged:
            log.debug("API request %s failed: %s: %s", request_id, kind, exc)
            return
        if len(self._failures_logged) < 64:
            self._failures_logged.add(kind)
        log.exception("API request %s failed (further %s failures are logged at debug level)", request_id, kind)

    def _handle(self, identity: bytes, header: Dict[str, Any], frames: List[Any], arrival: float, replies: Any,
                pushed_out: List[Tuple[Job, bytes]], reply_to: Optional[Callable[[bytes], None]]) -> Optional[bytes]:
        op, request_id = header.get("op"), header["id"]
        if op == "submit":
            return self._submit(identity, request_id, header, frames, arrival, replies, pushed_out, reply_to)
        if op == "status":
            return protocol.encode_reply(request_id, "ok", figures=self.handlers.status())
        if op == "feedback":
            task_id, label, rating = protocol.feedback_fields(header)
            status, message = self.handlers.feedback(task_id, label, rating)
            return protocol.encode_reply(request_id, status, message, task_id=task_id)
        if op == "ping":
            return protocol.encode_reply(request_id, "ok")
        raise protocol.BadMessage("op %r is not one of %s" % (op, ", ".join(protocol.OPS)))

    def _submit(self, identity: bytes, request_id: int, header: Dict[str, Any], frames: List[Any], arrival: float,
                replies: Any, pushed_out: List[Tuple[Job, bytes]],
                reply_to: Optional[Callable[[bytes], None]]) -> Optional[bytes]:
        accepting, why = self.handlers.accepting()
        if not accepting:
            self.handlers.refused("draining")
            return protocol.encode_reply(request_id, "draining", why)
        deadline_ms = protocol.number_field(header, "deadline_ms", *protocol.DEADLINE_MS_RANGE)
        label = protocol.number_field(header, "label", -2 ** 31, 2 ** 31, integer=True)
        inputs = protocol.decode_tensors(header, frames[1:], self.max_input_bytes)
        inputs = self.handlers.check_inputs(inputs)
        deadline_s = self.handlers.default_deadline_s() if deadline_ms is None else deadline_ms / 1e3
        job = Job(identity, request_id, inputs, deadline_s, arrival, None if label is None else int(label), frames,
                  reply_to)
        if self.handlers.run_now(job, replies):
            return None
        try:
            # A fair queue pushes out another client's newest job to make room for one under its share.
            pushed = self.jobs.put_nowait(job) or []
        except queue.Full:
            self.handlers.refused("queue_full")
            return protocol.encode_reply(request_id, "queue_full", "%d requests already waiting (api.queue_size): "
                                         "retry later or lower the request rate" % self.jobs.maxsize)
        for other in pushed:
            self.handlers.refused("queue_full")
            pushed_out.append((other, protocol.encode_reply(
                other.request_id, "queue_full", "%d requests already waiting (api.queue_size) and this client holds "
                "more than its share: retry later or lower the request rate" % self.jobs.maxsize)))
        return None
