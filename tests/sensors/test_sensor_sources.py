"""NVML, jtop and vcgencmd sources, the first-available chain, and energy."""
import stat
import sys
import textwrap

import pytest

from support import fake_boards
from support.fake_nvml import FakeNvml
from edgesplit.runtime.sensors.catalog import Hardware, build_sensors
from edgesplit.runtime.sensors.chain import FirstAvailable
from edgesplit.runtime.sensors.energy import energy_j, integrate_energy_j
from edgesplit.runtime.sensors.gpu_devfreq import DevfreqGpu
from edgesplit.runtime.sensors.jtop_source import JtopClient, JtopGpu, JtopPower
from edgesplit.runtime.sensors.nvml import NvmlGpu, NvmlPower, NvmlSession
from edgesplit.runtime.sensors.power_rpi import RpiPmicPower, RpiThrottle
from edgesplit.runtime.sensors.reading import SensorUnavailable, by_name
from edgesplit.runtime.sensors.sysroot import SysRoot
from edgesplit.runtime.sensors.vcgencmd import Vcgencmd, parse_pmic_adc, parse_throttled

# The format of `vcgencmd pmic_read_adc` on a Raspberry Pi 5 (Raspberry Pi OS bookworm): one line per
# channel, current and voltage of a rail on different ADC indices, EXT5V and BATT voltage only.
PMIC_OUTPUT = """ 3V7_WL_SW_A current(0)=0.05416512A
   3V3_SYS_A current(1)=0.07516110A
   1V8_SYS_A current(2)=0.20541840A
  DDR_VDD2_A current(3)=0.03512616A
  DDR_VDDQ_A current(4)=0.00000000A
   1V1_SYS_A current(5)=0.19024520A
   0V8_SW_A current(6)=0.35013250A
  VDD_CORE_A current(7)=1.50012000A
   3V3_DAC_A current(17)=0.00012210A
   3V3_ADC_A current(18)=0.00024420A
   0V8_AON_A current(16)=0.00488400A
      HDMI_A current(22)=0.02076000A
 3V7_WL_SW_V volt(8)=3.70345600V
   3V3_SYS_V volt(9)=3.31235400V
   1V8_SYS_V volt(10)=1.80341200V
  DDR_VDD2_V volt(11)=1.10712300V
  DDR_VDDQ_V volt(12)=0.60217640V
   1V1_SYS_V volt(13)=1.10801500V
    0V8_SW_V volt(14)=0.80112880V
  VDD_CORE_V volt(15)=0.88123400V
   3V3_DAC_V volt(20)=3.30493200V
   3V3_ADC_V volt(21)=3.30767700V
   0V8_AON_V volt(19)=0.79910510V
      HDMI_V volt(23)=5.08412000V
     EXT5V_V volt(24)=5.11234000V
      BATT_V volt(25)=0.00000000V
"""


def clock():
    return 7.0


def fake_vcgencmd(tmp_path, script_body):
    """A real executable named vcgencmd, run through a real subprocess by the reader."""
    path = tmp_path / "bin" / "vcgencmd"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!%s\n%s" % (sys.executable, textwrap.dedent(script_body)))
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return Vcgencmd(str(path))


def test_nvml_gpu_and_power_from_nvml_calls():
    session = NvmlSession(module=FakeNvml())
    gpu = by_name(NvmlGpu(session, clock).read())
    assert (gpu["gpu_freq"].value, gpu["gpu_freq_min"].value, gpu["gpu_freq_max"].value) == (1410, 345, 1980)
    assert gpu["gpu_load"].value == 37 and gpu["gpu_load"].source == "nvml:gpu0"
    assert by_name(NvmlPower(session, clock).read())["power_gpu"].value == pytest.approx(68.123)


