"""Builds the sensors a board config asks for, by name, over one SysRoot and shared handles."""
import time
from typing import Dict, List, Optional, Sequence

from edgesplit.runtime.sensors.chain import FirstAvailable
from edgesplit.runtime.sensors.cpu import CpuFreq
from edgesplit.runtime.sensors.gpu_devfreq import DevfreqGpu
from edgesplit.runtime.sensors.jtop_source import JtopClient, JtopGpu, JtopPower
from edgesplit.runtime.sensors.memory import Memory
from edgesplit.runtime.sensors.nvml import NvmlGpu, NvmlPower, NvmlSession
from edgesplit.runtime.sensors.power_ina3221 import DEFAULT_TOTAL_RAILS, Ina3221Power
from edgesplit.runtime.sensors.power_rpi import RpiPmicPower, RpiThrottle
from edgesplit.runtime.sensors.reading import Clock, Sensor
from edgesplit.runtime.sensors.sysroot import SysRoot
from edgesplit.runtime.sensors.thermal import Thermal
from edgesplit.runtime.sensors.vcgencmd import Vcgencmd

SENSOR_KINDS = ("gpu", "power", "cpu_freq", "thermal", "memory", "throttle")
GPU_SOURCES = ("nvml", "jtop", "devfreq")
POWER_SOURCES = ("ina3221", "jtop", "nvml", "rpi_pmic")

# Readings a policy may use as its energy proxy, with their units (checked against board configs).
PROXY_UNITS = {
    "gpu_freq": "MHz", "cpu_freq": "MHz", "power_total": "W", "power_gpu": "W", "power_pmic_sum": "W",
}


class Hardware:
    """The handles sensors share: one filesystem root, one NVML session, one jtop client, one vcgencmd."""

    def __init__(self, root: SysRoot, clock: Clock = time.monotonic, nvml: Optional[NvmlSession] = None,
                 jtop: Optional[JtopClient] = None, vcgencmd: Optional[Vcgencmd] = None) -> None:
        self.root = root
        self.clock = clock
        self.nvml = nvml or NvmlSession()
        self.jtop = jtop or JtopClient()
        self.vcgencmd = vcgencmd or Vcgencmd()


def build_sensors(hw: Hardware, kinds: Sequence[str], gpu_sources: Sequence[str] = GPU_SOURCES,
                  power_sources: Sequence[str] = POWER_SOURCES,
                  total_power_rails: Sequence[str] = DEFAULT_TOTAL_RAILS,
                  thermal_zones: Sequence[str] = ()) -> List[Sensor]:
    clock = hw.clock
    gpu = {
        "nvml": lambda: NvmlGpu(hw.nvml, clock),
        "jtop": lambda: JtopGpu(hw.jtop, clock),
        "devfreq": lambda: DevfreqGpu(hw.root, clock),
    }
    power = {
        "ina3221": lambda: Ina3221Power(hw.root, clock, total_power_rails),
        "jtop": lambda: JtopPower(hw.jtop, clock),
        "nvml": lambda: NvmlPower(hw.nvml, clock),
        "rpi_pmic": lambda: RpiPmicPower(hw.vcgencmd, clock),
    }
    single = {
        "cpu_freq": lambda: CpuFreq(hw.root, clock),
        "thermal": lambda: Thermal(hw.root, clock, thermal_zones),
        "memory": lambda: Memory(hw.root, clock),
        "throttle": lambda: RpiThrottle(hw.vcgencmd, clock),
    }
    sensors = []  # type: List[Sensor]
    for kind in kinds:
        if kind == "gpu":
            sensors.append(_chain("gpu", gpu, gpu_sources, clock))
        elif kind == "power":
            sensors.append(_chain("power", power, power_sources, clock))
        elif kind in single:
            sensors.append(single[kind]())
        else:
            raise ValueError("unknown sensor %r; known: %s" % (kind, ", ".join(SENSOR_KINDS)))
    return sensors


def _chain(kind: str, factories: Dict[str, object], names: Sequence[str], clock: Clock) -> Sensor:
    unknown = [n for n in names if n not in factories]
    if unknown or not names:
        raise ValueError("%s sources %s: choose from %s" % (kind, list(names), ", ".join(factories)))
    sources = [factories[n]() for n in names]  # type: ignore[operator]
    return sources[0] if len(sources) == 1 else FirstAvailable(kind, sources, clock)
