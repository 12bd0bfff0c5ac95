"""``edgesplit evaluate`` end to end: in the environment (--json schema, seeds, the oracle as an upper bound),
through real processes (--real), and its errors on bad input."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("pymoo")

from edgesplit.codegen.learning.evaluate import verdict  # noqa: E402
from edgesplit.runtime.default_bundle import DEMO_POLICY_FILE  # noqa: E402
from edgesplit.runtime.emulation.link.shipped import resolve_recording  # noqa: E402

EDGESPLIT = [sys.executable, "-m", "edgesplit.runtime.cli"]
STRATEGIES = ["local-only", "remote-only", "neurosurgeon", "single-threshold", "moea", "planner", "edgeml-t1",
              "edgeml-tl", "edgeml-nonbranch", "policy"]


def evaluate(*args, timeout=600):
    return subprocess.run(EDGESPLIT + ["evaluate"] + [str(a) for a in args], capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture
def short_trace(tmp_path) -> Path:
    """The first 30 seconds of the demo's recording, as a file of its own (a short evaluation trace)."""
    path = tmp_path / "short_norway"
    lines = resolve_recording("norway_car_3").read_text().splitlines()[:30]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_evaluate_json_runs_every_strategy_and_the_oracle_on_one_trace(short_trace):
    done = evaluate("--link", short_trace, "--policy", DEMO_POLICY_FILE, "--tasks", 40, "--seeds", 2, "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["mode"] == "environment" and report["seeds"] == [0, 1]
    names = [r["strategy"] for r in report["results"]]
    assert names == STRATEGIES + ["oracle"]
    for row in report["results"]:
        for key in ("sr", "accuracy", "mean_latency_ms", "reward", "sr_std", "fallbacks"):
            assert isinstance(row[key], float), (row["strategy"], key)
        assert 0.0 <= row["sr"] <= 1.0 and 0.0 <= row["accuracy"] <= 1.0
        assert row["tasks"] == 80 and len(row["per_seed"]) == 2
    oracle = report["results"][-1]
    assert oracle["upper_bound"] is True
    assert all(oracle["sr"] >= r["sr"] for r in report["results"][:-1])
    # Baselines are chosen on other recordings than the one evaluated.
    assert report["train_links"] and str(short_trace) not in report["train_links"]
    assert set(report["verdict"]) >= {"policy_sr_highest", "best_baseline", "policy_accuracy_gap_points"}
    # The verdict on each seed's run alone, beside the one on the means: what "in repeated runs" reads.
    assert [v["seed_index"] for v in report["verdict_per_seed"]] == [0, 1]
    for v, seed in zip(report["verdict_per_seed"], (0, 1)):
        run = [dict(r["per_seed"][seed], strategy=r["strategy"], upper_bound=r.get("upper_bound", False))
               for r in report["results"]]
        assert v["policy_sr_highest_within_allowance"] == verdict(run)["policy_sr_highest_within_allowance"]
    # and a paired test over the runs: which leads within the allowance another draw would not undo
    paired = report["verdict_paired"]
    assert paired["runs"] == 2 and paired["policy_within_allowance"] == report["verdict"]["policy_within_allowance"]
    for lead in paired["leads"]:
        assert lead["strategy"] in report["verdict"]["eligible_baselines"] and lead["lead_points"] > 0
    assert paired["policy_holds"] == (paired["policy_within_allowance"] and not paired["beaten_by"])
    assert "evaluate: " in done.stderr  # progress on stderr, stdout stays one JSON document


def test_evaluate_prints_one_row_per_strategy(short_trace):
    # "demo" is the shipped policy here as wherever a policy is taken
    done = evaluate("--link", short_trace, "--policy", "demo", "--tasks", 20, "--seeds", 1,
                    "--no-oracle", "--no-progress")
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    rows = [line.split()[0] for line in done.stdout.splitlines() if line.split() and line.split()[0] in STRATEGIES]
    assert rows == STRATEGIES
    assert "run by run" not in done.stdout  # one seed: the verdict on the means is the run's
    assert "paired test" not in done.stdout  # and there is nothing to pair


def test_evaluate_prints_the_verdict_run_by_run_with_several_seeds(short_trace):
    done = evaluate("--link", short_trace, "--policy", "demo", "--tasks", 20, "--seeds", 2,
                    "--no-oracle", "--no-progress")
    assert done.returncode == 0, done.stderr
    line = next(l for l in done.stdout.splitlines() if l.startswith("run by run"))
    assert "within the allowance on" in line and "of 2" in line
    line = next(l for l in done.stdout.splitlines() if l.startswith("paired test over 2 runs: "))
    assert "the policy holds" in line or "beaten by" in line or "outside the allowance" in line


def test_evaluate_real_runs_the_strategies_through_real_processes(short_trace):
    done = evaluate("--link", short_trace, "--policy", DEMO_POLICY_FILE, "--tasks", 12, "--seeds", 1, "--real",
                    "--speedup", 2, "--json", timeout=300)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["mode"] == "real"
    assert [r["strategy"] for r in report["results"]] == STRATEGIES  # no oracle: it needs the environment
    for row in report["results"]:
        assert row["tasks"] == 12 and row["sr"] is not None and row["reward"] is not None
    assert "starting the peer on loopback" in done.stderr
    assert Path(report["results"][0]["traces"]).exists()


@pytest.mark.parametrize("args, message", [
    (["--policy", "missing.npz"], "--policy missing.npz: no such file"),
    (["--seeds", "0"], "--seeds must be at least 1"),
    (["--link-scale", "-1"], "--link-scale must be a positive number"),
    (["--train-link", "norway_car_3"], "is the recording evaluated on"),
    (["--bundle", "no_such_bundle"], "no manifest.json"),
    (["--board", "no_such_board"], "--board no_such_board"),
    (["--link-mean-mbps", "0.5", "--link-scale", "2"], "either --link-scale or --link-mean-mbps"),
    (["--speedup", "2"], "--speedup is for --real"),
])
def test_bad_input_is_one_clear_line(args, message):
    base = {"--link": "norway_car_3", "--policy": str(DEMO_POLICY_FILE)}
    for flag, value in zip(args[::2], args[1::2]):
        base[flag] = value
    done = evaluate(*[x for kv in base.items() for x in kv], "--tasks", 5, "--seeds", base.get("--seeds", "1"),
                    "--no-progress", timeout=120)
    assert done.returncode == 1, done.stdout + done.stderr
    assert message in done.stderr and "Traceback" not in done.stderr


def test_a_policy_for_another_bundle_is_refused(tmp_path):
    from edgesplit.policies_lite import edgeml_decoder, save_policy
    import numpy as np

    other = tmp_path / "three_exits.npz"
    save_policy(other, features=["bandwidth_mbps"], layers=[(np.zeros((5, 1)), np.zeros(5))],
                activations=["identity"], decoder=edgeml_decoder(3, 5), mean=[0.0], std=[1.0], provenance={})
    done = evaluate("--link", "norway_car_3", "--policy", other, "--tasks", 5, "--seeds", 1, "--no-progress")
    assert done.returncode == 1
    assert "built for 3 early exits and 5 cuts, the bundle has 2 and 4" in done.stderr


def test_a_policy_built_on_another_energy_reading_is_refused_as_run_and_demo_refuse_it(tmp_path):
    # the environment's energy is the emulated board's mJ: a policy whose energy input is a clock in MHz would be
    # ranked on a scale it never saw
    from edgesplit.policies_lite import edgeml_decoder, save_policy
    import numpy as np

    mhz = tmp_path / "mhz.npz"
    save_policy(mhz, features=["bandwidth_mbps"], layers=[(np.zeros((4, 1)), np.zeros(4))], activations=["identity"],
                decoder=edgeml_decoder(2, 4), mean=[0.0], std=[1.0],
                provenance={"energy_unit": "MHz", "energy_proxy": "gpu_freq", "traces": []})
    done = evaluate("--link", "norway_car_3", "--policy", mhz, "--tasks", 5, "--seeds", 1, "--no-progress")
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    assert "built for energy in MHz" in done.stderr and "emulated board" in done.stderr, done.stderr


def test_an_unreadable_trace_is_refused(tmp_path):
    bad = tmp_path / "bad_trace"
    bad.write_text("not a number\n")
    done = evaluate("--link", bad, "--policy", DEMO_POLICY_FILE, "--tasks", 5, "--seeds", 1, "--no-progress")
    assert done.returncode == 1
    assert str(bad) in done.stderr and "Traceback" not in done.stderr


def test_link_mean_mbps_scales_the_evaluated_recording_to_that_mean(short_trace):
    import numpy as np
    from edgesplit.runtime.emulation.link.recording_readers import read_recording

    done = evaluate("--link", short_trace, "--link-mean-mbps", 0.3, "--policy", DEMO_POLICY_FILE, "--tasks", 10,
                    "--seeds", 1, "--no-oracle", "--no-progress", "--json")
    assert done.returncode == 0, done.stderr
    scenario = json.loads(done.stdout)["scenario"]
    mean = float(np.mean(read_recording(short_trace).bps))
    assert scenario["link_scale"] * mean == pytest.approx(0.3e6)


def test_scenario_differences_name_what_the_policy_was_trained_for():
    from types import SimpleNamespace

    from edgesplit.codegen.learning.evaluate_command import scenario_differences

    scenario = SimpleNamespace(board="jetson_nano_cpu", workload_scale=112.0, recording_speed=2.0, period_s=0.1,
                               latency_bound_s=0.1, energy_bound=900.0)
    same = {"bundle_sha256": "abc", "board": "jetson_nano_cpu", "workload_scale": 112, "recording_speed": 2.0,
            "period_s": 0.1, "bounds": {"latency_s": 0.1, "energy": 900.0}, "link_mean_mbps": 1.0}
    assert scenario_differences(same, scenario, "abc", 1.0) == []
    assert scenario_differences({}, scenario, "abc") == []  # nothing recorded, nothing claimed
    other = dict(same, bundle_sha256="def0123456789", workload_scale=1.0, bounds={"latency_s": 0.1, "energy": None})
    found = scenario_differences(other, scenario, "abc", None)
    assert found == ["trained with bundle def012345678, evaluated with bundle abc",
                     "trained with workload x1, evaluated with workload x112",
                     "trained for no energy bound, evaluated with a 900 mJ energy bound",
                     "trained on recordings scaled to a 1 Mbit/s mean, evaluated with --link-scale"]
    planner = {"latency_bound_s": 0.05, "energy_bound": 900.0}  # build-policy's keys
    assert scenario_differences(planner, scenario, "abc") == ["trained for a 50 ms latency bound, evaluated at 100 ms"]
    odd = {"workload_scale": "112", "bounds": {"latency_s": "0.1", "energy": "900"}, "link_mean_mbps": "1"}
    assert scenario_differences(odd, scenario, "abc", 1.0) == [  # free-form JSON: shown as it is, never a crash
        "trained with workload x'112', evaluated with workload x112",
        "trained for a '0.1' ms latency bound, evaluated at 100 ms",
        "trained for a '900' mJ energy bound, evaluated with a 900 mJ energy bound",
        "trained on recordings scaled to a '1' Mbit/s mean, evaluated at a 1 Mbit/s mean"]
    # train --algo ddpg records the recordings' scale (no mean): a policy trained unscaled, evaluated at the demo's
    # scale, or at a mean, is told so; search records a mean, and then its scale (1) is not what counts.
    scaled = SimpleNamespace(**dict(vars(scenario), link_scale=0.2552))
    assert scenario_differences({"link_scale": 1.0}, scaled, "abc") == [
        "trained with --link-scale 1, evaluated with --link-scale 0.2552"]
    assert scenario_differences({"link_scale": 0.2552}, scaled, "abc") == []
    assert scenario_differences({"link_scale": 1.0}, scaled, "abc", 1.0) == [
        "trained with --link-scale 1, evaluated at a 1 Mbit/s mean (--link-mean-mbps)"]
    assert scenario_differences({"link_scale": 1.0, "link_mean_mbps": 1.0}, scaled, "abc", 1.0) == []


def test_evaluate_warns_when_the_policy_was_trained_for_another_scenario(tmp_path, short_trace):
    from edgesplit.policies_lite import edgeml_decoder, save_policy
    import numpy as np

    policy = tmp_path / "x1.npz"
    save_policy(policy, features=["bandwidth_mbps"], layers=[(np.zeros((4, 1)), np.zeros(4))],
                activations=["identity"], decoder=edgeml_decoder(2, 4), mean=[0.0], std=[1.0],
                provenance={"traces": [], "workload_scale": 1.0, "energy_unit": "mJ", "energy_proxy": "emulated"})
    done = evaluate("--link", short_trace, "--policy", policy, "--tasks", 10, "--seeds", 1, "--no-oracle", "--json",
                    "--no-progress")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["scenario_differences"] == ["trained with workload x1, evaluated with workload x112"]
    assert "trained with workload x1, evaluated with workload x112" in done.stderr
    done = evaluate("--link", short_trace, "--policy", "demo", "--tasks", 10, "--seeds", 1, "--no-oracle", "--json",
                    "--no-progress")
    assert json.loads(done.stdout)["scenario_differences"] == []  # the demo's policy, in the demo's scenario


def test_the_text_report_of_real_runs_names_their_trace_database(capsys):
    from edgesplit.codegen.learning.evaluate_command import _print_report

    row = {"strategy": "policy", "sr": 1.0, "sr_std": 0.0, "accuracy": 0.97, "accuracy_std": 0.0,
           "mean_latency_ms": 50.0, "mean_latency_ms_std": 0.0, "reward": 0.1, "reward_std": 0.0, "fallbacks": 0.0,
           "traces": "/tmp/edgesplit-evaluate-x/evaluate_traces.db"}
    report = {"mode": "real", "seeds": [0], "train_links": ["a"], "results": [row],
              "scenario": {"board": "jetson_nano_cpu", "workload_scale": 112, "link": "norway_car_3", "link_scale": 0.25,
                           "latency_bound_ms": 100, "energy_bound_mj": 900, "tasks": 10},
              "verdict": verdict([dict(row, strategy="moea"), row]), "verdict_per_seed": []}
    _print_report(report)
    assert "traces of the real runs: /tmp/edgesplit-evaluate-x/evaluate_traces.db" in capsys.readouterr().out
