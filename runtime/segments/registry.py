"""Chooses the runner class for a segment from its ``backend`` field."""
from pathlib import Path
from typing import Optional, Sequence

from edgesplit.runtime.bundle.manifest import Segment
from edgesplit.runtime.errors import BackendError
from edgesplit.runtime.segments.base import SegmentRunner


def open_runner(segment: Segment, path: Path, threads: Optional[int] = None,
                providers: Optional[Sequence[str]] = None) -> SegmentRunner:
    """``providers``: onnxruntime execution providers, already chosen (see ``edgesplit.runtime.segments.providers``)."""
    if segment.backend == "onnxruntime":
        from edgesplit.runtime.segments.onnx_runner import OnnxRunner

        if providers is None:
            return OnnxRunner(segment, path, threads=threads)
        return OnnxRunner(segment, path, threads=threads, providers=providers)
    if segment.backend == "tflite":
        from edgesplit.runtime.segments.tflite_runner import TfliteRunner

        return TfliteRunner(segment, path, threads=threads)
    raise BackendError("segment %s uses backend %r, which this runtime cannot run; export the bundle "
                       "with onnxruntime or tflite segments" % (segment.id, segment.backend))
