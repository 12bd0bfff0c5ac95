"""`edgesplit policy show` as an operator runs it: real policy files (written here with policies_lite, and the
shipped demo policy), the text and JSON output, and the loader's refusals as one line and exit status 1."""
import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from edgesplit.policies_lite import edgeml_decoder, read_policy_file, save_policy, task_choice_decoder
from edgesplit.runtime.cli import main
from edgesplit.runtime.default_bundle import DEMO_POLICY_FILE

REPO = Path(__file__).resolve().parents[2]
FEATURES = ["latency_mean_s", "energy_mean", "bandwidth_mbps", "peer_alive"]
SEARCH_PROVENANCE = {
    "algorithm": "search", "traces": ["/rec/a", "/rec/b", "/rec/c"],
    "recordings": [{"path": "/rec/a", "role": "search", "sha256": "11" * 32},
                   {"path": "/rec/b", "role": "search", "sha256": "22" * 32},
                   {"path": "/rec/c", "role": "validation", "sha256": "33" * 32}],
    "date": "2026-11-30T12:18:03+00:00", "board": "jetson_nano_cpu", "board_emulated": True,
    "bundle": "mnist-branchy", "bundle_sha256": "bc8dd408ee831cfb871164943d980d8517d38a54bfcd79abf331d7fee4f5a9c9",
    "bounds": {"latency_s": 0.1, "energy": 900.0}, "energy_unit": "mJ", "environment_version": "1", "seeds": [0, 1],
    "hyperparameters": {"population": 24, "sigma0": 0.25, "seed_gate_quantiles": [0.1, 0.5]},
    "gated_policy": {"gate_mbps": 0.6451, "interval": 1, "local": {"cut": 3, "thresholds": [0.543, 0.4664]},
                     "remote": {"cut": 0, "thresholds": [0.1271, 0.0504]}},
    "workload_scale": 112.0, "link_scale": 1.0, "link_mean_mbps": 1.0, "recording_speed": 2.0, "period_s": 0.1,
    "rtt_s": 0.02,
}


def edgesplit(*args):
    return subprocess.run([sys.executable, "-m", "edgesplit.runtime.cli"] + [str(a) for a in args],
                          capture_output=True, text=True, timeout=120)


