"""Choosing onnxruntime execution providers from a board config's ordered list.

A board config names providers most preferred first (TensorRT, CUDA, ..., CPU). This onnxruntime
build may lack some of them (a CPU-only wheel on the workstation, onnxruntime-gpu without TensorRT):
each missing one is named in one warning and skipped, and CPU is always kept as the last resort, so
a config written for a Jetson still runs (slower) on any machine. What a session really got is read
back from ``session.get_providers()``: onnxruntime itself drops a provider whose library fails to
load at session creation (a missing libcudnn, say), and that drop is logged too.
"""
import logging
from typing import List, Optional, Sequence

from edgesplit.runtime.errors import BackendError

log = logging.getLogger(__name__)

CPU = "CPUExecutionProvider"


def available_providers() -> List[str]:
    """What this onnxruntime build offers (not whether the hardware behind it works)."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise BackendError("onnxruntime is not installed: pip install onnxruntime (or onnxruntime-gpu on "
                           "machines with CUDA; JetPack wheels on Jetsons)") from None
    return list(ort.get_available_providers())


def choose_providers(wanted: Sequence[str], available: Optional[Sequence[str]] = None,
                     source: str = "the board config") -> List[str]:
    """The wanted providers this onnxruntime has, in the wanted order, always ending with CPU.

    Each wanted provider that is missing is logged at WARNING with what to install.
    """
    if available is None:
        available = available_providers()
    chosen = []  # type: List[str]
    for name in wanted:
        if name in chosen:
            continue
        if name in available:
            chosen.append(name)
        else:
            log.warning("execution provider %s (asked for by %s) is not in this onnxruntime build (it has %s): "
                        "skipping it%s", name, source, ", ".join(available) or "none", _install_hint(name))
    if CPU in chosen:
        chosen = [p for p in chosen if p != CPU]
    chosen.append(CPU)
    if chosen == [CPU] and any(p != CPU for p in wanted):
        log.warning("falling back to %s for every segment", CPU)
    return chosen


def _install_hint(name: str) -> str:
    if name in ("CUDAExecutionProvider", "TensorrtExecutionProvider"):
        return ("; install onnxruntime-gpu (x86 with an NVIDIA GPU) or the JetPack onnxruntime wheel "
                "(Jetson) to use it")
    return ""


def providers_for_board(config) -> List[str]:
    """``choose_providers`` for a loaded ``edgesplit.runtime.boards.config.BoardConfig``."""
    return choose_providers(config.execution.providers, source="board config %s" % (config.path or config.name))


def check_session_providers(segment_id: str, requested: Sequence[str], got: Sequence[str]) -> None:
    """Warn when onnxruntime silently dropped a requested provider while creating a session."""
    dropped = [p for p in requested if p not in got]
    if dropped:
        log.warning("segment %s: onnxruntime could not start %s (its libraries failed to load?) and runs "
                    "on %s instead", segment_id, ", ".join(dropped), ", ".join(got))


def runner_factory_for_board(config):
    """A runner factory for ``Executor(..., runner_factory=...)`` that uses the board's providers.

    Providers are chosen once, at the first onnxruntime segment (a TFLite-only bundle never needs
    onnxruntime), so a missing provider is warned about once, not per segment. ``threads`` given to
    the factory wins over the board's ``intra_op_threads`` (0 there: the per-segment default).
    """
    from edgesplit.runtime.segments.registry import open_runner

    chosen = []  # type: List[str]
    board_threads = config.execution.intra_op_threads or None

    def factory(segment, path, threads=None):
        providers = None
        if segment.backend == "onnxruntime":
            if not chosen:
                chosen.extend(providers_for_board(config))
            providers = chosen
        return open_runner(segment, path, threads=threads if threads else board_threads, providers=providers)

    return factory
