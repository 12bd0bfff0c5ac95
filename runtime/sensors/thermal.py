"""Temperatures of the kernel's thermal zones: /sys/class/thermal/thermal_zone<N>/{type,temp}.

``temp`` is in millidegrees Celsius. Zone names differ by board (CPU-therm/GPU-therm on JetPack 4,
cpu-thermal/gpu-thermal on Orin, cpu-thermal on a Raspberry Pi); ``temp_max`` is the hottest of the
zones selected (all unless the board config names some).
"""
import re
from typing import List, Sequence

from edgesplit.runtime.sensors.reading import Clock, Reading, Sensor, SensorUnavailable, measured, unavailable
from edgesplit.runtime.sensors.sysroot import SysRoot

THERMAL_CLASS = "/sys/class/thermal"
# Outside -60..200 C is a driver placeholder (a Jetson zone that is powered off reads -256 C).
PLAUSIBLE_C = (-60.0, 200.0)


class Thermal(Sensor):
    kind = "thermal"
    outputs = {"temp_max": "C"}

    def __init__(self, root: SysRoot, clock: Clock, zones: Sequence[str] = ()) -> None:
        super().__init__(clock)
        self.root = root
        self.zones = tuple(zones)

    def read(self) -> List[Reading]:
        entries = [e for e in self.root.listdir(THERMAL_CLASS) if re.match(r"thermal_zone\d+$", e)]
        entries.sort(key=lambda e: int(e[len("thermal_zone"):]))
        if not entries:
            return self.all_unavailable("no %s/thermal_zone* (no thermal driver)" % THERMAL_CLASS)
        readings = []
        for entry in entries:
            base = "%s/%s" % (THERMAL_CLASS, entry)
            try:
                zone_type = self.root.read_text(base + "/type")
            except SensorUnavailable:
                zone_type = entry
            if self.zones and zone_type not in self.zones:
                continue
            readings.append(self._zone(zone_type, base + "/temp"))
        hot = [r for r in readings if r.available]
        if hot:
            top = max(hot, key=lambda r: r.value or 0.0)
            total = measured("temp_max", top.value or 0.0, "C", top.source, self.clock)
        else:
            why = readings[0].reason if readings else "none of the zones %s exists" % (self.zones,)
            total = unavailable("temp_max", "C", why, self.clock)
        return [total] + readings

    def _zone(self, zone_type: str, path: str) -> Reading:
        name = "temp." + zone_type
        try:
            celsius = self.root.read_int(path) / 1000.0
        except SensorUnavailable as exc:
            return unavailable(name, "C", str(exc), self.clock, path)
        if not PLAUSIBLE_C[0] < celsius < PLAUSIBLE_C[1]:
            return unavailable(name, "C", "%s holds %.1f C, a placeholder" % (path, celsius), self.clock, path)
        return measured(name, celsius, "C", path, self.clock)
