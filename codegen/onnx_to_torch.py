"""An ONNX segment as a torch module, so litert-torch can convert any bundle's segments to TFLite.

litert-torch converts torch modules; a user's bundle has ONNX segments and no torch source. This
module interprets the segment's graph node by node with torch operators. It is built once on a
sample (batch 1, as the TFLite files are): every value that does not depend on the input (weights,
``Constant``, ``ConstantOfShape``, ``Shape`` of a tensor whose shape is then fixed, and anything
computed only from those) is folded at build time, so shapes, axes and pads reach torch as Python
ints and the traced graph holds only the input-dependent operators.

Operators outside ``SUPPORTED_OPS`` are refused by name before anything is converted. The
exporter checks every converted file against onnxruntime on the same tensors, so an operator
implemented here with different semantics cannot slip through.
"""
import math
from typing import Callable, Dict, List, Mapping, Optional, Sequence

import numpy as np

from edgesplit.runtime.errors import EdgesplitError


class UnsupportedGraph(EdgesplitError):
    """The segment uses an operator (or an operator form) this interpreter does not implement."""


def _attrs(node) -> Dict:
    from onnx import helper

    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _text(value):
    return value.decode() if isinstance(value, bytes) else value


class _Node:
    """One graph node with its attributes decoded once."""

    def __init__(self, node, opset: int):
        self.op = node.op_type
        self.name = node.name or node.output[0]
        self.inputs = list(node.input)
        self.outputs = list(node.output)
        self.attrs = _attrs(node)
        self.opset = opset


# ---------------------------------------------------------------- operators
# Each takes (node, inputs, static) where ``inputs`` are torch tensors (None for an omitted
# optional input) and ``static(i)`` returns input i as a numpy value known at build time (or
# raises UnsupportedGraph); each returns a list of outputs.


def _ints(static, node, i) -> List[int]:
    return [int(v) for v in np.asarray(static(i)).reshape(-1)]


def _pool_padding(node, x, kernel: Sequence[int], strides: Sequence[int], dilations: Sequence[int], fill: float):
    """Symmetric padding for torch, or the input padded explicitly for asymmetric/SAME padding."""
    import torch.nn.functional as F

    dims = len(kernel)
    auto = _text(node.attrs.get("auto_pad", "NOTSET"))
    if auto in ("SAME_UPPER", "SAME_LOWER"):
        pads_begin, pads_end = [], []
        for d in range(dims):
            size = x.shape[2 + d]
            out = int(math.ceil(size / float(strides[d])))
            total = max(0, (out - 1) * strides[d] + (kernel[d] - 1) * dilations[d] + 1 - size)
            small, large = total // 2, total - total // 2
            pads_begin.append(small if auto == "SAME_UPPER" else large)
            pads_end.append(large if auto == "SAME_UPPER" else small)
    elif auto == "VALID":
        pads_begin, pads_end = [0] * dims, [0] * dims
    else:
        pads = list(node.attrs.get("pads", [0] * (2 * dims)))
        pads_begin, pads_end = pads[:dims], pads[dims:]
    if pads_begin == pads_end:
        return x, tuple(pads_begin)
    torch_pads = []
    for d in reversed(range(dims)):
        torch_pads += [pads_begin[d], pads_end[d]]
    return F.pad(x, torch_pads, value=fill), (0,) * dims


def _conv(node, inputs, static):
    import torch.nn.functional as F

    x, w = inputs[0], inputs[1]
    b = inputs[2] if len(inputs) > 2 else None
    dims = w.dim() - 2
    if dims not in (1, 2, 3):
        raise UnsupportedGraph("Conv with %d spatial dimensions" % dims)
    a = node.attrs
    strides = list(a.get("strides", [1] * dims))
    dilations = list(a.get("dilations", [1] * dims))
    x, padding = _pool_padding(node, x, list(w.shape[2:]), strides, dilations, 0.0)
    conv = (F.conv1d, F.conv2d, F.conv3d)[dims - 1]
    return [conv(x, w, b, stride=strides, padding=padding, dilation=dilations, groups=int(a.get("group", 1)))]


