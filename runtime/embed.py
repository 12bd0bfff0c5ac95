"""The runtime inside an application's own process: no daemon, no socket, one call per input.

    from edgesplit.runtime.embed import Runtime

    with Runtime("my_bundle", policy="policy.npz", peer="tcp://10.0.0.2:5555") as runtime:
        answer = runtime.infer(image)          # one input, with or without the batch axis
        answer.result, answer.exit, answer.cut, answer.latency_ms, answer.fallback

It is the same pipeline as ``edgesplit run`` and ``serve`` (``edgesplit.runtime.device.pipeline``):
the executor on the board's providers, the peer client and its link estimate, the controller with
the policy or static action, and, when asked, the trace store. Calls from several threads are
served one at a time, in arrival order, as the daemon's queue would.
"""
import collections
import logging
import threading
import weakref
from dataclasses import dataclass
from typing import Any, Dict, Mapping, Optional, Sequence, Union

import numpy as np

from edgesplit.runtime.controller.reward import Bounds
from edgesplit.runtime.controller.strategies import EnergyInput, Strategy, fixed, load_policy_strategy, local_only
from edgesplit.runtime.default_bundle import resolve_bundle
from edgesplit.runtime.device.pipeline import Pipeline, PipelineSettings, StoreSettings
from edgesplit.runtime.errors import EdgesplitError, InputError

log = logging.getLogger(__name__)

DEFAULT_LATENCY_BOUND_MS = 100.0  # when neither the caller nor the board config gives one
DECISIONS_KEPT = 64  # an embedded runtime lives as long as its app: keep the recent decisions only

Inputs = Union[np.ndarray, Mapping[str, np.ndarray]]


@dataclass(frozen=True)
class Inference:
    """What one ``infer`` call produced."""

    result: int                 # predicted class: the argmax of ``scores``
    scores: np.ndarray          # the output of the exit that answered, batch axis included
    exit: int                   # exit that answered (0 = first early exit; the last = the final classifier)
    cut: Optional[int]          # cut the task was offloaded at; None = finished on this device
    planned_cut: int            # the cut the controller chose (differs from ``cut`` after a fallback)
    latency_s: float            # from the call to the answer
    fallback: bool              # the peer was down, late or refused, and the task finished here
    fallback_reason: str        # why, when ``fallback``
    bytes_sent: int             # bytes shipped to the peer
    task_id: int                # the task's id in the trace database (``tasks.task_id``)

    @property
    def latency_ms(self) -> float:
        return 1e3 * self.latency_s


def _board(spec: Optional[str]):
    """``"auto"`` (detect this machine), a board config name, a ``.toml`` path, or None (no board config)."""
    if spec is None:
        return None
    from edgesplit.runtime.daemon.service import resolve_board

    return resolve_board(spec)


def _strategy(bundle, board, policy: Optional[str], cut: Optional[int], thresholds: Optional[Sequence[float]],
              use_exits: bool) -> Strategy:
    manifest = bundle.manifest
    side = [e.threshold for e in manifest.exits if e.head is not None]
    if policy is not None:
        if cut is not None or thresholds is not None:
            raise InputError("give either policy= or cut=/thresholds=, not both")
        # As serve does: a policy built for another energy unit than this board's proxy is refused.
        energy = None if board is None else EnergyInput(board.policy.energy_proxy, board.bounds.energy_unit,
                                                        "board %s" % board.name)
        return load_policy_strategy(policy, len(side), len(manifest.cuts), energy=energy, bundle=bundle,
                                    board_name=None if board is None else board.name)
    limits = list(side if thresholds is None else thresholds)
    if len(limits) != len(side):
        raise InputError("thresholds=: got %d thresholds for %d early exits" % (len(limits), len(side)))
    if cut is None:
        return local_only(len(side), len(manifest.main), limits)
    if not 0 <= cut <= len(manifest.main):
        raise InputError("cut=%d: the bundle's cuts are 0..%d" % (cut, len(manifest.main)))
    return fixed("static cut %d" % cut, cut, limits, use_exits=use_exits)


