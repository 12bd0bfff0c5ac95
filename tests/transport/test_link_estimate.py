"""Bandwidth and RTT from transfer timings: synthetic timings with known answers."""
import pytest

from edgesplit.runtime.transport.link_estimate import LinkEstimator


def _link_s(nbytes, bandwidth_bps, rtt_s):
    return rtt_s + 8.0 * nbytes / bandwidth_bps


def test_recovers_bandwidth_and_rtt_from_mixed_transfers():
    est = LinkEstimator()
    now = 0.0
    for i in range(20):
        now += 0.1
        est.observe(200, _link_s(200, 20e6, 0.020), now)       # small: RTT
        est.observe(256 * 1024, _link_s(256 * 1024, 20e6, 0.020), now)
    snap = est.snapshot(now)
    assert snap.base_rtt_s == pytest.approx(0.020, rel=0.01)
    assert snap.bandwidth_bps == pytest.approx(20e6, rel=0.02)
    assert est.expected_link_s(1_000_000) == pytest.approx(_link_s(1_000_000, 20e6, 0.020), rel=0.02)


def test_follows_a_rate_change():
    est = LinkEstimator(alpha=0.3)
    now = 0.0
    for rate in (40e6, 5e6):
        for _ in range(15):
            now += 0.1
            est.observe(100, 0.010, now)
            est.observe(128 * 1024, _link_s(128 * 1024, rate, 0.010), now)
        assert est.snapshot(now).bandwidth_bps == pytest.approx(rate, rel=0.05)


def test_queueing_does_not_raise_the_base_rtt():
    est = LinkEstimator(rtt_window=8)
    for i, rtt in enumerate([0.010, 0.050, 0.080, 0.011, 0.090]):
        est.observe(100, rtt, float(i))
    assert est.base_rtt_s == 0.010
    assert est.snapshot(5.0).rtt_s > 0.010  # the smoothed RTT does see the queueing


def test_small_transfers_give_no_bandwidth_and_bad_timings_are_ignored():
    est = LinkEstimator()
    assert est.observe(4096, 0.01, 0.0) is None
    assert est.observe(1 << 20, 0.0, 0.0) is None
    assert est.observe(1 << 20, float("nan"), 0.0) is None
    assert est.snapshot(0.0).bandwidth_bps is None and est.expected_link_s(10) is None


def test_transfer_faster_than_the_base_rtt_stays_finite():
    est = LinkEstimator()
    est.observe(100, 0.001, 0.0)
    sample = est.observe(1 << 20, 0.0009, 0.1)
    assert sample is not None and sample == pytest.approx(8.0 * (1 << 20) / (0.1 * 0.0009))


def test_staleness():
    est = LinkEstimator(stale_after_s=5.0)
    assert est.is_stale(0.0)
    est.observe(64 * 1024, 0.05, 1.0)
    assert not est.is_stale(5.9) and est.is_stale(6.0)


def test_rtt_samples_do_not_make_the_bandwidth_fresh():
    # The client's empty RTT probes come every rtt_refresh_s (1 s), as often as the bandwidth goes stale: when
    # they counted as fresh, a board that kept its tasks local never sent a payload probe again and its
    # bandwidth estimate stayed at the start-up probe's value for the whole run (docs/link.md).
    est = LinkEstimator(min_bandwidth_bytes=3000, stale_after_s=1.0, rtt_refresh_s=1.0)
    est.observe(100, 0.025, 0.0)
    est.observe(4200, 0.100, 0.1)
    for now in (0.9, 1.8, 2.7):
        est.observe(100, 0.025, now)
    assert est.is_stale(2.8)
    assert est.snapshot(2.8).age_s == pytest.approx(2.7)


