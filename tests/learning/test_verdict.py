"""``evaluate``'s verdict: strict (every non-oracle row) and among the rows within the accuracy allowance."""
import pytest

pytest.importorskip("pymoo")

from edgesplit.codegen.learning.evaluate import verdict, verdict_lines  # noqa: E402


def row(name, sr, accuracy, **extra):
    return dict({"strategy": name, "sr": sr, "accuracy": accuracy}, **extra)


def test_an_ablation_that_buys_sr_with_accuracy_beats_the_policy_strictly_but_not_within_the_allowance():
    rows = [row("moea", 0.978, 0.961), row("single-threshold", 0.947, 0.967), row("edgeml-t1", 0.88, 0.972),
            row("edgeml-tl", 1.0, 0.905), row("policy", 0.985, 0.962), row("oracle", 1.0, 0.978, upper_bound=True)]
    v = verdict(rows)
    assert v["policy_sr_highest"] is False and v["best_baseline"] == "edgeml-tl"
    assert v["most_accurate_baseline"] == "edgeml-t1" and v["accuracy_floor"] == pytest.approx(0.957)
    assert v["eligible_baselines"] == ["moea", "single-threshold", "edgeml-t1"]
    assert v["policy_within_allowance"] is True
    assert v["best_eligible_baseline"] == "moea"
    assert v["policy_sr_minus_best_eligible_points"] == pytest.approx(0.7)
    assert v["policy_sr_highest_within_allowance"] is True


def test_a_policy_outside_the_allowance_never_wins_within_it():
    rows = [row("moea", 0.978, 0.961), row("single-threshold", 0.947, 0.967), row("policy", 0.99, 0.950)]
    v = verdict(rows)
    assert v["policy_within_allowance"] is False
    assert v["policy_sr_highest_within_allowance"] is False
    assert v["policy_sr_highest"] is True  # strictly it has the highest SR: the two answers differ


def test_a_lower_sr_than_an_eligible_baseline_loses_both_ways():
    rows = [row("moea", 0.978, 0.961), row("single-threshold", 0.947, 0.967), row("policy", 0.970, 0.962)]
    v = verdict(rows)
    assert v["policy_sr_highest"] is False and v["policy_sr_highest_within_allowance"] is False
    assert v["best_eligible_baseline"] == "moea"
    assert v["policy_sr_minus_best_eligible_points"] == pytest.approx(-0.8)


def test_the_printed_verdict_says_what_the_table_shows():
    # A policy above every row but one is "not the highest", not "below every other"; one outside the allowance is
    # told so, with the floor it missed, rather than "NOT >= every eligible strategy (+10 points)".
    rows = [row("moea", 0.95, 0.961), row("local-only", 0.90, 0.967), row("edgeml-tl", 1.0, 0.90),
            row("policy", 0.992, 0.950)]
    strict, within = verdict_lines(verdict(rows))
    assert "not the highest" in strict and "edgeml-tl" in strict and "-0.80 points" in strict
    assert "above 2 of the 3 others" in strict
    assert "OUTSIDE" in within and "95.0 % < 95.2 %" in within and "not eligible" in within
    assert "NOT >=" not in within and "BELOW" not in strict
    rows[-1] = row("policy", 1.0, 0.962)
    strict, within = verdict_lines(verdict(rows))
    assert strict.startswith("policy: SR the highest of the 3 other non-oracle strategies")
    assert "policy within" in within and "the highest of the 2 eligible" in within


def test_a_tie_counts_as_the_highest_and_is_said_to_be_one():
    # A tie is not a loss (every look has counted it as the highest), but the verdict names the rows it ties with
    # instead of reading "the highest (next X, +0.00 points)".
    rows = [row("moea", 1.0, 0.961), row("remote-only", 1.0, 0.962), row("local-only", 0.90, 0.967),
            row("policy", 1.0, 0.962)]
    v = verdict(rows)
    assert v["policy_sr_highest"] is True and v["policy_sr_highest_within_allowance"] is True
    assert v["tied_with_policy_sr"] == ["moea", "remote-only"]
    assert v["tied_with_policy_sr_within_allowance"] == ["moea", "remote-only"]
    strict, within = verdict_lines(v)
    assert "tied with moea, remote-only" in strict and "next" not in strict
    assert "tied with moea, remote-only" in within
    rows[0] = row("moea", 0.99, 0.961)
    v = verdict(rows)
    assert v["tied_with_policy_sr"] == ["remote-only"] and "next" not in verdict_lines(v)[0]
    rows[1] = row("remote-only", 0.98, 0.962)
    v = verdict(rows)
    assert v["tied_with_policy_sr"] == [] and "(next moea, +1.00 points)" in verdict_lines(v)[0]


