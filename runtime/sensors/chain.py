"""First available source of a quantity: e.g. GPU from NVML, else jtop, else sysfs devfreq."""
from typing import List, Optional, Sequence

from edgesplit.runtime.sensors.reading import Clock, Reading, Sensor


class FirstAvailable(Sensor):
    """Reads the sources in order and returns the first whose primary reading is available.

    The source that answered last is tried first next time, so a steady board costs one read per
    tick. When none answers, every output is unavailable with each source's reason.
    """

    def __init__(self, kind: str, sources: Sequence[Sensor], clock: Clock) -> None:
        super().__init__(clock)
        if not sources:
            raise ValueError("FirstAvailable(%s) needs at least one source" % kind)
        self.kind = kind
        self.sources = list(sources)
        self.outputs = dict(self.sources[0].outputs)
        self.primary = next(iter(self.outputs))
        self._last = None  # type: Optional[int]

    def read(self) -> List[Reading]:
        order = list(range(len(self.sources)))
        if self._last is not None:
            order.remove(self._last)
            order.insert(0, self._last)
        reasons = []
        for index in order:
            source = self.sources[index]
            readings = source.read()
            primary = [r for r in readings if r.name == next(iter(source.outputs))]
            if primary and primary[0].available:
                self._last = index
                return readings
            reason = primary[0].reason if primary else "no %s reading" % self.primary
            reasons.append("%s: %s" % (type(source).__name__, reason))
        self._last = None
        return self.all_unavailable("; ".join(reasons))
