"""Multiply-accumulate counts per sample, for the ops that carry a CNN's compute.

Conv: output elements x Cin/group x kernel area. ConvTranspose: input elements x Cout/group x
kernel area. Gemm and MatMul: output elements x the reduced dimension. Everything else
(BatchNorm, activations, pooling, elementwise) counts 0: small next to these, and not what a cut
decision turns on. Counts are per sample: the first (batch) dimension is left out.
"""
from typing import Callable, Dict, List, Tuple

Shape = Tuple[int, ...]


def _prod(dims) -> int:
    count = 1
    for dim in dims:
        count *= int(dim)
    return count


def _attr(node, name: str, default: int) -> int:
    for attribute in node.attribute:
        if attribute.name == name:
            return int(attribute.i)
    return default


def tensors_needed(node) -> Dict[str, bool]:
    """Tensor name -> batched? whose shapes ``node_macs`` reads for this node."""
    op = node.op_type
    if op == "Conv":
        return {node.output[0]: True, node.input[1]: False}
    if op == "ConvTranspose":
        return {node.input[0]: True, node.input[1]: False}
    if op in ("Gemm", "MatMul"):
        return {node.input[0]: True, node.output[0]: True}
    return {}


def node_macs(node, shape_of: Callable[[str], Shape]) -> int:
    """MACs per sample of one node; ``shape_of`` gives a tensor's concrete shape (batch read as 1)."""
    op = node.op_type
    if op == "Conv":
        return _prod(shape_of(node.output[0])[1:]) * _prod(shape_of(node.input[1])[1:])
    if op == "ConvTranspose":
        return _prod(shape_of(node.input[0])[1:]) * _prod(shape_of(node.input[1])[1:])
    if op == "Gemm":
        a_shape = shape_of(node.input[0])
        reduced = a_shape[0] if _attr(node, "transA", 0) else a_shape[-1]
        return _prod(shape_of(node.output[0])[1:]) * int(reduced)
    if op == "MatMul":
        out_shape = shape_of(node.output[0])
        per_sample = out_shape[1:] if len(out_shape) > 1 else out_shape
        return _prod(per_sample) * int(shape_of(node.input[0])[-1])
    return 0


def needed_for(nodes: List[object]) -> Dict[str, bool]:
    needed: Dict[str, bool] = {}
    for node in nodes:
        needed.update(tensors_needed(node))
    return needed
