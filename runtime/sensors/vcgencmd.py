"""Runs the Raspberry Pi firmware tool ``vcgencmd`` and parses the two outputs the sensors use.

``vcgencmd pmic_read_adc`` (Raspberry Pi 5 only) prints one line per ADC channel, e.g.
    "  VDD_CORE_A current(7)=0.75012000A" and "  VDD_CORE_V volt(15)=0.72178200V";
the index in brackets differs between a rail's current and voltage, so rails pair by name.
``vcgencmd get_throttled`` prints "throttled=0x50005": bits 0-3 are conditions now (under-voltage,
ARM frequency capped, throttled, soft temperature limit), bits 16-19 the same since boot.
"""
import re
import shutil
import subprocess
from typing import Dict, List, Optional, Tuple

from edgesplit.runtime.sensors.reading import SensorUnavailable

DEFAULT_TIMEOUT_S = 2.0
PMIC_LINE = re.compile(r"^\s*(\S+)_([AV])\s+(current|volt)\(\d+\)=([-+0-9.eE]+|nan)([AV])\s*$")
THROTTLED = re.compile(r"throttled=0x([0-9a-fA-F]+)")
THROTTLE_BITS = (
    (0, "under_voltage"), (1, "freq_capped"), (2, "throttled"), (3, "soft_temp_limit"),
)


class Vcgencmd:
    def __init__(self, executable: str = "vcgencmd", timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        self.executable = executable
        self.timeout_s = timeout_s

    def run(self, *args: str) -> str:
        path = shutil.which(self.executable)
        if path is None:
            raise SensorUnavailable("%s not found on PATH (not Raspberry Pi OS firmware tools)" % self.executable)
        command = [path] + list(args)
        try:
            done = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  timeout=self.timeout_s, check=False)
        except subprocess.TimeoutExpired:
            raise SensorUnavailable("%s timed out after %.1f s" % (" ".join(command), self.timeout_s))
        except OSError as exc:
            raise SensorUnavailable("cannot run %s: %s" % (" ".join(command), exc))
        text = done.stdout.decode("utf-8", "replace")
        if done.returncode != 0 or "error=" in text:
            detail = (text + done.stderr.decode("utf-8", "replace")).strip().splitlines()
            raise SensorUnavailable("%s failed (exit %d): %s" % (" ".join(["vcgencmd"] + list(args)),
                                                                done.returncode, detail[0] if detail else ""))
        return text

    def describe(self, *args: str) -> str:
        return " ".join(["vcgencmd"] + list(args))


def parse_pmic_adc(text: str) -> Dict[str, Tuple[Optional[float], Optional[float]]]:
    """rail -> (amps, volts) from ``pmic_read_adc`` output; a side the PMIC does not report is None."""
    amps = {}  # type: Dict[str, float]
    volts = {}  # type: Dict[str, float]
    for line in text.splitlines():
        match = PMIC_LINE.match(line)
        if not match:
            continue
        rail, suffix, kind, number, unit = match.groups()
        if (suffix, kind, unit) not in (("A", "current", "A"), ("V", "volt", "V")):
            continue
        value = float(number)
        if value != value:  # nan: the ADC has no reading for this channel
            continue
        (amps if suffix == "A" else volts)[rail] = value
    return {rail: (amps.get(rail), volts.get(rail)) for rail in sorted(set(amps) | set(volts))}


def parse_throttled(text: str) -> int:
    match = THROTTLED.search(text)
    if not match:
        raise SensorUnavailable("get_throttled printed %r, not throttled=0x..." % text.strip()[:60])
    return int(match.group(1), 16)


def throttle_flags(bits: int) -> List[Tuple[str, bool, bool]]:
    """(condition, active now, happened since boot) per condition."""
    return [(name, bool(bits >> bit & 1), bool(bits >> (bit + 16) & 1)) for bit, name in THROTTLE_BITS]
