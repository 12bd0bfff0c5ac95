"""``edgesplit plot``: a real demo's trace database drawn to a PNG, and clear refusals of other files."""
import sqlite3
import struct
import subprocess
import sys

import pytest

pytest.importorskip("matplotlib")
pytestmark = pytest.mark.workstation

EDGESPLIT = [sys.executable, "-m", "edgesplit.runtime.cli"]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _run(*args):
    return subprocess.run(EDGESPLIT + list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          timeout=300)


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory):
    db = tmp_path_factory.mktemp("plot") / "demo.db"
    done = _run("demo", "--limit", "40", "--traces", str(db))
    assert done.returncode == 0, done.stderr
    return db


def _png_size(path):
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE and data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return len(data), width, height


def test_plot_of_the_last_run_is_a_readable_png(demo_db, tmp_path):
    out = tmp_path / "run.png"
    done = _run("plot", str(demo_db), "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert "plotted run" in done.stdout and "adaptive" in done.stdout and "other runs" in done.stdout
    size, width, height = _png_size(out)
    assert size > 30000 and width >= 1000 and height >= 1000


def test_plot_of_a_chosen_run_names_strategy_and_link(demo_db, tmp_path):
    with sqlite3.connect(str(demo_db)) as conn:
        runs = [r[0] for r in conn.execute("SELECT run_id FROM runs ORDER BY started_s")]
    out = tmp_path / "remote.svg"
    done = _run("plot", str(demo_db), "--run", runs[1], "--out", str(out), "--json")
    assert done.returncode == 0, done.stderr
    svg = out.read_text()
    # The title says which run, strategy, board and link; the axes carry their units.
    for text in ("remote-only", "jetson_nano_cpu", "norway_car_3", "latency (ms)", "bandwidth (Mbit/s)",
                 "link rate (replayed recording)", "latency bound 100 ms"):
        assert text in svg, text


@pytest.mark.parametrize("content, message", [
    (b"hello, not a database\n", "not an SQLite database"),
    (None, "not an edgesplit trace database"),
])
def test_plot_refuses_a_file_that_is_not_a_trace_database(tmp_path, content, message):
    path = tmp_path / "other.db"
    if content is None:
        with sqlite3.connect(str(path)) as conn:
            conn.execute("CREATE TABLE t (x)")
    else:
        path.write_bytes(content)
    done = _run("plot", str(path), "--out", str(tmp_path / "x.png"))
    assert done.returncode == 1 and message in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "x.png").exists()


def test_plot_refuses_an_unknown_run_and_lists_the_runs(demo_db, tmp_path):
    done = _run("plot", str(demo_db), "--run", "nope", "--out", str(tmp_path / "x.png"))
    assert done.returncode == 1 and "no run 'nope'" in done.stderr and "runs in this file" in done.stderr
