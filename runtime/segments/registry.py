"""Chooses the runner class for a segment from its ``backend`` field."""
from pathlib import Path
from typing import Optional

from runtime.bundle.manifest import Segment
from runtime.errors import BackendError
from runtime.segments.base import SegmentRunner


def open_runner(segment: Segment, path: Path, threads: Optional[int] = None) -> SegmentRunner:
    if segment.backend == "onnxruntime":
        from runtime.segments.onnx_runner import OnnxRunner

        return OnnxRunner(segment, path, threads=threads)
    raise BackendError("segment %s uses backend %r, which this runtime cannot run yet; export the bundle "
                       "with onnxruntime segments" % (segment.id, segment.backend))
