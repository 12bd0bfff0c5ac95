"""Defect 4 and the config decoders: nan/inf (and absurd nesting or integers) in a board TOML or the
daemon config are refused with file:line:key by ``board validate``, ``serve --check-config``, ``serve``
and SIGHUP; ``--check-config`` also refuses a ``traces.path`` in a missing folder."""
import re
import signal
import subprocess
import sys
import time

import pytest

from edgesplit.runtime.boards.config import board_configs_dir
from support.daemon_process import ROOT, heldout


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "edgesplit.runtime.cli"] + [str(a) for a in args], cwd=str(ROOT),
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120)


def _board_with(tmp_path, old, new):
    text = (ROOT / "board_configs" / "x86_cpu.toml").read_text()
    assert old in text
    path = tmp_path / "x86_cpu.toml"
    path.write_text(text.replace(old, new))
    return path, text.replace(old, new).splitlines().index(new) + 1


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "+nan"])
def test_board_validate_refuses_non_finite_bounds_with_file_line_key(tmp_path, value):
    path, line = _board_with(tmp_path, "latency_ms = 100.0", "latency_ms = %s" % value)
    done = _cli("board", "validate", path)
    err = done.stderr.decode()
    assert done.returncode == 1 and "%s:%d: key bounds.latency_ms" % (path, line) in err, err
    assert "finite" in err and "Traceback" not in err


@pytest.mark.parametrize("line", ["latency_ms = nan", "energy = inf", "max_mb = inf", "flush_interval_s = nan",
                                  "default_deadline_ms = inf", "max_input_mb = nan", "interval_s = inf",
                                  "max_mb = 1" + "0" * 400])
def test_check_config_refuses_non_finite_numbers_with_file_line_key(make_daemon, line):
    section = {"latency_ms": "bounds", "energy": "bounds", "max_mb": "traces", "flush_interval_s": "traces",
               "default_deadline_ms": "api", "max_input_mb": "api", "interval_s": "metrics"}[line.split()[0]]
    daemon = make_daemon()
    text = daemon.config.read_text()
    key = line.split()[0]
    if re.search(r"(?m)^%s = " % key, text):
        text = re.sub(r"(?m)^%s = .*$" % key, line, text)
    elif "[%s]" % section in text:
        text = text.replace("[%s]\n" % section, "[%s]\n%s\n" % (section, line))
    else:
        text += "[%s]\n%s\n" % (section, line)
    daemon.config.write_text(text)
    number = text.splitlines().index(line) + 1
    for args in (["serve", "--config", daemon.config, "--check-config"], ["serve", "--config", daemon.config]):
        done = _cli(*args)
        err = done.stderr.decode()
        assert done.returncode == 1, (args, done.stdout, err)
        assert "%s:%d: key %s.%s" % (daemon.config, number, section, line.split()[0]) in err, err
        assert "Traceback" not in err


def test_deeply_nested_toml_is_a_config_error(make_daemon):
    daemon = make_daemon()
    daemon.config.write_text(daemon.config.read_text() + "[debug]\nx = " + "[" * 5000 + "]" * 5000 + "\n")
    done = _cli("serve", "--config", daemon.config, "--check-config")
    err = done.stderr.decode()
    assert done.returncode == 1 and "not valid TOML" in err and "Traceback" not in err, err


def test_sighup_with_a_nan_bound_keeps_the_old_config_and_tasks_stay_ok(make_daemon):
    daemon = make_daemon(extra_toml="[bounds]\nlatency_ms = 200.0\n").start()
    image = heldout(1)
    with daemon.client() as client:
        assert client.submit(image).ok
        daemon.config.write_text(daemon.config.read_text().replace("latency_ms = 200.0", "latency_ms = nan"))
        daemon.signal(signal.SIGHUP)
        waited = time.monotonic() + 20
        while "reload refused" not in daemon.log.read_text() and time.monotonic() < waited:
            time.sleep(0.05)
        answers = [client.submit(image) for _ in range(5)]
    assert all(a.ok for a in answers), [(a.status, a.message) for a in answers]
    assert daemon.stop() == 0
    log = daemon.log.read_text()
    assert re.search(r"reload refused.*edgesplit.toml:\d+: key bounds.latency_ms", log), log[-2000:]


def test_check_config_refuses_a_traces_path_in_a_missing_folder(make_daemon, tmp_path):
    daemon = make_daemon()
    text = daemon.config.read_text()
    missing = tmp_path / "nowhere" / "traces.db"
    text = re.sub(r'(\[traces\]\npath = )"[^"]*"', r'\1"%s"' % missing, text)
    daemon.config.write_text(text)
    done = _cli("serve", "--config", daemon.config, "--check-config")
    err = done.stderr.decode()
    assert done.returncode == 1 and "key traces.path" in err and "does not exist" in err, err


def test_shipped_board_configs_still_validate():
    assert _cli("board", "validate").returncode == 0, board_configs_dir()
