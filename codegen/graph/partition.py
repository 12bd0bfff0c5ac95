"""Single-tensor partitions of the data DAG: where a model can be cut without cutting a block.

For a data tensor T produced by node p, side A is p, all its ancestors, and every shape-only node
computable from those; side B is the rest. The crossing set is every non-constant tensor produced
in A (graph inputs count as produced in A) that B reads, plus the graph output if A produces it.
T is a cut only when it is the one data tensor in its crossing set; shape tensors may cross too.

Valid cuts form a chain (each A contains the previous one: every data node in B depends on T), so
they are ordered along the main branch by the size of A. Nothing depends on a topological order.
"""
import logging
from dataclasses import dataclass
from typing import List, Optional, Tuple

from edgesplit.codegen.graph.dataflow import DATA, SHAPE, DataFlow

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Partition:
    tensor: str  # the single data tensor crossing
    side_a: int  # bitset of live nodes before the cut
    crossing: Tuple[str, ...]  # the data tensor first, then shape tensors in graph order

    @property
    def size(self) -> int:
        return bin(self.side_a).count("1")


class PartitionFinder:
    """Computes sides and crossing sets for one DataFlow; reuse it for many masks."""

    def __init__(self, flow: DataFlow):
        self.flow = flow
        self.everything = (1 << (flow.sink + 1)) - 1  # live nodes plus the output sink
        data_mask = flow.data_mask
        self.shape_nodes = [(bit, flow.ancestors[bit] & data_mask)
                            for bit, kind in enumerate(flow.kinds) if kind == SHAPE]
        # (producer bit or 0 for graph inputs, consumer bitset, name, kind), producers in graph order
        self.edges = []
        for tensor in sorted(flow.tensors.values(), key=lambda t: -1 if t.producer is None else t.producer):
            if tensor.consumers:
                pbit = 0 if tensor.producer is None else 1 << tensor.producer
                self.edges.append((pbit, tensor.consumers, tensor.name, tensor.kind))

    def side_a(self, producer: int) -> int:
        """Node ``producer``, its ancestors, and the shape-only nodes computable from them."""
        side = self.flow.ancestors[producer] | (1 << producer)
        for bit, data_ancestors in self.shape_nodes:
            if data_ancestors & ~side == 0:
                side |= 1 << bit
        return side

    def crossing(self, side: int, max_data: Optional[int] = None) -> Tuple[List[str], List[str]]:
        """(data tensors, shape tensors) crossing from ``side`` to the rest.

        Stops early once more than ``max_data`` data tensors cross (the caller will reject it).
        """
        other = self.everything ^ side
        data, shapes = [], []
        for pbit, consumers, name, kind in self.edges:
            if side & pbit == pbit and consumers & other:
                if kind == DATA:
                    data.append(name)
                    if max_data is not None and len(data) > max_data:
                        break
                else:
                    shapes.append(name)
        return data, shapes


def find_partitions(flow: DataFlow) -> List[Partition]:
    """Every valid single-data-tensor cut, deduplicated, ordered along the main branch.

    The graph input (cut 0) and the graph output (the last cut) are not included.
    """
    finder = PartitionFinder(flow)
    found = {}
    checked = set()  # sides already examined: one side has one crossing set, so one possible tensor
    for tensor in flow.tensors.values():
        if tensor.kind != DATA or tensor.producer is None or tensor.name == flow.output:
            continue
        side = finder.side_a(tensor.producer)
        if side in checked or side == flow.full:
            continue
        checked.add(side)
        data, shapes = finder.crossing(side, max_data=1)
        if len(data) == 1:
            found[side] = Partition(data[0], side, tuple(data + shapes))
    partitions = sorted(found.values(), key=lambda p: p.size)
    log.debug("%d valid cuts among %d data tensors", len(partitions),
              sum(1 for t in flow.tensors.values() if t.kind == DATA))
    return partitions
