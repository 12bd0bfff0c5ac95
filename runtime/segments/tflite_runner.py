"""TFLite backend: ``ai_edge_litert`` where it installs (Python >= 3.10), else ``tflite_runtime``.

A segment file carries one signature whose input and output names are the manifest's tensor names
(``edgesplit.codegen.tflite_export`` writes them so; a name that is not a Python identifier, such as
``/layer1/Relu_output_0``, is spelled by ``signature_name``, since the converter names signature
entries after keyword arguments), and whose tensors keep the NCHW layout of the ONNX
segments: the tensors crossing a cut are the same bytes whichever backend produced them.

Calls go through the signature runner only: calling ``invoke()`` on an interpreter after
``get_signature_runner()`` is not supported by TFLite. Exported files have a fixed batch of 1 (a
Flatten becomes a Reshape to a constant shape), so a batch of N is run as N single-row calls.
"""
import hashlib
import keyword
import logging
import re
from pathlib import Path
from typing import Dict, List, Mapping, Optional

import numpy as np

from edgesplit.runtime.bundle.manifest import Segment
from edgesplit.runtime.errors import BackendError, InputError
from edgesplit.runtime.segments.base import SegmentRunner

log = logging.getLogger(__name__)

INSTALL_HINT = ("pip install ai-edge-litert (Python >= 3.10) or pip install tflite-runtime 'numpy<2' "
                "(Python 3.8/3.9, e.g. Jetson JetPack 4 or Raspberry Pi OS)")


def signature_name(tensor_name: str) -> str:
    """A tensor's name in a TFLite signature: the manifest name when it is an identifier, else a safe spelling.

    The spelling keeps the readable part and adds a short hash of the original, so two names that
    differ only in punctuation stay distinct.
    """
    if tensor_name.isidentifier() and not keyword.iskeyword(tensor_name):
        return tensor_name
    readable = re.sub(r"\W+", "_", tensor_name).strip("_") or "tensor"
    return "t_%s_%s" % (readable, hashlib.sha1(tensor_name.encode("utf-8")).hexdigest()[:8])


def interpreter_class():
    """The TFLite ``Interpreter`` class of whichever TFLite package is installed."""
    try:
        from ai_edge_litert.interpreter import Interpreter

        return Interpreter
    except ImportError:
        pass
    try:
        from tflite_runtime.interpreter import Interpreter

        return Interpreter
    except ImportError:
        raise BackendError("TFLite segments need a TFLite interpreter and none is installed: " + INSTALL_HINT) from None


def tflite_library() -> str:
    """Which TFLite package and version this process would use (for logs and profiles)."""
    try:
        import ai_edge_litert

        return "ai-edge-litert %s" % getattr(ai_edge_litert, "__version__", "?")
    except ImportError:
        pass
    try:
        import tflite_runtime

        return "tflite-runtime %s" % getattr(tflite_runtime, "__version__", "?")
    except ImportError:
        return "none"


class TfliteRunner(SegmentRunner):
    def __init__(self, segment: Segment, path: Path, threads: Optional[int] = None):
        interpreter_cls = interpreter_class()
        self.segment_id = segment.id
        self.segment = segment
        self.input_names = [t.name for t in segment.inputs]
        self.output_names = [t.name for t in segment.outputs]
        self._sig = {name: signature_name(name) for name in self.input_names + self.output_names}
        try:
            self.interpreter = interpreter_cls(model_path=str(path), num_threads=threads or 1)
            signatures = self.interpreter.get_signature_list()
        except (ValueError, RuntimeError) as exc:  # what TFLite raises for unreadable files and unknown ops
            raise BackendError("segment %s (%s): TFLite cannot load it: %s (a newer converter may emit ops this "
                               "TFLite version lacks: %s)" % (segment.id, path, exc, tflite_library())) from None
        self.signature_key = self._pick_signature(signatures, path)
        self.signature = self.interpreter.get_signature_runner(self.signature_key)
        details = self.signature.get_input_details()
        # Batch dimension fixed in the file (-1 in shape_signature means dynamic).
        by_signature = {self._sig[name]: name for name in self.input_names}
        self._fixed_batch = {by_signature[key]: int(d["shape_signature"][0]) for key, d in details.items()
                             if len(d["shape_signature"]) and int(d["shape_signature"][0]) > 0}

    def _pick_signature(self, signatures: Dict[str, Dict[str, List[str]]], path: Path) -> str:
        want_in = sorted(self._sig[n] for n in self.input_names)
        want_out = sorted(self._sig[n] for n in self.output_names)
        for key, io in sorted(signatures.items()):
            if sorted(io.get("inputs", [])) == want_in and set(want_out) <= set(io.get("outputs", [])):
                return key
        raise BackendError("segment %s (%s): no signature has the manifest's inputs %s and outputs %s (the file "
                           "has %s); re-export it with 'edgesplit export-tflite'"
                           % (self.segment_id, path, self.input_names, self.output_names, signatures or "none"))

    def run(self, feeds: Mapping[str, np.ndarray]) -> Dict[str, np.ndarray]:
        inputs = {name: np.ascontiguousarray(feeds[name]) for name in self.input_names}
        sig = self._sig
        batch = self._batch_of(inputs)
        if batch is None:
            produced = self.signature(**{sig[name]: array for name, array in inputs.items()})
            return {name: produced[sig[name]] for name in self.output_names}
        rows = [self.signature(**{sig[name]: inputs[name][i:i + 1] for name in self.input_names})
                for i in range(batch)]
        return {name: np.concatenate([row[sig[name]] for row in rows], axis=0) for name in self.output_names}

    def _batch_of(self, inputs: Dict[str, np.ndarray]) -> Optional[int]:
        """The batch to split into single rows, or None when the file takes the inputs as they are."""
        split = None
        for name, fixed in self._fixed_batch.items():
            got = inputs[name].shape[0] if inputs[name].ndim else 1
            if got == fixed:
                continue
            if fixed != 1:
                raise InputError("segment %s: tensor %r has batch %d but this TFLite file takes exactly %d"
                                 % (self.segment_id, name, got, fixed))
            split = got
        return split
