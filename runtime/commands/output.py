"""Shared output helpers for commands: one JSON document for scripts, aligned text for people."""
import json
import sys
from typing import Any, Iterable, Sequence


def print_json(data: Any) -> None:
    json.dump(data, sys.stdout, indent=2, sort_keys=False)
    sys.stdout.write("\n")


def print_table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    rows = [[str(cell) for cell in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]
    line = "  ".join("%-*s" % (w, h) for w, h in zip(widths, headers))
    print(line.rstrip())
    for row in rows:
        print("  ".join("%-*s" % (w, c) for w, c in zip(widths, row)).rstrip())
