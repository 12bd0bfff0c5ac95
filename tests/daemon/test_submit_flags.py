"""``edgesplit submit``'s number flags against a real daemon: a deadline outside the local API's range (or
a negative row count) is refused by the command, by flag name, before any row is sent."""
import sqlite3
import subprocess
import sys

import numpy as np
import pytest

from support.daemon_process import heldout

CLI = [sys.executable, "-m", "edgesplit.runtime.cli"]


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    from support.daemon_process import DaemonProcess

    workdir = tmp_path_factory.mktemp("submit")
    running = DaemonProcess(workdir).start()
    np.save(str(workdir / "x.npy"), heldout(3))
    yield running
    running.cleanup()


def _submit(daemon, *extra):
    return subprocess.run(CLI + ["submit", "--config", str(daemon.config), "--inputs",
                                 str(daemon.config.parent / "x.npy")] + list(extra),
                          capture_output=True, text=True, timeout=120)


def _task_rows(daemon):
    with sqlite3.connect(str(daemon.traces)) as conn:
        return conn.execute("SELECT count(*) FROM tasks").fetchone()[0]


@pytest.mark.parametrize("extra, message", [
    (["--deadline-ms", "inf"], "--deadline-ms must be a number from 0.001 to 86400000 ms (the local API's range), "
                               "got inf"),
    (["--deadline-ms", "nan"], "--deadline-ms must be a number from 0.001 to 86400000 ms"),
    (["--deadline-ms", "-5"], "--deadline-ms must be a number from 0.001 to 86400000 ms"),
    (["--deadline-ms", "1e9"], "--deadline-ms must be a number from 0.001 to 86400000 ms"),
    (["--rows", "-1"], "--rows must be a whole number >= 1, got -1"),
])
def test_submit_refuses_a_bad_number_before_sending_any_row(daemon, extra, message):
    done = _submit(daemon, *extra)
    assert done.returncode == 1 and done.stdout == "", done.stdout
    assert done.stderr.startswith("edgesplit submit: error: ") and len(done.stderr.strip().splitlines()) == 1
    assert message in done.stderr, done.stderr
    assert _task_rows(daemon) == 0  # no row reached the daemon


def test_a_deadline_inside_the_range_is_sent(daemon):
    done = _submit(daemon, "--deadline-ms", "86400000", "--rows", "2")
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("-> class") == 2
