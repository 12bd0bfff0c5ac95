"""The Python client for the local API (one client per thread: its socket is not thread-safe).

It speaks to the daemon's plain Unix stream endpoint (``api.sock.plain``: two thread wake-ups per
round trip) when the daemon offers it, else to the ZeroMQ socket; ``transport`` forces one. The
messages and answers are the same on both.

Every call waits at most its timeout; when the daemon does not answer the socket is replaced (Lazy
Pirate) and ``ApiUnavailable`` says where to look. A refusal is not an exception: ``submit`` returns
an ``ApiAnswer`` whose ``status`` says what happened (``ok``, ``queue_full``, ``draining``, ...).
"""
import collections
import collections.abc
import errno
import itertools
import json
import logging
import numbers
import os
import socket
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional, Sequence, Union

import numpy as np
import zmq

from edgesplit.runtime.api import protocol
from edgesplit.runtime.api.plain_endpoint import plain_path
from edgesplit.runtime.api.stream import HELLO, MAX_SPIN_US, MessageReader, StreamClosed, StreamRefused, send_message, timeval
from edgesplit.runtime.errors import EdgesplitError

log = logging.getLogger(__name__)
TRANSPORTS = ("auto", "plain", "zmq")
DEFAULT_WINDOW = 8  # submit_many: answers awaited at once (each holds a place in the daemon's queue)
# An answer's header: a status reply's figures are a few KiB; this bounds what a broken daemon could send.
_MAX_REPLY_BYTES = 16 * 1024 * 1024

DEFAULT_SOCKET = "/run/edgesplit/api.sock"


class ApiUnavailable(EdgesplitError):
    """The daemon did not answer on its socket."""


@dataclass
class ApiAnswer:
    status: str
    message: str = ""
    task_id: Optional[int] = None
    result: Optional[int] = None  # predicted class
    exit: Optional[int] = None
    cut: Optional[int] = None  # cut offloaded at; None = finished on the board
    fallback: bool = False
    latency_ms: Optional[float] = None  # arrival at the daemon -> answer ready
    met_deadline: Optional[bool] = None
    policy_id: Optional[str] = None
    arm: Optional[str] = None  # the model variant that ran the task ([model] variants); None: one bundle

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def to_dict(self) -> Dict[str, Any]:
        return dict(self.__dict__)


_ANSWER_FIELDS = tuple(ApiAnswer.__dataclass_fields__)


def _plain(value: Any) -> Any:
    """numpy scalars (a label from an array, a float32 score) as the Python numbers JSON takes."""
    return value.item() if isinstance(value, np.generic) else value


class _Timeout(Exception):
    pass


def _tensors(inputs: Any, input_name: str) -> Dict[str, np.ndarray]:
    """One task's inputs as the name -> array map the request carries; anything else is a TypeError saying what to
    pass (a list of numbers is not an array: its dtype and shape would be guessed)."""
    if isinstance(inputs, np.ndarray):
        return {input_name: inputs}
    if isinstance(inputs, collections.abc.Mapping):
        tensors = dict(inputs)
        wrong = [name for name, value in tensors.items() if not isinstance(value, np.ndarray)]
        if wrong:
            raise TypeError("inputs %s: each value must be a numpy array (np.asarray(value, dtype=...) with the "
                            "model's dtype), got %s" % (", ".join(map(repr, wrong)),
                                                       ", ".join(type(tensors[n]).__name__ for n in wrong)))
        return tensors
    raise TypeError("inputs: a numpy array (the model's only input) or a mapping of input name -> array, got %s: "
                    "convert it with np.asarray(inputs, dtype=...) in the model's dtype and shape"
                    % type(inputs).__name__)


