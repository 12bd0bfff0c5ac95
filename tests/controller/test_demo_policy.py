"""The demo's shipped policy, decoded the way the controller decodes it: it keeps tasks on the device
(with early exits) on a slow link, sends the input on a fast one, and stays local with the peer down."""
from edgesplit.runtime.bundle.store import load_bundle
from edgesplit.runtime.default_bundle import DEMO_POLICY_FILE
from edgesplit.runtime.controller.strategies import load_policy_strategy
from edgesplit.runtime.default_bundle import default_bundle_path
from edgesplit.runtime.emulation.scenario import DEMO


def decide(strategy, mbps: float, alive: bool = True):
    return strategy.decide({"latency_mean_s": DEMO["latency_bound_s"] / 2, "energy_mean": DEMO["energy_bound_mj"] / 2,
                            "bandwidth_mbps": mbps, "peer_alive": 1.0 if alive else 0.0})


def test_shipped_policy_follows_the_bandwidth():
    bundle = load_bundle(default_bundle_path())
    n_side = len([e for e in bundle.manifest.exits if e.head is not None])
    last_cut = len(bundle.manifest.cuts) - 1
    strategy = load_policy_strategy(DEMO_POLICY_FILE, n_side, len(bundle.manifest.cuts))
    assert strategy.policy.provenance["bundle_sha256"] == bundle.hash  # built for the shipped bundle

    slow = decide(strategy, 0.3)
    assert slow.cut >= 2 and all(t > 0.0 for t in slow.thresholds)  # block 1 and 2 on the device, exits open
    fast = decide(strategy, 2.0)
    assert fast.cut == 0  # send the input: the final exit, remotely
    assert decide(strategy, 2.0, alive=False).cut == last_cut
