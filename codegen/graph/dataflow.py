"""The data DAG of an ONNX graph, with ancestor sets as bitsets.

Every tensor is one of three kinds:

- ``constant``: initializers, Constant outputs, and anything computed only from constants (the
  weights of model-zoo "light" graphs are ConstantOfShape nodes, for example);
- ``shape``: tensors derived only from shapes (Shape/Size and nodes computed from those and
  constants): tiny int64 vectors that do not carry activations;
- ``data``: everything else (activations), starting at the graph's non-initializer inputs.

Nodes producing constants are left out of the DAG (every segment recomputes or folds them); the
other nodes ("live" nodes, those the graph output depends on) get a bit index, and each has an
ancestor set stored as a Python int bitset. Bitsets make partitions and their crossings cheap to
compute without relying on any particular topological order.
"""
import heapq
import logging
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Set, Tuple

from edgesplit.codegen.graph.errors import ModelError

log = logging.getLogger(__name__)

CONSTANT, SHAPE, DATA = "constant", "shape", "data"
SHAPE_OPS = ("Shape", "Size")


@dataclass
class Tensor:
    name: str
    kind: str
    producer: Optional[int]  # bit index of the producing live node; None for a graph input
    consumers: int = 0  # bitset of live nodes that read it; bit ``sink`` = a graph output


@dataclass
class DataFlow:
    """Live nodes (bit index -> ONNX node), tensor kinds, ancestor bitsets."""

    nodes: List[object]  # onnx NodeProto, in a topological order
    kinds: List[str]  # per live node: SHAPE or DATA
    ancestors: List[int]  # per live node: bitset of live ancestors
    tensors: Dict[str, Tensor]  # every non-constant tensor the live nodes touch
    inputs: Tuple[str, ...]  # graph data inputs
    output: str
    sink: int  # the pseudo-node bit that stands for "the graph output is read after the model"
    kind_of: Dict[str, str] = field(default_factory=dict)  # every tensor name -> kind

    @property
    def full(self) -> int:
        return (1 << len(self.nodes)) - 1

    @property
    def data_mask(self) -> int:
        mask = 0
        for index, kind in enumerate(self.kinds):
            if kind == DATA:
                mask |= 1 << index
        return mask


def node_inputs(node) -> List[str]:
    """A node's inputs, including outer-scope names read inside its subgraphs (If/Loop/Scan)."""
    names = [name for name in node.input if name]
    for attribute in node.attribute:
        graphs = list(attribute.graphs)
        if attribute.HasField("g"):
            graphs.append(attribute.g)
        for graph in graphs:
            names.extend(sorted(_outer_names(graph)))
    return names


def _outer_names(graph) -> Set[str]:
    defined = {i.name for i in graph.input} | {t.name for t in graph.initializer}
    used: Set[str] = set()
    for node in graph.node:
        used.update(name for name in node_inputs(node) if name)
        defined.update(node.output)
    return used - defined


def topological_order(nodes, available: Set[str]) -> List[int]:
    """Kahn's algorithm over node indices; raise ModelError on a cycle or a dangling input."""
    producer = {}
    for index, node in enumerate(nodes):
        for name in node.output:
            if name:
                producer[name] = index
    waiting = []
    users: Dict[int, List[int]] = {}
    for index, node in enumerate(nodes):
        deps = set()
        for name in node_inputs(node):
            if name in producer:
                deps.add(producer[name])
            elif name not in available:
                raise ModelError("node %r (%s) reads tensor %r, which no node produces and which is not a graph "
                                 "input or initializer" % (node.name, node.op_type, name))
        waiting.append(len(deps))
        for dep in deps:
            users.setdefault(dep, []).append(index)
    # Smallest index first, so a graph that is already sorted keeps its order.
    ready = [i for i, count in enumerate(waiting) if count == 0]
    heapq.heapify(ready)
    order = []
    while ready:
        index = heapq.heappop(ready)
        order.append(index)
        for user in users.get(index, ()):
            waiting[user] -= 1
            if waiting[user] == 0:
                heapq.heappush(ready, user)
    if len(order) != len(nodes):
        raise ModelError("the graph has a cycle (%d nodes are never ready)" % (len(nodes) - len(order)))
    return order


def classify_tensors(graph, order: List[int]) -> Dict[str, str]:
    """Kind of every tensor: constant, shape or data (see the module docstring)."""
    initializers = {t.name for t in graph.initializer}
    kind_of = {name: CONSTANT for name in initializers}
    for value in graph.input:
        if value.name not in initializers:
            kind_of[value.name] = DATA
    for index in order:
        node = graph.node[index]
        kinds = [kind_of[name] for name in node_inputs(node)]
        if node.op_type == "Constant" or all(k == CONSTANT for k in kinds):
            kind = CONSTANT
        elif node.op_type in SHAPE_OPS or all(k in (CONSTANT, SHAPE) for k in kinds):
            kind = SHAPE
        else:
            kind = DATA
        for name in node.output:
            if name:
                kind_of[name] = kind
    return kind_of


def build_dataflow(model) -> DataFlow:
    """The live data/shape DAG of ``model`` (single output), with ancestor bitsets."""
    graph = model.graph
    initializers = {t.name for t in graph.initializer}
    inputs = tuple(v.name for v in graph.input if v.name not in initializers)
    order = topological_order(graph.node, set(inputs) | initializers)
    kind_of = classify_tensors(graph, order)
    output = graph.output[0].name
    if kind_of.get(output) != DATA:
        raise ModelError("the model output %r does not depend on the model input (it is a %s tensor)"
                         % (output, kind_of.get(output, "missing")))

    # Live nodes: non-constant nodes the output depends on, found walking back from the output.
    producer_of = {}
    for index in order:
        for name in graph.node[index].output:
            if name:
                producer_of[name] = index
    live: Set[int] = set()
    stack = [output]
    while stack:
        name = stack.pop()
        index = producer_of.get(name)
        if index is None or index in live or kind_of[name] == CONSTANT:
            continue
        live.add(index)
        stack.extend(node_inputs(graph.node[index]))
    live_order = [i for i in order if i in live]
    nodes = [graph.node[i] for i in live_order]
    sink = len(nodes)

    tensors: Dict[str, Tensor] = {name: Tensor(name, DATA, None) for name in inputs}
    kinds, ancestors = [], []
    for bit, node in enumerate(nodes):
        anc = 0
        for name in node_inputs(node):
            kind = kind_of[name]
            if kind == CONSTANT:
                continue
            tensor = tensors[name]
            tensor.consumers |= 1 << bit
            if tensor.producer is not None:
                anc |= ancestors[tensor.producer] | (1 << tensor.producer)
        ancestors.append(anc)
        out_kinds = {kind_of[name] for name in node.output if name}
        kinds.append(DATA if DATA in out_kinds else SHAPE)
        for name in node.output:
            if name and kind_of[name] != CONSTANT:
                tensors[name] = Tensor(name, kind_of[name], bit)
    tensors[output].consumers |= 1 << sink
    log.debug("dataflow: %d nodes, %d live (%d data), %d tensors", len(graph.node), len(nodes),
              kinds.count(DATA), len(tensors))
    return DataFlow(nodes, kinds, ancestors, tensors, inputs, output, sink, kind_of)
