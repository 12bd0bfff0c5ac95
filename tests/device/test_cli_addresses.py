"""Peer addresses as newcomers type them, and ``default`` as the bundle everywhere: real subprocesses."""
import json
import subprocess

import pytest


def _run(edgesplit, *args, timeout=120):
    return subprocess.run(edgesplit + [str(a) for a in args], capture_output=True, text=True, timeout=timeout)


def test_run_accepts_host_port_without_tcp_scheme(peers, heldout_files, free_port, edgesplit):
    x, _ = heldout_files
    peers(free_port)
    done = _run(edgesplit, "run", "default", "--peer", "127.0.0.1:%d" % free_port, "--inputs", x, "--cut", "0",
                "--limit", "20", "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["offloaded"] == 20 and report["fallbacks"] == 0


@pytest.mark.parametrize("args, option", [
    (["run", "default", "--inputs", "X", "--peer", "127.0.0.1"], "--peer"),
    (["run", "default", "--inputs", "X", "--peer", "udp://127.0.0.1:5555"], "--peer"),
    (["run", "default", "--inputs", "X", "--peer", "127.0.0.1:99999"], "--peer"),
    (["peer", "default", "--bind", "127.0.0.1"], "--bind"),
    (["link", "--listen", "127.0.0.1"], "--listen"),
    (["link", "--to", "localhost:port"], "--to"),
])
def test_bad_addresses_are_one_line_naming_the_option(edgesplit, heldout_files, args, option):
    args = [heldout_files[0] if a == "X" else a for a in args]
    done = _run(edgesplit, *args, timeout=60)
    assert done.returncode != 0
    assert "Traceback" not in done.stderr and "ZMQError" not in done.stderr
    assert option in done.stderr and "tcp://" in done.stderr, done.stderr


def test_peer_takes_default_and_host_port(edgesplit, free_port):
    proc = subprocess.Popen(edgesplit + ["peer", "default", "--bind", "127.0.0.1:%d" % free_port, "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert line, proc.stderr.read()
        ready = json.loads(line)
        assert ready["endpoint"] == "tcp://127.0.0.1:%d" % free_port
        assert ready["bundle"] == "mnist-branchy"
    finally:
        proc.terminate()
        proc.wait(10)


def test_run_without_peer_is_local_only_not_fallbacks(heldout_files, tmp_path, edgesplit):
    x, y = heldout_files
    db = tmp_path / "local.db"
    done = _run(edgesplit, "run", "default", "--inputs", x, "--labels", y, "--cut", "0", "--limit", "30",
                "--traces", db, "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert (report["tasks"], report["fallbacks"], report["offloaded"]) == (30, 0, 0)
    assert report["peer"] is None and report["mode"] == "local only (no --peer)"
    import sqlite3
    with sqlite3.connect(str(db)) as conn:
        assert conn.execute("SELECT COUNT(*), SUM(fallback) FROM tasks").fetchone() == (30, 0)
    text = _run(edgesplit, "run", "default", "--inputs", x, "--cut", "0", "--limit", "5")
    assert text.returncode == 0, text.stderr
    assert "local only (no --peer)" in text.stdout and "0 fallbacks" in text.stdout
