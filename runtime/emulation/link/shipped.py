"""The bandwidth recordings that ship inside the package (see recordings/PROVENANCE.md)."""
from pathlib import Path
from typing import Dict

from edgesplit.runtime.emulation.link.recording_readers import RecordingError

RECORDING_DIR = Path(__file__).resolve().parent / "recordings"
DEFAULT_RECORDING = "norway_car_3"


def shipped_recordings() -> Dict[str, Path]:
    """Name -> file for every shipped recording."""
    return {p.name: p for p in sorted(RECORDING_DIR.iterdir()) if p.is_file() and p.suffix != ".md"}


def resolve_recording(name_or_path: str) -> Path:
    """A shipped recording's name (e.g. ``norway_car_3``) or a path to any bandwidth recording file."""
    shipped = shipped_recordings()
    if name_or_path in shipped:
        return shipped[name_or_path]
    path = Path(name_or_path)
    if path.is_file():
        return path
    if path.is_dir():
        raise RecordingError("%s is a folder, not a recording file: give one file in it" % name_or_path)
    raise RecordingError("no bandwidth recording file %s and no shipped recording of that name (shipped: %s)"
                     % (name_or_path, ", ".join(shipped) or "none"))
