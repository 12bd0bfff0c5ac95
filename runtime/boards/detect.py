"""Which board this is: the device-tree model string matched against the configs' model strings.

The model string is read from /proc/device-tree/model (or /sys/firmware/devicetree/base/model, the
same file) and has a trailing NUL. A config matches when the model starts with one of its strings;
the longest match wins. Hosts without a device tree (x86) or with an unknown model fall back to a
generic config: x86_nvidia when NVML answers or an NVIDIA device node exists, else x86_cpu.
"""
import logging
import platform
from dataclasses import dataclass
from typing import Dict, Optional, Sequence, Tuple

from edgesplit.runtime.boards.config import BoardConfig
from edgesplit.runtime.sensors.nvml import NvmlSession
from edgesplit.runtime.sensors.reading import SensorUnavailable
from edgesplit.runtime.sensors.sysroot import SysRoot

log = logging.getLogger(__name__)

MODEL_FILES = ("/proc/device-tree/model", "/sys/firmware/devicetree/base/model")
NVIDIA_DEVICE_NODES = ("/dev/nvidia0", "/dev/nvidiactl")
GENERIC_GPU, GENERIC_CPU = "x86_nvidia", "x86_cpu"


@dataclass(frozen=True)
class Detection:
    board: str  # name of the board config to use
    model: Optional[str]  # the device-tree model string, if the host has one
    model_source: Optional[str]  # the file it came from
    matched: Optional[str]  # the config's model string that matched
    fallback: bool  # True when no model string identified the board
    reason: str  # one sentence a person can check

    def to_dict(self) -> Dict[str, object]:
        return {"board": self.board, "model": self.model, "model_source": self.model_source,
                "matched": self.matched, "fallback": self.fallback, "reason": self.reason}


def read_model(root: SysRoot) -> Tuple[Optional[str], Optional[str]]:
    for path in MODEL_FILES:
        try:
            model = root.read_text(path)
        except SensorUnavailable:
            continue
        if model:
            return model, path
    return None, None


def match_model(model: str, boards: Sequence[BoardConfig]) -> Optional[Tuple[BoardConfig, str]]:
    best = None  # type: Optional[Tuple[BoardConfig, str]]
    for board in boards:
        if not board.match.detect:  # a variant (e.g. jetson_nano_cpu) is only ever chosen by name
            continue
        for pattern in board.match.models:
            if model.startswith(pattern) and (best is None or len(pattern) > len(best[1])):
                best = (board, pattern)
    return best


def nvidia_gpu_evidence(root: SysRoot, nvml: Optional[NvmlSession] = None) -> Tuple[bool, str]:
    """(has a discrete NVIDIA GPU, why we think so or not)."""
    nvml = nvml or NvmlSession()
    try:
        nvml.open()
        return True, "NVML opened GPU 0"
    except SensorUnavailable as exc:
        nvml_reason = str(exc)
    for node in NVIDIA_DEVICE_NODES:
        if root.exists(node):
            return True, "%s exists (NVML: %s)" % (node, nvml_reason)
    return False, "NVML: %s; no %s" % (nvml_reason, " or ".join(NVIDIA_DEVICE_NODES))


def detect_board(root: SysRoot, boards: Sequence[BoardConfig], nvml: Optional[NvmlSession] = None) -> Detection:
    model, source = read_model(root)
    if model is not None:
        found = match_model(model, boards)
        if found is not None:
            board, pattern = found
            return Detection(board.name, model, source, pattern, False,
                             "device-tree model %r starts with %r from %s" % (model, pattern, board.name))
        why_unknown = "device-tree model %r matches no board config" % model
    else:
        why_unknown = "no device-tree model (%s missing; %s host)" % (" and ".join(MODEL_FILES), platform.machine())
    has_gpu, gpu_reason = nvidia_gpu_evidence(root, nvml)
    generic = GENERIC_GPU if has_gpu else GENERIC_CPU
    known = {b.name for b in boards}
    if generic not in known:
        log.warning("generic board config %s is missing from the configs", generic)
    return Detection(generic, model, source, None, True,
                     "%s; falling back to %s because %s" % (why_unknown, generic, gpu_reason))
