"""The daemon config: strict TOML with key and line in every error, --check-config, journald logs."""
import logging
import re
import subprocess
import sys

import numpy as np
import pytest

from edgesplit.runtime.daemon.config import DaemonConfigError, load_daemon_config, parse_daemon_config
from edgesplit.runtime.daemon.logs import JournalFormatter, under_systemd


@pytest.mark.parametrize("text,message", [
    ('[model]\nbundle = ""\npolcy = "p.npz"\n', r"x.toml:3: key model.polcy: unknown key"),
    ('log_level = "loud"\n', r"x.toml:1: key log_level: unknown level 'loud'"),
    ('[api]\nqueue_size = "64"\n', r"x.toml:2: key api.queue_size: expected an integer"),
    ('[api]\nqueue_size = 0\n', r"x.toml:2: key api.queue_size: must be in 1..100000"),
    ('[api]\nspin_us = -1.0\n', r"x.toml:2: key api.spin_us: must be a number of microseconds in \[0, 100000\]"),
    ('[api]\nspin_us = 200000.0\n', r"x.toml:2: key api.spin_us: must be a number of microseconds"),
    ('[api]\nspin_us = nan\n', r"x.toml:2: key api.spin_us: expected a finite number"),
    ('[api]\nspin_us = "50"\n', r"x.toml:2: key api.spin_us: expected a number"),
    ('[traces]\nmax_mb = 0.001\n', r"x.toml:2: key traces.max_mb"),
    ('[traces]\nwriter = "fork"\n', r"x.toml:2: key traces.writer: unknown writer 'fork'; choose from process, thread"),
    ('[peer]\naddress = "udp://x"\n', r"x.toml:2: key peer.address: must be tcp://"),
    ('[peer]\naddress = "127.0.0.1:5555"\n', r"x.toml:2: key peer.address: .*write 'tcp://127.0.0.1:5555'"),
    ('[peer]\naddress = "tcp://127.0.0.1"\n', r"x.toml:2: key peer.address: .*port is missing"),
    ('[peer]\naddress = "tcp://127.0.0.1:0"\n', r"x.toml:2: key peer.address: the port must be a number"),
    ('[peer]\naddress = "tcp://127.0.0.1:5555,tcp://127.0.0.1"\n', r"x.toml:2: key peer.address: .*'tcp://127.0.0.1'"),
    ('[peer]\naddress = "tcp://127.0.0.1:5555,tcp://127.0.0.1:5555"\n', r"x.toml:2: key peer.address: .*twice"),
    ('[peer]\naddress = "tcp://127.0.0.1:5555,tcp://10.0.0.2:5555"\n',
     r"x.toml:2: key peer.address: tcp://10.0.0.2:5555 is not a loopback"),
    ('[bogus]\nx = 1\n', r"x.toml:1: key bogus: unknown key"),
    ('[api\n', r"x.toml: not valid TOML"),
    ('[emulation]\nboard = "jetson_nano_cpu"\nlink = "norway_car_3"\n',
     r"x.toml:3: key emulation.link: the software link relays to the peer"),
    ('[emulation]\nworkload_scale = 0.0\n', r"x.toml:2: key emulation.workload_scale: must be positive"),
])
def test_errors_name_file_key_and_line(text, message):
    with pytest.raises(DaemonConfigError, match=message):
        parse_daemon_config(text, "x.toml")


@pytest.mark.parametrize("address", ["127.0.0.1", "tcp://127.0.0.1", "localhost:port", "tcp://127.0.0.1:0",
                                     "127.0.0.1:99999", "127.0.0.1:5555"])
def test_a_bad_peer_address_suggests_a_value_that_works(address):
    with pytest.raises(DaemonConfigError) as refused:
        parse_daemon_config('[peer]\naddress = "%s"\n' % address, "x.toml")
    suggested = re.search(r"write '([^']+)'", str(refused.value))
    assert suggested, refused.value
    if address != "127.0.0.1:5555":  # a port is missing or out of range: the suggestion names where it goes
        assert suggested.group(1).endswith(":PORT") and "5555" in str(refused.value), refused.value
    fixed = suggested.group(1).replace("PORT", "5555")
    assert parse_daemon_config('[peer]\naddress = "%s"\n' % fixed, "x.toml").peer.address == fixed


