"""Dtypes and shapes of the tensors the splitter needs (cut tensors, weights of MAC-counting ops).

ONNX shape inference (with data propagation, so ``x.view(x.size(0), -1)`` resolves) answers most
of them. What it leaves unknown is measured: one onnxruntime run of the model with those tensors
added as outputs, on a batch of 1. In a model with a dynamic batch, the first dimension of every
activation stays dynamic (None); every other dimension must come out fixed.
"""
import logging
from dataclasses import dataclass
from typing import Dict, Iterable, List, Optional, Tuple

import numpy as np

from edgesplit.codegen.graph.errors import ModelError
from edgesplit.runtime.bundle.manifest import DTYPES, TensorSpec

log = logging.getLogger(__name__)

Dims = Tuple[Optional[int], ...]


@dataclass(frozen=True)
class TensorInfo:
    dtype: str  # numpy dtype name
    shape: Dims  # None: dynamic (the batch dimension) or not yet known


def _dtype_name(elem_type: int) -> Optional[str]:
    from onnx import helper

    if not elem_type:
        return None
    try:
        return np.dtype(helper.tensor_dtype_to_np_dtype(elem_type)).name
    except (KeyError, TypeError, ValueError):
        return "onnx-type-%d" % elem_type


def _value_info(value) -> Optional[TensorInfo]:
    tensor_type = value.type.tensor_type
    dtype = _dtype_name(tensor_type.elem_type)
    if dtype is None or not tensor_type.HasField("shape"):
        return None
    dims = tuple(int(d.dim_value) if d.HasField("dim_value") else None for d in tensor_type.shape.dim)
    return TensorInfo(dtype, dims)


class ShapeTable:
    """Shapes of a model's tensors: inferred once, measured on demand for the rest."""

    def __init__(self, model, data_inputs: Iterable[str]):
        import onnx

        self.model = model
        self.data_inputs = tuple(data_inputs)
        try:
            inferred = onnx.shape_inference.infer_shapes(model, data_prop=True)
        except (onnx.shape_inference.InferenceError, RuntimeError, ValueError) as exc:
            log.warning("ONNX shape inference failed (%s); measuring shapes with onnxruntime instead", exc)
            inferred = model
        self.info: Dict[str, TensorInfo] = {}
        graph = inferred.graph
        for value in list(graph.value_info) + list(graph.input) + list(graph.output):
            found = _value_info(value)
            if found is not None:
                self.info[value.name] = found
        for tensor in graph.initializer:
            self.info[tensor.name] = TensorInfo(_dtype_name(tensor.data_type), tuple(int(d) for d in tensor.dims))
        self.input_shapes = {name: self.info[name].shape if name in self.info else None for name in self.data_inputs}
        first = self.input_shapes[self.data_inputs[0]]
        self.dynamic_batch = bool(first) and first[0] is None

    # ------------------------------------------------------------ queries

    def known(self, name: str, batched: bool) -> bool:
        found = self.info.get(name)
        if found is None:
            return False
        dims = found.shape[1:] if batched and self.dynamic_batch else found.shape
        return all(d is not None for d in dims)

    def resolve(self, names: Dict[str, bool]) -> None:
        """Make sure every name (-> batched?) has a fully known shape, measuring the missing ones."""
        missing = [name for name, batched in names.items() if not self.known(name, batched)]
        if missing:
            self._measure(missing, names)

    def concrete(self, name: str) -> Tuple[int, ...]:
        """The shape with a dynamic batch dimension read as 1 (for byte and MAC counts)."""
        shape = self.info[name].shape
        return tuple(1 if d is None else d for d in shape)

    def spec(self, name: str, batched: bool) -> TensorSpec:
        found = self.info[name]
        if found.dtype not in DTYPES:
            raise ModelError("tensor %r has dtype %s, which bundles cannot carry (supported: %s)"
                             % (name, found.dtype, ", ".join(DTYPES)))
        shape = found.shape
        if batched and self.dynamic_batch and shape:
            shape = (None,) + tuple(shape[1:])
        return TensorSpec(name, found.dtype, tuple(shape), batched)

    # ------------------------------------------------------------ measuring

    def _probe_feeds(self) -> Dict[str, np.ndarray]:
        feeds = {}
        rng = np.random.default_rng(0)
        for name in self.data_inputs:
            found = self.info.get(name)
            if found is None:
                raise ModelError("model input %r has no declared type or shape; re-export the model with "
                                 "typed inputs" % name)
            shape: List[int] = []
            for axis, dim in enumerate(found.shape):
                if dim is None and axis == 0:
                    shape.append(1)
                elif dim is None:
                    raise ModelError("model input %r has a dynamic dimension at axis %d: the splitter needs "
                                     "every dimension but the batch fixed; re-export the model with a fixed "
                                     "input size" % (name, axis))
                else:
                    shape.append(dim)
            dtype = np.dtype(found.dtype)
            if dtype.kind == "f":
                feeds[name] = rng.standard_normal(shape).astype(dtype)
            else:
                feeds[name] = np.zeros(shape, dtype=dtype)
        return feeds

    def _measure(self, missing: List[str], batched: Dict[str, bool]) -> None:
        import onnx
        import onnxruntime as ort

        log.info("measuring %d tensor shapes that shape inference left unknown", len(missing))
        probe = onnx.ModelProto()
        probe.CopyFrom(self.model)
        existing = {o.name for o in probe.graph.output}
        for name in missing:
            if name not in existing:
                probe.graph.output.append(onnx.ValueInfoProto(name=name))
        options = ort.SessionOptions()
        options.log_severity_level = 3
        try:
            session = ort.InferenceSession(probe.SerializeToString(), sess_options=options,
                                           providers=["CPUExecutionProvider"])
            values = session.run(missing, self._probe_feeds())
        except ModelError:
            raise
        except Exception as exc:  # onnxruntime raises its own exception types per failure
            raise ModelError("onnxruntime cannot run the model to measure tensor shapes (%s): check that the "
                             "model runs with onnxruntime" % exc) from None
        for name, value in zip(missing, values):
            shape = tuple(int(d) for d in value.shape)
            if batched.get(name) and self.dynamic_batch and shape:
                shape = (None,) + shape[1:]
            self.info[name] = TensorInfo(np.dtype(value.dtype).name, shape)
