"""Where the exits go: K valid cuts at roughly equal steps of compute (EdgeML places branches so).

Exit i of K aims at i/(K+1) of the model's MACs; among the valid cuts within half a step of the
target, the nearest to it, then the one with the smallest data tensor (the cheapest head).
Only cuts whose data tensor a head can read qualify: float32, rank 2 (N, features) or rank 4
(N, C, H, W).
"""
import logging
from typing import List, Optional, Sequence

from edgesplit.codegen.graph import CutError, ModelCuts
from edgesplit.codegen.graph.cuts import CutPoint

HEAD_RANKS = (2, 4)

log = logging.getLogger(__name__)


DEEP_MODEL_CUTS = 24


def default_exit_count(cuts: ModelCuts) -> int:
    """1 exit for a model with 1-2 usable cuts, 3 for a deep one (more than DEEP_MODEL_CUTS: ResNet-50 has
    ~50), else 2. More exits cost more than their heads: build-policy searches thresholds^exits x cuts."""
    candidates = len(head_candidates(cuts))
    if candidates <= 2:
        return 1
    return 3 if candidates > DEEP_MODEL_CUTS else 2


def head_candidates(cuts: ModelCuts) -> List[CutPoint]:
    return [c for c in cuts.inner if c.tensors[0].dtype == "float32" and len(c.tensors[0].shape) in HEAD_RANKS
            and c.macs_after > 0]


def place_exits(cuts: ModelCuts, count: Optional[int] = None, at: Optional[Sequence[int]] = None) -> List[int]:
    """Cut ids (as ``edgesplit cuts`` numbers them) for the exits: ``at`` checked, or ``count`` placed."""
    candidates = head_candidates(cuts)
    if at is not None:
        usable = {c.id for c in candidates}
        for cut_id in at:
            if cut_id not in usable:
                raise CutError("cut %r cannot carry an exit: exits go on valid cuts whose data tensor is float32 of "
                               "rank 2 or 4; usable cuts are %s (see 'edgesplit cuts MODEL.onnx')"
                               % (cut_id, ", ".join(str(i) for i in sorted(usable)) or "none"))
        return sorted(set(at))
    if not candidates:
        raise CutError("the model has no cut that can carry an exit (a valid cut with a float32 (N, C, H, W) or "
                       "(N, features) tensor): see 'edgesplit cuts MODEL.onnx'")
    count = default_exit_count(cuts) if count is None else count
    if count < 1:
        raise CutError("--exits must be at least 1 (use --no-exits for a bundle without exits)")
    total = float(cuts.total_macs or 1)
    steps = count + 1
    chosen: List[int] = []
    for i in range(1, steps):
        target = i / steps
        near = [c for c in candidates
                if abs(c.macs_before / total - target) <= 0.5 / steps and c.id not in chosen]
        if near:
            best = min(near, key=lambda c: (abs(c.macs_before / total - target), c.tensors[0].bytes_per_sample()))
            chosen.append(best.id)
    if not chosen:
        raise CutError("no usable cut lies near the compute steps for %d exits; pick cuts with --at" % count)
    if len(chosen) < count:
        log.warning("%d of the %d compute steps have no usable cut near them: %d exits placed (cuts %s); "
                    "choose cuts with --at to place more", count - len(chosen), count, len(chosen), sorted(chosen))
    return sorted(chosen)