def test_a_bad_port_is_reported_once():
    with pytest.raises(DaemonConfigError) as refused:
        parse_daemon_config('[peer]\naddress = "tcp://127.0.0.1:99999"\n', "x.toml")
    message = str(refused.value)
    assert message.startswith("x.toml:2: key peer.address: the port must be a number in 1..65535, got '99999'")
    assert message.count("got") == 1, message


def test_relative_paths_are_relative_to_the_config_and_defaults_fill_the_rest(tmp_path):
    path = tmp_path / "edgesplit.toml"
    path.write_text('[traces]\npath = "state/traces.db"\n[model]\npolicy = "p.npz"\n')
    config = load_daemon_config(str(path))
    assert config.traces.path == str(tmp_path / "state" / "traces.db")
    assert config.model.policy == str(tmp_path / "p.npz") and config.api.queue_size == 64


def test_check_config_cli(tmp_path):
    good = tmp_path / "good.toml"
    good.write_text('[model]\nboard = "x86_cpu"\n[traces]\npath = "traces.db"\n[api]\nsocket = "api.sock"\n')
    out = subprocess.run([sys.executable, "-m", "edgesplit.runtime.cli", "serve", "--config", str(good), "--check-config",
                          "--json"], stdout=subprocess.PIPE, universal_newlines=True, check=True).stdout
    assert '"ok": true' in out and '"board": "x86_cpu"' in out
    bad = tmp_path / "bad.toml"
    bad.write_text('[model]\nboard = "x86_cpu"\npolicy = "missing.npz"\n')
    proc = subprocess.run([sys.executable, "-m", "edgesplit.runtime.cli", "serve", "--config", str(bad), "--check-config"],
                          stderr=subprocess.PIPE, universal_newlines=True)
    assert proc.returncode == 1 and "missing.npz" in proc.stderr


@pytest.mark.parametrize("tail, line, message", [
    ('[action]\ncut = 7\n', 8, "key action.cut: cut 7 does not exist (the bundle's cuts are 0..3)"),
    ('policy = "nope.npz"\n', 7, "key model.policy: "),
])
def test_check_config_names_file_line_and_key_of_a_cut_or_policy_the_bundle_cannot_use(tmp_path, tail, line,
                                                                                          message):
    # docs/daemon.md: "every problem is reported with file, line and key", the ones found against the bundle too.
    config = tmp_path / "e.toml"
    config.write_text('[traces]\npath = "traces.db"\n[api]\nsocket = "api.sock"\n[model]\nboard = "x86_cpu"\n' + tail)
    proc = subprocess.run([sys.executable, "-m", "edgesplit.runtime.cli", "serve", "--config", str(config),
                           "--check-config"], stderr=subprocess.PIPE, universal_newlines=True)
    assert proc.returncode == 1
    assert proc.stderr.startswith("edgesplit serve: error: %s:%d: %s" % (config, line, message)), proc.stderr
    if "policy" in message:
        assert "nope.npz: no such file" in proc.stderr


def test_check_config_names_the_key_and_line_of_every_key_file_the_secure_link_cannot_read(tmp_path):
    pytest.importorskip("zmq.auth")
    config = tmp_path / "k.toml"
    config.write_text('[traces]\npath = "traces.db"\n[api]\nsocket = "api.sock"\n[model]\nboard = "x86_cpu"\n'
                      '[peer]\naddress = "tcp://10.0.0.9:5555"\nserver_key = "keys/peer.key"\n'
                      'device_key = "keys/missing.key_secret"\n')
    proc = subprocess.run([sys.executable, "-m", "edgesplit.runtime.cli", "serve", "--config", str(config),
                           "--check-config"], stderr=subprocess.PIPE, universal_newlines=True)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    # both files, each at its own key and line, in one run
    assert "%s:9: key peer.server_key: %s: no such key file" % (config, tmp_path / "keys" / "peer.key") in proc.stderr
    assert ("%s:10: key peer.device_key: %s: no such key file" % (config, tmp_path / "keys" / "missing.key_secret")
            in proc.stderr), proc.stderr


