"""The sampler on a real thread with the real clock, and its windows on an injected one."""
import threading
import time

import pytest

from support import fake_boards
from edgesplit.runtime.sensors.catalog import Hardware, build_sensors
from edgesplit.runtime.sensors.reading import Reading, Sensor
from edgesplit.runtime.sensors.sampler import Sampler
from edgesplit.runtime.sensors.sysroot import SysRoot


def test_thread_samples_a_board_tree_with_the_real_clock(tmp_path):
    root = fake_boards.build("jetson_orin_nano", tmp_path)
    sensors = build_sensors(Hardware(SysRoot(str(root))), ["gpu", "power", "cpu_freq", "thermal", "memory"],
                            gpu_sources=["devfreq"], power_sources=["ina3221"])
    with Sampler(sensors, rate_hz=200.0) as sampler:
        deadline = time.monotonic() + 10.0
        while sampler.rounds < 5 and time.monotonic() < deadline:
            time.sleep(0.01)
        mean = sampler.window_mean("power_total", window_s=60.0)
    assert sampler.rounds >= 5
    assert mean == pytest.approx(5064 * 1228 / 1e6)
    assert sampler.latest("gpu_freq").value == pytest.approx(306.0)
    assert not any(t.name == "edgesplit-sampler" for t in threading.enumerate())


class Counter(Sensor):
    kind = "counter"
    outputs = {"x": "n"}

    def __init__(self, clock):
        super().__init__(clock)
        self.values = iter([1.0, 2.0, 3.0, None, 5.0])

    def read(self):
        value = next(self.values)
        t = self.clock()
        if value is None:
            return [Reading("x", None, "n", "test", t, False, "gone")]
        return [Reading("x", value, "n", "test", t)]


class Broken(Sensor):
    kind = "broken"
    outputs = {"y": "n"}

    def read(self):
        raise OSError("bus error")


def test_windows_skip_unavailable_values_and_old_samples():
    now = [0.0]
    sampler = Sampler([Counter(lambda: now[0]), Broken(lambda: now[0])], rate_hz=1.0, history_s=3.5,
                      clock=lambda: now[0])
    for t in range(5):
        now[0] = float(t)
        sampler.sample_once()
    assert sampler.window_mean("x", 1.0) == pytest.approx(5.0)  # t=3 was unavailable, t=4 is 5
    assert sampler.window_mean("x", 2.5) == pytest.approx((3.0 + 5.0) / 2)
    assert sampler.window_mean("x", 100.0) == pytest.approx((2.0 + 3.0 + 5.0) / 3)  # t=0 fell off
    assert sampler.latest("y").reason.startswith("reader crashed")
    assert sampler.window_mean("y", 10.0) is None
    assert sampler.energy_j("x", 1.0, 2.0) == pytest.approx(2.5)


def test_rate_must_be_positive():
    with pytest.raises(ValueError):
        Sampler([], rate_hz=0)
