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
