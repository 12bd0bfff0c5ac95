"""Jetson power rails from the INA3221 monitors, in both kernel layouts.

JetPack 4 (L4T R32, ``ina3221x`` IIO driver):
    /sys/bus/i2c/drivers/ina3221x/<bus>-<addr>/iio:device<N>/rail_name_<c>       c = 0, 1, 2
    .../in_power<c>_input (mW), in_current<c>_input (mA), in_voltage<c>_input (mV)
JetPack 5+ (mainline ``ina3221`` hwmon driver):
    /sys/class/hwmon/hwmon<N>/name == "ina3221"; in<c>_label, in<c>_input (mV), curr<c>_input (mA)
    c = 1, 2, 3; labels containing "NC" are unconnected (AGX Orin), channel 7 is the shunt sum.
hwmon numbers change between boots, so monitors are found by name, never by number. The board's total
input is the ``VDD_IN`` rail (``POM_5V_IN`` on the Nano), as jetson-stats' ``total_power`` reads it.
"""
import logging
import re
from typing import Dict, List, Optional, Sequence, Tuple

from edgesplit.runtime.sensors.reading import Clock, Reading, Sensor, SensorUnavailable, measured, unavailable
from edgesplit.runtime.sensors.sysroot import SysRoot

log = logging.getLogger(__name__)

IIO_DRIVER = "/sys/bus/i2c/drivers/ina3221x"
HWMON_CLASS = "/sys/class/hwmon"
DEFAULT_TOTAL_RAILS = ("VDD_IN", "POM_5V_IN")


class Rail(object):
    """Where one rail's power comes from: either a power file (mW) or a voltage/current pair."""

    def __init__(self, name: str, power_mw: Optional[str] = None,
                 volt_mv: Optional[str] = None, curr_ma: Optional[str] = None) -> None:
        self.name = name
        self.power_mw = power_mw
        self.volt_mv = volt_mv
        self.curr_ma = curr_ma

    @property
    def source(self) -> str:
        return self.power_mw or "%s x %s" % (self.volt_mv, self.curr_ma)

    def watts(self, root: SysRoot) -> float:
        if self.power_mw is not None:
            milliwatts = root.read_int(self.power_mw)
        else:
            milliwatts = root.read_int(self.volt_mv) * root.read_int(self.curr_ma) / 1000.0
        if milliwatts < 0:
            raise SensorUnavailable("%s gives a negative power (%s mW)" % (self.source, milliwatts))
        return milliwatts / 1000.0


def find_iio_rails(root: SysRoot) -> List[Rail]:
    rails = []
    for device in root.listdir(IIO_DRIVER):
        for iio in (e for e in root.listdir("%s/%s" % (IIO_DRIVER, device)) if e.startswith("iio:device")):
            base = "%s/%s/%s" % (IIO_DRIVER, device, iio)
            for entry in root.listdir(base):
                match = re.match(r"rail_name_(\d+)$", entry)
                if not match:
                    continue
                channel = match.group(1)
                try:
                    name = root.read_text(base + "/" + entry)
                except SensorUnavailable:
                    continue
                rails.append(Rail(name, power_mw="%s/in_power%s_input" % (base, channel)))
    return rails


def find_hwmon_rails(root: SysRoot) -> List[Rail]:
    rails = []
    for hwmon in root.listdir(HWMON_CLASS):
        base = "%s/%s" % (HWMON_CLASS, hwmon)
        try:
            if root.read_text(base + "/name") != "ina3221":
                continue
        except SensorUnavailable:
            continue
        for entry in root.listdir(base):
            match = re.match(r"in(\d+)_label$", entry)
            if not match or match.group(1) == "7":  # in7 is the sum of shunt voltages, not a rail
                continue
            try:
                label = root.read_text(base + "/" + entry)
            except SensorUnavailable:
                continue
            if not label or label == "NC" or label.startswith("NC"):
                continue
            channel = match.group(1)
            rails.append(Rail(label, volt_mv="%s/in%s_input" % (base, channel),
                              curr_ma="%s/curr%s_input" % (base, channel)))
    return rails


class Ina3221Power(Sensor):
    kind = "power"
    outputs = {"power_total": "W"}

    def __init__(self, root: SysRoot, clock: Clock,
                 total_rails: Sequence[str] = DEFAULT_TOTAL_RAILS) -> None:
        super().__init__(clock)
        self.root = root
        self.total_rails = tuple(total_rails)
        self._rails = None  # type: Optional[List[Rail]]
        self._layout = ""

    def discover(self) -> Tuple[str, List[Rail]]:
        if self._rails is None:
            for layout, finder in (("hwmon", find_hwmon_rails), ("iio", find_iio_rails)):
                rails = finder(self.root)
                if rails:
                    self._rails, self._layout = rails, layout
                    log.debug("INA3221 (%s layout): rails %s", layout, [r.name for r in rails])
                    break
        return self._layout, self._rails or []

    def read(self) -> List[Reading]:
        layout, rails = self.discover()
        if not rails:
            return self.all_unavailable("no INA3221 power monitor: neither %s/hwmon*/name == ina3221 (JetPack 5+) "
                                        "nor %s/*/iio:device* (JetPack 4)" % (HWMON_CLASS, IIO_DRIVER))
        readings = []  # type: List[Reading]
        by_rail = {}  # type: Dict[str, Reading]
        for rail in rails:
            try:
                reading = measured("power." + rail.name, rail.watts(self.root), "W", rail.source, self.clock)
            except SensorUnavailable as exc:
                reading = unavailable("power." + rail.name, "W", str(exc), self.clock, rail.source)
            by_rail[rail.name] = reading
            readings.append(reading)
        return [self._total(by_rail)] + readings

    def _total(self, by_rail: Dict[str, Reading]) -> Reading:
        for name in self.total_rails:
            if name in by_rail:
                rail = by_rail[name]
                return Reading("power_total", rail.value, "W", rail.source, rail.timestamp,
                               rail.available, rail.reason)
        return unavailable("power_total", "W", "no input rail among %s (rails: %s); the sum of rails would "
                           "miss the board's own consumption" % ("/".join(self.total_rails),
                                                                  ", ".join(sorted(by_rail))), self.clock)
