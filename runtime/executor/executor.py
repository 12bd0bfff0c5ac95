"""Runs a bundle's main branch segment by segment, taking an early exit when its head is confident.

The same code runs on the device (from cut 0, possibly stopping at a cut to offload the live
tensors) and on the peer (from the cut the device shipped, to the end). Time comes from an
injected clock so an emulator can replace real time without touching this module.
"""
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from edgesplit.runtime.bundle.manifest import Exit
from edgesplit.runtime.bundle.store import Bundle
from edgesplit.runtime.errors import InputError
from edgesplit.runtime.executor.entropy import max_normalised_entropy
from edgesplit.runtime.executor.exit_rule import takes_exit
from edgesplit.runtime.segments.base import SegmentRunner, check_tensor, zeros_for
from edgesplit.runtime.segments.registry import open_runner

Clock = Callable[[], float]
RunnerFactory = Callable[..., SegmentRunner]


@dataclass
class ExecutionResult:
    """What one pass produced.

    Either ``exit_id`` is set (``output`` holds that exit's scores) or ``stopped_at_cut`` is set
    (``live`` holds every tensor crossing that cut, ready to ship).
    """

    exit_id: Optional[int] = None
    output: Optional[np.ndarray] = None
    stopped_at_cut: Optional[int] = None
    live: Dict[str, np.ndarray] = field(default_factory=dict)
    entropies: List[Tuple[int, float]] = field(default_factory=list)
    segment_seconds: Dict[str, float] = field(default_factory=dict)
    macs: int = 0

    @property
    def compute_seconds(self) -> float:
        return sum(self.segment_seconds.values())