def _pool(kind):
    def run(node, inputs, static):
        import torch.nn.functional as F

        x = inputs[0]
        a = node.attrs
        kernel = list(a["kernel_shape"])
        dims = len(kernel)
        if dims not in (1, 2):
            raise UnsupportedGraph("%s over %d dimensions" % (node.op, dims))
        strides = list(a.get("strides", [1] * dims))
        dilations = list(a.get("dilations", [1] * dims))
        ceil = bool(a.get("ceil_mode", 0))
        if kind == "max":
            x, padding = _pool_padding(node, x, kernel, strides, dilations, float("-inf"))
            pool = (F.max_pool1d, F.max_pool2d)[dims - 1]
            return [pool(x, kernel, strides, padding, dilations, ceil_mode=ceil)]
        include = bool(a.get("count_include_pad", 0))
        padded, padding = _pool_padding(node, x, kernel, strides, [1] * dims, 0.0)
        pool = (F.avg_pool1d, F.avg_pool2d)[dims - 1]
        if padded is x or include:
            return [pool(padded, kernel, strides, padding, ceil_mode=ceil, count_include_pad=include)]
        # Asymmetric padding left out of the count: the sum over each window over how many real values it saw.
        ones, _ = _pool_padding(node, x[:, :1] * 0 + 1, kernel, strides, [1] * dims, 0.0)
        sums = pool(padded, kernel, strides, 0, ceil_mode=ceil, count_include_pad=True)
        counts = pool(ones, kernel, strides, 0, ceil_mode=ceil, count_include_pad=True)
        return [sums / counts]
    return run


def _gemm(node, inputs, static):
    a_, b_ = inputs[0], inputs[1]
    c = inputs[2] if len(inputs) > 2 else None
    a = node.attrs
    if a.get("transA", 0):
        a_ = a_.t()
    if a.get("transB", 0):
        b_ = b_.t()
    y = float(a.get("alpha", 1.0)) * (a_ @ b_)
    if c is not None:
        y = y + float(a.get("beta", 1.0)) * c
    return [y]


def _softmax(fn_name):
    def run(node, inputs, static):
        import torch

        x = inputs[0]
        fn = getattr(torch, fn_name)
        if node.opset >= 13:
            return [fn(x, dim=int(node.attrs.get("axis", -1)))]
        axis = int(node.attrs.get("axis", 1)) % x.dim()  # before opset 13: over the flattened trailing dims
        rows = int(np.prod(x.shape[:axis])) if axis else 1
        return [fn(x.reshape(rows, -1), dim=1).reshape(x.shape)]
    return run


def _clip(node, inputs, static):
    import torch

    if node.opset < 11:
        low, high = node.attrs.get("min"), node.attrs.get("max")
    else:
        low = float(static(1)) if len(inputs) > 1 and inputs[1] is not None else None
        high = float(static(2)) if len(inputs) > 2 and inputs[2] is not None else None
    return [torch.clamp(inputs[0], min=low, max=high)]


def _reshape(node, inputs, static):
    x = inputs[0]
    shape = _ints(static, node, 1) if node.opset >= 5 else list(node.attrs["shape"])
    if not node.attrs.get("allowzero", 0):
        shape = [x.shape[i] if s == 0 else s for i, s in enumerate(shape)]
    return [x.reshape(shape)]


def _flatten(node, inputs, static):
    x = inputs[0]
    axis = int(node.attrs.get("axis", 1)) % (x.dim() + 1) if x.dim() else 0
    rows = int(np.prod(x.shape[:axis])) if axis else 1
    return [x.reshape(rows, -1)]


def _axes(node, inputs, static, index: int, since: int) -> Optional[List[int]]:
    if node.opset >= since:
        return _ints(static, node, index) if len(inputs) > index and inputs[index] is not None else None
    axes = node.attrs.get("axes")
    return None if axes is None else list(axes)


def _unsqueeze(node, inputs, static):
    x = inputs[0]
    axes = _axes(node, inputs, static, 1, 13)
    rank = x.dim() + len(axes)
    for axis in sorted(a % rank for a in axes):
        x = x.unsqueeze(axis)
    return [x]


def _squeeze(node, inputs, static):
    x = inputs[0]
    axes = _axes(node, inputs, static, 1, 13)
    if axes is None:
        axes = [i for i, s in enumerate(x.shape) if s == 1]
    for axis in sorted((a % x.dim() for a in axes), reverse=True):
        x = x.squeeze(axis)
    return [x]


def _gather(node, inputs, static):
    import torch

    x = inputs[0]
    axis = int(node.attrs.get("axis", 0)) % x.dim()
    indices = np.asarray(static(1)).astype(np.int64)
    indices = np.where(indices < 0, indices + x.shape[axis], indices)
    picked = torch.index_select(x, axis, torch.from_numpy(indices.reshape(-1)))
    return [picked.reshape(tuple(x.shape[:axis]) + indices.shape + tuple(x.shape[axis + 1:]))]


