"""Discrete NVIDIA GPUs through NVML (the ``nvidia-ml-py`` package, imported as ``pynvml``).

One ``NvmlSession`` initialises NVML once and is shared by the GPU and power readers. Failures that
will not heal while the process runs (package missing, no driver library, no GPU) are remembered, so
a sampler on a Jetson or a CPU-only host does not retry them at every tick.
"""
import logging
from typing import Any, Dict, List, Optional, Tuple, Union

from edgesplit.runtime.sensors.reading import Clock, Reading, Sensor, SensorUnavailable, measured, unavailable

log = logging.getLogger(__name__)


def _import_pynvml() -> Any:
    import pynvml  # nvidia-ml-py; the separate ``pynvml`` PyPI package is a deprecated shim

    return pynvml


class NvmlSession:
    def __init__(self, index: int = 0, module: Any = None) -> None:
        self.index = index
        self._module = module
        self._handle = None  # type: Any
        self._failure = None  # type: Optional[str]

    def open(self) -> Tuple[Any, Any]:
        """(pynvml module, device handle); raises SensorUnavailable with the reason otherwise."""
        if self._handle is not None:
            return self._module, self._handle
        if self._failure is not None:
            raise SensorUnavailable(self._failure)
        try:
            self._handle = self._connect()
        except SensorUnavailable as exc:
            self._failure = str(exc)
            log.debug("NVML unavailable: %s", exc)
            raise
        return self._module, self._handle

    def _connect(self) -> Any:
        if self._module is None:
            try:
                self._module = _import_pynvml()
            except ImportError:
                raise SensorUnavailable("nvidia-ml-py is not installed (pip install nvidia-ml-py)")
        nvml = self._module
        try:
            nvml.nvmlInit()
        except nvml.NVMLError_LibraryNotFound:
            raise SensorUnavailable("NVML library libnvidia-ml.so.1 not found: no NVIDIA driver on this host")
        except nvml.NVMLError as exc:
            raise SensorUnavailable("nvmlInit failed: %s" % exc)
        try:
            count = nvml.nvmlDeviceGetCount()
            if self.index >= count:
                raise SensorUnavailable("NVML sees %d GPU(s); GPU index %d does not exist" % (count, self.index))
            return nvml.nvmlDeviceGetHandleByIndex(self.index)
        except nvml.NVMLError as exc:
            raise SensorUnavailable("NVML cannot open GPU %d: %s" % (self.index, exc))

    @property
    def source(self) -> str:
        return "nvml:gpu%d" % self.index

    def query(self, what: str, call: Any, *args: Any) -> Any:
        nvml, handle = self.open()
        try:
            return call(nvml)(handle, *args)
        except nvml.NVMLError as exc:
            raise SensorUnavailable("NVML %s failed: %s" % (what, exc))


class NvmlGpu(Sensor):
    """Clock, load and temperature of a discrete GPU.

    The clock range is static: it is read once, when NVML first opens, because listing the supported
    clocks costs ~1.6 ms on an H200 while the live reads cost microseconds. A static read that fails
    (e.g. NotSupported) stays unavailable with its reason; it is not retried every sample.
    """

    kind = "gpu"
    outputs = {"gpu_freq": "MHz", "gpu_freq_min": "MHz", "gpu_freq_max": "MHz", "gpu_load": "%"}

    def __init__(self, session: NvmlSession, clock: Clock) -> None:
        super().__init__(clock)
        self.session = session
        self._static = None  # type: Optional[Dict[str, Union[float, SensorUnavailable]]]

    def read(self) -> List[Reading]:
        try:
            nvml, _ = self.session.open()
        except SensorUnavailable as exc:
            return self.all_unavailable(str(exc), "nvml")
        if self._static is None:
            self._static = self._read_static(nvml)
        graphics = nvml.NVML_CLOCK_GRAPHICS
        return [
            self._one("gpu_freq", "MHz", lambda: self.session.query(
                "clock", lambda m: m.nvmlDeviceGetClockInfo, graphics)),
            self._one("gpu_freq_min", "MHz", lambda: self._static_value("gpu_freq_min")),
            self._one("gpu_freq_max", "MHz", lambda: self._static_value("gpu_freq_max")),
            self._one("gpu_load", "%", lambda: self.session.query(
                "utilization", lambda m: m.nvmlDeviceGetUtilizationRates).gpu),
            self._one("gpu_temp", "C", lambda: self.session.query(
                "temperature", lambda m: m.nvmlDeviceGetTemperature, nvml.NVML_TEMPERATURE_GPU)),
        ]

    def _read_static(self, nvml: Any) -> Dict[str, Union[float, SensorUnavailable]]:
        values = {}  # type: Dict[str, Union[float, SensorUnavailable]]
        readers = (("gpu_freq_min", self._min_clock),
                   ("gpu_freq_max", lambda: self.session.query(
                       "max clock", lambda m: m.nvmlDeviceGetMaxClockInfo, nvml.NVML_CLOCK_GRAPHICS)))
        for name, get in readers:
            try:
                values[name] = float(get())
            except SensorUnavailable as exc:
                log.debug("NVML %s unavailable: %s", name, exc)
                values[name] = exc
        return values

    def _static_value(self, name: str) -> float:
        value = self._static[name]
        if isinstance(value, SensorUnavailable):
            raise value
        return value

    def _min_clock(self) -> float:
        # NVML has no "min clock" call: the lowest graphics clock supported at the top memory clock is it.
        memory = self.session.query("memory clocks", lambda m: m.nvmlDeviceGetSupportedMemoryClocks)
        if not memory:
            raise SensorUnavailable("NVML lists no supported memory clocks")
        graphics = self.session.query("graphics clocks", lambda m: m.nvmlDeviceGetSupportedGraphicsClocks,
                                      max(memory))
        if not graphics:
            raise SensorUnavailable("NVML lists no supported graphics clocks")
        return min(graphics)

    def _one(self, name: str, unit: str, get: Any) -> Reading:
        try:
            return measured(name, get(), unit, self.session.source, self.clock)
        except SensorUnavailable as exc:
            return unavailable(name, unit, str(exc), self.clock, self.session.source)


class NvmlPower(Sensor):
    """Board power of a discrete GPU (``nvmlDeviceGetPowerUsage``, milliwatts)."""

    kind = "power"
    outputs = {"power_gpu": "W"}

    def __init__(self, session: NvmlSession, clock: Clock) -> None:
        super().__init__(clock)
        self.session = session

    def read(self) -> List[Reading]:
        try:
            milliwatts = self.session.query("power usage", lambda m: m.nvmlDeviceGetPowerUsage)
        except SensorUnavailable as exc:
            return self.all_unavailable(str(exc), "nvml")
        return [measured("power_gpu", milliwatts / 1000.0, "W", self.session.source, self.clock)]
