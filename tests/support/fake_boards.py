"""Fake sysfs/procfs trees of real boards, built by code from the real layouts.

Each tree copies the paths, symlinks, file formats and units of one board as the kernel shows them:
- devfreq: /sys/class/devfreq/<node> is a relative symlink to the device's devfreq directory; the
  device's of_node/name ends with a NUL (device-tree strings do); cur/min/max_freq in Hz; the
  device's ``load`` is per mille. Layout as jetson-stats reads it (jtop/core/gpu.py, find_igpu).
- INA3221, JetPack 4: /sys/bus/i2c/drivers/ina3221x/<bus>-<addr>/iio:device<N>/rail_name_<c>,
  in_power<c>_input (mW), in_current<c>_input (mA), in_voltage<c>_input (mV), c = 0..2
  (jtop/core/power.py, list_all_i2c_ports; rail names from the L4T R32 device trees as tabulated in
  the "Jetson Power Rails" notes: TX2 0x40 VDD_SYS_GPU/VDD_SYS_SOC/VDD_4V0_WIFI and 0x41
  VDD_IN/VDD_SYS_CPU/VDD_SYS_DDR; Nano 0x40 on bus 6 POM_5V_IN/POM_5V_GPU/POM_5V_CPU).
- INA3221, JetPack 5+: /sys/class/hwmon/hwmon<N> -> ../../devices/.../<bus>-0040/hwmon/hwmon<N>, with
  name "ina3221", in<c>_label, in<c>_input (mV), curr<c>_input (mA), c = 1..3, plus in4..6 (shunt
  voltages) and in7_label "sum of shunt voltages" (mainline drivers/hwmon/ina3221.c).
- cpufreq scaling_cur_freq in kHz; thermal_zone<N>/temp in millidegrees C; /proc/meminfo in kB;
  /proc/device-tree/model NUL-terminated (TX2 on L4T R32 says "quill").
"""
import os
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

MEMINFO = """MemTotal:        {total} kB
MemFree:          812344 kB
MemAvailable:    {avail} kB
Buffers:           98304 kB
Cached:          1203456 kB
SwapCached:            0 kB
"""


def write(root: Path, board_path: str, text: str) -> Path:
    path = root / board_path.lstrip("/")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def link(root: Path, board_path: str, target_board_path: str) -> None:
    """A relative symlink, as sysfs makes them, so the tree can sit anywhere."""
    path = root / board_path.lstrip("/")
    path.parent.mkdir(parents=True, exist_ok=True)
    target = root / target_board_path.lstrip("/")
    target.mkdir(parents=True, exist_ok=True)
    os.symlink(os.path.relpath(str(target), str(path.parent)), str(path))


def devfreq_gpu(root: Path, device: str, node: str, of_name: str, of_node: str,
                cur: int, low: int, high: int, load: int) -> None:
    """device: /sys/devices/... of the GPU; node: its devfreq name (e.g. 17000000.gp10b)."""
    freq_dir = "%s/devfreq/%s" % (device, node)
    for name, value in (("cur_freq", cur), ("min_freq", low), ("max_freq", high)):
        write(root, "%s/%s" % (freq_dir, name), "%d\n" % value)
    write(root, freq_dir + "/governor", "nvhost_podgov\n")
    write(root, freq_dir + "/available_frequencies", "%d %d\n" % (low, high))
    link(root, freq_dir + "/device", device)
    write(root, device + "/load", "%d\n" % load)
    write(root, device + "/railgate_enable", "1\n")
    write(root, "/sys/firmware/devicetree/base/%s/name" % of_node, of_name + "\x00")
    link(root, device + "/of_node", "/sys/firmware/devicetree/base/" + of_node)
    link(root, "/sys/class/devfreq/" + node, freq_dir)


def other_devfreq(root: Path, device: str, node: str, of_name: str) -> None:
    """A devfreq node that is not the GPU (e.g. the memory controller), which discovery must skip."""
    freq_dir = "%s/devfreq/%s" % (device, node)
    write(root, freq_dir + "/cur_freq", "1600000000\n")
    link(root, freq_dir + "/device", device)
    write(root, "/sys/firmware/devicetree/base/%s/name" % node, of_name + "\x00")
    link(root, device + "/of_node", "/sys/firmware/devicetree/base/" + node)
    link(root, "/sys/class/devfreq/" + node, freq_dir)


