"""docs/boards.md agrees with the catalogue: its figures are the TOML files', its examples run."""
import re
import shlex
import subprocess
import sys
from pathlib import Path

from edgesplit.runtime.boards.config import load_all_boards

DOC = Path(__file__).resolve().parents[2] / "docs" / "boards.md"


def test_the_emulation_table_is_the_catalogues():
    text = DOC.read_text()
    rows = {m.group(1): [c.strip() for c in m.group(2).split("|")]
            for m in re.finditer(r"^\| `(\w+)` \| ([^\n]*)\|$", text, re.MULTILINE)
            if len(m.group(2).split("|")) == 5}
    boards = load_all_boards()
    assert sorted(rows) == sorted(b.name for b in boards)
    for board in boards:
        e = board.emulation
        described, macs, busy, idle, basis = rows[board.name]
        assert described == e.description.replace(", emulated", ""), board.name
        assert macs == "%.3g" % e.macs_per_s and float(busy) == e.busy_power_w and float(idle) == e.idle_power_w
        assert basis == e.basis, board.name


def test_the_examples_run():
    examples = [line.strip() for line in DOC.read_text().splitlines() if line.startswith("    edgesplit ")]
    assert examples
    for example in examples:
        argv = shlex.split(example)[1:]
        done = subprocess.run([sys.executable, "-m", "edgesplit.runtime.cli"] + argv, capture_output=True, text=True,
                              timeout=60)
        assert done.returncode == 0, (example, done.stderr)
