"""CPU frequency per core from cpufreq (kHz), with /proc/cpuinfo as the fallback where cpufreq is absent.

/sys/devices/system/cpu/cpu<N>/cpufreq/scaling_cur_freq is what jetson-stats and the Raspberry Pi
tools read. Virtual machines often have no cpufreq driver; there the kernel's "cpu MHz" lines in
/proc/cpuinfo are the only figure (on x86 the nominal or last sampled clock), and the source says so.
"""
import re
from typing import List, Optional, Tuple

from edgesplit.runtime.sensors.reading import Clock, Reading, Sensor, SensorUnavailable, measured, unavailable
from edgesplit.runtime.sensors.sysroot import SysRoot

CPU_DIR = "/sys/devices/system/cpu"
CPUINFO = "/proc/cpuinfo"


def _core_ids(root: SysRoot) -> List[int]:
    return sorted(int(e[3:]) for e in root.listdir(CPU_DIR) if re.match(r"cpu\d+$", e))


class CpuFreq(Sensor):
    kind = "cpu_freq"
    outputs = {"cpu_freq": "MHz"}

    def __init__(self, root: SysRoot, clock: Clock) -> None:
        super().__init__(clock)
        self.root = root

    def read(self) -> List[Reading]:
        cores = [self._core(core) for core in _core_ids(self.root)]
        cores = [r for r in cores if r is not None]
        if not cores:
            return self._from_cpuinfo("no cpufreq driver: %s/cpu*/cpufreq missing" % CPU_DIR)
        values = [r.value for r in cores if r.available and r.value is not None]
        if values:
            mean = measured("cpu_freq", sum(values) / len(values), "MHz",
                            "mean of %d cores' scaling_cur_freq" % len(values), self.clock)
        else:
            mean = unavailable("cpu_freq", "MHz", "no core's frequency could be read: " + cores[0].reason,
                               self.clock)
        return [mean] + cores

    def _core(self, core: int) -> Optional[Reading]:
        name = "cpu_freq.cpu%d" % core
        path = "%s/cpu%d/cpufreq/scaling_cur_freq" % (CPU_DIR, core)
        if not self.root.exists(path):
            if self._offline(core):
                return unavailable(name, "MHz", "cpu%d is offline" % core, self.clock,
                                   "%s/cpu%d/online" % (CPU_DIR, core))
            if not self.root.exists("%s/cpu%d/cpufreq" % (CPU_DIR, core)):
                return None  # this core has no cpufreq at all: the /proc/cpuinfo fallback decides
            return unavailable(name, "MHz", "%s does not exist" % path, self.clock, path)
        try:
            khz = self.root.read_int(path)
        except SensorUnavailable as exc:
            return unavailable(name, "MHz", str(exc), self.clock, path)
        if khz <= 0:
            return unavailable(name, "MHz", "%s holds %d kHz" % (path, khz), self.clock, path)
        return measured(name, khz / 1000.0, "MHz", path, self.clock)

    def _offline(self, core: int) -> bool:
        try:
            return self.root.read_text("%s/cpu%d/online" % (CPU_DIR, core)) == "0"
        except SensorUnavailable:
            return False

    def _from_cpuinfo(self, why_not_cpufreq: str) -> List[Reading]:
        try:
            text = self.root.read_text(CPUINFO)
        except SensorUnavailable as exc:
            return self.all_unavailable("%s; %s" % (why_not_cpufreq, exc))
        per_core = _cpuinfo_mhz(text)
        if not per_core:
            return self.all_unavailable("%s; %s has no 'cpu MHz' lines" % (why_not_cpufreq, CPUINFO))
        source = "%s 'cpu MHz' (%s)" % (CPUINFO, why_not_cpufreq)
        readings = [measured("cpu_freq", sum(m for _, m in per_core) / len(per_core), "MHz", source, self.clock)]
        readings += [measured("cpu_freq.cpu%d" % core, mhz, "MHz", source, self.clock) for core, mhz in per_core]
        return readings


def _cpuinfo_mhz(text: str) -> List[Tuple[int, float]]:
    found = []
    core = None  # type: Optional[int]
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        try:
            if key == "processor":
                core = int(value)
            elif key == "cpu MHz" and core is not None:
                found.append((core, float(value)))
        except ValueError:
            continue
    return found
