"""Cost of one NVML GPU sample: NVML calls per ``NvmlGpu.read()`` and, on a GPU, microseconds per read.

    python bench/nvml_read.py [--samples 200] [--json]

With an NVIDIA driver and GPU (``nvidia-ml-py`` installed) it times ``NvmlGpu.read()`` and
``NvmlPower.read()`` on the real device, and each raw NVML call the reader could make, in the same run,
so the ratio "one sample / one supported-clocks listing" says what reading the static values once
saved. Without a GPU it runs the reader on the test suite's stand-in module (tests/support/fake_nvml.py)
and reports the NVML calls made per sample: the static calls (supported clocks, max clock) must be
made once, not once per sample. Prints one JSON document either way (``--json`` is accepted for
symmetry with the other benches; the output is always JSON).
"""
import argparse
import importlib.util
import json
import platform
import statistics
import time
from pathlib import Path
from typing import Any, Callable, Dict, List

from edgesplit.runtime.sensors.nvml import NvmlGpu, NvmlPower, NvmlSession
from edgesplit.runtime.sensors.reading import SensorUnavailable

FAKE_NVML = Path(__file__).resolve().parent.parent / "tests" / "support" / "fake_nvml.py"
STATIC_CALLS = ("nvmlDeviceGetSupportedMemoryClocks", "nvmlDeviceGetSupportedGraphicsClocks",
                "nvmlDeviceGetMaxClockInfo")


class CountingModule(object):
    """Wraps a pynvml-like module and counts each ``nvml*`` function it hands out."""

    def __init__(self, module: Any) -> None:
        self._module = module
        self.calls = {}  # type: Dict[str, int]

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._module, name)
        if name.startswith("nvml") and callable(value):
            self.calls[name] = self.calls.get(name, 0) + 1
        return value


def _real_module():
    """pynvml when a driver and a GPU answer, else None."""
    try:
        import pynvml
    except ImportError:
        return None
    try:
        pynvml.nvmlInit()
        if pynvml.nvmlDeviceGetCount() < 1:
            return None
    except pynvml.NVMLError:
        return None
    return pynvml


def _fake_module() -> Any:
    # The bench runs standalone (no pytest path): load the tests' stand-in by its file.
    spec = importlib.util.spec_from_file_location("fake_nvml", str(FAKE_NVML))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.FakeNvml()


def _median_us(call: Callable[[], Any], samples: int) -> float:
    times = []  # type: List[float]
    for _ in range(samples):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return round(statistics.median(times) * 1e6, 2)


def _raw_calls_us(nvml: Any, samples: int) -> Dict[str, Any]:
    handle = nvml.nvmlDeviceGetHandleByIndex(0)
    top_memory = max(nvml.nvmlDeviceGetSupportedMemoryClocks(handle))
    calls = {
        "clock": lambda: nvml.nvmlDeviceGetClockInfo(handle, nvml.NVML_CLOCK_GRAPHICS),
        "utilization": lambda: nvml.nvmlDeviceGetUtilizationRates(handle),
        "temperature": lambda: nvml.nvmlDeviceGetTemperature(handle, nvml.NVML_TEMPERATURE_GPU),
        "power": lambda: nvml.nvmlDeviceGetPowerUsage(handle),
        "max_clock": lambda: nvml.nvmlDeviceGetMaxClockInfo(handle, nvml.NVML_CLOCK_GRAPHICS),
        "supported_memory_clocks": lambda: nvml.nvmlDeviceGetSupportedMemoryClocks(handle),
        "supported_graphics_clocks": lambda: nvml.nvmlDeviceGetSupportedGraphicsClocks(handle, top_memory),
    }
    out = {}  # type: Dict[str, Any]
    for name, call in calls.items():
        try:
            out[name] = _median_us(call, samples)
        except nvml.NVMLError as exc:
            out[name] = "unavailable: %s" % exc
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=200, help="reads per figure (default 200)")
    parser.add_argument("--json", action="store_true", help="print JSON (the default and only format)")
    args = parser.parse_args()
    real = _real_module()
    counted = CountingModule(real if real is not None else _fake_module())
    session = NvmlSession(module=counted)
    gpu, power = NvmlGpu(session, time.monotonic), NvmlPower(session, time.monotonic)
    try:
        session.open()
    except SensorUnavailable as exc:
        raise SystemExit("NVML did not open: %s" % exc)
    counted.calls.clear()
    gpu_us = _median_us(gpu.read, args.samples)
    power_us = _median_us(power.read, args.samples)
    static = {name: counted.calls.get(name, 0) for name in STATIC_CALLS}
    report = {
        "bench": "nvml_read",
        "nvml": "real" if real is not None else "fake (tests/support/fake_nvml.py: no GPU here, timings meaningless)",
        "python": platform.python_version(),
        "samples": args.samples,
        "static_calls_in_all_samples": static,
        "calls_per_gpu_sample": {name: round(count / args.samples, 3) for name, count in sorted(counted.calls.items())
                                 if name not in STATIC_CALLS and name != "nvmlDeviceGetPowerUsage"},
        "static_read_once": all(count <= 1 for count in static.values()),
        "gpu_read_median_us": gpu_us,
        "power_read_median_us": power_us,
    }
    if real is not None:
        report["device"] = real.nvmlDeviceGetName(real.nvmlDeviceGetHandleByIndex(0))
        report["raw_call_median_us"] = _raw_calls_us(real, args.samples)
    print(json.dumps(report, indent=2, default=str))


if __name__ == "__main__":
    main()
