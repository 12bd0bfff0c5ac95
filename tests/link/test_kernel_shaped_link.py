"""Device and peer in two network namespaces over a tbf-shaped veth; the rate changes mid-run.

Runs as root (as CI does); skipped with the reason otherwise.
"""
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from edgesplit.runtime.emulation.link.kernel_shaping import NamespacePair, unavailable_reason
from support.tiny_bundle import write_tiny_bundle  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
REASON = unavailable_reason()
pytestmark = pytest.mark.skipif(REASON is not None, reason="kernel-shaped link: %s" % REASON)


def _json_line(proc, what):
    line = proc.stdout.readline()
    if not line:
        raise AssertionError("%s said nothing: %s" % (what, proc.stderr.read()))
    return json.loads(line)


def test_offloads_complete_and_estimate_follows_a_tbf_rate_change(tmp_path):
    bundle = write_tiny_bundle(tmp_path / "tiny")
    env = dict(os.environ, PYTHONUNBUFFERED="1", PYTHONPATH=str(REPO))
    with NamespacePair(tag="t") as pair:
        pair.set_rate(40e6)
        peer = subprocess.Popen(pair.exec_args("peer", [sys.executable, "-m", "edgesplit.runtime.cli", "peer", str(bundle.root),
                                                        "--bind", "tcp://%s:5555" % pair.peer_ip, "--json",
                                                        "--insecure"]),  # a private namespace pair: no keys needed
                                cwd=str(REPO), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        device = None
        try:
            ready = _json_line(peer, "peer")
            device = subprocess.Popen(
                pair.exec_args("device", [sys.executable, str(Path(__file__).resolve().parents[1] / "support" / "netns_device.py"),
                                          ready["endpoint"], bundle.hash]),
                cwd=str(REPO), env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                text=True)
            assert _json_line(device, "device")["event"] == "ready"
            phases = {}
            for rate in (40e6, 8e6):
                pair.set_rate(rate)
                device.stdin.write("run 12 131072\n")
                device.stdin.flush()
                phases[rate] = _json_line(device, "device")
            device.stdin.write("stop\n")
            device.stdin.flush()
            assert device.wait(30) == 0
        finally:
            if device is not None and device.poll() is None:
                device.kill()
            peer.send_signal(signal.SIGTERM)
            try:
                peer.wait(10)
            except subprocess.TimeoutExpired:
                peer.kill()
    for rate, phase in phases.items():
        assert set(phase["statuses"]) == {"ok"} and phase["peer_alive"], phase
    fast, slow = phases[40e6]["bandwidth_bps"], phases[8e6]["bandwidth_bps"]
    assert 20e6 < fast < 60e6, phases
    assert 4e6 < slow < 12e6, phases