class ApiClient:
    """``transport``: ``auto`` (the plain endpoint when the daemon offers it, else ZeroMQ), ``plain`` or
    ``zmq``. ``self.transport`` says which one the client uses.

    ``spin_us`` (plain endpoint only): after sending, look for the answer without sleeping for up to this
    many microseconds, then wait as usual. An answer that comes within it saves this thread's wake-up
    (10-30 us on a VM, less on a board's bare metal) at the price of a core busy for up to ``spin_us``
    per call: worth it for short tasks when the board has a core to spare (docs/daemon.md, Local API)."""

    def __init__(self, socket_path: str = DEFAULT_SOCKET, timeout_s: float = 10.0,
                 context: Optional[zmq.Context] = None, transport: str = "auto", spin_us: float = 0.0):
        if transport not in TRANSPORTS:
            raise ValueError("transport must be one of %s, got %r" % (", ".join(TRANSPORTS), transport))
        if isinstance(spin_us, bool) or not isinstance(spin_us, numbers.Real) or not 0.0 <= spin_us <= MAX_SPIN_US:
            raise ValueError("spin_us must be a number in [0, %d] (microseconds), got %r" % (MAX_SPIN_US, spin_us))
        self.spin_us = float(spin_us)
        self.socket_path = socket_path
        self.endpoint = socket_path if socket_path.startswith("ipc://") else "ipc://" + os.path.abspath(socket_path)
        self.timeout_s = timeout_s
        self.wanted_transport = transport
        self.transport = ""
        self._context = context or zmq.Context.instance()
        self._ids = itertools.count(1)
        self._sock = None  # type: Optional[zmq.Socket]
        self._plain = None  # type: Optional[socket.socket]
        self._reader = None  # type: Optional[MessageReader]
        self._plain_timeout = None  # type: Optional[float]
        self._open()

    def _open(self) -> None:
        path = self.endpoint[len("ipc://"):]
        if not os.path.exists(path):
            raise ApiUnavailable("no API socket at %s: is the daemon running ('systemctl status edgesplit', or "
                                 "your own 'edgesplit serve --local DIR')? (api.socket in its config names the path)"
                                 % path)
        if not os.access(path, os.R_OK | os.W_OK):
            raise ApiUnavailable("%s: permission denied: add this user to the daemon's API group (api.group, "
                                 "'edgesplit' by default) and log in again" % path)
        if self.wanted_transport != "zmq" and self._open_plain(plain_path(path)):
            self.transport = "plain"
            return
        sock = self._context.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.connect(self.endpoint)
        self._sock = sock
        self.transport = "zmq"
        # One poller for the socket's life: Socket.poll builds a new one per call.
        self._poller = zmq.Poller()
        self._poller.register(sock, zmq.POLLIN)

    def _open_plain(self, path: str) -> bool:
        """Connect to the plain endpoint and read the daemon's greeting; False (``auto``): use ZeroMQ."""
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(min(self.timeout_s, 5.0))
            sock.connect(path)
            greeting = b""
            while len(greeting) < len(HELLO):
                chunk = sock.recv(len(HELLO) - len(greeting))
                if not chunk:
                    break  # at its connection limit, the daemon closes at once
                greeting += chunk
            if greeting != HELLO:
                raise OSError(errno.EPROTO, "no greeting from the daemon (%r)" % greeting[:16])
        except OSError as exc:  # socket.timeout is an OSError
            sock.close()
            if self.wanted_transport == "plain":
                raise ApiUnavailable("cannot use the daemon's plain API endpoint %s: %s (is the daemon running, "
                                     "and from this edgesplit release?)" % (path, exc)) from None
            log.debug("plain API endpoint %s not used (%s): using the ZeroMQ socket", path, exc)
            return False
        # Blocking, with the kernel's time limits (set per call in _wait_at_most): one system call per send
        # and per recv, where a Python timeout polls before each.
        sock.settimeout(None)
        self._plain = sock
        self._plain_timeout = None
        self._reader = MessageReader(sock, 1, _MAX_REPLY_BYTES, 0, spin_s=self.spin_us / 1e6)
        return True

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close(0)
            self._sock = None
        if self._plain is not None:
            self._plain.close()
            self._plain = None

    def __enter__(self) -> "ApiClient":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    # ------------------------------------------------------------ calls

    def submit(self, inputs: Union[np.ndarray, Mapping[str, np.ndarray]], deadline_ms: Optional[float] = None,
               label: Optional[int] = None, input_name: str = protocol.ONLY_INPUT,
               timeout_s: Optional[float] = None) -> ApiAnswer:
        """Run one task. ``inputs``: one array (the model's only input) or a name -> array map."""
        tensors = _tensors(inputs, input_name)
        fields = {"deadline_ms": deadline_ms, "label": label}
        wait = timeout_s if timeout_s is not None else self.timeout_s + (deadline_ms or 0.0) / 1e3
        return self._answer(self._call("submit", fields, tensors, wait))

    def submit_many(self, inputs: Union[np.ndarray, Sequence[Union[np.ndarray, Mapping[str, np.ndarray]]]],
                    deadline_ms: Optional[float] = None, labels: Optional[Sequence[Optional[int]]] = None,
                    input_name: str = protocol.ONLY_INPUT, window: int = DEFAULT_WINDOW,
                    timeout_s: Optional[float] = None) -> List[ApiAnswer]:
        """One task per item, answers in the items' order. ``inputs``: an array whose rows are the
        items (each sent as a batch of one), or a sequence of what ``submit`` takes.

        The requests go out back to back with at most ``window`` awaiting an answer, so a batch costs
        about one round trip per ``window`` items and never holds more than ``window`` places in the
        daemon's queue; each item is its own task (task id, deadline from its arrival, trace row,
        status), exactly as if ``submit`` had sent it. An item larger than the daemon's
        ``api.max_input_mb`` ends the plain connection after its ``bad_request`` (the daemon does not
        read the rest): the items still awaiting answers then raise ``ApiUnavailable``."""
        if window < 1:
            raise ValueError("window must be at least 1, got %r" % (window,))
        items = [inputs[i:i + 1] for i in range(len(inputs))] if isinstance(inputs, np.ndarray) else list(inputs)
        if labels is not None and len(labels) != len(items):
            raise ValueError("%d labels for %d inputs" % (len(labels), len(items)))
        wait = timeout_s if timeout_s is not None else self.timeout_s + (deadline_ms or 0.0) / 1e3
        answers = [None] * len(items)  # type: List[Optional[ApiAnswer]]
        waiting = collections.OrderedDict()  # type: Dict[int, int]  # request id -> item index, oldest first
        sent = 0
        while sent < len(items) or waiting:
            while sent < len(items) and len(waiting) < window:
                item = items[sent]
                tensors = _tensors(item, input_name)
                fields = {"deadline_ms": deadline_ms, "label": None if labels is None else _plain(labels[sent])}
                request_id = next(self._ids)
                self._send(protocol.encode_request("submit", request_id, fields, tensors), wait, first=not waiting)
                waiting[request_id] = sent
                sent += 1
            reply = self._receive(wait)
            index = waiting.pop(reply.get("id"), None)
            if index is None and waiting and self._refused_unread(reply):
                index = waiting.pop(next(iter(waiting)))
            if index is not None:
                answers[index] = self._answer(reply)
            # Else an answer to an earlier call that timed out: dropped by its id.
        return answers  # type: ignore

    def feedback(self, task_id: int, label: Optional[int] = None, rating: Optional[float] = None) -> ApiAnswer:
        """Late feedback for a finished task, stored in its trace row: its true ``label``, the
        application's ``rating`` of the result (any finite number, e.g. a QoE score), or both.

        A value the daemon would refuse (neither given, a rating that is NaN or infinite) is answered
        ``bad_request`` here, as the daemon would, without sending it: JSON has no NaN."""
        fields = {"task_id": _plain(task_id), "label": _plain(label), "rating": _plain(rating)}
        try:
            protocol.feedback_fields(fields)
        except protocol.BadMessage as exc:
            return ApiAnswer(status="bad_request", message=str(exc), task_id=task_id)
        return self._answer(self._call("feedback", {k: v for k, v in fields.items() if v is not None}))

    def status(self) -> Dict[str, Any]:
        return self._call("status").get("figures", {})

    def ping(self, timeout_s: Optional[float] = None) -> bool:
        try:
            return self._call("ping", timeout_s=timeout_s).get("status") == "ok"
        except ApiUnavailable:
            return False

    # ------------------------------------------------------------ internals

    @staticmethod
    def _answer(reply: Dict[str, Any]) -> ApiAnswer:
        return ApiAnswer(**{k: reply[k] for k in _ANSWER_FIELDS if k in reply})

    def _call(self, op: str, fields: Optional[Dict[str, Any]] = None,
              tensors: Optional[Mapping[str, np.ndarray]] = None, timeout_s: Optional[float] = None) -> Dict[str, Any]:
        wait_s = self.timeout_s if timeout_s is None else timeout_s
        request_id = next(self._ids)
        self._send(protocol.encode_request(op, request_id, fields, tensors), wait_s, first=True)
        while True:
            reply = self._receive(wait_s)
            if reply.get("id") == request_id or self._refused_unread(reply):
                return reply
            # An answer to an earlier call that timed out: dropped by its id. Keep waiting.

    def _no_answer(self, wait_s: float, why: str = "") -> ApiUnavailable:
        return ApiUnavailable("no answer from the edgesplit daemon on %s within %.1f s%s: is it running "
                              "('systemctl status edgesplit', or your own 'edgesplit serve --local DIR'), and may this "
                              "user open the socket (group)?" % (self.socket_path, wait_s, why))

    def _refused_unread(self, reply: Dict[str, Any]) -> bool:
        """The plain endpoint's answer to a message it refused before reading its header (its id unknown):
        it belongs to the oldest request, and the daemon closed the connection after it."""
        return self._plain is not None and reply.get("id") is None and reply.get("status") == "bad_request"

    def _send(self, frames: List[Any], wait_s: float, first: bool) -> None:
        """Send one request. ``first``: nothing else is awaiting an answer on this connection."""
        if self._sock is None and self._plain is None:
            self._open()
        if self._plain is None:
            self._sock.send_multipart(frames, copy=False)
            return
        try:
            self._wait_at_most(wait_s)
            send_message(self._plain, frames)
            return
        except OSError as exc:
            broken = exc.errno in (errno.EPIPE, errno.ECONNRESET)
            if not broken or not first:
                self.close()
                raise self._no_answer(wait_s, " (%s)" % exc) from None
        # The daemon closed this connection. Either it refused a message too large and answered before
        # closing (the answer waits to be read), or it restarted: then it never saw this request, and
        # it goes again on a new connection.
        if self._plain_has_data():
            return
        self.close()
        self._open()
        self._send(frames, wait_s, first=False)

    def _plain_has_data(self) -> bool:
        try:
            return bool(self._plain.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT))
        except OSError:
            return False

    def _receive(self, wait_s: float) -> Dict[str, Any]:
        """The next answer on the connection, whichever request it is for."""
        if self._plain is None:
            if self._poller.poll(int(1000 * wait_s)):
                return json.loads(self._sock.recv_multipart()[0].decode("utf-8"))
            self.close()
            raise self._no_answer(wait_s)
        try:
            self._wait_at_most(wait_s)
            return json.loads(self._reader.read(self._timed_out)[0].decode("utf-8"))
        except (_Timeout, StreamClosed, StreamRefused, OSError, ValueError) as exc:
            self.close()
            why = "" if isinstance(exc, _Timeout) else " (%s)" % exc
            raise self._no_answer(wait_s, why) from None

    def _wait_at_most(self, wait_s: float) -> None:
        """The plain socket's send and receive time limits (SO_SNDTIMEO, SO_RCVTIMEO)."""
        if self._plain_timeout != wait_s:
            limit = timeval(wait_s)
            self._plain.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, limit)
            self._plain.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, limit)
            self._plain_timeout = wait_s

    @staticmethod
    def _timed_out() -> None:
        raise _Timeout()