def test_a_tie_of_seed_means_that_differ_by_rounding_is_still_a_tie():
    # SR is a mean over seeds: the same successes summed in another order can differ in the last bit.
    a = (0.1 + 0.2 + 0.3) / 3
    b = (0.3 + 0.2 + 0.1) / 3
    assert a != b
    rows = [row("moea", max(a, b), 0.961), row("local-only", 0.10, 0.967), row("policy", min(a, b), 0.962)]
    v = verdict(rows)
    assert v["policy_sr_highest"] is True and v["policy_sr_highest_within_allowance"] is True
    assert v["tied_with_policy_sr"] == ["moea"]


def seeded(name, per_seed, **extra):
    """A row whose means are those of ``per_seed`` [(sr, accuracy), ...], as ``aggregate`` makes them."""
    srs, accuracies = [p[0] for p in per_seed], [p[1] for p in per_seed]
    return dict({"strategy": name, "sr": sum(srs) / len(srs), "accuracy": sum(accuracies) / len(accuracies),
                 "per_seed": [{"sr": s, "accuracy": a, "tasks": 500} for s, a in per_seed]}, **extra)


def test_the_verdict_on_each_evaluation_seed_can_differ_from_the_verdict_on_the_means():
    from edgesplit.codegen.learning.evaluate import seed_verdicts

    # On the means edgeml-tl is 1.6 points under the most accurate row (outside the 1.5 allowance), so the policy
    # wins within it; on seed 1 alone it is 1.4 under (inside) and has more SR: the policy loses that run.
    rows = [seeded("planner", [(0.97, 0.976), (0.97, 0.976)]),
            seeded("edgeml-tl", [(0.995, 0.958), (0.996, 0.962)]),
            seeded("policy", [(0.99, 0.97), (0.99, 0.97)]),
            seeded("oracle", [(1.0, 0.99), (1.0, 0.99)], upper_bound=True)]
    assert verdict(rows)["policy_sr_highest_within_allowance"] is True
    per_seed = seed_verdicts(rows)
    assert [v["policy_sr_highest_within_allowance"] for v in per_seed] == [True, False]
    assert per_seed[1]["best_eligible_baseline"] == "edgeml-tl"
    assert per_seed[1]["policy_sr_minus_best_eligible_points"] == pytest.approx(-0.6)
    assert [v["seed_index"] for v in per_seed] == [0, 1]


def test_seed_verdicts_need_every_row_run_on_the_same_seeds():
    from edgesplit.codegen.learning.evaluate import seed_verdicts

    rows = [seeded("planner", [(0.97, 0.976)]), seeded("policy", [(0.99, 0.97), (0.99, 0.97)])]
    with pytest.raises(ValueError, match="planner.*1 seed.*policy.*2"):
        seed_verdicts(rows)
    assert seed_verdicts([row("moea", 0.9, 0.9), row("policy", 0.9, 0.9)]) == []  # rows without per-seed values


def test_the_run_by_run_line_counts_wins_and_names_what_beat_the_policy():
    from edgesplit.codegen.learning.evaluate import seed_verdict_line, seed_verdicts

    rows = [seeded("planner", [(0.97, 0.976)] * 3),
            seeded("edgeml-tl", [(0.995, 0.958), (0.996, 0.962), (0.996, 0.962)]),
            seeded("policy", [(0.99, 0.97), (0.99, 0.97), (0.999, 0.95)])]
    line = seed_verdict_line(seed_verdicts(rows))
    assert line == ("run by run (each evaluation seed alone): the highest SR within the allowance on 1 of 3; "
                    "below edgeml-tl on 1, outside the allowance on 1")


