"""Memory from /proc/meminfo (kB). On Jetsons the GPU shares this memory, so it is the GPU's too."""
from typing import Dict, List

from edgesplit.runtime.sensors.reading import Clock, Reading, Sensor, SensorUnavailable, measured
from edgesplit.runtime.sensors.sysroot import SysRoot

MEMINFO = "/proc/meminfo"


def parse_meminfo(text: str) -> Dict[str, int]:
    """Field -> kB for lines like ``MemAvailable:   24262736 kB``; malformed lines are skipped."""
    fields = {}
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        words = rest.split()
        if words and words[0].isdigit():
            fields[key.strip()] = int(words[0])
    return fields


class Memory(Sensor):
    kind = "memory"
    outputs = {"mem_used": "MiB", "mem_available": "MiB", "mem_total": "MiB"}

    def __init__(self, root: SysRoot, clock: Clock) -> None:
        super().__init__(clock)
        self.root = root

    def read(self) -> List[Reading]:
        try:
            fields = parse_meminfo(self.root.read_text(MEMINFO))
        except SensorUnavailable as exc:
            return self.all_unavailable(str(exc), MEMINFO)
        missing = [k for k in ("MemTotal", "MemAvailable") if k not in fields]
        if missing:
            return self.all_unavailable("%s has no %s line" % (MEMINFO, " or ".join(missing)), MEMINFO)
        total, available = fields["MemTotal"] / 1024.0, fields["MemAvailable"] / 1024.0
        return [measured("mem_used", total - available, "MiB", MEMINFO, self.clock),
                measured("mem_available", available, "MiB", MEMINFO, self.clock),
                measured("mem_total", total, "MiB", MEMINFO, self.clock)]