def show(capsys, *args):
    code = main(["policy", "show"] + [str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def linear_policy(tmp_path):
    """A linear EdgeML policy for 2 exits and 4 cuts with a search policy's provenance."""
    rng = np.random.default_rng(0)
    path = tmp_path / "linear.npz"
    policy_id = save_policy(path, features=FEATURES, layers=[(rng.standard_normal((4, 4)), np.zeros(4))],
                            activations=["identity"], decoder=edgeml_decoder(2, 4, max_interval=7),
                            provenance=SEARCH_PROVENANCE)
    return path, policy_id


def _field(out, name):
    """The value printed on the line of ``name`` (``name`` then spaces then the value), or None."""
    for line in out.splitlines():
        words = line.strip().split(None, 1)
        if words and words[0] == name:
            return words[1] if len(words) > 1 else ""
    return None


def test_text_shows_what_the_policy_is_and_where_it_comes_from(capsys, linear_policy):
    path, policy_id = linear_policy
    code, out, err = show(capsys, path)
    assert code == 0, err
    assert _field(out, "policy") == str(path)
    assert _field(out, "id") == policy_id
    assert _field(out, "kind") == "linear"
    assert _field(out, "features") == "latency_mean_s, energy_mean, bandwidth_mbps, peer_alive"
    assert _field(out, "layers") == "4 -> 4 identity (20 parameters)"
    assert _field(out, "decoder") == ("edgeml: n_exits 2, n_cuts 4, max_interval 7, thresholds sigmoid, "
                                      "scale index")
    assert _field(out, "algorithm") == "search"
    assert _field(out, "date") == "2026-11-30T12:18:03+00:00"
    assert _field(out, "board") == "jetson_nano_cpu (emulated)"
    assert _field(out, "bundle") == "mnist-branchy (sha256 bc8dd408ee83)"
    assert _field(out, "bounds") == "latency 100 ms, energy 900 mJ"
    # the scenario evaluate compares with its own (a mean, when one was asked for, says more than the scale)
    assert _field(out, "scenario") == ("workload x112, recordings scaled to a 1 Mbit/s mean, recording speed 2, "
                                       "one task per 100 ms, RTT 20 ms")
    assert _field(out, "other") is None
    assert _field(out, "environment_version") == "1"
    assert _field(out, "seeds") == "0, 1"
    assert _field(out, "recordings") == "3: 2 search, 1 validation"
    assert _field(out, "hyperparameters") == "population=24 seed_gate_quantiles=0.1,0.5 sigma0=0.25"
    assert _field(out, "gated_policy") == ("local: cut 3, thresholds 0.543, 0.4664; remote: cut 0, thresholds "
                                           "0.1271, 0.0504; gate 0.6451 Mbit/s, interval 1")
    assert "/rec/a" not in out  # paths only with --json


def test_json_is_the_whole_meta_with_the_provenance_in_full(capsys, linear_policy):
    path, policy_id = linear_policy
    code, out, err = show(capsys, path, "--json")
    assert code == 0, err
    shown = json.loads(out)
    spec, _ = read_policy_file(path)
    assert shown["path"] == str(path) and shown["policy_id"] == policy_id
    assert shown["parameters"] == 20
    meta = shown["meta"]
    assert meta["kind"] == "linear" and meta["features"] == FEATURES and meta["layer_sizes"] == [4, 4]
    assert meta["decoder"] == {"type": "edgeml", "n_exits": 2, "n_cuts": 4, "max_interval": 7,
                               "thresholds": "sigmoid", "scale": "index"}
    assert meta["normalisation"] == {"mean": [0.0] * 4, "std": [1.0] * 4}
    assert meta["provenance"] == dict(spec.provenance)
    assert [r["path"] for r in meta["provenance"]["recordings"]] == ["/rec/a", "/rec/b", "/rec/c"]


def test_missing_provenance_keys_are_omitted_and_task_choice_is_shown(capsys, tmp_path):
    rng = np.random.default_rng(1)
    path = tmp_path / "choice.npz"
    save_policy(path, features=["peer_alive", "bandwidth_mbps"],
                layers=[(rng.standard_normal((8, 2)), np.zeros(8)), (rng.standard_normal((3, 8)), np.zeros(3))],
                activations=["relu", "identity"], decoder=task_choice_decoder([(0, None), (1, 2), (2, 0)]),
                provenance={"traces": ["run.db"], "algorithm": "ddqn"})
    code, out, err = show(capsys, path)
    assert code == 0, err
    assert _field(out, "kind") == "mlp"
    assert _field(out, "layers") == "2 -> 8 relu -> 3 identity (51 parameters)"
    assert _field(out, "decoder") == "task_choice: 3 choices (exit, cut): (0, local), (1, 2), (2, 0)"
    assert _field(out, "algorithm") == "ddqn"
    assert _field(out, "traces") == "1 (paths with --json)"
    for absent in ("board", "bundle", "bounds", "environment_version", "seeds", "recordings", "hyperparameters",
                   "gated_policy"):
        assert _field(out, absent) is None, absent


def test_odd_provenance_values_are_shown_not_crashed_on(capsys, tmp_path):
    # provenance is free-form JSON: a role that is a list (or anything) is printed as text, never a traceback
    path = tmp_path / "odd.npz"
    save_policy(path, features=["peer_alive"], layers=[(np.ones((4, 1)), np.zeros(4))], activations=["identity"],
                decoder=edgeml_decoder(n_exits=2, n_cuts=4, max_interval=5),
                provenance={"traces": [], "recordings": [{"role": ["search"]}, {"role": {"a": 1}}, {"path": "x"}, 3]})
    code, out, err = show(capsys, path)
    assert code == 0, err
    assert _field(out, "recordings") == '4: 1 search, 1 {"a":1}'


def test_the_shipped_policy_by_name_and_by_path(capsys):
    code, by_name, err = show(capsys, "demo")
    assert code == 0, err
    assert _field(by_name, "policy") == str(DEMO_POLICY_FILE)
    assert _field(by_name, "kind") == "mlp"
    assert _field(by_name, "layers") == "4 -> 32 tanh -> 32 tanh -> 4 identity (1348 parameters)"
    assert _field(by_name, "board") == "jetson_nano_cpu (emulated)"
    assert _field(by_name, "bundle").startswith("mnist-branchy (sha256 ")
    assert _field(by_name, "bounds") == "latency 100 ms, energy 900 mJ"  # from latency_bound_s / energy_bound
    assert _field(by_name, "seeds") == "0"  # from the single "seed"
    assert _field(by_name, "gated_policy") is None
    code, by_path, err = show(capsys, DEMO_POLICY_FILE)
    assert code == 0, err
    assert by_path == by_name


def test_a_file_named_demo_here_wins_over_the_shipped_policy(capsys, tmp_path, linear_policy, monkeypatch):
    path, policy_id = linear_policy
    shutil.copy(str(path), str(tmp_path / "demo"))
    monkeypatch.chdir(tmp_path)
    code, out, err = show(capsys, "demo")
    assert code == 0, err
    assert _field(out, "id") == policy_id


def test_every_policy_in_bench_results_is_shown(capsys):
    files = sorted((REPO / "bench" / "results").glob("*.npz"))
    if not files:
        pytest.skip("no policy files in bench/results")
    for path in files:
        code, out, err = show(capsys, path)
        assert code == 0, (path, err)
        assert _field(out, "algorithm"), path
        assert _field(out, "recordings"), path


@pytest.fixture
def damaged(tmp_path, linear_policy):
    path, _ = linear_policy
    text = tmp_path / "notes.npz"
    text.write_text("latency_mean_s,energy_mean\n0.1,900\n")
    truncated = tmp_path / "truncated.npz"
    data = path.read_bytes()
    truncated.write_bytes(data[:len(data) // 2])
    plain = tmp_path / "plain.npz"
    np.savez(str(plain), W0=np.zeros((4, 4)))
    return {"text": text, "truncated": truncated, "plain": plain}


@pytest.mark.parametrize("case, message", [
    ("missing", "no such file"),
    ("text", "not a policy .npz (a zip archive of weights and meta, as save_policy writes); this file starts "
             "with b'latenc'"),
    ("truncated", "damaged policy .npz, truncated or corrupted"),
    ("plain", "no 'meta' array: this .npz is not a policy"),
])
def test_a_bad_file_is_the_loaders_error_on_one_line(tmp_path, damaged, case, message):
    path = damaged.get(case, tmp_path / "missing.npz")
    done = edgesplit("policy", "show", path)
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr.startswith("edgesplit policy: error: %s: " % path), done.stderr
    assert message in done.stderr and "Traceback" not in done.stderr and "pickle" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_policy_without_a_subcommand_prints_its_help():
    done = edgesplit("policy")
    assert done.returncode == 2
    assert "show" in done.stdout


def test_help_explains_the_command():
    done = edgesplit("policy", "show", "--help")
    assert done.returncode == 0
    assert "provenance" in done.stdout and "--json" in done.stdout and "demo" in done.stdout


def test_show_imports_nothing_of_the_workstation():
    code = ("import sys\nfrom edgesplit.runtime.cli import main\nassert main(['policy', 'show', 'demo']) == 0\n"
            "print('LOADED', sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'onnx') or 'codegen' in m))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith("LOADED []")


def test_a_search_policy_with_a_memory_shows_its_fast_action(capsys, tmp_path):
    gated = dict(SEARCH_PROVENANCE["gated_policy"], fast={"threshold": 0.5, "cut": 3, "share_gate": 0.62,
                                                          "remote_window_tasks": 50})
    path = tmp_path / "memory.npz"
    save_policy(path, features=FEATURES + ["remote_share"], layers=[(np.zeros((4, 5)), np.zeros(4))],
                activations=["identity"], decoder=edgeml_decoder(2, 4), provenance=dict(SEARCH_PROVENANCE,
                                                                                        gated_policy=gated))
    code, out, err = show(capsys, path)
    assert code == 0, err
    assert _field(out, "features") == "latency_mean_s, energy_mean, bandwidth_mbps, peer_alive, remote_share"
    assert _field(out, "gated_policy") == ("local: cut 3, thresholds 0.543, 0.4664; remote: cut 0, thresholds "
                                           "0.1271, 0.0504; gate 0.6451 Mbit/s, interval 1; fast: cut 3, threshold "
                                           "0.5, while the gate is shut and remote_share >= 0.62")


def test_a_search_policy_with_hysteresis_shows_how_far_its_gate_falls(capsys, tmp_path):
    gated = dict(SEARCH_PROVENANCE["gated_policy"], hysteresis_mbps=0.25)
    path = tmp_path / "hysteresis.npz"
    save_policy(path, features=FEATURES + ["remote_share"], layers=[(np.zeros((4, 5)), np.zeros(4))],
                activations=["identity"], decoder=edgeml_decoder(2, 4), provenance=dict(SEARCH_PROVENANCE,
                                                                                        gated_policy=gated))
    code, out, err = show(capsys, path)
    assert code == 0, err
    assert _field(out, "gated_policy").endswith("gate 0.6451 Mbit/s, interval 1; the gate lowered by 0.25 Mbit/s x "
                                                "remote_share"), out
