"""edgesplit build-policy's procedure, quickly: the policy it writes loads through policies_lite with the
features the controller supplies, and its decoded actions on the grid are the table's."""
import pytest

pytestmark = pytest.mark.workstation


def test_quick_build_loads_on_the_board_side_and_follows_its_table(tmp_path, capfd):
    np = pytest.importorskip("numpy")
    from edgesplit.codegen.policy_build import build_policy
    from edgesplit.policies_lite import load_policy
    from edgesplit.runtime.bundle.store import load_bundle
    from edgesplit.runtime.controller.state import EDGEML_FEATURES, FEATURES
    from edgesplit.runtime.controller.strategies import load_policy_strategy
    from edgesplit.runtime.default_bundle import default_bundle_path, load_heldout
    from edgesplit.runtime.emulation.scenario import DEMO

    images, labels = load_heldout()
    out = tmp_path / "policy.npz"
    report = build_policy(str(default_bundle_path()), DEMO["board"], out, DEMO["workload_scale"],
                          DEMO["latency_bound_s"], DEMO["energy_bound_mj"], DEMO["rtt_s"], images[:120],
                          labels[:120], "first 120 held-out images (test only)", 0.45e6, fit_steps=1500,
                          progress=True)
    assert out.exists() and report["policy_id"]
    progress = capfd.readouterr().err  # the slow steps say how far they are, on stderr
    for step in ("exit statistics", "best action per grid state", "fitting the policy MLP"):
        assert step in progress, progress

    policy = load_policy(out, available_features=FEATURES)  # refuses features the controller lacks
    assert list(policy.features) == list(EDGEML_FEATURES)  # the planner reads EdgeML's state
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


def test_bandwidth_uncertainty_is_what_the_shipped_recordings_measure():
    from edgesplit.codegen.policy_build import BANDWIDTH_UNCERTAINTY, bandwidth_change_factors
    from edgesplit.runtime.emulation.link.shipped import shipped_recordings
    from edgesplit.runtime.emulation.link.recording_readers import read_recording

    rates = [read_recording(path).bps for _, path in sorted(shipped_recordings().items())]
    assert bandwidth_change_factors(rates) == BANDWIDTH_UNCERTAINTY
    assert BANDWIDTH_UNCERTAINTY[0] < 0.8 and BANDWIDTH_UNCERTAINTY[-1] > 1.2  # wider than the old guess


def test_bandwidth_change_factors_of_a_steady_and_a_halving_link():
    from edgesplit.codegen.policy_build import bandwidth_change_factors

    assert set(bandwidth_change_factors([[1e6] * 20])) == {1.0}
    halving = bandwidth_change_factors([[1e6, 1e6, 1e6, 5e5] * 10])
    assert halving[0] == 0.5 and max(halving) > 1.0
    with pytest.raises(Exception, match="no bandwidth recording has more than 3 steps"):
        bandwidth_change_factors([[1e6, 1e6]])


def test_fit_mlp_is_torch_adam_seeded_and_deterministic():
    np = pytest.importorskip("numpy")
    torch = pytest.importorskip("torch")
    from edgesplit.codegen.policy_build import fit_mlp

    rng = np.random.RandomState(3)
    x = rng.uniform(-2, 2, size=(400, 4))
    y = np.stack([np.sin(x[:, 0]) + x[:, 1] * x[:, 2], (x[:, 3] > 0).astype(float) * 2.0], axis=1)
    threads = torch.get_num_threads()
    layers, mean, std = fit_mlp(x, y, hidden=32, steps=800, seed=7)
    again, _, _ = fit_mlp(x, y, hidden=32, steps=800, seed=7)
    other, _, _ = fit_mlp(x, y, hidden=32, steps=800, seed=8)
    assert torch.get_num_threads() == threads  # the global setting is restored
    assert all(np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1]) for a, b in zip(layers, again))
    assert not np.array_equal(layers[0][0], other[0][0])
    assert [w.shape for w, _ in layers] == [(32, 4), (32, 32), (2, 32)] and layers[0][0].dtype == np.float64

    def forward(params):  # how policies_lite evaluates the layers: tanh, tanh, identity
        h = (x - mean) / std
        for i, (w, b) in enumerate(params):
            h = h @ w.T + b
            h = np.tanh(h) if i < 2 else h
        return h

    untrained, _, _ = fit_mlp(x, y, hidden=32, steps=0, seed=7)
    trained_error = np.mean((forward(layers) - y) ** 2)
    assert trained_error < 0.05 < np.mean((forward(untrained) - y) ** 2)
