"""Dynamic batching on the peer: requests for the same cut run as one ``session.run`` (Triton's dynamic batcher).

A request taken from the queue opens a batch; the peer adds the waiting requests that can share its
pass (same cut), taken round-robin between devices like single requests, up to ``max_batch`` rows,
and for at most ``window_s`` after the oldest one arrived waits for more (Triton's
``max_queue_delay_microseconds``), but never more than half of any member's deadline (the other half
is left for the run and the answer's way back), so no request is held past it. The batch's tensors
are concatenated along the batch axis, run once, and the result rows are handed back per request.

A cut is batchable only when every tensor the rest of the path reads or writes has a dynamic,
batched first dimension (manifest ``shape[0]`` is ``null``). Where an early exit lies on the rest of
the path, the executor takes an exit for a whole batch only when every row is confident, so such
requests batch only with ``use_exits`` off; otherwise they run one at a time, as without batching.
"""
from dataclasses import dataclass
from typing import Dict, FrozenSet, Mapping, Optional, Sequence, Tuple

import numpy as np

from edgesplit.runtime.bundle.manifest import Manifest

# The share of a request's deadline a batch may spend waiting for more requests.
DEADLINE_SHARE = 0.5


@dataclass(frozen=True)
class BatchPolicy:
    """``max_batch`` rows per pass (1 = off); ``window_s``: how long the oldest request may wait for more."""

    max_batch: int = 1
    window_s: float = 0.0

    @property
    def enabled(self) -> bool:
        return self.max_batch > 1


def batchable_cuts(manifest: Manifest) -> FrozenSet[int]:
    """Cuts from which every main segment (and exit head) to the end has a dynamic batch dimension."""
    def dynamic(specs) -> bool:
        return all(spec.batched and spec.shape and spec.shape[0] is None for spec in specs)

    main = manifest.main
    heads = {ex.cut: manifest.segment(ex.head) for ex in manifest.exits if ex.head is not None}
    cuts = set()
    for cut in range(len(main)):
        rest = list(main[cut:]) + [heads[c] for c in heads if c > cut]
        if dynamic(manifest.cuts[cut].tensors) and all(dynamic(s.inputs) and dynamic(s.outputs) for s in rest):
            cuts.add(cut)
    return frozenset(cuts)


def exits_after(manifest: Manifest, cut: int) -> bool:
    """True when an early exit head lies on the path from ``cut`` to the end (exits on ``cut`` itself are
    the device's: the peer does not evaluate them again)."""
    return any(ex.head is not None and ex.cut > cut for ex in manifest.exits)


@dataclass(frozen=True)
class CutLayout:
    """What a request's live tensors at a cut must look like to share a pass: the manifest's names and
    dtypes, and per tensor the fixed dimensions after the batch axis (``None``: any size)."""

    names: Tuple[str, ...]
    dtypes: Tuple[np.dtype, ...]
    tails: Tuple[Tuple[Optional[int], ...], ...]


def cut_layout(manifest: Manifest, cut: int) -> CutLayout:
    specs = manifest.cuts[cut].tensors
    return CutLayout(tuple(s.name for s in specs), tuple(np.dtype(s.dtype) for s in specs),
                     tuple(tuple(s.shape[1:]) for s in specs))


def batch_key(tensors: Mapping[str, np.ndarray], layout: CutLayout) -> Optional[Tuple[int, Tuple]]:
    """(rows, per-row shapes) of a request that can share a pass at this cut, else None.

    Only the shape of the batch is looked at here: every live tensor present with the cut's dtype and
    dimensions, the same number of rows (at least one) in each. Requests join a batch only with the same
    per-row shapes. The executor's checks (finite values among them) still run on the batch's tensors,
    and a request that fails them is answered alone (``PeerServer._run_batch``).
    """
    rows, per_row = -1, []
    for name, dtype, tail in zip(layout.names, layout.dtypes, layout.tails):
        array = tensors.get(name)
        if type(array) is not np.ndarray or array.dtype != dtype or array.ndim != len(tail) + 1:
            return None
        shape = array.shape
        if rows < 0:
            rows = shape[0]
        if shape[0] != rows or (shape[1:] != tail and any(
                want is not None and got != want for got, want in zip(shape[1:], tail))):
            return None
        per_row.append(shape[1:])
    if rows < 1:
        return None
    return rows, tuple(per_row)


def concatenate(requests: Sequence[Mapping[str, np.ndarray]], names: Sequence[str]) -> Dict[str, np.ndarray]:
    """One feed per tensor name, rows of each request in order."""
    return {name: np.concatenate([feeds[name] for feeds in requests], axis=0) for name in names}


def window_end(oldest_arrival: float, policy: BatchPolicy, deadlines: Sequence[Tuple[float, float]],
               run_estimate_s: float) -> float:
    """When the peer stops waiting for more requests: the window's end, or earlier, so that no request
    in the batch waits more than half the deadline it arrived with (the rest is left for running the
    batch and the answer's trip back), less the time the last batch took to run.

    ``deadlines``: (arrival time, deadline in seconds from arrival) per request."""
    return min([oldest_arrival + policy.window_s]
               + [arrived + deadline_s * DEADLINE_SHARE - run_estimate_s for arrived, deadline_s in deadlines])
