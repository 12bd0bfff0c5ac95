"""Every reader against every board's fake tree, plus missing files and garbage in files."""
import os

import pytest

from support import fake_boards
from edgesplit.runtime.sensors.cpu import CpuFreq
from edgesplit.runtime.sensors.gpu_devfreq import DevfreqGpu, find_gpu_devfreq
from edgesplit.runtime.sensors.memory import Memory
from edgesplit.runtime.sensors.power_ina3221 import Ina3221Power
from edgesplit.runtime.sensors.reading import by_name
from edgesplit.runtime.sensors.sysroot import SysRoot
from edgesplit.runtime.sensors.thermal import Thermal


def clock():
    return 123.0


def read(sensor):
    return by_name(sensor.read())


def check(reading, want):
    if want is None:
        assert not reading.available and reading.value is None and reading.reason
    else:
        assert reading.available, reading.reason
        assert reading.value == pytest.approx(want, rel=1e-6)
        assert reading.timestamp == 123.0 and reading.source


def test_gpu_devfreq_on_every_board(board):
    name, root = board
    want = fake_boards.expected(name)
    got = read(DevfreqGpu(SysRoot(str(root)), clock))
    check(got["gpu_freq"], want["gpu_freq"])
    if want["gpu_freq"] is not None:
        check(got["gpu_freq_min"], want["gpu_freq_min"])
        check(got["gpu_load"], want["gpu_load"])
        assert got["gpu_freq"].source.startswith("/sys/class/devfreq/")
    else:
        assert "no devfreq node" in got["gpu_freq"].reason


def test_ina3221_power_on_every_board(board):
    name, root = board
    want = fake_boards.expected(name)
    got = read(Ina3221Power(SysRoot(str(root)), clock))
    check(got["power_total"], want["power_total"])
    for key, value in want.items():
        if key.startswith("power."):
            check(got[key], value)
    if want["power_total"] is None:
        assert "no INA3221" in got["power_total"].reason


def test_cpu_freq_on_every_board(board):
    name, root = board
    want = fake_boards.expected(name)
    got = read(CpuFreq(SysRoot(str(root)), clock))
    check(got["cpu_freq"], want["cpu_freq"])
    assert got["cpu_freq.cpu0"].source == "/sys/devices/system/cpu/cpu0/cpufreq/scaling_cur_freq"
    for core in want.get("cpu_offline", []):
        assert got["cpu_freq.cpu%d" % core].reason == "cpu%d is offline" % core


def test_thermal_and_memory_on_every_board(board):
    name, root = board
    want = fake_boards.expected(name)
    check(read(Thermal(SysRoot(str(root)), clock))["temp_max"], want["temp_max"])
    check(read(Memory(SysRoot(str(root)), clock))["mem_total"], want["mem_total"])


def test_gpu_discovery_skips_other_devfreq_nodes(tmp_path):
    root = fake_boards.build("jetson_xavier_nx", tmp_path)
    assert find_gpu_devfreq(SysRoot(str(root))) == ("/sys/class/devfreq/17000000.gv11b", "gv11b")


def test_hwmon_found_by_name_whatever_its_number(tmp_path):
    root = fake_boards.build("jetson_orin_nano", tmp_path)
    os.rename(str(root / "sys/class/hwmon/hwmon10"), str(root / "sys/class/hwmon/hwmon11"))
    got = read(Ina3221Power(SysRoot(str(root)), clock))
    assert got["power_total"].available
    assert got["power_total"].source.startswith("/sys/class/hwmon/hwmon11/in1_input")


def test_hwmon_skips_unconnected_channels_and_shunt_sum(tmp_path):
    # AGX Orin style: a monitor with "NC" channels.
    fake_boards.ina_hwmon(tmp_path, "/sys/devices/i2c-1/1-0041", "hwmon5",
                          [("NC", 0, 0), ("VDDQ_VDD2_1V8AO", 5000, 100), ("NC", 0, 0)])
    got = read(Ina3221Power(SysRoot(str(tmp_path)), clock))
    assert sorted(got) == ["power.VDDQ_VDD2_1V8AO", "power_total"]
    assert not got["power_total"].available and "no input rail" in got["power_total"].reason


# -- file missing / garbage in file ------------------------------------------------------------------