def test_nvml_static_values_are_read_once_and_live_values_every_sample():
    fake = FakeNvml()
    gpu = NvmlGpu(NvmlSession(module=fake), clock)
    samples = [by_name(gpu.read()) for _ in range(5)]
    assert all((s["gpu_freq_min"].value, s["gpu_freq_max"].value) == (345, 1980) for s in samples)
    # The supported-clock lists cost ~1.6 ms per call on an H200: once at open, never per sample.
    static = ("nvmlDeviceGetSupportedMemoryClocks", "nvmlDeviceGetSupportedGraphicsClocks",
              "nvmlDeviceGetMaxClockInfo")
    assert {name: fake.calls[name] for name in static} == {name: 1 for name in static}
    live = ("nvmlDeviceGetClockInfo", "nvmlDeviceGetUtilizationRates", "nvmlDeviceGetTemperature")
    assert {name: fake.calls[name] for name in live} == {name: 5 for name in live}


def test_nvml_static_value_that_fails_is_unavailable_and_not_retried():
    fake = FakeNvml(supported_clocks=False)
    gpu = NvmlGpu(NvmlSession(module=fake), clock)
    for _ in range(3):
        readings = by_name(gpu.read())
        assert not readings["gpu_freq_min"].available and "Not Supported" in readings["gpu_freq_min"].reason
        assert readings["gpu_freq"].available and readings["gpu_freq_max"].value == 1980
    assert fake.calls["nvmlDeviceGetSupportedMemoryClocks"] == 1


def test_nvml_without_driver_is_unavailable_and_not_retried():
    fake = FakeNvml(library=False)
    session = NvmlSession(module=fake)
    for _ in range(3):
        readings = NvmlGpu(session, clock).read() + NvmlPower(session, clock).read()
        assert all(not r.available for r in readings)
        assert "libnvidia-ml.so.1 not found" in readings[0].reason
    assert fake.inits == 1


def test_nvml_unsupported_call_marks_only_that_reading():
    session = NvmlSession(module=FakeNvml(power_supported=False))
    power = by_name(NvmlPower(session, clock).read())["power_gpu"]
    assert not power.available and "Not Supported" in power.reason
    assert by_name(NvmlGpu(session, clock).read())["gpu_freq"].available


def test_real_nvidia_ml_py_on_a_host_without_a_gpu():
    pynvml = pytest.importorskip("pynvml")
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError_LibraryNotFound:
        pass
    else:
        pytest.skip("this host has an NVIDIA driver")
    reading = NvmlGpu(NvmlSession(), clock).read()[0]
    assert not reading.available and "libnvidia-ml.so.1 not found" in reading.reason


class FakeJtop(object):
    """The data shapes jtop's client exposes (jtop/core/gpu.py get_status, power.py get_status)."""

    gpu = {"gv11b": {"type": "integrated", "status": {"load": 23.5, "railgate": True},
                     "freq": {"governor": "nvhost_podgov", "cur": 510000, "max": 1109250, "min": 114750}}}
    power = {"rail": {"VDD_CPU_GPU_CV": {"volt": 5016, "curr": 280, "power": 1404, "avg": 1400}},
             "tot": {"volt": 5016, "curr": 1000, "power": 5016, "avg": 5000, "name": "VDD_IN"}}


def test_jtop_gpu_and_power():
    client = JtopClient(lambda: FakeJtop())
    gpu = by_name(JtopGpu(client, clock).read())
    assert gpu["gpu_freq"].value == pytest.approx(510.0) and gpu["gpu_load"].value == 23.5
    power = by_name(JtopPower(client, clock).read())
    assert power["power_total"].value == pytest.approx(5.016)
    assert power["power.VDD_CPU_GPU_CV"].value == pytest.approx(1.404)


def test_jtop_service_down_is_unavailable():
    def start():
        raise SensorUnavailable("jtop service is not running (jtop.service is not active)")

    readings = JtopGpu(JtopClient(start), clock).read()
    assert all(not r.available and "jtop service is not running" in r.reason for r in readings)


def test_jtop_not_installed_here():
    try:
        import jtop  # noqa: F401
        pytest.skip("jetson-stats is installed")
    except ImportError:
        pass
    reading = JtopGpu(JtopClient(), clock).read()[0]
    assert "jetson-stats is not installed" in reading.reason