class Executor:
    """Holds one warmed-up runner per segment of a verified bundle."""

    def __init__(self, bundle: Bundle, threads: Optional[int] = None, clock: Clock = time.perf_counter,
                 runner_factory: RunnerFactory = open_runner, warm_up: bool = True):
        self.bundle = bundle
        self.manifest = bundle.manifest
        self.clock = clock
        self.runners = {seg.id: runner_factory(seg, bundle.path_of(seg.id), threads=threads)
                        for seg in self.manifest.segments}
        self.main = self.manifest.main
        self.side_exits = tuple(e for e in self.manifest.exits if e.head is not None)
        self.default_thresholds = tuple(e.threshold for e in self.side_exits)
        self._cut_macs = [c.macs_before for c in self.manifest.cuts]
        # Per cut: (exit, index into the thresholds, head's score tensor, head MACs), looked up per task.
        self._heads_at = {}
        for index, ex in enumerate(self.side_exits):
            head = self.manifest.segment(ex.head)
            self._heads_at.setdefault(ex.cut, []).append((ex, index, head.outputs[0].name, head.macs))
        if warm_up:
            self.warm_up()

    @property
    def last_cut(self) -> int:
        return len(self.main)

    def warm_up(self, repeats: int = 2) -> None:
        """Run every segment and head on zeros so the first real task pays no lazy initialisation."""
        feeds = zeros_for(self.manifest.inputs)
        for _ in range(repeats):
            self.run(feeds, thresholds=[0.0] * len(self.side_exits))

    def check_inputs(self, feeds: Mapping[str, np.ndarray], cut_id: int = 0) -> None:
        where = "input" if cut_id == 0 else "tensors at cut %d" % cut_id
        specs = self.manifest.cuts[cut_id].tensors
        missing = [s.name for s in specs if s.name not in feeds]
        if missing:
            raise InputError("%s: missing tensor(s) %s; expected %s" % (where, missing, [s.name for s in specs]))
        for spec in specs:
            check_tensor(spec, feeds[spec.name], where)

    def thresholds_or_default(self, thresholds: Optional[Sequence[float]]) -> Sequence[float]:
        if thresholds is None:
            return self.default_thresholds
        if len(thresholds) != len(self.side_exits):
            raise InputError("got %d thresholds but the bundle has %d early exits (one threshold each)"
                             % (len(thresholds), len(self.side_exits)))
        return thresholds

    def run(self, inputs, thresholds: Optional[Sequence[float]] = None, use_exits: bool = True,
            stop_at_cut: Optional[int] = None, inputs_checked: bool = False) -> ExecutionResult:
        """Run from the model input. ``inputs`` is an array (single-input models) or a name->array map.
        ``inputs_checked``: ``check_inputs`` already passed on these very arrays (do not pay for it twice)."""
        if isinstance(inputs, np.ndarray):
            if len(self.manifest.inputs) != 1:
                raise InputError("the model has %d inputs: pass a dict of name -> array" % len(self.manifest.inputs))
            inputs = {self.manifest.inputs[0].name: inputs}
        return self.run_from(0, inputs, thresholds, use_exits, stop_at_cut, inputs_checked)

    def run_from(self, start_cut: int, live: Mapping[str, np.ndarray],
                 thresholds: Optional[Sequence[float]] = None, use_exits: bool = True,
                 stop_at_cut: Optional[int] = None, inputs_checked: bool = False,
                 final_entropy: bool = True) -> ExecutionResult:
        """Continue from ``start_cut`` given the tensors crossing it.

        Exits on ``start_cut`` itself are not evaluated again: whoever stopped there already did.
        With ``stop_at_cut`` the pass returns the live tensors at that cut unless an earlier exit
        was confident; exits on the stop cut are evaluated first (they are local work).
        ``final_entropy=False`` skips the final exit's entropy (the peer does not send it).
        """
        if not 0 <= start_cut <= self.last_cut:
            raise InputError("there is no cut %d (cuts are 0..%d)" % (start_cut, self.last_cut))
        stop = self.last_cut if stop_at_cut is None else stop_at_cut
        if not start_cut <= stop <= self.last_cut:
            raise InputError("cannot stop at cut %d when starting at cut %d (cuts are 0..%d)"
                             % (stop, start_cut, self.last_cut))
        if not inputs_checked:
            self.check_inputs(live, start_cut)
        limits = self.thresholds_or_default(thresholds)
        env = dict(live)
        result = ExecutionResult(macs=0)
        for cut_id in range(start_cut, stop + 1):
            if cut_id > start_cut and use_exits:
                taken = self._try_exits(cut_id, env, limits, result)
                if taken is not None:
                    result.macs += self._cut_macs[cut_id] - self._cut_macs[start_cut]
                    return result
            if cut_id == stop:
                break
            self._timed(self.main[cut_id].id, env, result)
        result.macs += self._cut_macs[stop] - self._cut_macs[start_cut]
        if stop == self.last_cut:
            final = self.manifest.exits[-1]
            result.exit_id = final.id
            result.output = env[self.manifest.outputs[0].name]
            if final_entropy:
                result.entropies.append((final.id, max_normalised_entropy(result.output)))
        else:
            result.stopped_at_cut = stop
            result.live = {t.name: env[t.name] for t in self.manifest.cuts[stop].tensors}
        return result

    def run_plain(self, start_cut: int, live: Mapping[str, np.ndarray],
                  thresholds: Optional[Sequence[float]] = None) -> Tuple[np.ndarray, float]:
        """``run_from`` to the end without evaluating any exit: (the final output, compute seconds).

        For a caller that takes no early exit (the peer, when none lies after ``start_cut`` or the device
        turned them off): the same checks and the same result, without the per-pass bookkeeping.
        """
        if not 0 <= start_cut <= self.last_cut:
            raise InputError("there is no cut %d (cuts are 0..%d)" % (start_cut, self.last_cut))
        self.check_inputs(live, start_cut)
        self.thresholds_or_default(thresholds)  # a wrong count is refused as run_from refuses it
        env = dict(live)
        clock, seconds = self.clock, 0.0
        for segment in self.main[start_cut:]:
            started = clock()
            env.update(self.runners[segment.id].run(env))
            seconds += clock() - started
        return env[self.manifest.outputs[0].name], seconds

    def _timed(self, segment_id: str, env: Dict[str, np.ndarray], result: ExecutionResult) -> Dict[str, np.ndarray]:
        start = self.clock()
        produced = self.runners[segment_id].run(env)
        result.segment_seconds[segment_id] = self.clock() - start
        env.update(produced)
        return produced

    def _try_exits(self, cut_id: int, env: Dict[str, np.ndarray], limits: Sequence[float],
                   result: ExecutionResult) -> Optional[Exit]:
        for ex, index, score_name, head_macs in self._heads_at.get(cut_id, ()):
            scores = self._timed(ex.head, env, result)[score_name]
            result.macs += head_macs
            # With a batch, every sample must be confident: one pass cannot exit for some rows only.
            entropy = max_normalised_entropy(scores)
            result.entropies.append((ex.id, entropy))
            if takes_exit(entropy, limits[index]):
                result.exit_id = ex.id
                result.output = scores
                return ex
        return None
