"""Trying the daemon as an ordinary user (`serve --local DIR`), and a --check-config that catches what
`serve` would then refuse on this machine (missing folders, a missing API group)."""
import grp
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from support.daemon_process import heldout

CLI = [sys.executable, "-m", "edgesplit.runtime.cli"]
EXAMPLE = Path(__file__).resolve().parents[2] / "systemd" / "edgesplit.toml"


def _cli(*args, **kwargs):
    return subprocess.run(CLI + [str(a) for a in args], capture_output=True, text=True, timeout=120, **kwargs)


def test_serve_local_keeps_every_path_in_one_folder_and_answers(tmp_path):
    folder = Path(tempfile.mkdtemp(prefix="esl-", dir="/tmp"))  # a unix socket path must stay short
    config = folder / "edgesplit.toml"
    daemon = subprocess.Popen(CLI + ["serve", "--local", str(folder)], stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not (folder / "api.sock").exists() and daemon.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert daemon.poll() is None, daemon.stderr.read()
        np.save(str(tmp_path / "x.npy"), heldout(3))
        submitted = _cli("submit", "--config", config, "--inputs", tmp_path / "x.npy", "--json")
        assert submitted.returncode == 0, submitted.stderr
        answers = [json.loads(line) for line in submitted.stdout.splitlines()]  # JSON Lines: one per row
        assert [a["status"] for a in answers] == ["ok"] * 3
        status = json.loads(_cli("status", "--config", config, "--json").stdout)
        assert status["traces"]["path"] == str(folder / "traces.db")
        action = status["current_action"]
        text = _cli("status", "--config", config).stdout  # the action for people, not a Python dict
        line = next(l for l in text.splitlines() if l.startswith("action"))
        assert "{" not in line and "cut %s" % action["cut"] in line, line
        assert "for %d task(s)" % action["interval"] in line, line
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(30) == 0
    finally:
        if daemon.poll() is None:
            daemon.kill()
    left = {p.name for p in folder.iterdir()} - {"traces.db-wal", "traces.db-shm", "api.sock.lock"}
    assert left == {"edgesplit.toml", "metrics.prom", "traces.db"}
    # The written config is kept: an edit survives the next start.
    config.write_text(config.read_text().replace('log_level = "info"', 'log_level = "warning"'))
    checked = _cli("serve", "--local", folder, "--check-config", "--json")
    assert checked.returncode == 0, checked.stderr
    assert 'log_level = "warning"' in config.read_text()


def test_check_config_names_what_serve_would_refuse_and_serve_refuses_it_the_same_way(tmp_path):
    config = tmp_path / "edgesplit.toml"
    config.write_text('[model]\nboard = "x86_cpu"\n[traces]\npath = "missing/traces.db"\n'
                      '[api]\nsocket = "api.sock"\ngroup = "edgesplit-no-such-group"\n')
    checked = _cli("serve", "--config", config, "--check-config")
    assert checked.returncode == 1
    assert "edgesplit.toml:4: key traces.path: %s/missing/traces.db" % tmp_path in checked.stderr
    assert "folder %s/missing does not exist" % tmp_path in checked.stderr
    assert "edgesplit.toml:7: key api.group: group 'edgesplit-no-such-group' does not exist" in checked.stderr
    assert "serve --local DIR" in checked.stderr
    served = _cli("serve", "--config", config)
    assert served.returncode == 1 and "key traces.path" in served.stderr and "Traceback" not in served.stderr
    assert not (tmp_path / "api.sock").exists()


def _group_exists(name):
    try:
        grp.getgrnam(name)
        return True
    except KeyError:
        return False


def test_the_shipped_example_passes_the_check_only_where_install_sh_has_prepared_the_machine():
    checked = _cli("serve", "--config", EXAMPLE, "--check-config")
    prepared = os.path.isdir("/var/lib/edgesplit") and _group_exists("edgesplit")
    assert (checked.returncode == 0) == prepared, checked.stderr
    if not prepared:
        assert "edgesplit.toml:" in checked.stderr and "serve --local DIR" in checked.stderr


def test_check_config_names_a_learner_state_folder_that_does_not_exist(tmp_path):
    config = tmp_path / "edgesplit.toml"
    config.write_text('[model]\nboard = "x86_cpu"\nselector = "linucb"\nvariants = ["default", "default2"]\n'
                      '[traces]\npath = "traces.db"\n[api]\nsocket = "api.sock"\n'
                      '[linucb]\nstate = "nowhere/linucb.json"\n')
    checked = _cli("serve", "--config", config, "--check-config")
    assert checked.returncode == 1
    assert "edgesplit.toml:10: key linucb.state: %s/nowhere/linucb.json" % tmp_path in checked.stderr


def test_a_socket_path_too_long_for_unix_is_refused_by_the_check_not_at_bind(tmp_path):
    folder = Path(tempfile.mkdtemp(prefix="esl-", dir="/tmp")) / ("d" * 90)
    checked = _cli("serve", "--local", folder, "--check-config")
    assert checked.returncode == 1
    assert "key api.socket: %s/api.sock is" % folder in checked.stderr and "shorter folder" in checked.stderr
    assert "Traceback" not in checked.stderr


def test_a_peer_without_an_offloading_action_is_warned_about(tmp_path):
    np.save(str(tmp_path / "x.npy"), heldout(2))
    ran = _cli("run", "default", "--peer", "tcp://127.0.0.1:9", "--inputs", tmp_path / "x.npy")
    assert ran.returncode == 0, ran.stderr
    assert "--peer without --cut or --policy" in ran.stderr
