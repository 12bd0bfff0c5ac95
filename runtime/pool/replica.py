"""One replica of the pool: runs a bundle from a cut, exactly as ``edgesplit peer`` does.

Plain Python (no Ray import): ``runtime.pool.engine`` wraps it in a Ray Serve deployment, and each
replica is one of these in its own Ray worker process, anywhere in the cluster. The bundle is loaded
from a path (or ``default``) on the replica's own node, so every node needs the same bundle there;
the front end compares the replica's bundle hash with its own before it serves a request.
"""
import logging
import os
from typing import Any, Dict, Mapping, Optional, Sequence

import numpy as np

from edgesplit.runtime.default_bundle import resolve_bundle
from edgesplit.runtime.errors import InputError
from edgesplit.runtime.executor.executor import Executor

log = logging.getLogger(__name__)


class SegmentReplica:
    """Holds a warmed-up executor for ``bundle``; ``run`` is what the front end calls."""

    def __init__(self, bundle: str, threads: Optional[int] = 1):
        self.bundle = resolve_bundle(bundle)
        # One intra-op thread by default: replicas, not threads, are the unit of parallelism here.
        self.executor = Executor(self.bundle, threads=threads)
        log.info("replica %d serves bundle %s (%s)", os.getpid(), self.bundle.manifest.name, self.bundle.hash[:12])

    def describe(self) -> Dict[str, Any]:
        """Which bundle this replica serves, and its process (the pool's tests and benchmarks kill it)."""
        return {"wire_hash": self.bundle.wire_hash, "bundle": self.bundle.manifest.name, "pid": os.getpid()}

    def run(self, cut: int, tensors: Mapping[str, np.ndarray], thresholds: Optional[Sequence[float]],
            use_exits: bool) -> Dict[str, Any]:
        """``status`` ``ok`` with the exit, its scores and the model time; ``bad_request`` for tensors the
        bundle refuses. Any other failure raises, and the front end answers ``error``."""
        try:
            result = self.executor.run_from(cut, tensors, thresholds, use_exits)
        except InputError as exc:
            return {"status": "bad_request", "message": str(exc)}
        return {"status": "ok", "exit_id": result.exit_id, "compute_s": result.compute_seconds,
                "tensors": {self.executor.manifest.exit_output(result.exit_id).name: result.output}}