def _slice(node, inputs, static):
    x = inputs[0]
    if node.opset < 10:
        starts, ends = list(node.attrs["starts"]), list(node.attrs["ends"])
        axes = list(node.attrs.get("axes", range(len(starts))))
        steps = [1] * len(starts)
    else:
        starts, ends = _ints(static, node, 1), _ints(static, node, 2)
        axes = _ints(static, node, 3) if len(inputs) > 3 and inputs[3] is not None else list(range(len(starts)))
        steps = _ints(static, node, 4) if len(inputs) > 4 and inputs[4] is not None else [1] * len(starts)
    index = [slice(None)] * x.dim()
    for start, end, axis, step in zip(starts, ends, axes, steps):
        if step < 1:
            raise UnsupportedGraph("Slice with step %d (torch slices forward only)" % step)
        size = x.shape[axis % x.dim()]
        index[axis % x.dim()] = slice(max(-size, min(start, size)), max(-size, min(end, size)), step)
    return [x[tuple(index)]]


def _split(node, inputs, static):
    import torch

    x = inputs[0]
    axis = int(node.attrs.get("axis", 0)) % x.dim()
    if node.opset >= 13 and len(inputs) > 1 and inputs[1] is not None:
        sizes = _ints(static, node, 1)
    elif "split" in node.attrs:
        sizes = list(node.attrs["split"])
    else:
        parts = int(node.attrs.get("num_outputs", len(node.outputs)))
        sizes = [int(math.ceil(x.shape[axis] / float(parts)))] * parts
        sizes[-1] = x.shape[axis] - sum(sizes[:-1])
    return list(torch.split(x, sizes, dim=axis))


def _pad(node, inputs, static):
    import torch.nn.functional as F

    mode = _text(node.attrs.get("mode", "constant"))
    if mode != "constant":
        raise UnsupportedGraph("Pad mode %r" % mode)
    x = inputs[0]
    if node.opset < 11:
        pads, value = list(node.attrs["pads"]), float(node.attrs.get("value", 0.0))
    else:
        pads = _ints(static, node, 1)
        value = float(static(2)) if len(inputs) > 2 and inputs[2] is not None else 0.0
    dims = len(pads) // 2
    torch_pads = []
    for d in reversed(range(dims)):
        torch_pads += [pads[d], pads[dims + d]]
    return [F.pad(x, torch_pads, value=value)]


def _reduce(fn_name, axes_input_since):
    def run(node, inputs, static):
        x = inputs[0]
        axes = _axes(node, inputs, static, 1, axes_input_since)
        keep = bool(node.attrs.get("keepdims", 1))
        if axes is None:
            axes = list(range(x.dim()))
        axes = sorted(a % x.dim() for a in axes)
        if fn_name == "amax":
            return [x.amax(dim=axes, keepdim=keep)]
        return [getattr(x, fn_name)(dim=axes, keepdim=keep)]
    return run


def _constant(node, inputs, static):
    import torch
    from onnx import numpy_helper

    a = node.attrs
    if "value" in a:
        value = numpy_helper.to_array(a["value"])
    elif "value_float" in a or "value_int" in a:
        value = np.array(a.get("value_float", a.get("value_int")))
    elif "value_floats" in a or "value_ints" in a:
        value = np.array(a.get("value_floats", a.get("value_ints")))
    else:
        raise UnsupportedGraph("Constant with attribute %s" % sorted(a))
    return [torch.from_numpy(np.array(value))]


def _constant_of_shape(node, inputs, static):
    import torch
    from onnx import numpy_helper

    value = numpy_helper.to_array(node.attrs["value"]) if "value" in node.attrs else np.zeros(1, np.float32)
    return [torch.from_numpy(np.full(_ints(static, node, 0), value.reshape(-1)[0], dtype=value.dtype))]


def _shape(node, inputs, static):
    import torch

    dims = list(inputs[0].shape)
    start, end = int(node.attrs.get("start", 0)), node.attrs.get("end")
    return [torch.tensor(dims[start:end] if end is not None else dims[start:], dtype=torch.int64)]


def _cast(node, inputs, static):
    from onnx import helper

    import torch

    dtype = np.dtype(helper.tensor_dtype_to_np_dtype(int(node.attrs["to"])))
    return [inputs[0].to(getattr(torch, dtype.name if dtype.name != "bool" else "bool"))]


def _unary(fn: Callable):
    return lambda node, inputs, static: [fn(node, inputs[0])]


def _nary(fn: Callable):
    def run(node, inputs, static):
        out = inputs[0]
        for x in inputs[1:]:
            out = fn(out, x)
        return [out]
    return run