class Runtime:
    """A bundle loaded in this process, ready to ``infer``; close it (or use ``with``) to release it.

    bundle: a bundle directory, or ``"default"`` for the embedded MNIST bundle.
    policy: a frozen policy (.npz) choosing per-exit thresholds and the cut from the live state;
        without one the action is static: ``cut`` (None = every task on this device) and
        ``thresholds`` (default: the manifest's).
    peer: the peer's ZeroMQ endpoint (``tcp://HOST:PORT``); ``server_key``/``device_key`` pin it
        with CurveZMQ (files from ``edgesplit keys``).
    board: ``"auto"`` (detect this machine's board config: providers, threads, sensors, bounds),
        a board config name or ``.toml`` path, or None (onnxruntime defaults, no sensors).
    latency_bound_ms, energy_bound: the bounds the controller works to (default: the board's).
    deadline_ms: offload timeout after the call (default: the latency bound); per call in ``infer``.
    traces: a trace database to log every task and controller step to (None: no log).
    """

    def __init__(self, bundle: str = "default", policy: Optional[str] = None, peer: Optional[str] = None,
                 board: Optional[str] = "auto", cut: Optional[int] = None,
                 thresholds: Optional[Sequence[float]] = None, use_exits: bool = True,
                 latency_bound_ms: Optional[float] = None, energy_bound: Optional[float] = None,
                 deadline_ms: Optional[float] = None, traces: Optional[str] = None,
                 server_key: Optional[str] = None, device_key: Optional[str] = None,
                 threads: Optional[int] = None, sensors: bool = True):
        self.bundle = resolve_bundle(bundle)
        self.board = _board(board)
        strategy = _strategy(self.bundle, self.board, policy, cut, thresholds, use_exits)
        self.bounds = self._bounds(latency_bound_ms, energy_bound)
        if (server_key is None) != (device_key is None):
            raise InputError("server_key= and device_key= go together (CurveZMQ needs both)")
        curve = None
        if server_key is not None and peer is not None:
            from edgesplit.runtime.security.curve import client_keys

            curve = client_keys(server_key, device_key)
        settings = PipelineSettings(
            board=self.board, peer=peer, curve=curve, threads=threads, sensors=sensors,
            deadline_s=None if deadline_ms is None else deadline_ms / 1e3,
            # The application is somebody else's: no child interpreter is started in it (docs/traces.md).
            store=StoreSettings(traces, writer="thread") if traces else None,
            run_config={"command": "embed", "bundle": bundle, "policy": policy})
        self._pipeline = Pipeline(self.bundle, strategy, self.bounds, settings)  # type: Optional[Pipeline]
        loop = self._pipeline.loop
        if loop.client is not None:
            # An app that drops a Runtime without close() must not keep its peer's probe thread probing for ever
            # (the thread holds the client, not the Runtime). close() closes it first; closing twice is harmless.
            weakref.finalize(self, loop.client.close)
        self._default_deadline_s = loop.deadline_s
        # Only the latest result and recent decisions are kept: the app may run for months.
        loop.results = collections.deque(maxlen=1)
        loop.controller.decisions = collections.deque(maxlen=DECISIONS_KEPT)
        self._lock = threading.Lock()
        self._next_task = 0

    def _bounds(self, latency_bound_ms: Optional[float], energy_bound: Optional[float]) -> Bounds:
        board_bounds = self.board.bounds if self.board is not None else None
        latency = latency_bound_ms or (board_bounds.latency_ms if board_bounds else DEFAULT_LATENCY_BOUND_MS)
        energy = energy_bound or (board_bounds.energy if board_bounds else float("inf"))
        if latency <= 0 or energy <= 0:
            raise InputError("latency_bound_ms and energy_bound must be positive (got %s, %s)" % (latency, energy))
        return Bounds(latency / 1e3, energy)

    # ------------------------------------------------------------ inference

    def _feeds(self, x: Inputs):
        specs = self.bundle.manifest.inputs
        if isinstance(x, Mapping):
            return {name: self._batched(spec_for(specs, name), np.asarray(a)) for name, a in x.items()}
        if len(specs) != 1:
            raise InputError("the model has %d inputs (%s): pass a dict of name -> array"
                             % (len(specs), ", ".join(s.name for s in specs)))
        return self._batched(specs[0], np.asarray(x))

    @staticmethod
    def _batched(spec, array: np.ndarray) -> np.ndarray:
        if spec is None or not spec.batched:
            return array
        if array.ndim == len(spec.shape) - 1:
            return array[np.newaxis]  # one sample without its batch axis
        if array.ndim == len(spec.shape) and array.shape[0] != 1:
            raise InputError("input %r: infer takes one sample, got a batch of %d: call infer once per sample "
                             "(or use 'edgesplit run' for a stream)" % (spec.name, array.shape[0]))
        return array

    def infer(self, x: Inputs, label: Optional[int] = None, deadline_ms: Optional[float] = None) -> Inference:
        """Classify one input: locally up to the action's cut, on the peer beyond it, locally if it fails.

        ``label`` (when known) is logged with the task; ``deadline_ms`` overrides the offload timeout.
        Bad input raises ``InputError`` naming the tensor and what was expected; a peer failure is
        not an exception but ``fallback=True`` with the reason.
        """
        with self._lock:
            pipeline = self._open()
            feeds = self._feeds(x)
            loop = pipeline.loop
            loop.deadline_s = self._default_deadline_s if deadline_ms is None else deadline_ms / 1e3
            task_id = self._next_task
            self._next_task += 1
            done = loop.process(task_id, feeds, label)
            return Inference(result=done.result, scores=loop.last_scores, exit=done.exit_id, cut=done.cut,
                             planned_cut=done.planned_cut, latency_s=done.latency_s, fallback=done.fallback,
                             fallback_reason=done.fallback_reason, bytes_sent=done.bytes_sent, task_id=task_id)

    # ------------------------------------------------------------ state

    def _open(self) -> Pipeline:
        if self._pipeline is None:
            raise EdgesplitError("this Runtime is closed: create a new one")
        return self._pipeline

    @property
    def peer_alive(self) -> bool:
        """Whether the peer answered its last probe or offload (False without a peer)."""
        return self._open().loop.peer_alive()

    @property
    def bandwidth_bps(self) -> Optional[float]:
        """The current estimate of the link to the peer, bits/s (None: no peer or not measured yet)."""
        return self._open().loop.bandwidth_bps()

    @property
    def run_id(self) -> Optional[str]:
        """This runtime's run in the trace database (None without ``traces``)."""
        return self._open().run_id

    def describe(self) -> Dict[str, Any]:
        """Board, providers, sensors, peer and strategy, as ``edgesplit status`` reports them."""
        pipeline = self._open()
        info = pipeline.describe()
        info.update({"bundle": self.bundle.manifest.name, "bundle_sha256": self.bundle.hash,
                     "strategy": pipeline.controller.strategy.name,
                     "policy_id": pipeline.controller.strategy.policy_id,
                     "latency_bound_ms": 1e3 * self.bounds.latency_s})
        return info

    # ------------------------------------------------------------ lifetime

    def close(self) -> None:
        """Close the last controller interval, flush the traces, release sockets and sessions. Idempotent."""
        with self._lock:
            pipeline, self._pipeline = self._pipeline, None
        if pipeline is None:
            return
        try:
            pipeline.loop.finish()
        finally:
            pipeline.close()

    def __enter__(self) -> "Runtime":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def spec_for(specs, name: str):
    for spec in specs:
        if spec.name == name:
            return spec
    raise InputError("the model has no input %r; its inputs: %s" % (name, ", ".join(s.name for s in specs)))
