"""The bandwidth traces that ship inside the package (see traces/PROVENANCE.md)."""
from pathlib import Path
from typing import Dict

from edgesplit.runtime.link.trace_readers import TraceError

TRACE_DIR = Path(__file__).resolve().parent / "traces"
DEFAULT_TRACE = "norway_car_3"


def shipped_traces() -> Dict[str, Path]:
    """Name -> file for every shipped trace."""
    return {p.name: p for p in sorted(TRACE_DIR.iterdir()) if p.is_file() and p.suffix != ".md"}


def resolve_trace(name_or_path: str) -> Path:
    """A shipped trace's name (e.g. ``norway_car_3``) or a path to any trace file."""
    shipped = shipped_traces()
    if name_or_path in shipped:
        return shipped[name_or_path]
    path = Path(name_or_path)
    if path.is_file():
        return path
    raise TraceError("no trace file %s and no shipped trace of that name (shipped: %s)"
                     % (name_or_path, ", ".join(shipped) or "none"))