def _ops():
    import torch
    import torch.nn.functional as F

    a = lambda node, name, default: float(node.attrs.get(name, default))  # noqa: E731
    return {
        "Conv": _conv, "MaxPool": _pool("max"), "AveragePool": _pool("avg"),
        "GlobalAveragePool": _unary(lambda n, x: x.mean(dim=tuple(range(2, x.dim())), keepdim=True)),
        "GlobalMaxPool": _unary(lambda n, x: x.amax(dim=tuple(range(2, x.dim())), keepdim=True)),
        "BatchNormalization": lambda n, i, s: [F.batch_norm(i[0], i[3], i[4], i[1], i[2], False, 0.0,
                                                            a(n, "epsilon", 1e-5))],
        "LRN": lambda n, i, s: [F.local_response_norm(i[0], int(n.attrs["size"]), a(n, "alpha", 1e-4),
                                                      a(n, "beta", 0.75), a(n, "bias", 1.0))],
        "Gemm": _gemm, "MatMul": lambda n, i, s: [torch.matmul(i[0], i[1])],
        "Relu": _unary(lambda n, x: torch.relu(x)), "Sigmoid": _unary(lambda n, x: torch.sigmoid(x)),
        "Tanh": _unary(lambda n, x: torch.tanh(x)), "Exp": _unary(lambda n, x: torch.exp(x)),
        "Sqrt": _unary(lambda n, x: torch.sqrt(x)), "Neg": _unary(lambda n, x: -x),
        "Abs": _unary(lambda n, x: torch.abs(x)), "Erf": _unary(lambda n, x: torch.erf(x)),
        "Reciprocal": _unary(lambda n, x: 1.0 / x),
        "LeakyRelu": _unary(lambda n, x: F.leaky_relu(x, a(n, "alpha", 0.01))),
        "Elu": _unary(lambda n, x: F.elu(x, a(n, "alpha", 1.0))),
        "HardSigmoid": _unary(lambda n, x: torch.clamp(a(n, "alpha", 0.2) * x + a(n, "beta", 0.5), 0.0, 1.0)),
        "HardSwish": _unary(lambda n, x: x * torch.clamp(x / 6.0 + 0.5, 0.0, 1.0)),
        "PRelu": lambda n, i, s: [torch.where(i[0] < 0, i[0] * i[1], i[0])],
        "Clip": _clip, "Softmax": _softmax("softmax"), "LogSoftmax": _softmax("log_softmax"),
        "Identity": _unary(lambda n, x: x), "Dropout": lambda n, i, s: [i[0], None],
        "Add": _nary(torch.add), "Sub": lambda n, i, s: [i[0] - i[1]], "Mul": _nary(torch.mul),
        "Div": lambda n, i, s: [i[0] / i[1]], "Pow": lambda n, i, s: [torch.pow(i[0], i[1])],
        "Sum": _nary(torch.add), "Max": _nary(torch.maximum), "Min": _nary(torch.minimum),
        "Mean": lambda n, i, s: [_nary(torch.add)(n, i, s)[0] / float(len(i))],
        "Concat": lambda n, i, s: [torch.cat(list(i), dim=int(n.attrs["axis"]))],
        "Reshape": _reshape, "Flatten": _flatten,
        "Transpose": lambda n, i, s: [i[0].permute(*(n.attrs.get("perm") or reversed(range(i[0].dim()))))],
        "Unsqueeze": _unsqueeze, "Squeeze": _squeeze, "Gather": _gather, "Slice": _slice, "Split": _split,
        "Pad": _pad, "ReduceMean": _reduce("mean", 18), "ReduceSum": _reduce("sum", 13),
        "ReduceMax": _reduce("amax", 18), "Constant": _constant, "ConstantOfShape": _constant_of_shape,
        "Shape": _shape, "Cast": _cast,
    }


SUPPORTED_OPS = ("Abs", "Add", "AveragePool", "BatchNormalization", "Cast", "Clip", "Concat", "Constant",
                 "ConstantOfShape", "Conv", "Div", "Dropout", "Elu", "Erf", "Exp", "Flatten", "Gather", "Gemm",
                 "GlobalAveragePool", "GlobalMaxPool", "HardSigmoid", "HardSwish", "Identity", "LRN", "LeakyRelu",
                 "LogSoftmax", "MatMul", "Max", "MaxPool", "Mean", "Min", "Mul", "Neg", "PRelu", "Pad", "Pow",
                 "Reciprocal", "ReduceMax", "ReduceMean", "ReduceSum", "Relu", "Reshape", "Shape", "Sigmoid",
                 "Slice", "Softmax", "Split", "Sqrt", "Squeeze", "Sub", "Sum", "Tanh", "Transpose", "Unsqueeze")


