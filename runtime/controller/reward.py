"""EdgeML reward (IoTDI '21, eq. 4/5) over one state interval."""
import math
from dataclasses import dataclass
from typing import NamedTuple, Sequence


@dataclass(frozen=True)
class Bounds:
    """The user's bounds: mean latency in seconds and mean energy proxy (its unit is the board's)."""

    latency_s: float
    energy: float


class TaskOutcome(NamedTuple):
    """One finished task, as the controller scores it (a named tuple: one is made per task, and a frozen dataclass
    takes 2-3x as long to build)."""

    latency_s: float
    energy: float
    bandwidth_bps: float
    exit_index: int
    exits: int

    def meets(self, bounds: Bounds) -> bool:
        return self.latency_s <= bounds.latency_s and self.energy <= bounds.energy


def reward(tasks: Sequence[TaskOutcome], bounds: Bounds) -> float:
    """Both bounds met on average: the mean exit depth of the tasks that met them, in [0, 1].

    Both violated: -1. One violated: -(2/pi) * arctan(relative excess over that bound). The paper
    uses the raw exit index; normalising by the number of exits keeps the positive branch on the
    same [0, 1] scale as the penalties whatever the bundle's exit count.
    """
    if not tasks:
        return 0.0
    if len(tasks) == 1:  # an interval of one task (every static action): its own figures are the means
        task = tasks[0]
        latency, energy = task.latency_s, task.energy
        if latency <= bounds.latency_s and energy <= bounds.energy:  # met: the task's own depth (the sum of one)
            return task.exit_index / max(1, task.exits - 1)
    else:
        latency = sum(t.latency_s for t in tasks) / len(tasks)
        energy = sum(t.energy for t in tasks) / len(tasks)
    latency_ok = latency <= bounds.latency_s
    energy_ok = energy <= bounds.energy
    if latency_ok and energy_ok:
        met = [t for t in tasks if t.meets(bounds)]
        if not met:
            return 0.0
        return sum(t.exit_index / max(1, t.exits - 1) for t in met) / len(met)
    if not latency_ok and not energy_ok:
        return -1.0
    if not latency_ok:
        excess = (latency - bounds.latency_s) / bounds.latency_s
    else:
        excess = (energy - bounds.energy) / bounds.energy
    return -(2.0 / math.pi) * math.atan(excess)
