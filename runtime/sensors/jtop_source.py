"""Jetson GPU and power through jetson-stats (``jtop``), when its service is running.

``jtop().start()`` raises ``JtopException`` when the jtop service is not active; that, or the package
missing, makes these readers unavailable with the reason. Shapes follow jtop/core/gpu.py and
power.py: ``client.gpu`` maps a GPU name to {'type', 'status': {'load': %}, 'freq': {'cur', 'min',
'max'} in kHz}; ``client.power`` is {'rail': {...}, 'tot': {'power': mW, ...}}.
"""
import logging
from typing import Any, Callable, List, Optional

from edgesplit.runtime.sensors.reading import Clock, Reading, Sensor, SensorUnavailable, measured, unavailable

log = logging.getLogger(__name__)
SOURCE = "jtop"


def _real_client() -> Any:
    try:
        from jtop import jtop, JtopException
    except ImportError:
        raise SensorUnavailable("jetson-stats is not installed (pip install jetson-stats)")
    client = jtop()
    try:
        client.start()
    except JtopException as exc:
        raise SensorUnavailable("jtop service is not running (%s); sudo systemctl start jtop" % exc)
    return client


class JtopClient:
    """One started jtop client shared by the jtop readers; a failure to start is remembered."""

    def __init__(self, factory: Callable[[], Any] = _real_client) -> None:
        self._factory = factory
        self._client = None  # type: Any
        self._failure = None  # type: Optional[str]

    def get(self) -> Any:
        if self._client is not None:
            return self._client
        if self._failure is not None:
            raise SensorUnavailable(self._failure)
        try:
            self._client = self._factory()
        except SensorUnavailable as exc:
            self._failure = str(exc)
            raise
        return self._client

    def close(self) -> None:
        if self._client is not None and hasattr(self._client, "close"):
            self._client.close()
        self._client = None


class JtopGpu(Sensor):
    kind = "gpu"
    outputs = {"gpu_freq": "MHz", "gpu_freq_min": "MHz", "gpu_freq_max": "MHz", "gpu_load": "%"}

    def __init__(self, client: JtopClient, clock: Clock) -> None:
        super().__init__(clock)
        self.client = client

    def read(self) -> List[Reading]:
        try:
            gpus = self.client.get().gpu
        except SensorUnavailable as exc:
            return self.all_unavailable(str(exc), SOURCE)
        integrated = [data for data in gpus.values() if data.get("type") == "integrated"]
        if not integrated:
            return self.all_unavailable("jtop reports no integrated GPU", SOURCE)
        gpu = integrated[0]
        freq = gpu.get("freq", {})
        readings = [self._value(name, "MHz", freq.get(key), 1e-3)
                    for name, key in (("gpu_freq", "cur"), ("gpu_freq_min", "min"), ("gpu_freq_max", "max"))]
        readings.append(self._value("gpu_load", "%", gpu.get("status", {}).get("load"), 1.0))
        return readings

    def _value(self, name: str, unit: str, raw: Any, scale: float) -> Reading:
        if not isinstance(raw, (int, float)) or isinstance(raw, bool):
            return unavailable(name, unit, "jtop gave no %s (%r)" % (name, raw), self.clock, SOURCE)
        return measured(name, raw * scale, unit, SOURCE, self.clock)


class JtopPower(Sensor):
    kind = "power"
    outputs = {"power_total": "W"}

    def __init__(self, client: JtopClient, clock: Clock) -> None:
        super().__init__(clock)
        self.client = client

    def read(self) -> List[Reading]:
        try:
            power = self.client.get().power
        except SensorUnavailable as exc:
            return self.all_unavailable(str(exc), SOURCE)
        total = power.get("tot", {}).get("power")
        if not isinstance(total, (int, float)):
            return self.all_unavailable("jtop gave no total power", SOURCE)
        readings = [measured("power_total", total / 1000.0, "W", SOURCE, self.clock)]
        for rail, values in sorted(power.get("rail", {}).items()):
            if isinstance(values.get("power"), (int, float)):
                readings.append(measured("power." + rail, values["power"] / 1000.0, "W", SOURCE, self.clock))
        return readings
