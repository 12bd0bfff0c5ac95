"""Shared output helpers for commands: one JSON document for scripts, aligned text for people."""
import json
import sys
import threading
import time
from typing import Any, Iterable, List, Sequence

PROGRESS_EVERY_S = 5.0  # wall seconds between "n/N tasks" lines while strategies run


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


class Progress:
    """Phase and progress lines on stderr ("demo: ..."; ``prefix`` names the command); stdout keeps the table or
    the JSON document."""

    def __init__(self, enabled: bool, prefix: str = "demo") -> None:
        self.enabled = enabled
        self.prefix = prefix

    def say(self, message: str) -> None:
        if self.enabled:
            print("%s: %s" % (self.prefix, message), file=sys.stderr, flush=True)

    def wait(self, threads: List[threading.Thread], sessions: List[Any], total: int) -> None:
        """Join ``threads``, saying when each strategy finishes and, every few seconds, how far each got."""
        reported = set()  # type: set
        next_line = time.monotonic() + PROGRESS_EVERY_S
        while True:
            for i, thread in enumerate(threads):
                if not thread.is_alive() and i not in reported:
                    reported.add(i)
                    self.say("%s finished: %d/%d tasks" % (sessions[i].controller.strategy.name,
                                                            len(sessions[i].loop.results), total))
            running = [t for t in threads if t.is_alive()]
            if not running:
                return
            running[0].join(0.2)
            if time.monotonic() >= next_line:
                next_line += PROGRESS_EVERY_S
                self.say("tasks done per strategy: " + ", ".join(
                    "%s %d/%d" % (s.controller.strategy.name, len(s.loop.results), total) for s in sessions))
