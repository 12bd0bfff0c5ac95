"""onnxruntime backend.

Session options are chosen for many small sessions sharing few cores: one intra-op thread for
small segments, sequential execution, and no spinning thread pools (spinning pools of several
sessions fight for the same cores). Full graph optimisation is ~1.7x faster than lower levels.
"""
import logging
import os
from pathlib import Path
from typing import Dict, Mapping, Optional, Sequence

import numpy as np

from edgesplit.runtime.bundle.manifest import Segment
from edgesplit.runtime.errors import BackendError
from edgesplit.runtime.segments.base import SegmentRunner
from edgesplit.runtime.segments.providers import check_session_providers

log = logging.getLogger(__name__)

# Segments above this many MACs per sample get every core; below it, threads cost more than they save.
LARGE_SEGMENT_MACS = 50_000_000


def threads_for(macs: int, requested: Optional[int] = None) -> int:
    if requested:
        return requested
    return max(1, os.cpu_count() or 1) if macs >= LARGE_SEGMENT_MACS else 1


def session_options(threads: int):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.log_severity_level = 3
    # The arena keeps the peak of any run for the session's life (a 64 MiB batch left a peer at 6.5 GB);
    # without it buffers are freed after each run, at no measured cost for single-sample tasks.
    opts.enable_cpu_mem_arena = False
    return opts


class OnnxRunner(SegmentRunner):
    def __init__(self, segment: Segment, path: Path, threads: Optional[int] = None,
                 providers: Sequence[str] = ("CPUExecutionProvider",)):
        try:
            import onnxruntime as ort
        except ImportError:
            raise BackendError("segment %s needs onnxruntime: pip install onnxruntime" % segment.id) from None
        self.segment_id = segment.id
        self.segment = segment
        try:
            self.session = ort.InferenceSession(str(path), sess_options=session_options(
                threads_for(segment.macs, threads)), providers=list(providers))
        except Exception as exc:  # onnxruntime raises its own exception types per failure
            raise BackendError("segment %s (%s): onnxruntime cannot load it: %s" % (segment.id, path, exc)) from None
        # What the session really got: onnxruntime drops a provider whose libraries fail to load.
        self.providers = list(self.session.get_providers())
        check_session_providers(segment.id, providers, self.providers)
        self.output_names = [t.name for t in segment.outputs]
        self.input_names = [t.name for t in segment.inputs]
        session_inputs = [i.name for i in self.session.get_inputs()]
        if sorted(session_inputs) != sorted(self.input_names):
            raise BackendError("segment %s (%s): the file's inputs %s differ from the manifest's %s"
                               % (segment.id, path, session_inputs, self.input_names))

    def run(self, feeds: Mapping[str, np.ndarray]) -> Dict[str, np.ndarray]:
        outputs = self.session.run(self.output_names, {name: feeds[name] for name in self.input_names})
        return dict(zip(self.output_names, outputs))