def test_an_unanswered_request_only_lowers_the_estimate():
    from edgesplit.runtime.transport.link_estimate import LinkEstimator

    est = LinkEstimator(min_bandwidth_bytes=1000)
    est.observe(100, 0.02, now=0.0)                     # base RTT 20 ms
    est.observe(10000, 0.02 + 0.008, now=1.0)           # 10 Mbit/s
    bound = est.observe_unanswered(5000, 0.12, now=2.0)  # 5000 B not answered in 120 ms: < 0.4 Mbit/s
    assert bound == pytest.approx(8 * 5000 / 0.1)
    assert est.snapshot(2.0).bandwidth_bps == bound
    assert est.observe_unanswered(5000, 0.01, now=3.0) > bound  # a looser bound leaves the estimate alone
    assert est.snapshot(3.0).bandwidth_bps == bound


def _drive_like_the_client(est, first_probe_s, rate_bps, rtt_s, transfers, nbytes=50_000, period_s=1.0):
    """The peer client's pattern while busy offloading: an empty probe when the estimator asks for one
    (at set-up: a slow one, ``first_probe_s``), then one ``nbytes`` transfer a period."""
    now = 0.0
    est.observe(100, first_probe_s, now)
    for _ in range(transfers):
        now += period_s
        if est.rtt_probe_due(now):
            est.observe(100, rtt_s, now)
        est.observe(nbytes, _link_s(nbytes, rate_bps, rtt_s), now + 0.5)
    return est.snapshot(now)


def test_a_slow_first_probe_does_not_pin_the_base_rtt():
    # 0.47 Mbit/s, 40 ms RTT, the first empty probe answered after 400 ms. With that as the base for the
    # run, 50 kB in 0.89 s read 0.8 Mbit/s (1.7x); refreshed by periodic empty probes it converges.
    est = LinkEstimator(alpha=0.3, min_bandwidth_bytes=3000, rtt_refresh_s=2.0)
    snap = _drive_like_the_client(est, 0.400, 0.47e6, 0.040, transfers=12)
    assert snap.base_rtt_s == pytest.approx(0.040, rel=0.01)
    assert snap.bandwidth_bps == pytest.approx(0.47e6, rel=0.05)


def test_an_rtt_probe_is_due_every_refresh_period_once_there_is_a_sample():
    est = LinkEstimator(rtt_refresh_s=2.0)
    assert not est.rtt_probe_due(0.0)  # no sample yet: the stale-estimate probe is the client's rule then
    est.observe(100, 0.02, 1.0)
    est.observe(256 * 1024, 0.5, 2.5)  # a transfer keeps the estimate fresh but is no RTT sample
    assert not est.rtt_probe_due(2.9)
    assert not est.is_stale(3.0) and est.rtt_probe_due(3.0)


def test_old_rtt_samples_expire_but_the_newest_stays():
    est = LinkEstimator(rtt_max_age_s=30.0)
    est.observe(100, 0.010, 0.0)
    est.observe(100, 0.050, 20.0)
    assert est.base_rtt_s == 0.010
    est.observe(100, 0.060, 40.0)  # the 10 ms sample is now 40 s older than the newest: the route changed
    assert est.base_rtt_s == 0.050
    est.observe(100, 0.070, 100.0)
    assert est.base_rtt_s == 0.070  # nothing recent but the newest: it is still the best known base


def test_an_unanswered_transfer_leaves_the_estimate_fresh_even_when_it_is_not_lowered():
    # It was checked against a transfer: a payload probe to refresh it would only take the link from the next
    # offload (on a slow link, real processes: 59-76 offload timeouts a run with those probes, 38-39 without).
    est = LinkEstimator(min_bandwidth_bytes=1000, stale_after_s=1.0)
    est.observe(0, 0.020, now=0.0)
    est.observe(50_000, 0.020 + 0.4, now=0.5)  # 1 Mbit/s
    assert est.is_stale(2.0)
    est.observe_unanswered(4_000, 0.010, now=2.0)  # bound far above 1 Mbit/s: not lowered
    assert est.snapshot(2.0).bandwidth_bps == pytest.approx(1e6, rel=0.01)
    assert not est.is_stale(2.5)
