"""Emulated boards: compute speed (MACs per second) and a two-level power model, from the board catalogue.

Every board config (``board_configs/<name>.toml``) may carry an ``[emulation]`` table with the figures
and the provenance of each (measured from which data, derived from which spec, or assumed); ``--board
NAME`` therefore names the same board whether it runs live (``serve``, ``profile``, ``board``) or
emulated (``run``, ``build-policy``). The compute model is ``seconds = MACs x workload_scale /
macs_per_s``; the energy model is

    energy_mJ = 1000 x (busy_power_w x busy_s + idle_power_w x idle_s)

where busy_s is the time the board spent computing a task's segments and idle_s the rest of the
task's service time (sending, waiting for the peer). It is the "power x time" energy proxy of EdgeML
with a fixed power per state instead of a sensor reading.
"""
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from edgesplit.runtime.boards.config import (EMULATED_ENERGY_UNIT, BoardConfig, board_configs_dir, list_board_configs,
                                             load_all_boards, load_named_board)
from edgesplit.runtime.errors import EdgesplitError

ENERGY_UNIT = EMULATED_ENERGY_UNIT


class EmulationError(EdgesplitError):
    """An unknown or non-emulatable board, or a bad emulation setting."""


@dataclass(frozen=True)
class BoardProfile:
    name: str
    description: str
    macs_per_s: float
    busy_power_w: float
    idle_power_w: float
    basis: str = "assumption"  # how macs_per_s was obtained: measured, derived or assumption
    provenance: Dict[str, Any] = field(default_factory=dict)  # figure -> its source; board_config -> the file

    def compute_s(self, macs: float, workload_scale: float = 1.0) -> float:
        """Emulated seconds this board needs for ``macs`` multiply-accumulates (times the scale)."""
        return float(macs) * workload_scale / self.macs_per_s

    def energy_mj(self, busy_s: float, idle_s: float) -> float:
        return 1000.0 * (self.busy_power_w * max(0.0, busy_s) + self.idle_power_w * max(0.0, idle_s))

    def to_dict(self) -> Dict[str, Any]:
        return {"name": self.name, "description": self.description, "emulated": True, "basis": self.basis,
                "macs_per_s": self.macs_per_s, "busy_power_w": self.busy_power_w,
                "idle_power_w": self.idle_power_w, "energy_unit": ENERGY_UNIT,
                "board_config": self.provenance.get("board_config", ""),
                "provenance": {k: v for k, v in self.provenance.items() if k != "board_config"}}


def profile_from_config(config: BoardConfig) -> BoardProfile:
    e = config.emulation
    if e is None:
        raise EmulationError("%s has no [emulation] table, so board %s cannot be emulated: add one (macs_per_s, "
                             "busy_power_w, idle_power_w, each with its *_source; see docs/boards.md) or run it live"
                             % (config.path, config.name))
    return BoardProfile(name=config.name, description=e.description, macs_per_s=e.macs_per_s,
                        busy_power_w=e.busy_power_w, idle_power_w=e.idle_power_w, basis=e.basis,
                        provenance={"board_config": config.path, "macs_per_s": e.macs_per_s_source,
                                    "busy_power_w": e.busy_power_w_source, "idle_power_w": e.idle_power_w_source})


def profile_names(directory: Optional[str] = None) -> List[str]:
    """The boards that can be emulated: every config with an [emulation] table (all the shipped ones)."""
    return [b.name for b in load_all_boards(directory) if b.emulation is not None]


def load_emulated_board(name: str, directory: Optional[str] = None) -> BoardProfile:
    """Board ``name``'s emulated profile, from its board config's [emulation] table."""
    directory = directory or board_configs_dir()
    names = list_board_configs(directory)
    if name not in names:
        raise EmulationError("no board config %r to emulate in %s; known boards: %s (see 'edgesplit board list')"
                             % (name, directory, ", ".join(names)))
    return profile_from_config(load_named_board(name, directory))