def test_check_config_names_an_emulated_board_and_refuses_an_unknown_one(tmp_path):
    good = tmp_path / "good.toml"
    good.write_text('[emulation]\nboard = "jetson_nano_cpu"\nworkload_scale = 112.0\n[traces]\npath = "t.db"\n'
                    '[api]\nsocket = "api.sock"\n')
    out = subprocess.run([sys.executable, "-m", "edgesplit.runtime.cli", "serve", "--config", str(good), "--check-config",
                          "--json"], stdout=subprocess.PIPE, universal_newlines=True, check=True).stdout
    assert '"board": "jetson_nano_cpu (emulated)"' in out
    bad = tmp_path / "bad.toml"
    bad.write_text('[emulation]\nboard = "jetson_nanoo"\n')
    proc = subprocess.run([sys.executable, "-m", "edgesplit.runtime.cli", "serve", "--config", str(bad), "--check-config"],
                          stderr=subprocess.PIPE, universal_newlines=True)
    assert proc.returncode == 1 and "jetson_nanoo" in proc.stderr


def test_the_shipped_example_config_is_valid():
    from pathlib import Path

    config = load_daemon_config(str(Path(__file__).resolve().parents[2] / "systemd" / "edgesplit.toml"))
    assert config.api.socket == "/run/edgesplit/api.sock" and config.api.group == "edgesplit"


def test_journald_form_has_priorities_and_no_timestamps():
    record = logging.LogRecord("edgesplit.runtime.x", logging.WARNING, __file__, 1, "disk %s\nsecond", ("full",), None)
    assert JournalFormatter().format(record) == "<4>edgesplit.runtime.x: disk full\n<4>second"
    assert under_systemd({"INVOCATION_ID": "abc"}) and under_systemd({"JOURNAL_STREAM": "8:1"})
    assert not under_systemd({})


@pytest.mark.parametrize("text,message", [
    ('[model]\nvariants = ["a", "b"]\n', r"x.toml:2: key model.variants: several variants need a selector"),
    ('[model]\nselector = "linucb"\nvariants = ["a"]\n', r"x.toml:3: key model.variants: a selector needs two or more"),
    ('[model]\nselector = "linucb"\n', r"x.toml:2: key model.selector: a selector needs two or more"),
    ('[model]\nselector = "thompson"\n', r"x.toml:2: key model.selector: unknown selector 'thompson'"),
    ('[model]\nvariants = "a"\n', r"x.toml:2: key model.variants: expected a list of strings"),
    ('[model]\nselector = "linucb"\nvariants = ["a", "b"]\nbundle = "c"\n',
     r"x.toml:4: key model.bundle: cannot be set together with model.variants"),
    ('[model]\nselector = "linucb"\nvariants = ["a", "b"]\npolicy = "p.npz"\n',
     r"x.toml:4: key model.policy: cannot be set together with model.variants"),
    ('[peer]\naddress = "tcp://127.0.0.1:5555"\n[model]\nselector = "linucb"\nvariants = ["a", "b"]\n',
     r"x.toml:2: key peer.address: cannot be set together with model.variants"),
    ('[model]\nselector = "linucb"\nvariants = ["a", "b"]\n[action]\ncut = 1\n', r"x.toml:5: key action.cut: must be -1"),
    ('[linucb]\ndelta = 0\n', r"x.toml:2: key linucb.delta: must be positive"),
    ('[linucb]\nalpha = -1\n', r"x.toml:2: key linucb.alpha: must be zero or positive"),
    ('[linucb]\nlambda_eta = 0\nlambda_v_scale = 0\n', r"x.toml:2: key linucb.lambda_eta: .* cannot both be 0"),
    ('[linucb]\nalhpa = 1\n', r"x.toml:2: key linucb.alhpa: unknown key"),
])
def test_variant_and_selector_errors_name_file_key_and_line(text, message):
    with pytest.raises(DaemonConfigError, match=message):
        parse_daemon_config(text, "x.toml")


def test_variants_and_learner_state_paths_are_relative_to_the_config(tmp_path):
    path = tmp_path / "edgesplit.toml"
    path.write_text('[model]\nselector = "linucb"\nvariants = ["default", "variants/int8"]\n'
                    '[linucb]\nstate = "state/linucb.json"\nalpha = 1\n')
    config = load_daemon_config(str(path))
    assert config.model.variants == ("default", str(tmp_path / "variants" / "int8"))
    assert config.linucb.state == str(tmp_path / "state" / "linucb.json") and config.linucb.alpha == 1.0


