"""The value every sensor returns, and the small interface every sensor implements."""
import time
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence

Clock = Callable[[], float]


@dataclass(frozen=True)
class Reading:
    """One measured value, or the reason there is none.

    ``timestamp`` is seconds on the sensor's clock (``time.monotonic`` unless a test or the emulator
    injects another). ``source`` says where the value came from (a sysfs path as it is on the board,
    ``nvml``, ``jtop``, ``vcgencmd ...``), so a reader of a trace can check it.
    """

    name: str
    value: Optional[float]
    unit: str
    source: str
    timestamp: float
    available: bool = True
    reason: str = ""

    def to_dict(self) -> Dict[str, object]:
        return {"name": self.name, "value": self.value, "unit": self.unit, "source": self.source,
                "timestamp": self.timestamp, "available": self.available, "reason": self.reason}


class SensorUnavailable(Exception):
    """Raised inside readers when a value cannot be read; turned into an unavailable Reading."""


def measured(name: str, value: float, unit: str, source: str, clock: Clock) -> Reading:
    return Reading(name=name, value=float(value), unit=unit, source=source, timestamp=clock())


def unavailable(name: str, unit: str, reason: str, clock: Clock, source: str = "") -> Reading:
    return Reading(name=name, value=None, unit=unit, source=source, timestamp=clock(),
                   available=False, reason=reason)


class Sensor:
    """A reader of one piece of hardware. Subclasses set ``kind`` and ``outputs`` and implement read().

    ``outputs`` maps the names of the readings the sensor always reports (available or not) to their
    units; a sensor may add more (one per CPU core, one per power rail) once it has found them.
    """

    kind = "sensor"
    outputs = {}  # type: Dict[str, str]

    def __init__(self, clock: Clock = time.monotonic) -> None:
        self.clock = clock

    def read(self) -> List[Reading]:
        raise NotImplementedError

    def all_unavailable(self, reason: str, source: str = "") -> List[Reading]:
        return [unavailable(name, unit, reason, self.clock, source) for name, unit in self.outputs.items()]


def by_name(readings: Sequence[Reading]) -> Dict[str, Reading]:
    return {r.name: r for r in readings}
