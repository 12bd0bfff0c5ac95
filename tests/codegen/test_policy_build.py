"""edgesplit build-policy's procedure, quickly: the policy it writes loads through policies_lite with the
features the controller supplies, and its decoded actions on the grid are the table's."""
import pytest

pytestmark = pytest.mark.workstation


def test_quick_build_loads_on_the_board_side_and_follows_its_table(tmp_path):
    np = pytest.importorskip("numpy")
    from edgesplit.codegen.policy_build import build_policy
    from edgesplit.policies_lite import load_policy
    from edgesplit.runtime.bundle.store import load_bundle
    from edgesplit.runtime.controller.state import FEATURES
    from edgesplit.runtime.controller.strategies import load_policy_strategy
    from edgesplit.runtime.default_bundle import default_bundle_path, load_heldout
    from edgesplit.runtime.emulation.scenario import DEMO

    images, labels = load_heldout()
    out = tmp_path / "policy.npz"
    report = build_policy(str(default_bundle_path()), DEMO["board"], out, DEMO["workload_scale"],
                          DEMO["latency_bound_s"], DEMO["energy_bound_mj"], DEMO["rtt_s"], images[:120],
                          labels[:120], "first 120 held-out images (test only)", 0.45e6, fit_steps=1500)
    assert out.exists() and report["policy_id"]

    policy = load_policy(out, available_features=FEATURES)  # refuses features the controller lacks
    assert list(policy.features) == list(FEATURES)
    bundle = load_bundle(default_bundle_path())
    n_side = len([e for e in bundle.manifest.exits if e.head is not None])
    strategy = load_policy_strategy(out, n_side, len(bundle.manifest.cuts))
    assert strategy.policy.provenance["board_emulated"] is True

    table = report["table"]
    assert {row["cut"] for row in table if row["peer_alive"]} >= {0}  # a fast link: send the input
    assert all(row["cut"] == len(bundle.manifest.main) for row in table if not row["peer_alive"])
    agree = 0
    for row in table:
        action = strategy.decide({"latency_mean_s": DEMO["latency_bound_s"] / 2,
                                  "energy_mean": DEMO["energy_bound_mj"] / 2,
                                  "bandwidth_mbps": row["bandwidth_mbps"],
                                  "peer_alive": 1.0 if row["peer_alive"] else 0.0})
        assert len(action.thresholds) == n_side and all(0.0 <= t <= 1.0 for t in action.thresholds)
        agree += int(action.cut == row["cut"])
    assert agree / float(len(table)) >= 0.9
    assert report["check"]["cut_agreement"] == pytest.approx(agree / float(len(table)))


def test_bandwidth_uncertainty_is_what_the_shipped_traces_measure():
    from edgesplit.codegen.policy_build import BANDWIDTH_UNCERTAINTY, bandwidth_change_factors
    from edgesplit.runtime.link.shipped import shipped_traces
    from edgesplit.runtime.link.trace_readers import read_trace

    rates = [read_trace(path).bps for _, path in sorted(shipped_traces().items())]
    assert bandwidth_change_factors(rates) == BANDWIDTH_UNCERTAINTY
    assert BANDWIDTH_UNCERTAINTY[0] < 0.8 and BANDWIDTH_UNCERTAINTY[-1] > 1.2  # wider than the old guess


def test_bandwidth_change_factors_of_a_steady_and_a_halving_link():
    from edgesplit.codegen.policy_build import bandwidth_change_factors

    assert set(bandwidth_change_factors([[1e6] * 20])) == {1.0}
    halving = bandwidth_change_factors([[1e6, 1e6, 1e6, 5e5] * 10])
    assert halving[0] == 0.5 and max(halving) > 1.0
    with pytest.raises(Exception, match="no trace has more than 3 steps"):
        bandwidth_change_factors([[1e6, 1e6]])
