"""The software link: real offloads through a recording-shaped TCP relay, and the estimate follows it."""

import numpy as np
import pytest

from edgesplit.runtime.executor.executor import Executor
from edgesplit.runtime.emulation.link.relay import BackgroundLink, RateSchedule, TokenBucket, parse_tcp_endpoint
from edgesplit.runtime.emulation.link.recording_readers import BandwidthRecording, constant_recording
from edgesplit.runtime.peer.background import BackgroundPeer
from edgesplit.runtime.transport.client import PeerClient
from support.tiny_bundle import write_tiny_bundle  # noqa: E402


@pytest.fixture(scope="module")
def peer(tmp_path_factory):
    bundle = write_tiny_bundle(tmp_path_factory.mktemp("link") / "tiny")
    with BackgroundPeer(Executor(bundle)) as running:
        running.bundle = bundle
        yield running


def _port(endpoint):
    return parse_tcp_endpoint(endpoint, "endpoint")[1]


def test_schedule_steps_and_time_scale():
    recording = BandwidthRecording(np.array([8e6, 16e6, 0.0]), "t", "test")
    schedule = RateSchedule(recording, time_scale=2.0, start=100.0)
    assert schedule.rate_bps(100.2) == 8e6 and schedule.rate_bps(100.6) == 16e6
    assert schedule.rate_bps(101.1) == 0.0 and schedule.rate_bps(101.6) == 8e6  # loops
    assert schedule.next_change(100.2) == pytest.approx(100.5)
    # 0.5 s at 1 MB/s + 0.5 s at 2 MB/s
    assert schedule.capacity_bytes(100.0, 101.0) == pytest.approx(1.5e6)


@pytest.mark.parametrize("time_scale", [3.0, 6.0, 0.3, 7.0 / 3.0])
def test_schedule_with_unrepresentable_steps_always_advances(time_scale):
    # A step of 1/3 s cannot be represented exactly: boundaries computed for a time may round back
    # onto it (this hung the demo's links at time scale 3 before capacity_bytes walked indices).
    recording = BandwidthRecording(np.array([8e6, 16e6]), "t", "test")
    schedule = RateSchedule(recording, time_scale=time_scale, start=12345.678)
    step = 1.0 / time_scale
    for k in range(1, 200):
        boundary = schedule.start + k * step
        for t in (boundary, np.nextafter(boundary, 0.0), np.nextafter(boundary, np.inf)):
            assert schedule.next_change(t) > t
            total = schedule.capacity_bytes(t, t + 2 * step)
            assert total == pytest.approx(1.5e6 * 2 * step, rel=1e-6)


def test_token_bucket_waits_through_an_outage():
    now = [0.0]
    recording = BandwidthRecording(np.array([0.0, 8e6]), "t", "test")
    bucket = TokenBucket(RateSchedule(recording, start=0.0), burst_bytes=1000, clock=lambda: now[0])
    assert bucket.wait_s(1000) == 0.0
    assert bucket.wait_s(500) == pytest.approx(1.0)  # rate 0: look again at the next step
    now[0] = 1.0
    assert bucket.debt_wait_s(1.0) == pytest.approx(500 / 1e6)


def test_offloads_pass_through_the_link(peer):
    bundle = peer.bundle
    with BackgroundLink(("127.0.0.1", _port(peer.endpoint)), constant_recording(50e6), rtt_s=0.01) as link:
        with PeerClient(link.endpoint, bundle.hash) as client:
            x = np.ones((2, 4), np.float32)
            outcome = client.offload(0, {"x": x}, 5.0, thresholds=[0.0])
            assert outcome.ok and outcome.round_trip_s >= 0.01
        assert link.link.stats.bytes_up >= outcome.bytes_sent and link.link.stats.connections == 1


def test_estimate_follows_the_recorded_rate(peer):
    # 8 Mbit/s for 3 s then 2 Mbit/s: the estimate taken in each phase follows (loosely).
    recording = BandwidthRecording(np.array([8e6, 8e6, 8e6, 2e6, 2e6, 2e6, 2e6]), "steps", "test")
    with BackgroundLink(("127.0.0.1", _port(peer.endpoint)), recording, rtt_s=0.01) as link:
        with PeerClient(link.endpoint, peer.bundle.hash) as client:
            for _ in range(3):
                client.probe(5.0)
            schedule = link.link.schedule
            estimates = {}
            while True:
                step = schedule.step_index(link.link.clock())
                if step >= 7:
                    break
                client.probe(5.0, payload_bytes=32 * 1024)
                if step in (2, 6):
                    estimates[step] = client.link_estimate().bandwidth_bps
    assert 4e6 < estimates[2] < 16e6, estimates
    assert 1e6 < estimates[6] < 4e6, estimates


def test_without_a_burst_every_byte_waits_its_serialisation_time():
    # 8 Mbit/s = 1 MB/s: a 3000-byte message after an idle second still takes 3 ms, as on a real bottleneck.
    now = [0.0]
    recording = BandwidthRecording(np.array([8e6, 8e6]), "t", "test")
    bucket = TokenBucket(RateSchedule(recording, start=0.0), clock=lambda: now[0])
    now[0] = 1.0
    assert bucket.wait_s(3000) == pytest.approx(0.003)
    mtu = TokenBucket(RateSchedule(recording, start=0.0), burst_bytes=1500, clock=lambda: now[0])
    now[0] = 1.5
    assert mtu.wait_s(3000) == pytest.approx(0.0015)  # one MTU saved up while idle


def test_small_transfers_through_the_link_take_their_serialisation_time(peer):
    # 0.4 Mbit/s, RTT 10 ms: a 4 KiB probe (plus its header) must spend >= 8 x 4096 / 0.4e6 = 82 ms on the link.
    with BackgroundLink(("127.0.0.1", _port(peer.endpoint)), constant_recording(0.4e6), rtt_s=0.01) as link:
        with PeerClient(link.endpoint, peer.bundle.hash) as client:
            for _ in range(2):
                client.probe(5.0)
            outcome = client.probe(5.0, payload_bytes=4096)
    assert outcome.ok
    assert outcome.transfer_s >= 8 * 4096 / 0.4e6 + 0.01


@pytest.mark.parametrize("flag, value, accepted", [("--rtt-ms", "nan", "finite, >= 0"), ("--rtt-ms", "inf", "finite, >= 0"),
                                                   ("--time-scale", "inf", "finite, > 0"),
                                                   ("--time-scale", "0", "finite, > 0")])
def test_link_command_refuses_a_non_finite_rtt_or_time_scale_instead_of_starting(flag, value, accepted):
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "edgesplit.runtime.cli", "link", "--listen", "tcp://127.0.0.1:0",
                           "--to", "tcp://127.0.0.1:9", flag, value], capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and done.stdout == "", done.stdout  # never printed its "listening" line
    assert done.stderr.strip() == "edgesplit link: error: %s must be %s, got %s" % (
        flag, "zero or a positive number (finite, >= 0)" if flag == "--rtt-ms" else "a positive number (finite, > 0)",
        "0.0" if value == "0" else value), done.stderr
    assert accepted in done.stderr
