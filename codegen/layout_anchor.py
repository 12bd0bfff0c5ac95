"""Layout anchors: keep onnxruntime's blocked layout flowing across a segment boundary.

On x86, onnxruntime's NCHWc transformer runs convolutions in a channel-blocked layout and converts
a graph input to it only where a Conv reads it (ReorderInput). A segment whose input tensor is also
read by something else (the identity skip of a residual block: an Add, then a Relu) leaves that Add
reading the plain NCHW tensor, so the Add cannot be fused into the block's last convolution, and
every later skip in the segment stays in NCHW with a reorder at each block (ResNet-50, a segment
starting inside stage 3: four unfused Add+Relu pairs and eight extra reorders, about 0.7 ms of a
40-80 ms model; bench/segment_overhead.py).

The anchor is a 1x1 depthwise convolution with weight 1 and no bias on that input, read by all of
its former readers: exact (every value is multiplied by 1.0), about one multiply per element (0.2 M
for a 1024x14x14 tensor against ResNet-50's 4.1 G), and a Conv, so onnxruntime converts the tensor
once and every reader, the skip included, stays in the blocked layout. Boards without the NCHWc
pass (ARM) pay the one cheap pass and nothing else. A segment's MACs in the manifest stay the
model's own; the anchors are not counted.

Measured (ResNet-50, auto cuts, one thread, 60 interleaved rounds on the 2-core x86 VM): chained /
monolithic 1.042 without anchors, 1.019 with them.
"""
from typing import List

import numpy as np

# The pattern an anchor pays for: a tensor (or its activation) read both by a Conv, which onnxruntime
# converts from, and by a residual Add, which would otherwise stay in NCHW. Anywhere else it is a
# pure cost: anchoring every input not read by convolutions alone (Relu-only segments, pooling) made
# ResNet-50's 40-segment chain 1.22x the whole model instead of 1.12-1.15x.
CONVERTING_READERS = ("Conv",)
RESIDUAL_READERS = ("Add", "Sum")
ACTIVATIONS = ("Relu", "LeakyRelu", "Clip", "Sigmoid", "HardSigmoid", "Tanh")
FLOAT = 1  # onnx.TensorProto.FLOAT


def anchor_inputs(model) -> List[str]:
    """Add an anchor for every 4-D float32 graph input with a known channel count that is worth one
    (``_worth_anchoring``); returns the anchored input names. The model is changed in place."""
    from onnx import helper, numpy_helper

    graph = model.graph
    initializers = {t.name for t in graph.initializer}
    taken = {name for node in graph.node for name in list(node.input) + list(node.output)} | initializers
    readers_of = {}
    for node in graph.node:
        for tensor in node.input:
            readers_of.setdefault(tensor, []).append(node)
    anchored = []
    for value in graph.input:
        if value.name in initializers or not _is_4d_float_with_channels(value):
            continue
        if not _worth_anchoring(readers_of, value.name):
            continue
        readers = readers_of[value.name]
        channels = value.type.tensor_type.shape.dim[1].dim_value
        output = _unique(value.name + "__layout", taken)
        weight = _unique(value.name + "__layout_ones", taken)
        for node in readers:
            for i, name in enumerate(node.input):
                if name == value.name:
                    node.input[i] = output
        graph.initializer.append(numpy_helper.from_array(np.ones((channels, 1, 1, 1), dtype=np.float32), weight))
        graph.node.insert(0, helper.make_node("Conv", [value.name, weight], [output], name=output,
                                              group=channels, kernel_shape=[1, 1]))
        anchored.append(value.name)
    return anchored


def _worth_anchoring(readers_of, name: str) -> bool:
    """Is ``name``, or an activation of it, read both by a Conv and by a residual Add?"""
    ops, frontier, seen = set(), [name], set()
    while frontier:
        tensor = frontier.pop()
        if tensor in seen:
            continue
        seen.add(tensor)
        for node in readers_of.get(tensor, ()):
            if node.op_type in ACTIVATIONS:
                frontier.extend(node.output)
            else:
                ops.add(node.op_type)
    return bool(ops & set(CONVERTING_READERS)) and bool(ops & set(RESIDUAL_READERS))


def _is_4d_float_with_channels(value) -> bool:
    tensor_type = value.type.tensor_type
    if tensor_type.elem_type != FLOAT or not tensor_type.HasField("shape"):
        return False
    dims = tensor_type.shape.dim
    return len(dims) == 4 and dims[1].HasField("dim_value") and dims[1].dim_value > 0


def _unique(name: str, taken: set) -> str:
    candidate, n = name, 1
    while candidate in taken:
        n += 1
        candidate = "%s%d" % (name, n)
    taken.add(candidate)
    return candidate
