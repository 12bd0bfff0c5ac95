"""A stand-in for the ``pynvml`` module (nvidia-ml-py) with the calls and errors the readers use.

Only for tests on hosts without an NVIDIA GPU; the shapes follow nvidia-ml-py: clocks in MHz, power in
mW, ``nvmlDeviceGetUtilizationRates`` returning an object with ``.gpu`` in percent.
"""


class NVMLError(Exception):
    pass


class NVMLError_LibraryNotFound(NVMLError):
    pass


class NVMLError_NotSupported(NVMLError):
    pass


class _Utilization(object):
    def __init__(self, gpu, memory):
        self.gpu = gpu
        self.memory = memory


class FakeNvml(object):
    """``calls`` counts every NVML call by name, so a test can see which reads happen per sample."""

    NVMLError = NVMLError
    NVMLError_LibraryNotFound = NVMLError_LibraryNotFound
    NVML_CLOCK_GRAPHICS = 0
    NVML_TEMPERATURE_GPU = 0

    def __init__(self, library=True, gpus=1, power_supported=True, supported_clocks=True):
        self.library = library
        self.gpus = gpus
        self.power_supported = power_supported
        self.supported_clocks = supported_clocks
        self.inits = 0
        self.calls = {}

    def __getattribute__(self, name):
        if name.startswith("nvml"):
            calls = object.__getattribute__(self, "calls")
            calls[name] = calls.get(name, 0) + 1
        return object.__getattribute__(self, name)

    def nvmlInit(self):
        self.inits += 1
        if not self.library:
            raise NVMLError_LibraryNotFound("NVML Shared Library Not Found")

    def nvmlDeviceGetCount(self):
        return self.gpus

    def nvmlDeviceGetHandleByIndex(self, index):
        return "handle%d" % index

    def nvmlDeviceGetClockInfo(self, handle, clock):
        return 1410

    def nvmlDeviceGetMaxClockInfo(self, handle, clock):
        return 1980

    def nvmlDeviceGetSupportedMemoryClocks(self, handle):
        if not self.supported_clocks:
            raise NVMLError_NotSupported("Not Supported")
        return [2619, 1593]

    def nvmlDeviceGetSupportedGraphicsClocks(self, handle, memory_clock):
        assert memory_clock == 2619
        return [1980, 1410, 345]

    def nvmlDeviceGetUtilizationRates(self, handle):
        return _Utilization(37, 12)

    def nvmlDeviceGetTemperature(self, handle, sensor):
        return 41

    def nvmlDeviceGetPowerUsage(self, handle):
        if not self.power_supported:
            raise NVMLError_NotSupported("Not Supported")
        return 68123
