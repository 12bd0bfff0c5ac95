"""What every bench script prints: one JSON document, also written to ``--out`` when given (``python bench/X.py``
puts bench/ on sys.path)."""
import datetime
import json
import os
import platform
import sys
from pathlib import Path
from typing import Any, Dict, Optional


def header(name: str) -> Dict[str, Any]:
    """The fields that say what ran, where and when: bench name, UTC date, machine, the command line."""
    return {"bench": name, "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "machine": {"host": platform.node(), "cpus": os.cpu_count(), "python": platform.python_version(),
                        "platform": platform.platform()},
            "command": " ".join([Path(sys.executable).name] + sys.argv)}


def emit(report: Dict[str, Any], out: Optional[str] = None, default=None) -> None:
    text = json.dumps(report, indent=1, default=default)
    if out:
        Path(out).write_text(text + "\n")
    print(text)
