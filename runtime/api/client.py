"""The Python client for the local API (one client per thread: ZeroMQ sockets are not thread-safe).

Every call waits at most its timeout; when the daemon does not answer the socket is replaced (Lazy
Pirate) and ``ApiUnavailable`` says where to look. A refusal is not an exception: ``submit`` returns
an ``ApiAnswer`` whose ``status`` says what happened (``ok``, ``queue_full``, ``draining``, ...).
"""
import itertools
import json
import os
from dataclasses import dataclass
from typing import Any, Dict, Mapping, Optional, Union

import numpy as np
import zmq

from edgesplit.runtime.api import protocol
from edgesplit.runtime.errors import EdgesplitError

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


class ApiClient:
    def __init__(self, socket_path: str = DEFAULT_SOCKET, timeout_s: float = 10.0,
                 context: Optional[zmq.Context] = None):
        self.socket_path = socket_path
        self.endpoint = socket_path if socket_path.startswith("ipc://") else "ipc://" + os.path.abspath(socket_path)
        self.timeout_s = timeout_s
        self._context = context or zmq.Context.instance()
        self._ids = itertools.count(1)
        self._sock = None  # type: Optional[zmq.Socket]
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
        sock = self._context.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.connect(self.endpoint)
        self._sock = sock
        # One poller for the socket's life: Socket.poll builds a new one per call.
        self._poller = zmq.Poller()
        self._poller.register(sock, zmq.POLLIN)

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close(0)
            self._sock = None

    def __enter__(self) -> "ApiClient":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    # ------------------------------------------------------------ calls

    def submit(self, inputs: Union[np.ndarray, Mapping[str, np.ndarray]], deadline_ms: Optional[float] = None,
               label: Optional[int] = None, input_name: str = protocol.ONLY_INPUT,
               timeout_s: Optional[float] = None) -> ApiAnswer:
        """Run one task. ``inputs``: one array (the model's only input) or a name -> array map."""
        tensors = {input_name: inputs} if isinstance(inputs, np.ndarray) else dict(inputs)
        fields = {"deadline_ms": deadline_ms, "label": label}
        wait = timeout_s if timeout_s is not None else self.timeout_s + (deadline_ms or 0.0) / 1e3
        return self._answer(self._call("submit", fields, tensors, wait))

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
        if self._sock is None:
            self._open()
        request_id = next(self._ids)
        self._sock.send_multipart(protocol.encode_request(op, request_id, fields, tensors), copy=False)
        wait_ms = int(1000 * (self.timeout_s if timeout_s is None else timeout_s))
        while self._poller.poll(wait_ms):
            frames = self._sock.recv_multipart()
            reply = json.loads(frames[0].decode("utf-8"))
            if reply.get("id") == request_id:
                return reply
            # An answer to an earlier call that timed out: dropped by its id. Keep waiting.
        self.close()
        raise ApiUnavailable("no answer from the edgesplit daemon on %s within %.1f s: is it running "
                             "('systemctl status edgesplit', or your own 'edgesplit serve --local DIR'), and may this user open "
                             "the socket (group)?"
                             % (self.socket_path, wait_ms / 1000.0))
