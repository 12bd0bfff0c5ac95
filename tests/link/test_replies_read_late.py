"""A probe's answer read long after it arrived gives the link estimator no timing.

See docs/link.md, "What the estimate is fed".

A real ``edgesplit peer`` process behind the software link (0.4 Mbit/s, 20 ms RTT). The device side calls
``maybe_probe`` only once every 150 ms, as the daemon did between tasks: each probe's answer arrives after
~25 ms and then waits unread. Counted, those round trips (~150 ms) became the base RTT and every bandwidth
sample read high (3x in the closed loop's daemon runs).
"""
import time

import pytest

from edgesplit.runtime.default_bundle import default_bundle_path, resolve_bundle
from edgesplit.runtime.emulation.link.recording_readers import constant_recording
from edgesplit.runtime.emulation.link.relay import BackgroundLink, parse_tcp_endpoint
from edgesplit.runtime.peer.process import PeerProcess
from edgesplit.runtime.transport.client import PeerClient
from edgesplit.runtime.transport.link_estimate import LinkEstimator

RTT_S = 0.020
CALL_EVERY_S = 0.150


@pytest.fixture(scope="module")
def link():
    with PeerProcess(default_bundle_path()) as peer:
        with BackgroundLink(parse_tcp_endpoint(peer.endpoint, "peer"), constant_recording(0.4e6), rtt_s=RTT_S) as relay:
            yield relay


def _client(link, **options):
    # Short refresh and sample ages, so a few seconds show what a run's minute would.
    estimator = LinkEstimator(min_bandwidth_bytes=3000, stale_after_s=0.3, rtt_refresh_s=0.3, rtt_max_age_s=1.0)
    return PeerClient(link.endpoint, resolve_bundle("default").wire_hash, estimator=estimator, probe_bytes=4096,
                      **options)


def test_answers_read_late_leave_the_base_rtt_alone(link):
    with _client(link) as client:
        for payload in (0, 0):  # the first answer on a fresh socket is never timed; the second is read at once
            assert client.probe(2.0, payload_bytes=payload).ok
        base = client.estimator.base_rtt_s
        assert RTT_S < base < 2 * RTT_S
        first_estimate = client.link_estimate()
        until = time.monotonic() + 3.0
        while time.monotonic() < until:
            client.maybe_probe()
            time.sleep(CALL_EVERY_S)
        assert client.peer_alive  # the answers did come (and were read)
        estimate = client.link_estimate()
    # Each answer waited ~125 ms unread: none of those round trips reached the estimator.
    assert estimate.base_rtt_s == base
    assert estimate.rtt_s == first_estimate.rtt_s


def test_answers_read_promptly_are_measured(link):
    with _client(link) as client:
        for payload in (0, 0, 4096):
            assert client.probe(2.0, payload_bytes=payload).ok
        samples = client.estimator.snapshot(client.clock()).samples
        first_rtt_at = client.estimator.last_rtt_at
        until = time.monotonic() + 2.0
        while time.monotonic() < until:
            client.maybe_probe()
            time.sleep(0.001)  # the daemon's and the device loop's pace while a probe is in flight
        estimate = client.link_estimate()
        assert client.estimator.last_rtt_at > first_rtt_at
    assert estimate.samples > samples  # stale-estimate probes with a payload were measured too
    assert RTT_S < estimate.base_rtt_s < 2 * RTT_S
    assert 0.2e6 < estimate.bandwidth_bps < 0.8e6
