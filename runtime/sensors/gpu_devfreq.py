"""Jetson integrated GPU through sysfs devfreq, found by discovery rather than per-board paths.

Like jetson-stats (jtop/core/gpu.py, ``find_igpu``): every entry of /sys/class/devfreq is a symlink to
the device's devfreq node; the one whose ``device/of_node/name`` is a Tegra GPU name is the GPU.
Names by generation: gm20b parts expose ``gpu`` (Nano, 57000000.gpu), gp10b (TX2, 17000000.gp10b),
gv11b (Xavier, 17000000.gv11b), ga10b (Orin on JetPack 5, 17000000.ga10b; ``gpu`` on JetPack 6,
17000000.gpu), gb10b (Thor). Frequencies are in Hz; ``device/load`` is per mille.
"""
import logging
from typing import List, Optional, Tuple

from edgesplit.runtime.sensors.reading import Clock, Reading, Sensor, SensorUnavailable, measured, unavailable
from edgesplit.runtime.sensors.sysroot import SysRoot

log = logging.getLogger(__name__)

DEVFREQ_CLASS = "/sys/class/devfreq"
GPU_OF_NAMES = ("gpu", "gm20b", "gp10b", "gv11b", "ga10b", "gb10b")
FREQ_FILES = (("gpu_freq", "cur_freq"), ("gpu_freq_min", "min_freq"), ("gpu_freq_max", "max_freq"))


def find_gpu_devfreq(root: SysRoot) -> Optional[Tuple[str, str]]:
    """(devfreq node, GPU device name) as board paths, or None when no devfreq node is a GPU."""
    for entry in root.listdir(DEVFREQ_CLASS):
        node = "%s/%s" % (DEVFREQ_CLASS, entry)
        try:
            name = root.read_text(node + "/device/of_node/name")
        except SensorUnavailable:
            continue
        if name in GPU_OF_NAMES:
            log.debug("GPU devfreq node %s (of_node name %s)", node, name)
            return node, name
        log.debug("devfreq node %s is %r, not a GPU", node, name)
    return None


class DevfreqGpu(Sensor):
    kind = "gpu"
    outputs = {"gpu_freq": "MHz", "gpu_freq_min": "MHz", "gpu_freq_max": "MHz", "gpu_load": "%"}

    def __init__(self, root: SysRoot, clock: Clock) -> None:
        super().__init__(clock)
        self.root = root
        self._node = None  # type: Optional[str]

    def read(self) -> List[Reading]:
        if self._node is None:
            found = find_gpu_devfreq(self.root)
            if found is None:
                return self.all_unavailable("no devfreq node under %s has a GPU of_node name (%s)"
                                            % (DEVFREQ_CLASS, "/".join(GPU_OF_NAMES)))
            self._node = found[0]
        readings = [self._freq(name, self._node + "/" + filename) for name, filename in FREQ_FILES]
        readings.append(self._load(self._node + "/device/load"))
        return readings

    def _freq(self, name: str, path: str) -> Reading:
        try:
            hz = self.root.read_int(path)
        except SensorUnavailable as exc:
            return unavailable(name, "MHz", str(exc), self.clock, path)
        return measured(name, hz / 1e6, "MHz", path, self.clock)

    def _load(self, path: str) -> Reading:
        try:
            per_mille = self.root.read_int(path)
        except SensorUnavailable as exc:
            return unavailable("gpu_load", "%", str(exc), self.clock, path)
        if not 0 <= per_mille <= 1000:
            return unavailable("gpu_load", "%", "%s holds %d, outside 0..1000 per mille" % (path, per_mille),
                               self.clock, path)
        return measured("gpu_load", per_mille / 10.0, "%", path, self.clock)