def ina_iio(root: Path, bus_addr: str, iio: str, rails: Sequence[Tuple[str, int, int]]) -> None:
    """JetPack 4 ina3221x. rails: (name, mV, mA); in_power is what the driver computes, mW."""
    device = "/sys/devices/3160000.i2c/i2c-%s/%s" % (bus_addr.split("-")[0], bus_addr)
    base = device + "/" + iio
    for channel, (name, mv, ma) in enumerate(rails):
        write(root, "%s/rail_name_%d" % (base, channel), name + "\n")
        write(root, "%s/in_voltage%d_input" % (base, channel), "%d\n" % mv)
        write(root, "%s/in_current%d_input" % (base, channel), "%d\n" % ma)
        write(root, "%s/in_power%d_input" % (base, channel), "%d\n" % (mv * ma // 1000))
        write(root, "%s/crit_current_limit_%d" % (base, channel), "%d\n" % 3000)
    write(root, device + "/name", "ina3221x\n")
    link(root, "/sys/bus/i2c/drivers/ina3221x/" + bus_addr, device)
    link(root, "/sys/bus/i2c/devices/" + bus_addr, device)


def ina_hwmon(root: Path, device: str, hwmon: str, rails: Sequence[Tuple[str, int, int]]) -> None:
    """JetPack 5+ mainline ina3221. rails: (label, mV, mA) for channels 1..3; label "NC" = unconnected."""
    base = "%s/hwmon/%s" % (device, hwmon)
    write(root, base + "/name", "ina3221\n")
    for channel, (label, mv, ma) in enumerate(rails, start=1):
        write(root, "%s/in%d_label" % (base, channel), label + "\n")
        write(root, "%s/in%d_input" % (base, channel), "%d\n" % mv)
        write(root, "%s/curr%d_input" % (base, channel), "%d\n" % ma)
        write(root, "%s/curr%d_max" % (base, channel), "%d\n" % 32760)
        write(root, "%s/in%d_input" % (base, channel + 3), "%d\n" % (ma // 20))  # shunt voltage
    write(root, base + "/in7_label", "sum of shunt voltages\n")
    write(root, base + "/in7_input", "120\n")
    write(root, device + "/name", "ina3221\n")
    link(root, "/sys/class/hwmon/" + hwmon, base)


def other_hwmon(root: Path, hwmon: str, name: str) -> None:
    base = "/sys/devices/virtual/thermal/%s" % hwmon
    write(root, base + "/name", name + "\n")
    write(root, base + "/temp1_input", "41000\n")
    link(root, "/sys/class/hwmon/" + hwmon, base)


def cpus(root: Path, khz: Sequence[Optional[int]]) -> None:
    """One entry per core; None is an offline core (no cpufreq directory, online = 0)."""
    for core, value in enumerate(khz):
        base = "/sys/devices/system/cpu/cpu%d" % core
        write(root, base + "/online", "0\n" if value is None else "1\n")
        if value is not None:
            write(root, base + "/cpufreq/scaling_cur_freq", "%d\n" % value)
            write(root, base + "/cpufreq/scaling_governor", "schedutil\n")
    write(root, "/proc/cpuinfo", "".join("processor\t: %d\nBogoMIPS\t: 62.50\n\n" % i for i in range(len(khz))))


def thermal(root: Path, zones: Sequence[Tuple[str, int]]) -> None:
    for index, (zone_type, millideg) in enumerate(zones):
        base = "/sys/devices/virtual/thermal/thermal_zone%d" % index
        write(root, base + "/type", zone_type + "\n")
        write(root, base + "/temp", "%d\n" % millideg)
        link(root, "/sys/class/thermal/thermal_zone%d" % index, base)


def model(root: Path, text: str) -> None:
    write(root, "/sys/firmware/devicetree/base/model", text + "\x00")
    link(root, "/proc/device-tree", "/sys/firmware/devicetree/base")


def meminfo(root: Path, total_kb: int, avail_kb: int) -> None:
    write(root, "/proc/meminfo", MEMINFO.format(total=total_kb, avail=avail_kb))


def build_jetson_tx2(root: Path) -> None:
    # L4T R32.7: GPU devfreq 17000000.gp10b, two INA3221 on IIO (0-0040, 0-0041), Denver cores 1-2 off.
    model(root, "quill")
    devfreq_gpu(root, "/sys/devices/17000000.gp10b", "17000000.gp10b", "gp10b", "gp10b@17000000",
                1300500000, 114750000, 1300500000, 437)
    ina_iio(root, "0-0040", "iio:device0", [("VDD_SYS_GPU", 19136, 459), ("VDD_SYS_SOC", 19152, 383),
                                          ("VDD_4V0_WIFI", 19168, 16)])
    ina_iio(root, "0-0041", "iio:device1", [("VDD_IN", 19112, 297), ("VDD_SYS_CPU", 19160, 76),
                                          ("VDD_SYS_DDR", 4744, 270)])
    cpus(root, [2035200, None, None, 2035200, 2035200, 2035200])
    thermal(root, [("BCPU-therm", 37500), ("MCPU-therm", 37500), ("GPU-therm", 35000),
                   ("PLL-therm", 34000), ("Tboard_tegra", 32000), ("Tdiode_tegra", 33000),
                   ("PMIC-Die", 100000), ("thermal-fan-est", 36100)])
    meminfo(root, 8038324, 6442100)


def build_jetson_nano(root: Path) -> None:
    # L4T R32.7: gm20b GPU at 57000000.gpu (of_node name "gpu"), INA3221 on IIO at 6-0040.
    model(root, "NVIDIA Jetson Nano Developer Kit")
    devfreq_gpu(root, "/sys/devices/57000000.gpu", "57000000.gpu", "gpu", "gpu@57000000",
                921600000, 76800000, 921600000, 998)
    ina_iio(root, "6-0040", "iio:device0", [("POM_5V_IN", 5000, 1066), ("POM_5V_GPU", 5000, 198),
                                          ("POM_5V_CPU", 5000, 321)])
    cpus(root, [1479000, 1479000, 1479000, 1479000])
    thermal(root, [("AO-therm", 38500), ("CPU-therm", 31500), ("GPU-therm", 31000),
                   ("PLL-therm", 29000), ("PMIC-Die", 100000), ("thermal-fan-est", 31150)])
    meminfo(root, 4051032, 2810240)


def build_jetson_xavier_nx(root: Path) -> None:
    # L4T R35 (JetPack 5): gv11b at 17000000.gv11b, INA3221 on hwmon at 7-0040, an EMC devfreq too.
    model(root, "NVIDIA Jetson Xavier NX Developer Kit")
    other_devfreq(root, "/sys/devices/2c60000.external-memory-controller", "2c60000.external-memory-controller",
                  "external-memory-controller")
    devfreq_gpu(root, "/sys/devices/17000000.gv11b", "17000000.gv11b", "gv11b", "gv11b@17000000",
                1109250000, 114750000, 1109250000, 0)
    other_hwmon(root, "hwmon0", "tegra_soctherm")
    ina_hwmon(root, "/sys/devices/3160000.i2c/i2c-7/7-0040", "hwmon3",
              [("VDD_IN", 5024, 1032), ("VDD_CPU_GPU_CV", 5024, 302), ("VDD_SOC", 5024, 358)])
    cpus(root, [1907200] * 6)
    thermal(root, [("CPU-therm", 36500), ("GPU-therm", 35500), ("AUX-therm", 36000),
                   ("AO-therm", 37000), ("PMIC-Die", 100000), ("Tdiode_tegra", 35250),
                   ("thermal-fan-est", 36150)])
    meminfo(root, 7765208, 5201012)


def build_jetson_orin_nano(root: Path) -> None:
    # L4T R36 (JetPack 6): ga10b exposed as 17000000.gpu (of_node name "gpu") under platform/bus@0,
    # INA3221 on hwmon at 1-0040 with a two-digit hwmon number (it changes between boots).
    model(root, "NVIDIA Jetson Orin Nano Engineering Reference Developer Kit Super")
    devfreq_gpu(root, "/sys/devices/platform/bus@0/17000000.gpu", "17000000.gpu", "gpu", "bus@0/gpu@17000000",
                306000000, 306000000, 1020000000, 12)
    for number, name in ((0, "tegra_soctherm"), (1, "pwmfan"), (2, "cpu_thermal")):
        other_hwmon(root, "hwmon%d" % number, name)
    ina_hwmon(root, "/sys/devices/platform/bus@0/c240000.i2c/i2c-1/1-0040", "hwmon10",
              [("VDD_IN", 5064, 1228), ("VDD_CPU_GPU_CV", 5064, 230), ("VDD_SOC", 5064, 464)])
    cpus(root, [729600, 729600, 729600, 729600, 1510400, 1510400])
    thermal(root, [("cpu-thermal", 47281), ("gpu-thermal", 46250), ("cv0-thermal", -256000),
                   ("soc0-thermal", 46843), ("tj-thermal", 47281)])
    meminfo(root, 7802344, 6100340)


def build_jetson_orin_nano_jp5(root: Path) -> None:
    # L4T R35 (JetPack 5): the same GPU as 17000000.ga10b, hwmon number one digit.
    model(root, "NVIDIA Jetson Orin Nano Developer Kit")
    devfreq_gpu(root, "/sys/devices/17000000.ga10b", "17000000.ga10b", "ga10b", "ga10b@17000000",
                624750000, 306000000, 624750000, 250)
    ina_hwmon(root, "/sys/devices/3160000.i2c/i2c-1/1-0040", "hwmon4",
              [("VDD_IN", 5048, 1100), ("VDD_CPU_GPU_CV", 5048, 210), ("VDD_SOC", 5048, 420)])
    cpus(root, [1510400] * 6)
    thermal(root, [("CPU-therm", 45000), ("GPU-therm", 44000)])
    meminfo(root, 7802344, 6100340)


def build_rpi4(root: Path) -> None:
    model(root, "Raspberry Pi 4 Model B Rev 1.4")
    cpus(root, [1500000, 1500000, 600000, 1500000])
    thermal(root, [("cpu-thermal", 48686)])
    meminfo(root, 3884328, 3211500)


def build_rpi5(root: Path) -> None:
    model(root, "Raspberry Pi 5 Model B Rev 1.0")
    cpus(root, [2400000, 2400000, 1500000, 2400000])
    thermal(root, [("cpu-thermal", 52350)])
    meminfo(root, 8245024, 7600112)


def build_x86_nvidia(root: Path) -> None:
    # A server: no device tree, cpufreq from intel_pstate, an ACPI zone, /dev/nvidia0 present.
    cpus(root, [3400000, 3400000, 2100000, 800000])
    thermal(root, [("acpitz", 27800), ("x86_pkg_temp", 45000)])
    meminfo(root, 65843212, 60123400)
    write(root, "/dev/nvidia0", "")
    write(root, "/dev/nvidiactl", "")


BUILDERS = {
    "jetson_tx2": build_jetson_tx2,
    "jetson_nano": build_jetson_nano,
    "jetson_xavier_nx": build_jetson_xavier_nx,
    "jetson_orin_nano": build_jetson_orin_nano,
    "jetson_orin_nano_jp5": build_jetson_orin_nano_jp5,
    "rpi4": build_rpi4,
    "rpi5": build_rpi5,
    "x86_nvidia": build_x86_nvidia,
}

# What the readers must report on each tree (values in the readers' units: MHz, %, W, C, MiB).
EXPECTED = {
    "jetson_tx2": {"board": "jetson_tx2", "gpu_freq": 1300.5, "gpu_freq_min": 114.75, "gpu_load": 43.7,
                   "power_total": 19112 * 297 // 1000 / 1000.0, "power.VDD_SYS_GPU": 19136 * 459 // 1000 / 1000.0,
                   "cpu_freq": 2035.2, "cpu_offline": [1, 2], "temp_max": 100.0, "mem_total": 8038324 / 1024.0},
    "jetson_nano": {"board": "jetson_nano", "gpu_freq": 921.6, "gpu_freq_min": 76.8, "gpu_load": 99.8,
                    "power_total": 5.33, "power.POM_5V_GPU": 0.99, "cpu_freq": 1479.0, "temp_max": 100.0,
                    "mem_total": 4051032 / 1024.0},
    "jetson_xavier_nx": {"board": "jetson_xavier_nx", "gpu_freq": 1109.25, "gpu_freq_min": 114.75, "gpu_load": 0.0,
                         "power_total": 5024 * 1032 / 1e6, "power.VDD_SOC": 5024 * 358 / 1e6, "cpu_freq": 1907.2,
                         "temp_max": 100.0, "mem_total": 7765208 / 1024.0},
    "jetson_orin_nano": {"board": "jetson_orin_nano", "gpu_freq": 306.0, "gpu_freq_min": 306.0, "gpu_load": 1.2,
                         "power_total": 5064 * 1228 / 1e6, "power.VDD_CPU_GPU_CV": 5064 * 230 / 1e6,
                         "cpu_freq": (729.6 * 4 + 1510.4 * 2) / 6, "temp_max": 47.281,
                         "mem_total": 7802344 / 1024.0},
    "jetson_orin_nano_jp5": {"board": "jetson_orin_nano", "gpu_freq": 624.75, "gpu_freq_min": 306.0,
                             "gpu_load": 25.0, "power_total": 5048 * 1100 / 1e6, "power.VDD_SOC": 5048 * 420 / 1e6,
                             "cpu_freq": 1510.4, "temp_max": 45.0, "mem_total": 7802344 / 1024.0},
    "rpi4": {"board": "rpi4", "gpu_freq": None, "power_total": None, "cpu_freq": 1275.0, "temp_max": 48.686,
             "mem_total": 3884328 / 1024.0},
    "rpi5": {"board": "rpi5", "gpu_freq": None, "power_total": None, "cpu_freq": 2175.0, "temp_max": 52.35,
             "mem_total": 8245024 / 1024.0},
    "x86_nvidia": {"board": "x86_nvidia", "gpu_freq": None, "power_total": None, "cpu_freq": 2425.0,
                   "temp_max": 45.0, "mem_total": 65843212 / 1024.0},
}


def build(board: str, root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    BUILDERS[board](root)
    return root


def board_names() -> List[str]:
    return sorted(BUILDERS)


def expected(board: str) -> Dict[str, object]:
    return EXPECTED[board]