def test_gpu_chain_falls_through_to_devfreq_and_explains_when_nothing_answers(tmp_path):
    root = fake_boards.build("jetson_xavier_nx", tmp_path / "nx")
    hw = Hardware(SysRoot(str(root)), clock, nvml=NvmlSession(module=FakeNvml(library=False)),
                  jtop=JtopClient(lambda: (_ for _ in ()).throw(SensorUnavailable("jtop service is not running"))))
    gpu = build_sensors(hw, ["gpu"], ["nvml", "jtop", "devfreq"])[0]
    got = by_name(gpu.read())
    assert got["gpu_freq"].value == pytest.approx(1109.25)
    empty = Hardware(SysRoot(str(tmp_path / "empty")), clock, nvml=NvmlSession(module=FakeNvml(library=False)))
    none = by_name(FirstAvailable("gpu", [NvmlGpu(empty.nvml, clock), DevfreqGpu(empty.root, clock)],
                                  clock).read())
    reason = none["gpu_freq"].reason
    assert "NvmlGpu: NVML library" in reason and "DevfreqGpu: no devfreq node" in reason


def test_pmic_parse_pairs_rails_by_name():
    rails = parse_pmic_adc(PMIC_OUTPUT)
    assert rails["VDD_CORE"] == (1.50012, 0.881234)
    assert rails["EXT5V"] == (None, 5.11234)
    assert parse_pmic_adc("error=1 error_msg=\"Command not registered\"\n") == {}


def test_rpi5_pmic_power_through_a_real_subprocess(tmp_path):
    tool = fake_vcgencmd(tmp_path, """
        import sys
        assert sys.argv[1:] == ["pmic_read_adc"], sys.argv
        sys.stdout.write(%r)
        """ % PMIC_OUTPUT)
    got = by_name(RpiPmicPower(tool, clock).read())
    rails = parse_pmic_adc(PMIC_OUTPUT)
    want = sum(a * v for a, v in rails.values() if a is not None and v is not None)
    assert got["power_pmic_sum"].value == pytest.approx(want)
    assert got["power.VDD_CORE"].value == pytest.approx(1.50012 * 0.881234)
    assert got["volt.EXT5V"].value == pytest.approx(5.11234)
    assert got["power_pmic_sum"].source == "vcgencmd pmic_read_adc"


def test_pi4_firmware_without_pmic_command(tmp_path):
    tool = fake_vcgencmd(tmp_path, """
        print('error=1 error_msg="Command not registered"')
        """)
    got = RpiPmicPower(tool, clock).read()[0]
    assert not got.available and "Command not registered" in got.reason


def test_throttled_flags(tmp_path):
    tool = fake_vcgencmd(tmp_path, """
        print("throttled=0x50005")
        """)
    got = by_name(RpiThrottle(tool, clock).read())
    assert got["throttled"].value == 0x50005 and got["throttled_now"].value == 1.0
    assert got["throttled.under_voltage"].value == 1.0 and got["throttled.freq_capped"].value == 0.0
    with pytest.raises(SensorUnavailable):
        parse_throttled("garbage")


def test_no_vcgencmd_on_this_host_is_unavailable(tmp_path):
    got = RpiThrottle(Vcgencmd(str(tmp_path / "no-such-vcgencmd")), clock).read()[0]
    assert not got.available and "not found" in got.reason


def test_hung_vcgencmd_times_out(tmp_path):
    tool = fake_vcgencmd(tmp_path, """
        import time
        time.sleep(30)
        """)
    tool.timeout_s = 0.3
    got = RpiThrottle(tool, clock).read()[0]
    assert not got.available and "timed out" in got.reason


def test_energy_helpers():
    assert energy_j(5.0, 0.2) == pytest.approx(1.0)
    with pytest.raises(ValueError):
        energy_j(5.0, -1.0)
    samples = [(0.0, 4.0), (1.0, 6.0), (2.0, 6.0)]
    assert integrate_energy_j(samples, 0.0, 2.0) == pytest.approx(5.0 + 6.0)
    assert integrate_energy_j(samples, 0.5, 1.5) == pytest.approx(0.5 * (4.0 + 6.0) / 2 + 0.5 * 6.0)
    assert integrate_energy_j([], 0.0, 1.0) is None
