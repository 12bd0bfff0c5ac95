"""``edgesplit bandit simulate``: the seed paper's Table II simulation through the real CLI."""
import json
import subprocess
import sys

import numpy as np
import pytest

from edgesplit.runtime.cli import main

STRATEGIES = {"linucb", "plain_linucb", "oracle", "static", "worst"}


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = subprocess.run([sys.executable, "-m", "edgesplit.runtime.cli", "bandit", "simulate", "--runs", "10",
                          "--seed", "0", "--json"], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def test_json_has_every_run_with_theta_and_the_qoe_of_every_strategy(report):
    assert len(report["runs"]) == 10
    for run in report["runs"]:
        assert len(run["theta_learned"]) == 4
        assert set(run["qoe_last_500"]) == STRATEGIES
        qoe = run["qoe_last_500"]
        assert qoe["worst"] <= qoe["static"] <= qoe["oracle"]
        assert qoe["worst"] <= qoe["linucb"] <= qoe["oracle"]
    assert set(report["curve"]) == STRATEGIES
    assert all(len(values) == 2000 for values in report["curve"].values())
    assert report["curve"]["oracle"][-1] == 1.0 and report["curve"]["worst"][-1] == 0.0
    assert report["args"]["theta"] == [-0.5, 0.37, -0.36, 0.69]


def test_acceptance_theta_error_and_qoe_against_static(report):
    theta = np.array(report["args"]["theta"])
    errors = [np.linalg.norm(np.array(r["theta_learned"]) - theta) for r in report["runs"]]
    assert np.median(errors) <= 0.12
    normalised = [r["normalised_last_500"] for r in report["runs"]]
    assert np.median([n["linucb"] for n in normalised]) >= 0.95
    assert np.median([n["linucb"] for n in normalised]) > np.median([n["static"] for n in normalised])
    # The learner's curve climbs: late rounds are better on average than the first rounds.
    assert report["curve"]["linucb"][-1] > report["curve"]["linucb"][50]


def test_plot_writes_a_png(tmp_path, capsys):
    out = tmp_path / "fig3.png"
    assert main(["bandit", "simulate", "--runs", "1", "--plot", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "median over 1 runs" in capsys.readouterr().out


def test_bad_arguments_are_clear_errors(tmp_path, capsys):
    assert main(["bandit", "simulate", "--runs", "0"]) == 1
    assert "--runs must be >= 1" in capsys.readouterr().err
    assert main(["bandit", "simulate", "--plot", str(tmp_path / "fig.svgz")]) == 1
    assert ".png" in capsys.readouterr().err


def test_the_cli_registers_bandit_without_importing_the_simulation_or_matplotlib():
    code = ("import sys; from edgesplit.runtime.cli import build_parser; argv = ['bandit', 'simulate', '--runs', '1']; "
            "build_parser(argv).parse_args(argv); "
            "print(sorted(m for m in ('matplotlib', 'edgesplit.codegen.bandit_simulation') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
