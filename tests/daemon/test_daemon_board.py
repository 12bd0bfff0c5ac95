"""Under `serve` the board config is live: providers (with the logged fallback), sensors sampled at the
board's rate, and the energy proxy in the controller's state and in every trace row."""
import sqlite3

import pytest

from support import fake_boards
from support.daemon_process import heldout


def _energies(db):
    conn = sqlite3.connect(str(db))
    try:
        return [row[0] for row in conn.execute("SELECT energy FROM tasks ORDER BY task_id")]
    finally:
        conn.close()


def _submit(daemon, count):
    with daemon.client() as api:
        answers = [api.submit(x[None], deadline_ms=2000) for x in heldout(count)]
        status = api.status()
    assert all(a.ok for a in answers), [a.status for a in answers]
    return status


def test_x86_board_feeds_its_cpu_clock_as_the_energy_proxy_of_every_task(make_daemon):
    import subprocess
    import sys

    daemon = make_daemon(board="x86_cpu", log_level="debug").start()
    status = _submit(daemon, 5)
    shown = subprocess.run([sys.executable, "-m", "edgesplit.runtime.cli", "status", "--socket", str(daemon.socket)],
                           capture_output=True, text=True, timeout=60).stdout
    assert "board      x86_cpu on CPUExecutionProvider" in shown and "energy     cpu_freq " in shown, shown
    assert daemon.stop() == 0
    assert status["board"] == "x86_cpu"
    assert status["providers"] == ["CPUExecutionProvider"]
    proxy = status["sensors"]["energy_proxy"]
    assert proxy["reading"] == "cpu_freq" and proxy["available"] and proxy["latest"] > 0, proxy
    assert status["sensors"]["rate_hz"] == pytest.approx(10.0)
    energies = _energies(daemon.traces)
    assert len(energies) == 5 and all(e is not None and e > 0 for e in energies), energies
    log = daemon.log.read_text()
    per_task = [line for line in log.splitlines() if ": exit " in line and "energy proxy" in line]
    assert len(per_task) == 5, log
    assert all(float(line.split("energy proxy ")[1].split()[0]) > 0 for line in per_task), per_task


def test_a_jetson_tree_gives_the_gpu_clock_and_the_missing_gpu_providers_are_logged(make_daemon, tmp_path):
    root = fake_boards.build("jetson_nano", tmp_path / "nano")
    daemon = make_daemon(board="jetson_nano", env={"EDGESPLIT_SYSROOT": str(root)}).start()
    status = _submit(daemon, 3)
    assert daemon.stop() == 0
    want = fake_boards.expected("jetson_nano")["gpu_freq"]
    assert status["sensors"]["energy_proxy"]["reading"] == "gpu_freq"
    assert status["sensors"]["energy_proxy"]["latest"] == pytest.approx(want)
    assert _energies(daemon.traces) == pytest.approx([want] * 3)
    # The Nano's config asks for TensorRT and CUDA; this onnxruntime has neither: each is named once,
    # every segment runs on CPU, and status says so.
    log = daemon.log.read_text()
    assert "TensorrtExecutionProvider" in log and "CUDAExecutionProvider" in log and "skipping it" in log
    assert status["providers"] == ["CPUExecutionProvider"]
    assert "energy proxy gpu_freq = 921.6 MHz" in log


def test_run_records_the_live_board_and_its_energy_proxy(tmp_path):
    import json
    import subprocess
    import sys

    import numpy as np

    np.save(str(tmp_path / "x.npy"), heldout(4))
    db = tmp_path / "run.db"
    out = subprocess.run([sys.executable, "-m", "edgesplit.runtime.cli", "run", "default", "--inputs",
                          str(tmp_path / "x.npy"), "--traces", str(db), "--json"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["board"] == "x86_cpu" and report["providers"] == ["CPUExecutionProvider"]
    assert report["sensors"]["energy_proxy"]["reading"] == "cpu_freq"
    assert all(e > 0 for e in _energies(db))
    conn = sqlite3.connect(str(db))
    config = json.loads(conn.execute("SELECT config FROM runs").fetchone()[0])
    conn.close()
    assert config["providers"] == ["CPUExecutionProvider"] and config["energy_unit"] == "MHz"
