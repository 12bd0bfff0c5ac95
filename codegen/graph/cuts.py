"""Cut points of an ONNX model: the valid single-data-tensor cuts with their sizes and compute.

Numbering follows the bundle manifest: cut 0 is the model input, cuts 1..K are the valid cuts in
order along the main branch, and cut K+1 is the model output.
"""
import logging
from dataclasses import dataclass
from typing import Dict, List, Sequence, Tuple

from edgesplit.codegen.graph.dataflow import DATA, DataFlow, build_dataflow
from edgesplit.codegen.graph.errors import ModelError
from edgesplit.codegen.graph.macs import needed_for, node_macs
from edgesplit.codegen.graph.partition import PartitionFinder, find_partitions
from edgesplit.codegen.graph.shapes import ShapeTable
from edgesplit.runtime.bundle.manifest import TensorSpec

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CutPoint:
    id: int
    tensors: Tuple[TensorSpec, ...]  # every tensor crossing; the data tensor first
    bytes_per_sample: int
    macs_before: int
    macs_after: int
    side_a: int  # bitset of the DataFlow's live nodes before the cut

    @property
    def tensor(self) -> str:
        """The cut's data tensor (for cut 0, the first model input)."""
        return self.tensors[0].name

    @property
    def share_before(self) -> float:
        total = self.macs_before + self.macs_after
        return self.macs_before / total if total else 0.0


@dataclass
class ModelCuts:
    """Everything the splitter needs: the dataflow, shapes, per-node MACs and the cut points."""

    model: object
    flow: DataFlow
    shapes: ShapeTable
    node_macs: List[int]
    points: List[CutPoint]  # cut 0, the valid cuts 1..K, cut K+1

    @property
    def inner(self) -> List[CutPoint]:
        """The valid cuts 1..K (neither the input nor the output)."""
        return self.points[1:-1]

    @property
    def total_macs(self) -> int:
        return sum(self.node_macs)

    @property
    def inputs(self) -> Tuple[TensorSpec, ...]:
        return self.points[0].tensors

    @property
    def output(self) -> TensorSpec:
        return self.points[-1].tensors[0]

    def macs_of(self, side: int) -> int:
        return sum(m for bit, m in enumerate(self.node_macs) if m and side >> bit & 1)

    def crossing_specs(self, side: int) -> Tuple[TensorSpec, ...]:
        data, shapes = PartitionFinder(self.flow).crossing(side)
        return tuple(self.spec(name) for name in data + shapes)

    def spec(self, name: str) -> TensorSpec:
        return self.shapes.spec(name, self.flow.kind_of[name] == DATA)

    def point(self, cut_id: int) -> CutPoint:
        if not 1 <= cut_id <= len(self.inner):
            raise KeyError(cut_id)
        return self.points[cut_id]


def analyse_model(model) -> ModelCuts:
    """Find the valid cuts of ``model`` and measure each: tensors, bytes per sample, MACs."""
    flow = build_dataflow(model)
    partitions = find_partitions(flow)
    shapes = ShapeTable(model, flow.inputs)
    needed: Dict[str, bool] = needed_for(flow.nodes)
    for name in flow.inputs:
        needed[name] = True
    needed[flow.output] = True
    for part in partitions:
        for name in part.crossing:
            needed[name] = flow.kind_of[name] == DATA
    shapes.resolve(needed)
    macs = []
    for node in flow.nodes:
        try:
            macs.append(node_macs(node, shapes.concrete))
        except (KeyError, IndexError) as exc:
            raise ModelError("cannot count the MACs of node %r (%s): shape of %s unknown"
                             % (node.name, node.op_type, exc)) from None
    cuts = ModelCuts(model, flow, shapes, macs, [])
    sides = [0] + [p.side_a for p in partitions] + [flow.full]
    total = cuts.total_macs
    for cut_id, side in enumerate(sides):
        if cut_id == 0:
            tensors = tuple(cuts.spec(name) for name in flow.inputs)
        elif cut_id == len(sides) - 1:
            tensors = (cuts.spec(flow.output),)
        else:
            tensors = tuple(cuts.spec(name) for name in partitions[cut_id - 1].crossing)
        before = cuts.macs_of(side)
        cuts.points.append(CutPoint(cut_id, tensors, sum(t.bytes_per_sample() for t in tensors),
                                    before, total - before, side))
    log.info("%d valid cuts, %d MACs per sample", len(partitions), total)
    return cuts


def select_auto(cuts: ModelCuts, count: int = 4) -> List[int]:
    """About ``count`` cuts at equal steps of compute, each the smallest crossing within its step.

    Step i covers the compute shares ((2i-1)/2n, (2i+1)/2n] around the target i/n, n = count + 1;
    an empty step is skipped. Within a step: the smallest crossing (fewest bytes to ship, and the
    least for onnxruntime to convert at the boundary), then the cut nearest the target, then the
    later cut: of cuts around MAC-free ops (Conv | BatchNorm | Relu, Add | Relu) the last keeps the
    ops that onnxruntime fuses into the preceding Conv in one segment. (Cuts read by a residual Add
    used to cost more on x86 and were avoided; the splitter's layout anchors removed that cost:
    codegen/layout_anchor.py.)
    """
    steps = count + 1
    chosen = []
    total = cuts.total_macs or 1
    for i in range(1, steps):
        low, high = (2 * i - 1) / (2 * steps), (2 * i + 1) / (2 * steps)
        target = i / steps
        in_step = [c for c in cuts.inner if low < c.macs_before / total <= high]
        if in_step:
            best = min(in_step, key=lambda c: (c.bytes_per_sample, abs(c.macs_before / total - target), -c.id))
            chosen.append(best.id)
    return sorted(set(chosen))


def resolve_cut_ids(cuts: ModelCuts, requested) -> List[int]:
    """``"auto"``, ``"all"`` or a sequence of cut ids -> sorted valid ids; CutError on unknown ids.

    An empty sequence asks for no cut: one segment holding the whole main branch.
    """
    from edgesplit.codegen.graph.errors import CutError

    valid = [c.id for c in cuts.inner]
    if isinstance(requested, str) and requested not in ("auto", "all"):
        raise CutError("cuts must be 'auto', 'all' or a list of cut ids, got %r" % requested)
    if not valid and (isinstance(requested, str) or list(requested)):
        raise CutError("the model has no valid cut point: no single tensor separates its main branch "
                       "(every candidate is crossed by a skip connection or a second branch)")
    if requested == "auto":
        return select_auto(cuts)
    if requested == "all":
        return valid
    ids = []
    for item in requested:
        if isinstance(item, bool) or not isinstance(item, int) or item not in valid:
            raise CutError("unknown cut id %r: valid cut ids are %s (see 'edgesplit cuts MODEL.onnx')"
                           % (item, _ranges(valid)))
        ids.append(item)
    return sorted(set(ids))


def _ranges(ids: Sequence[int]) -> str:
    """1,2,3,5 -> '1-3, 5' (short error messages for models with many cuts)."""
    parts, start = [], None
    for i, value in enumerate(ids):
        if start is None:
            start = value
        if i + 1 == len(ids) or ids[i + 1] != value + 1:
            parts.append(str(start) if start == value else "%d-%d" % (start, value))
            start = None
    return ", ".join(parts)
