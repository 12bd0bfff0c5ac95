"""``run``'s number flags: NaN, infinities and out-of-range values are refused by flag name with the accepted
range (one line, exit status 1) before any task runs, instead of running every task as a fallback, dropping an
input or printing invalid JSON."""
import pytest

from edgesplit.runtime.cli import main

REFUSED = [
    (["--rtt-ms", "nan"], "--rtt-ms", ">= 0"),
    (["--rtt-ms", "-1"], "--rtt-ms", ">= 0"),
    (["--link-scale", "nan"], "--link-scale", "> 0"),
    (["--link-scale", "0"], "--link-scale", "> 0"),
    (["--period-ms", "nan"], "--period-ms", ">= 0"),
    (["--period-ms", "-1"], "--period-ms", ">= 0"),
    (["--latency-bound-ms", "inf"], "--latency-bound-ms", "> 0"),
    (["--latency-bound-ms", "nan"], "--latency-bound-ms", "> 0"),
    (["--deadline-ms", "nan"], "--deadline-ms", "0.001 to 86400000"),
    (["--deadline-ms", "0"], "--deadline-ms", "0.001 to 86400000"),
    (["--energy-bound", "nan"], "--energy-bound", "> 0"),
    (["--energy-bound", "inf"], "--energy-bound", "leave --energy-bound out"),
    (["--board", "jetson_nano_cpu", "--speedup", "inf"], "--speedup", "> 0"),
    (["--board", "jetson_nano_cpu", "--workload-scale", "nan"], "--workload-scale", "> 0"),
    (["--limit", "-1"], "--limit", ">= 1"),
    (["--limit", "0"], "--limit", ">= 1"),
]


@pytest.mark.parametrize("extra, flag, accepted", REFUSED, ids=[" ".join(case[0]) for case in REFUSED])
def test_run_refuses_a_bad_number_by_flag_name_before_any_task(extra, flag, accepted, heldout_files, free_port,
                                                               tmp_path, capsys):
    db = tmp_path / "t.db"
    argv = ["run", "default", "--peer", "tcp://127.0.0.1:%d" % free_port, "--inputs", heldout_files[0],
            "--cut", "0", "--traces", str(db), "--json"]
    if "--limit" not in extra:
        argv += ["--limit", "3"]
    assert main(argv + extra) == 1
    out, err = capsys.readouterr()
    assert out == "" and not db.exists()  # nothing ran, nothing was logged
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("edgesplit run: error: %s must be" % flag), err
    assert accepted in lines[0] and "got" in lines[0], err


def test_zero_period_means_back_to_back_and_stays_accepted(heldout_files, capsys):
    assert main(["run", "default", "--inputs", heldout_files[0], "--limit", "2", "--period-ms", "0", "--json"]) == 0
    assert '"tasks": 2' in capsys.readouterr().out


def test_run_says_when_the_policy_was_made_for_other_bounds(heldout_files, capsys, caplog):
    # The demo policy was planned for a 100 ms latency bound and a 900 mJ energy bound.
    images, _ = heldout_files
    with caplog.at_level("WARNING"):
        assert main(["run", "default", "--inputs", str(images), "--limit", "3", "--policy", "demo"]) == 0
    assert "made for a 900 energy bound, run with no energy bound" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING"):
        assert main(["run", "default", "--inputs", str(images), "--limit", "3", "--policy", "demo",
                     "--energy-bound", "900"]) == 0
    assert "made for" not in caplog.text
