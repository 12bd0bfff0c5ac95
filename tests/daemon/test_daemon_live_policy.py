"""A policy for a LIVE board: profile on this machine's x86_cpu board (its energy proxy, cpu_freq in MHz,
is read busy and idle beside the timings), build-policy from that profile (energy planned in MHz), and a
real serve daemon on x86_cpu loads it and adapts: it offloads while the peer answers and keeps every
task on the board once the peer is gone. A policy for another proxy in the same unit is refused."""
import json
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest

pytest.importorskip("torch")  # build-policy fits with torch (the codegen extra)

pytestmark = pytest.mark.workstation


def _cli(*args, cwd=None) -> str:
    done = subprocess.run([sys.executable, "-m", "edgesplit.runtime.cli"] + [str(a) for a in args], cwd=cwd,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=300)
    assert done.returncode == 0, done.stderr.decode()[-3000:]
    return done.stdout.decode()


@pytest.fixture(scope="module")
def live_policy(tmp_path_factory):
    """(bundle copy, policy file, profile): the embedded bundle profiled here as x86_cpu, and its live policy."""
    from edgesplit.runtime.default_bundle import default_bundle_path, load_heldout

    root = tmp_path_factory.mktemp("live")
    bundle = root / "bundle"
    shutil.copytree(str(default_bundle_path()), str(bundle))
    _cli("profile", bundle, "--board", "x86_cpu", "--force", "--repeats", 3, "--warmup", 1, "--energy-seconds", 0.5)
    profile = json.loads((bundle / "profiles" / "x86_cpu.json").read_text())
    images, labels = load_heldout()
    np.save(root / "x.npy", images[:150])
    np.save(root / "y.npy", labels[:150])
    # A link of 20-2000 Mbit/s (loopback is at the top) and segments planned 3000x slower than measured: the
    # board alone misses the 100 ms bound, so the policy offloads while the peer is up, and cannot when it is down.
    link = root / "fast_link.csv"
    link.write_text("".join("%d,%d\n" % (t, 2.5e6 * 10 ** (2 * t / 19.0)) for t in range(20)))
    policy = root / "policy.npz"
    _cli("build-policy", "--bundle", bundle, "--measured-profile", "x86_cpu", "--workload-scale", 3000,
         "--images", root / "x.npy", "--labels", root / "y.npy", "--link", link, "--fit-steps", 2000,
         "--no-progress", "--out", policy)
    return bundle, policy, profile


def test_profile_records_the_live_energy_proxy(live_policy):
    _, _, profile = live_policy
    energy = profile["energy"]
    assert energy["proxy"] == "cpu_freq" and energy["unit"] == "MHz"
    assert energy["busy_mean"] > 0 and energy["idle_mean"] > 0
    assert energy["busy_samples"] >= 3 and energy["idle_samples"] >= 3


def test_the_policy_is_planned_in_the_boards_unit(live_policy):
    from edgesplit.policies_lite import load_policy

    _, policy, _ = live_policy
    provenance = load_policy(policy).provenance
    assert provenance["energy_unit"] == "MHz" and provenance["energy_proxy"] == "cpu_freq"
    assert provenance["board"] == "x86_cpu" and provenance["board_emulated"] is False
    assert provenance["energy_bound"] == 3000.0 and "[bounds] energy" in provenance["energy_bound_source"]
    assert provenance["measured_profile"]["board"] == "x86_cpu"


def test_serve_on_the_live_board_loads_it_and_adapts(live_policy, make_daemon):
    from edgesplit.runtime.bundle.store import load_bundle
    from edgesplit.runtime.executor.executor import Executor
    from edgesplit.runtime.peer.background import BackgroundPeer
    from edgesplit.policies_lite import load_policy
    from support.daemon_process import heldout

    bundle, policy, _ = live_policy
    last_cut = len(load_bundle(bundle).manifest.cuts) - 1
    peer = BackgroundPeer(Executor(load_bundle(bundle)), "tcp://127.0.0.1:*")
    daemon = make_daemon(model='bundle = "%s"\npolicy = "%s"' % (bundle, policy),
                         extra_toml='[peer]\naddress = "%s"\n' % peer.endpoint).start()
    images = heldout(40)
    with daemon.client() as client:
        status = client.status()
        assert status["policy"]["policy_id"] == load_policy(policy).policy_id
        answers = [client.submit(images[i % 40:i % 40 + 1], deadline_ms=2000) for i in range(40)]
        assert all(a.ok for a in answers)
        assert any(a.cut < last_cut and not a.fallback for a in answers), [a.cut for a in answers]
        peer.stop()

        def local(answer):  # finished on the board without trying the peer (cut None: an early exit before any cut)
            return answer.ok and not answer.fallback and (answer.cut is None or answer.cut == last_cut)

        deadline = time.monotonic() + 30
        later = []
        while time.monotonic() < deadline and not (later and local(later[-1])):
            later.append(client.submit(images[:1], deadline_ms=500))
        assert all(a.ok for a in later)  # no task lost: fallbacks first, then the policy keeps them local
        settled = [client.submit(images[i:i + 1], deadline_ms=500) for i in range(10)]
        assert all(local(a) for a in settled), [(a.cut, a.fallback) for a in settled]
        assert client.status()["peer"]["alive"] is False
    assert daemon.stop() == 0
    # The policy's own decisions, as logged: an offloading cut with the peer up, the last cut once it is down.
    import sqlite3

    from edgesplit.runtime.controller.state import FEATURES

    alive_at = FEATURES.index("peer_alive")  # a state row is a JSON array in the feature order
    with sqlite3.connect(str(daemon.traces)) as db:
        rows = [(json.loads(state)[alive_at], json.loads(action)["cut"])
                for state, action in db.execute("SELECT state, action FROM transitions ORDER BY seq")]
    assert any(alive == 1.0 and cut < last_cut for alive, cut in rows), rows
    assert any(alive == 0.0 and cut == last_cut for alive, cut in rows), rows


def test_a_policy_for_another_proxy_in_the_same_unit_is_refused(live_policy, tmp_path):
    from edgesplit.policies_lite import edgeml_decoder, save_policy
    from edgesplit.runtime.bundle.store import load_bundle
    from edgesplit.runtime.controller.state import FEATURES
    from edgesplit.runtime.controller.strategies import EnergyInput, PolicyLoadError, load_policy_strategy

    bundle, policy, _ = live_policy
    manifest = load_bundle(bundle).manifest
    n_side, n_cuts = len([e for e in manifest.exits if e.head is not None]), len(manifest.cuts)
    board = EnergyInput("cpu_freq", "MHz", "board x86_cpu")
    gpu = tmp_path / "gpu_policy.npz"
    save_policy(gpu, features=list(FEATURES), layers=[(np.zeros((n_side + 2, len(FEATURES))), np.zeros(n_side + 2))],
                activations=["identity"], decoder=edgeml_decoder(n_side, n_cuts),
                provenance={"energy_unit": "MHz", "energy_proxy": "gpu_freq"})
    with pytest.raises(PolicyLoadError) as caught:
        load_policy_strategy(gpu, n_side, n_cuts, energy=board)
    assert "gpu_freq" in str(caught.value) and "cpu_freq" in str(caught.value)
    # The policy built here loads where the board feeds cpu_freq in MHz, and is refused on an emulated run (mJ).
    load_policy_strategy(policy, n_side, n_cuts, energy=board)
    with pytest.raises(PolicyLoadError):
        load_policy_strategy(policy, n_side, n_cuts, energy=EnergyInput("emulated", "mJ", "emulated"))