def run_verdict_spread(*documents):
    import json
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[2] / "bench" / "verdict_spread.py"
    done = subprocess.run([sys.executable, str(script)] + [str(d) for d in documents], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_verdict_spread_names_a_loss_decided_at_the_allowance_edge(tmp_path):
    import json

    # edgeml-tl is inside the allowance on the means by 0.1 point, with an accuracy spread of 0.2: an edge loss.
    rows = [seeded("planner", [(0.97, 0.976), (0.97, 0.976)]),
            seeded("edgeml-tl", [(0.995, 0.960), (0.996, 0.964)]),
            seeded("policy", [(0.99, 0.97), (0.99, 0.97)])]
    rows[1]["accuracy_std"] = 0.002
    document = {"runs": [{"policy": "P.npz", "link": "L", "results": rows, "verdict": verdict(rows)}]}
    path = tmp_path / "check.json"
    path.write_text(json.dumps(document))
    found = run_verdict_spread(path)["documents"][0]
    detail = found["recordings"][0]
    assert detail["won"] is False and detail["beaten_within_allowance_by"] == ["edgeml-tl"]
    assert detail["edge_loss"] is True and detail["edge_rows"][0]["accuracy_minus_floor_points"] == pytest.approx(0.1)
    assert detail["won_runs"] == [True, False]  # outside on seed 0 (1.6 under), inside on seed 1 (1.2 under)
    assert found["summary"]["verdict_flips_with_the_run"] == 1
    # the paired test: a lead of 0.5 and 0.6 points on the two runs is steady (t 11 > 6.31 at 1 degree of freedom)
    assert detail["paired"]["beaten_by"] == ["edgeml-tl"] and detail["paired"]["holds"] is False
    assert found["summary"]["holds_by_paired_test"] == 0
    assert found["summary"]["beaten_by_paired_test"] == {"L": ["edgeml-tl"]}


def test_verdict_spread_reproduces_a_stored_check():
    from pathlib import Path

    stored = Path(__file__).resolve().parents[2] / "bench" / "results" / "training_checks_hysteresis_2026-12-01.json"
    if not stored.is_file():
        pytest.skip("bench/results not in this checkout")
    import json

    summaries = {s["policy"]: s for s in json.loads(stored.read_text())["summary"]}
    for found in run_verdict_spread(stored)["documents"]:
        s = found["summary"]
        assert s["won_on_the_means"] == summaries[found["policy"]]["highest_within_allowance"]
        assert s["won_every_run"] + s["won_no_run"] + s["won_some_runs"] == s["recordings"] == 21


def test_the_paired_test_calls_a_lead_within_the_draw_a_tie_and_a_steady_lead_a_loss():
    from edgesplit.codegen.learning.evaluate import paired_verdict

    # moea leads by 0.2 points on the mean but trails on 3 of 6 runs: no significant lead (a tie);
    # edgeml-tl leads by 0.4-0.6 points on every run: significant; local-only leads but is outside the allowance.
    rows = [seeded("moea", [(0.984, 0.965), (0.976, 0.965), (0.990, 0.965), (0.970, 0.965), (0.988, 0.965),
                            (0.976, 0.965)]),
            seeded("local-only", [(0.999, 0.90)] * 6),
            seeded("edgeml-tl", [(0.985, 0.962), (0.986, 0.962), (0.984, 0.962), (0.985, 0.962), (0.986, 0.962),
                                 (0.984, 0.962)]),
            seeded("policy", [(0.98, 0.97), (0.98, 0.97), (0.98, 0.97), (0.98, 0.97), (0.98, 0.97), (0.98, 0.97)]),
            seeded("oracle", [(1.0, 0.99)] * 6, upper_bound=True)]
    v = paired_verdict(rows)
    assert v["runs"] == 6 and v["critical_t"] == pytest.approx(2.015)
    assert v["policy_within_allowance"] is True
    leads = {lead["strategy"]: lead for lead in v["leads"]}
    assert set(leads) == {"moea", "edgeml-tl"}  # local-only is outside the allowance; the oracle is not a rival
    assert leads["moea"]["significant"] is False and leads["moea"]["lead_points"] == pytest.approx(0.067, abs=1e-3)
    assert leads["edgeml-tl"]["significant"] is True and leads["edgeml-tl"]["lead_points"] == pytest.approx(0.5)
    assert v["beaten_by"] == ["edgeml-tl"] and v["policy_holds"] is False
    # without the steady lead the policy holds: the mean lead of moea alone is a tie
    v = paired_verdict([r for r in rows if r["strategy"] != "edgeml-tl"])
    assert v["policy_holds"] is True and v["beaten_by"] == []


def test_the_paired_test_needs_two_runs_and_a_policy_within_the_allowance():
    from edgesplit.codegen.learning.evaluate import paired_verdict

    assert paired_verdict([seeded("moea", [(0.97, 0.97)]), seeded("policy", [(0.98, 0.97)])]) is None
    assert paired_verdict([row("moea", 0.9, 0.9), row("policy", 0.9, 0.9)]) is None  # no per-seed values
    # a lead equal on every run has no spread and no t: a sign test's answer, found from five runs (0.5 ** 5 < 5 %)
    v = paired_verdict([seeded("moea", [(0.982, 0.97)] * 3), seeded("policy", [(0.98, 0.97)] * 3)])
    assert v["beaten_by"] == [] and v["leads"][0]["t"] is None and v["leads"][0]["zero_spread"] is True
    v = paired_verdict([seeded("moea", [(0.982, 0.97)] * 5), seeded("policy", [(0.98, 0.97)] * 5)])
    assert v["beaten_by"] == ["moea"] and v["leads"][0]["t"] is None
    # equal in task counts, unequal in the last bits of the floats: still no spread (no t of 5e13)
    v = paired_verdict([seeded("moea", [(0.802, 0.97), (0.804, 0.97), (0.814, 0.97)]),
                        seeded("policy", [(0.800, 0.97), (0.802, 0.97), (0.812, 0.97)])])
    assert v["leads"][0]["zero_spread"] is True and v["beaten_by"] == []
    import json
    json.dumps(v, allow_nan=False)  # what --json prints: no Infinity
    # rows that name their seeds must name the same ones to be paired
    a, b = seeded("moea", [(0.99, 0.97)] * 3), seeded("policy", [(0.98, 0.97)] * 3)
    a["seeds"], b["seeds"] = [0, 1, 2], [3, 4, 5]
    assert paired_verdict([a, b]) is None
    # the policy outside the allowance does not hold, whatever the leads
    v = paired_verdict([seeded("moea", [(0.90, 0.97)] * 3), seeded("policy", [(0.99, 0.94)] * 3)])
    assert v["policy_within_allowance"] is False and v["policy_holds"] is False and v["beaten_by"] == []


def test_the_critical_values_are_students():
    scipy_stats = pytest.importorskip("scipy.stats")
    from edgesplit.codegen.learning.evaluate import critical_t

    for df in list(range(1, 31)) + [35, 40, 59, 60, 100, 120, 1000]:
        exact = float(scipy_stats.t.ppf(0.95, df))
        assert exact - 0.0005 <= critical_t(df) <= exact + 0.02  # 3 decimals; a df between two rows takes the lower row's
    with pytest.raises(ValueError):
        critical_t(0)


def test_the_paired_line_says_whether_the_policy_holds_and_names_what_beat_it():
    from edgesplit.codegen.learning.evaluate import paired_verdict, paired_verdict_line

    rows = [seeded("moea", [(0.984, 0.965), (0.976, 0.965), (0.990, 0.965)]),
            seeded("policy", [(0.98, 0.97)] * 3)]
    line = paired_verdict_line(paired_verdict(rows))
    assert line.startswith("paired test over 3 runs: the policy holds")
    assert "moea +0.33 points (t 0.8)" in line
    assert line.endswith("3 runs tell little (--seeds 10 tells a lead of a few tenths of a point from the draw)")
    rows.append(seeded("edgeml-tl", [(0.985, 0.962), (0.986, 0.962), (0.984, 0.962)]))
    line = paired_verdict_line(paired_verdict(rows))
    assert line.startswith("paired test over 3 runs: the policy is beaten by edgeml-tl (+0.50 points")
