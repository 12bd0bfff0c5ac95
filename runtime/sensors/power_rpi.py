"""Raspberry Pi 5 power rails from the PMIC ADC (``vcgencmd pmic_read_adc``).

Each rail that reports both current and voltage gives power = V x A. Their sum is the SoC and memory
consumption the PMIC sees; it is not the board's input power (USB, fan and HATs hang off 5 V, which
has only a voltage channel, EXT5V_V), hence the separate name ``power_pmic_sum``.
"""
from typing import List

from edgesplit.runtime.sensors.reading import Clock, Reading, Sensor, SensorUnavailable, measured
from edgesplit.runtime.sensors.vcgencmd import Vcgencmd, parse_pmic_adc, parse_throttled, throttle_flags


class RpiPmicPower(Sensor):
    kind = "power"
    outputs = {"power_pmic_sum": "W"}

    def __init__(self, vcgencmd: Vcgencmd, clock: Clock) -> None:
        super().__init__(clock)
        self.vcgencmd = vcgencmd

    def read(self) -> List[Reading]:
        source = self.vcgencmd.describe("pmic_read_adc")
        try:
            rails = parse_pmic_adc(self.vcgencmd.run("pmic_read_adc"))
        except SensorUnavailable as exc:
            return self.all_unavailable(str(exc), source)
        powered = {rail: amps * volts for rail, (amps, volts) in rails.items()
                   if amps is not None and volts is not None}
        if not powered:
            return self.all_unavailable("pmic_read_adc printed no rail with both current and voltage", source)
        readings = [measured("power_pmic_sum", sum(powered.values()), "W", source, self.clock)]
        readings += [measured("power." + rail, watts, "W", source, self.clock)
                     for rail, watts in sorted(powered.items())]
        extra = rails.get("EXT5V")
        if extra is not None and extra[1] is not None:
            readings.append(measured("volt.EXT5V", extra[1], "V", source, self.clock))
        return readings


class RpiThrottle(Sensor):
    """``vcgencmd get_throttled`` bits; on boards without the tool (Jetsons, x86) it is unavailable."""

    kind = "throttle"
    outputs = {"throttled": "flags", "throttled_now": "bool"}

    def __init__(self, vcgencmd: Vcgencmd, clock: Clock) -> None:
        super().__init__(clock)
        self.vcgencmd = vcgencmd

    def read(self) -> List[Reading]:
        source = self.vcgencmd.describe("get_throttled")
        try:
            bits = parse_throttled(self.vcgencmd.run("get_throttled"))
        except SensorUnavailable as exc:
            return self.all_unavailable(str(exc), source)
        flags = throttle_flags(bits)
        readings = [measured("throttled", bits, "flags", source, self.clock),
                    measured("throttled_now", 1.0 if bits & 0xF else 0.0, "bool", source, self.clock)]
        readings += [measured("throttled." + name, 1.0 if now else 0.0, "bool", source, self.clock)
                     for name, now, _ in flags]
        return readings
