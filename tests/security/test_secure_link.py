"""CurveZMQ between device and peer: key files, the peer's allow list, the device's pinned peer key."""
import logging
import os
import stat
import subprocess
import sys

import pytest
import zmq

from edgesplit.runtime.bundle.store import load_bundle
from edgesplit.runtime.daemon.config import DaemonConfigError, parse_daemon_config
from edgesplit.runtime.default_bundle import default_bundle_path
from edgesplit.runtime.executor.executor import Executor
from edgesplit.runtime.peer.background import BackgroundPeer
from edgesplit.runtime.security.curve import client_keys, server_keys
from edgesplit.runtime.security.keys import KeyFileError, generate_keypair, load_keys
from edgesplit.runtime.transport.client import PeerClient

pytestmark = pytest.mark.skipif(not zmq.has("curve"), reason="libzmq without CURVE")


@pytest.fixture(scope="module")
def executor():
    return Executor(load_bundle(default_bundle_path()))


@pytest.fixture
def keys(tmp_path):
    generate_keypair(tmp_path, "peer")
    generate_keypair(tmp_path / "devices", "device-ok")
    generate_keypair(tmp_path, "device-unknown")
    generate_keypair(tmp_path, "impostor")
    return tmp_path


def test_key_files_are_created_with_safe_modes_and_never_replaced_silently(tmp_path):
    public, secret = generate_keypair(tmp_path, "jetson-01")
    assert stat.S_IMODE(os.stat(str(secret)).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(str(public)).st_mode) == 0o644
    pair = load_keys(secret, need_secret=True)
    assert load_keys(public).public == pair.public and len(pair.secret) == 40
    with pytest.raises(KeyFileError, match="--force"):
        generate_keypair(tmp_path, "jetson-01")
    os.chmod(str(secret), 0o644)
    with pytest.raises(KeyFileError, match="chmod 600"):
        load_keys(secret, need_secret=True)
    with pytest.raises(KeyFileError, match="no secret-key"):
        load_keys(public, need_secret=True)


def test_keys_generate_command(tmp_path):
    out = subprocess.run([sys.executable, "-m", "edgesplit.runtime.cli", "keys", "generate", "dev", "--dir", str(tmp_path),
                          "--json"], stdout=subprocess.PIPE, universal_newlines=True, check=True).stdout
    assert '"public_key"' in out and (tmp_path / "dev.key_secret").exists()
    again = subprocess.run([sys.executable, "-m", "edgesplit.runtime.cli", "keys", "generate", "dev", "--dir", str(tmp_path)],
                           stderr=subprocess.PIPE, universal_newlines=True)
    assert again.returncode == 1 and "already exist" in again.stderr


def _probe(address, bundle_hash, curve):
    with PeerClient(address, bundle_hash, curve=curve, context=zmq.Context.instance()) as client:
        return client.probe(timeout_s=1.5)


def test_listed_device_gets_answers_unknown_device_gets_nothing_and_is_logged(executor, keys, caplog):
    curve = server_keys(str(keys / "peer.key_secret"), str(keys / "devices"))
    with BackgroundPeer(executor, "tcp://127.0.0.1:*", curve=curve) as peer:
        good = client_keys(str(keys / "peer.key"), str(keys / "devices" / "device-ok.key_secret"))
        assert _probe(peer.endpoint, executor.bundle.hash, good).ok
        unknown = client_keys(str(keys / "peer.key"), str(keys / "device-unknown.key_secret"))
        with caplog.at_level(logging.WARNING, logger="edgesplit.runtime.security.zap"):
            outcome = _probe(peer.endpoint, executor.bundle.hash, unknown)
        assert outcome.status == "timeout" and outcome.outputs == {}
        plain = _probe(peer.endpoint, executor.bundle.hash, None)  # no CurveZMQ at all
        assert plain.status == "timeout"
        served = peer.stats.probes
    assert served == 1
    refused_key = load_keys(keys / "device-unknown.key").public.decode()
    assert any("refused device key %s" % refused_key in r.getMessage() for r in caplog.records)


def test_device_refuses_a_peer_whose_key_is_not_the_pinned_one(executor, keys):
    # The peer runs with the impostor's key pair and would accept the device; the device pins peer.key.
    impostor = server_keys(str(keys / "impostor.key_secret"), str(keys / "devices"))
    with BackgroundPeer(executor, "tcp://127.0.0.1:*", curve=impostor) as peer:
        pinned = client_keys(str(keys / "peer.key"), str(keys / "devices" / "device-ok.key_secret"))
        outcome = _probe(peer.endpoint, executor.bundle.hash, pinned)
        assert outcome.status == "timeout"
        assert peer.stats.probes == 0


def test_secure_link_is_on_by_default_off_loopback(tmp_path):
    with pytest.raises(DaemonConfigError, match=r"edgesplit.toml:2: key peer.address: .*not a loopback"):
        parse_daemon_config('[peer]\naddress = "tcp://10.0.0.2:5555"\n', str(tmp_path / "edgesplit.toml"))
    parse_daemon_config('[peer]\naddress = "tcp://127.0.0.1:5555"\n', "x.toml")
    parse_daemon_config('[peer]\naddress = "tcp://10.0.0.2:5555"\ninsecure = true\n', "x.toml")
    with pytest.raises(DaemonConfigError, match="needs both"):
        parse_daemon_config('[peer]\naddress = "tcp://10.0.0.2:5555"\nserver_key = "p.key"\n', "x.toml")
    proc = subprocess.run([sys.executable, "-m", "edgesplit.runtime.cli", "peer", str(default_bundle_path()), "--bind",
                           "tcp://0.0.0.0:5555"], stderr=subprocess.PIPE, universal_newlines=True, timeout=60)
    assert proc.returncode == 1 and "--secret-key" in proc.stderr


def test_the_zap_handler_refuses_a_plain_socket_of_the_peers_domain(keys, caplog):
    # pyzmq's authenticator lets NULL (no security) through by default; the peer's handler must not.
    from edgesplit.runtime.security.curve import ZAP_DOMAIN
    from edgesplit.runtime.security.zap import CurveAllowList

    context = zmq.Context()
    allow = CurveAllowList(context, [load_keys(keys / "devices" / "device-ok.key").public]).start()
    router, dealer = context.socket(zmq.ROUTER), context.socket(zmq.DEALER)
    try:
        router.setsockopt(zmq.ZAP_DOMAIN, ZAP_DOMAIN)
        port = router.bind_to_random_port("tcp://127.0.0.1")
        with caplog.at_level(logging.WARNING, logger="edgesplit.runtime.security.zap"):
            dealer.connect("tcp://127.0.0.1:%d" % port)
            dealer.send(b"hello")
            assert router.poll(1500) == 0
        assert allow.rejected >= 1 and allow.accepted == 0
        assert any("mechanism NULL, but this peer requires CURVE" in r.getMessage() for r in caplog.records)
    finally:
        for sock in (router, dealer):
            sock.close(0)
        allow.stop()
        context.term()
