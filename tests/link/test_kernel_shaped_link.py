"""Device and peer in two network namespaces over a tbf-shaped veth; the rate changes mid-run.

Runs as root (as CI does); skipped with the reason otherwise.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from edgesplit.runtime.emulation.link.kernel_shaping import NamespacePair, unavailable_reason
from edgesplit.runtime.peer.process import PeerProcess
from support.tiny_bundle import write_tiny_bundle

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
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    with NamespacePair(tag="t") as pair:
        pair.set_rate(40e6)
        # A private namespace pair: no keys needed.
        peer = PeerProcess(bundle.root, bind="tcp://%s:5555" % pair.peer_ip, extra=["--insecure"],
                           launcher=lambda argv: pair.exec_args("peer", argv))
        device = None
        try:
            device = subprocess.Popen(
                pair.exec_args("device", [sys.executable, str(REPO / "tests" / "support" / "netns_device.py"),
                                          peer.endpoint, bundle.hash]),
                env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
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
            peer.stop()
    for rate, phase in phases.items():
        assert set(phase["statuses"]) == {"ok"} and phase["peer_alive"], phase
    fast, slow = phases[40e6]["bandwidth_bps"], phases[8e6]["bandwidth_bps"]
    assert 20e6 < fast < 60e6, phases
    assert 4e6 < slow < 12e6, phases
