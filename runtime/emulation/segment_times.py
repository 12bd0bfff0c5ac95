"""How long each segment takes on an emulated board: measured where a profile says, else from its MACs.

Without a measured profile a segment takes ``MACs x workload_scale / macs_per_s`` (the board
profile's published calibration). With one (``BUNDLE/profiles/<name>.json`` from ``edgesplit
profile``, loaded through ``edgesplit.runtime.profiling.store.load_profile``, which refuses a profile of
another bundle version) a segment takes its measured median x workload_scale; a segment the profile
lacks falls back to the MACs model, logged once per segment. The emulator (``Emulation``) and the
planner's cost model (``codegen/policy_build.cost_model``) both ask this one object.
"""
import logging
from typing import Any, Dict, Optional, Set

from edgesplit.runtime.emulation.board import BoardProfile

log = logging.getLogger(__name__)


class SegmentTimes:
    def __init__(self, board: BoardProfile, workload_scale: float = 1.0,
                 measured: Optional[Dict[str, Any]] = None):
        self.board = board
        self.workload_scale = float(workload_scale)
        self.measured = measured
        self._median_s = {s["id"]: s["median_ms"] / 1e3 for s in measured["segments"]} if measured else {}
        self._fell_back: Set[str] = set()

    @property
    def measured_board(self) -> Optional[str]:
        return self.measured["board"] if self.measured else None

    def seconds(self, macs: float, segment_id: Optional[str] = None) -> float:
        """Emulated seconds of one call of segment ``segment_id`` (with ``macs`` MACs), workload scale applied."""
        if segment_id is not None and segment_id in self._median_s:
            return self._median_s[segment_id] * self.workload_scale
        if self.measured is not None and segment_id is not None and segment_id not in self._fell_back:
            self._fell_back.add(segment_id)
            log.warning("measured profile %s has no segment %r: pacing it by the MACs model of board %s instead",
                        self.measured_board, segment_id, self.board.name)
        return self.board.compute_s(macs, self.workload_scale)

    def label(self) -> str:
        """What results produced with these times are called."""
        if self.measured is not None:
            return "emulated (measured profile %s)" % self.measured_board
        return "%s (emulated)" % self.board.name

    def describe(self) -> Dict[str, Any]:
        if self.measured is None:
            return {"compute_model": "segment seconds = MACs x workload_scale / macs_per_s (board profile)"}
        m = self.measured
        return {"compute_model": "segment seconds = median measured by 'edgesplit profile' on board %s x "
                                 "workload_scale; MACs x workload_scale / macs_per_s of %s for a segment the "
                                 "profile lacks" % (m["board"], self.board.name),
                "measured_profile": {"board": m["board"], "bundle_sha256": m["bundle_sha256"], "created": m["created"],
                                     "host": m["host"], "settings": m["settings"],
                                     "median_ms": {s["id"]: s["median_ms"] for s in m["segments"]}}}