def unsupported_ops(model) -> List[str]:
    """Operator types of ``model`` (an onnx ModelProto) that this interpreter does not implement."""
    return sorted({n.op_type for n in model.graph.node
                   if n.op_type not in SUPPORTED_OPS or n.domain not in ("", "ai.onnx")})


# ---------------------------------------------------------------- the module


def onnx_segment_module(model, input_names: Sequence[str], output_names: Sequence[str],
                        sample: Mapping[str, np.ndarray]):
    """A torch module computing ``model``'s ``output_names`` from its ``input_names`` (positionally).

    ``sample`` (batch 1) fixes the shapes; values computable without the inputs are folded.
    Raises ``UnsupportedGraph`` naming the first operator it cannot interpret.
    """
    import torch
    from onnx import numpy_helper

    missing = unsupported_ops(model)
    if missing:
        raise UnsupportedGraph("operator%s %s not supported (the interpreter covers %d common CNN operators, "
                               "listed in edgesplit.codegen.onnx_to_torch.SUPPORTED_OPS)"
                               % ("s" if len(missing) > 1 else "", ", ".join(missing) + (" are" if len(missing) > 1
                                                                                      else " is"), len(SUPPORTED_OPS)))
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 13)
    ops = _ops()
    nodes = [_Node(n, opset) for n in model.graph.node]
    static = {i.name: torch.from_numpy(numpy_helper.to_array(i).copy()) for i in model.graph.initializer}
    eager = {name: torch.from_numpy(np.ascontiguousarray(sample[name][:1])) for name in input_names}
    plan = []  # nodes that depend on the inputs: run at every call
    for node in nodes:
        known = all(i == "" or i in static for i in node.inputs)
        source = static if known else _Merged(eager, static)
        values = [None if i == "" else source[i] for i in node.inputs]
        try:
            with torch.no_grad():
                outputs = ops[node.op](node, values, _static_getter(node, static))
        except UnsupportedGraph as exc:
            raise UnsupportedGraph("node %s (%s): %s" % (node.name, node.op, exc)) from None
        if known or node.op == "Shape":  # a Shape's value is fixed once the batch is
            static.update((o, v) for o, v in zip(node.outputs, outputs) if o and v is not None)
        else:
            eager.update((o, v) for o, v in zip(node.outputs, outputs) if o and v is not None)
            plan.append(node)
    used = {i for node in plan for i in node.inputs if i in static} | {o for o in output_names if o in static}
    return _GraphModule(ops, plan, list(input_names), list(output_names), {k: static[k] for k in used})


class _Merged(dict):
    def __init__(self, first, second):
        super().__init__()
        self.first, self.second = first, second

    def __getitem__(self, key):
        return self.first[key] if key in self.first else self.second[key]


def _static_getter(node, static):
    def get(index: int):
        name = node.inputs[index]
        if name not in static:
            raise UnsupportedGraph("input %d (%s) must be known before the model runs (a constant or a shape), "
                                   "but it depends on the model input" % (index, name))
        return static[name].numpy()
    return get


def _module_class():
    import torch

    class GraphModule(torch.nn.Module):
        def __init__(self, ops, plan, input_names, output_names, constants):
            super().__init__()
            self.ops, self.plan = ops, plan
            self.input_names, self.output_names = input_names, output_names
            self.constant_names = {}  # onnx name -> buffer name (onnx names are not attribute names)
            self.static_values = {}  # onnx name -> numpy, for the shapes/axes operators read as ints
            for k, (name, value) in enumerate(sorted(constants.items())):
                self.constant_names[name] = "const%d" % k
                self.register_buffer("const%d" % k, value, persistent=False)
                self.static_values[name] = value.numpy()

        def forward(self, *inputs):
            env = dict(zip(self.input_names, inputs))
            for name, attr in self.constant_names.items():
                env[name] = getattr(self, attr)
            for node in self.plan:
                values = [None if i == "" else env[i] for i in node.inputs]
                outputs = self.ops[node.op](node, values, self._static(node))
                env.update((o, v) for o, v in zip(node.outputs, outputs) if o and v is not None)
            produced = tuple(env[name] for name in self.output_names)
            return produced[0] if len(produced) == 1 else produced

        def _static(self, node):
            def get(index: int):
                name = node.inputs[index]
                if name not in self.static_values:
                    raise UnsupportedGraph("node %s: input %s must be a constant" % (node.name, name))
                return self.static_values[name]
            return get

    return GraphModule


def _GraphModule(ops, plan, input_names, output_names, constants):  # noqa: N802 (a class made on demand)
    return _module_class()(ops, plan, input_names, output_names, constants).eval()
