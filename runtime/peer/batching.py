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
from typing import FrozenSet, List, Mapping, Sequence, Tuple

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


def rows_of(tensors: Mapping[str, np.ndarray]) -> int:
    """Batch rows of one request (every live tensor at a batchable cut is batched)."""
    return int(next(iter(tensors.values())).shape[0]) if tensors else 0


def concatenate(requests: Sequence[Mapping[str, np.ndarray]]) -> Mapping[str, np.ndarray]:
    """One feed per tensor name, rows of each request in order."""
    names = list(requests[0])
    return {name: np.concatenate([feeds[name] for feeds in requests], axis=0) for name in names}


def split_rows(output: np.ndarray, rows: Sequence[int]) -> List[np.ndarray]:
    """The output's rows handed back per request (views, no copies)."""
    parts, start = [], 0
    for count in rows:
        parts.append(output[start:start + count])
        start += count
    return parts


def window_end(oldest_arrival: float, policy: BatchPolicy, deadlines: Sequence[Tuple[float, float]],
               run_estimate_s: float) -> float:
    """When the peer stops waiting for more requests: the window's end, or earlier, so that no request
    in the batch waits more than half the deadline it arrived with (the rest is left for running the
    batch and the answer's trip back), less the time the last batch took to run.

    ``deadlines``: (arrival time, deadline in seconds from arrival) per request."""
    return min([oldest_arrival + policy.window_s]
               + [arrived + deadline_s * DEADLINE_SHARE - run_estimate_s for arrived, deadline_s in deadlines])