def test_missing_gpu_frequency_file(tmp_path):
    root = fake_boards.build("jetson_tx2", tmp_path)
    os.remove(str(root / "sys/devices/17000000.gp10b/devfreq/17000000.gp10b/cur_freq"))
    got = read(DevfreqGpu(SysRoot(str(root)), clock))
    assert not got["gpu_freq"].available
    assert got["gpu_freq"].reason == "/sys/class/devfreq/17000000.gp10b/cur_freq does not exist"
    assert got["gpu_freq_max"].available  # the other files still read


@pytest.mark.parametrize("garbage", ["", "busy\n", "12.5e\n", "-5\n", "2000\n"])
def test_garbage_gpu_load(tmp_path, garbage):
    root = fake_boards.build("jetson_nano", tmp_path)
    (root / "sys/devices/57000000.gpu/load").write_text(garbage)
    got = read(DevfreqGpu(SysRoot(str(root)), clock))["gpu_load"]
    assert not got.available and got.value is None
    assert "/sys/class/devfreq/57000000.gpu/device/load" in got.reason


def test_garbage_in_iio_power_file(tmp_path):
    root = fake_boards.build("jetson_tx2", tmp_path)
    (root / "sys/devices/3160000.i2c/i2c-0/0-0041/iio:device1/in_power0_input").write_text("nan\n")
    got = read(Ina3221Power(SysRoot(str(root)), clock))
    assert not got["power_total"].available and "not an integer" in got["power_total"].reason
    assert got["power.VDD_SYS_GPU"].available


def test_missing_hwmon_current_file(tmp_path):
    root = fake_boards.build("jetson_xavier_nx", tmp_path)
    os.remove(str(root / "sys/devices/3160000.i2c/i2c-7/7-0040/hwmon/hwmon3/curr1_input"))
    got = read(Ina3221Power(SysRoot(str(root)), clock))
    assert not got["power_total"].available
    assert got["power_total"].reason == "/sys/class/hwmon/hwmon3/curr1_input does not exist"


def test_garbage_cpufreq_and_thermal(tmp_path):
    root = fake_boards.build("rpi4", tmp_path)
    (root / "sys/devices/system/cpu/cpu2/cpufreq/scaling_cur_freq").write_text("<unknown>\n")
    (root / "sys/devices/virtual/thermal/thermal_zone0/temp").write_text("\n")
    cpu = read(CpuFreq(SysRoot(str(root)), clock))
    assert not cpu["cpu_freq.cpu2"].available and "not an integer" in cpu["cpu_freq.cpu2"].reason
    assert cpu["cpu_freq"].value == pytest.approx(1500.0)  # the mean of the cores that read
    temp = read(Thermal(SysRoot(str(root)), clock))
    assert not temp["temp_max"].available and not temp["temp.cpu-thermal"].available


def test_placeholder_temperature_is_not_a_reading(tmp_path):
    root = fake_boards.build("jetson_orin_nano", tmp_path)
    got = read(Thermal(SysRoot(str(root)), clock))
    assert not got["temp.cv0-thermal"].available and "placeholder" in got["temp.cv0-thermal"].reason


def test_missing_and_garbage_meminfo(tmp_path):
    root = SysRoot(str(tmp_path))
    assert read(Memory(root, clock))["mem_used"].reason == "/proc/meminfo does not exist"
    fake_boards.write(tmp_path, "/proc/meminfo", "MemTotal: lots\n")
    assert "no MemTotal or MemAvailable" in read(Memory(root, clock))["mem_used"].reason


def test_empty_root_makes_everything_unavailable(tmp_path):
    root = SysRoot(str(tmp_path))
    for sensor in (DevfreqGpu(root, clock), Ina3221Power(root, clock), CpuFreq(root, clock),
                   Thermal(root, clock), Memory(root, clock)):
        readings = sensor.read()
        assert readings and all(not r.available and r.reason for r in readings)


def test_cpuinfo_fallback_where_there_is_no_cpufreq(tmp_path):
    fake_boards.write(tmp_path, "/proc/cpuinfo", "processor\t: 0\ncpu MHz\t\t: 2596.130\n\n"
                                                 "processor\t: 1\ncpu MHz\t\t: 2600.000\n")
    got = read(CpuFreq(SysRoot(str(tmp_path)), clock))
    assert got["cpu_freq"].value == pytest.approx(2598.065)
    assert got["cpu_freq"].source.startswith("/proc/cpuinfo")


def test_sysroot_from_env(tmp_path):
    assert SysRoot.from_env({"EDGESPLIT_SYSROOT": str(tmp_path)}).path == str(tmp_path)
    assert SysRoot.from_env({}).path == "/"
