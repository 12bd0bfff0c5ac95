"""Board profiles for emulation: compute speed (MACs per second) and a two-level power model.

``board_profiles.json`` (shipped with the package) holds the figures and where they come from. The
compute model is ``seconds = MACs x workload_scale / macs_per_s``; the energy model is

    energy_mJ = 1000 x (busy_power_w x busy_s + idle_power_w x idle_s)

where busy_s is the time the board spent computing a task's segments and idle_s the rest of the
task's service time (sending, waiting for the peer). It is the "power x time" energy proxy of EdgeML
with a fixed power per state instead of a sensor reading.
"""
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List

from edgesplit.runtime.errors import EdgesplitError

PROFILES_FILE = Path(__file__).resolve().parent / "board_profiles.json"
ENERGY_UNIT = "mJ"


class EmulationError(EdgesplitError):
    """An unknown board profile or a bad emulation setting."""


@dataclass(frozen=True)
class BoardProfile:
    name: str
    description: str
    macs_per_s: float
    busy_power_w: float
    idle_power_w: float
    provenance: Dict[str, Any] = field(default_factory=dict)

    def compute_s(self, macs: float, workload_scale: float = 1.0) -> float:
        """Emulated seconds this board needs for ``macs`` multiply-accumulates (times the scale)."""
        return float(macs) * workload_scale / self.macs_per_s

    def energy_mj(self, busy_s: float, idle_s: float) -> float:
        return 1000.0 * (self.busy_power_w * max(0.0, busy_s) + self.idle_power_w * max(0.0, idle_s))

    def to_dict(self) -> Dict[str, Any]:
        return {"name": self.name, "description": self.description, "emulated": True,
                "macs_per_s": self.macs_per_s, "busy_power_w": self.busy_power_w,
                "idle_power_w": self.idle_power_w, "energy_unit": ENERGY_UNIT}


def _read() -> Dict[str, Any]:
    try:
        with open(str(PROFILES_FILE), encoding="utf-8") as handle:
            return json.load(handle)
    except (OSError, ValueError) as exc:
        raise EmulationError("%s: cannot read the board profiles (%s): reinstall edgesplit" % (PROFILES_FILE, exc))


def profile_names() -> List[str]:
    return sorted(_read()["boards"])


def load_emulated_board(name: str) -> BoardProfile:
    data = _read()
    boards = data["boards"]
    if name not in boards:
        raise EmulationError("no emulated board profile %r: choose one of %s" % (name, ", ".join(sorted(boards))))
    entry = boards[name]
    try:
        return BoardProfile(name=name, description=str(entry["description"]), macs_per_s=float(entry["macs_per_s"]),
                            busy_power_w=float(entry["busy_power_w"]), idle_power_w=float(entry["idle_power_w"]),
                            provenance={"source": data["source"], "power_source": entry.get("power_source", ""),
                                        "calibration": entry.get("calibration", [])})
    except (KeyError, TypeError, ValueError) as exc:
        raise EmulationError("%s: board %r: bad or missing field (%s)" % (PROFILES_FILE, name, exc)) from None
