"""A peer serving from a background thread of this process (for the demo, tests and benchmarks).

The ZeroMQ socket is created, used and closed inside the thread, as ZeroMQ requires.
"""
import threading
from typing import Optional

from edgesplit.runtime.executor.executor import Executor
from edgesplit.runtime.peer.batching import BatchPolicy
from edgesplit.runtime.peer.server import PeerServer, PeerStats
from edgesplit.runtime.transport import wire


class BackgroundPeer:
    """``with BackgroundPeer(executor, "tcp://127.0.0.1:*") as peer: ... peer.endpoint ...``"""

    def __init__(self, executor: Executor, bind: str = "tcp://127.0.0.1:*",
                 limits: wire.Limits = wire.DEFAULT_LIMITS, startup_timeout_s: float = 10.0, curve=None,
                 batch: BatchPolicy = BatchPolicy()):
        self.server = PeerServer(executor, limits=limits, poll_ms=50, curve=curve, batch=batch)
        self._bind = bind
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._error = None  # type: Optional[BaseException]
        self.endpoint = ""
        self._thread = threading.Thread(target=self._main, name="edgesplit-peer", daemon=True)
        self._thread.start()
        if not self._ready.wait(startup_timeout_s):
            raise RuntimeError("the background peer did not start within %.0f s" % startup_timeout_s)
        if self._error is not None:
            raise self._error

    def _main(self) -> None:
        try:
            self.endpoint = self.server.bind(self._bind)
        except BaseException as exc:  # handed to the starting thread, which raises it
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        try:
            self.server.serve(self._stop.is_set)
        finally:
            self.server.close()

    @property
    def stats(self) -> PeerStats:
        return self.server.stats

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stop.set()
        self._thread.join(timeout_s)

    def __enter__(self) -> "BackgroundPeer":
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()