def test_peer_address_may_list_front_ends_in_order():
    config = parse_daemon_config('[peer]\naddress = "tcp://127.0.0.1:5555, tcp://127.0.0.1:5556"\n', "x.toml")
    assert config.peer.address == "tcp://127.0.0.1:5555, tcp://127.0.0.1:5556"


def test_the_trace_writer_is_a_process_unless_the_config_asks_for_a_thread():
    assert parse_daemon_config("", "x.toml").traces.writer == "process"
    assert parse_daemon_config('[traces]\nwriter = "thread"\n', "x.toml").traces.writer == "thread"


def test_policy_demo_names_the_shipped_policy_unless_the_configs_folder_has_a_file_of_that_name(tmp_path):
    # `edgesplit policy show demo`, `run --policy demo` and the daemon's [model] policy = "demo" mean the same file;
    # for the daemon the name is resolved against the config's folder, never the folder the daemon runs in.
    from edgesplit.runtime.shipped_policy import DEMO_POLICY_FILE

    folder = tmp_path / "cfg"
    folder.mkdir()
    config = folder / "e.toml"
    config.write_text('[traces]\npath = "traces.db"\n[api]\nsocket = "api.sock"\n[emulation]\nboard = "jetson_nano_cpu"\n'
                      'workload_scale = 112.0\n[model]\npolicy = "demo"\n')  # the demo policy's board (mJ)
    assert load_daemon_config(str(config)).model.policy == str(DEMO_POLICY_FILE)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "demo").write_bytes(b"not a policy")  # in the daemon's working folder: not the config's
    out = subprocess.run([sys.executable, "-m", "edgesplit.runtime.cli", "serve", "--config", str(config),
                          "--check-config", "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         universal_newlines=True, cwd=str(elsewhere))
    assert out.returncode == 0, out.stderr
    (folder / "demo").write_bytes(b"not a policy")  # a file beside the config wins, as any relative path
    assert load_daemon_config(str(config)).model.policy == str(folder / "demo")
    proc = subprocess.run([sys.executable, "-m", "edgesplit.runtime.cli", "serve", "--config", str(config),
                           "--check-config"], stderr=subprocess.PIPE, universal_newlines=True)
    assert proc.returncode == 1 and "key model.policy" in proc.stderr and str(folder / "demo") in proc.stderr


@pytest.mark.parametrize("emulation, key", [
    ('[emulation]\nboard = "jetson_nanoo"\n', "emulation.board"),
    ('[emulation]\nboard = "jetson_nano_cpu"\nlink = "no_such_recording"\n', "emulation.link"),
])
def test_check_config_places_an_unknown_emulated_board_or_recording_at_its_key(tmp_path, emulation, key):
    config = tmp_path / "e.toml"
    config.write_text('[traces]\npath = "t.db"\n[api]\nsocket = "api.sock"\n[peer]\naddress = "tcp://127.0.0.1:5555"\n'
                      + emulation)
    proc = subprocess.run([sys.executable, "-m", "edgesplit.runtime.cli", "serve", "--config", str(config),
                           "--check-config"], stderr=subprocess.PIPE, universal_newlines=True)
    line = 8 if key == "emulation.board" else 9
    assert proc.returncode == 1 and "%s:%d: key %s: " % (config, line, key) in proc.stderr, proc.stderr


@pytest.mark.parametrize("command", ["status", "submit"])
def test_a_client_whose_config_does_not_read_is_pointed_to_socket(tmp_path, command):
    broken = tmp_path / "broken.toml"
    broken.write_text("[api]\nqueue_size = -1\n")
    np.save(str(tmp_path / "x.npy"), np.zeros((1, 1, 28, 28), np.float32))
    extra = ["--inputs", str(tmp_path / "x.npy")] if command == "submit" else []
    proc = subprocess.run([sys.executable, "-m", "edgesplit.runtime.cli", command, "--config", str(broken)] + extra,
                          stderr=subprocess.PIPE, universal_newlines=True)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "%s:2: key api.queue_size" % broken in proc.stderr and "--socket PATH" in proc.stderr, proc.stderr
