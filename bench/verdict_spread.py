"""How firm a verdict is: per recording, the verdict run by run and how near the allowance's edge the deciding rows are.

Reads the JSON documents of bench/evaluate_heldout.py or bench/validation_check.py (one per policy) and, for every
recording, recomputes ``edgesplit evaluate``'s verdict on the means (checked against the stored one) and, where the
rows keep their per-seed values (validation_check's do; evaluate_heldout's since 2026-12-02), the verdict on each
evaluation seed's run alone (``seed_verdicts``). It also names the **edge rows**: other non-oracle rows with more SR
than the policy whose accuracy lies within one spread (their accuracy's standard deviation over the seeds) of the
allowance's floor (the most accurate row's accuracy less 1.5 points). Whether such a row counts against the policy
is decided by the evaluation's draw, not by the policy. A loss is an **edge loss** when every row that beats the
policy within the allowance is an edge row, and a **loss within one spread** when each of them is an edge row or
ahead of the policy's SR by less than one run's spread (``sr_spread``: the standard deviation over the seeds of the
paired SR differences where the rows keep per-seed values, else the larger of the two rows' SR standard deviations).
Where the rows keep per-seed values it also gives ``edgesplit evaluate``'s paired test (``paired_verdict``: does a
row within the allowance lead the policy by more than the draw, one-sided at 5 %; rule 22 in docs/learning.md).
Prints one JSON document: per document the counts, per recording the details.

    python bench/verdict_spread.py bench/results/training_checks_X.json [more.json] [--out R.json]
"""
import argparse
import json
import sys
from pathlib import Path
from typing import Any, Dict, List, Tuple

import numpy as np
from report import emit, header

from edgesplit.codegen.learning.baselines import ACCURACY_ALLOWANCE
from edgesplit.codegen.learning.evaluate import paired_verdict, seed_verdicts, verdict


def recordings(document: Dict[str, Any]) -> List[Tuple[str, str, List[Dict[str, Any]], Dict[str, Any]]]:
    """(policy, recording, rows, stored verdict) of an evaluate_heldout or a validation_check document."""
    if "recordings" in document:
        return [(document.get("policy", "?"), r["recording"], r["results"], r["verdict"])
                for r in document["recordings"]]
    if "runs" in document:
        return [(r["policy"], r["link"], r["results"], r["verdict"]) for r in document["runs"] if "verdict" in r]
    raise ValueError("neither an evaluate_heldout document ('recordings') nor a validation_check one ('runs')")


def edge_rows(rows: List[Dict[str, Any]], allowance: float = ACCURACY_ALLOWANCE) -> List[Dict[str, Any]]:
    """Rows with more SR than the policy whose accuracy is within one spread of the allowance's floor."""
    policy = next(r for r in rows if r["strategy"] == "policy")
    others = [r for r in rows if r["strategy"] != "policy" and not r.get("upper_bound")]
    floor = max(r["accuracy"] for r in others) - allowance
    found = []
    for r in others:
        spread = r.get("accuracy_std") or 0.0
        if r["sr"] > policy["sr"] and abs(r["accuracy"] - floor) <= spread:
            found.append({"strategy": r["strategy"], "accuracy_minus_floor_points": round(100 * (r["accuracy"] - floor), 2),
                          "accuracy_spread_points": round(100 * spread, 2),
                          "sr_over_policy_points": round(100 * (r["sr"] - policy["sr"]), 2)})
    return found


def sr_spread(row: Dict[str, Any], policy: Dict[str, Any]) -> float:
    """One run's spread of ``row``'s SR lead over the policy: the standard deviation over the seeds of the paired
    differences (the same inputs in each seed's run) where both rows keep per-seed values, else the larger of the two
    rows' SR standard deviations."""
    a, b = row.get("per_seed"), policy.get("per_seed")
    if a and b and len(a) == len(b) > 1:
        return float(np.std([x["sr"] - y["sr"] for x, y in zip(a, b)]))
    return max(row.get("sr_std") or 0.0, policy.get("sr_std") or 0.0)


def recording_detail(rows: List[Dict[str, Any]], stored: Dict[str, Any]) -> Dict[str, Any]:
    v = verdict(rows)
    if v["policy_sr_highest_within_allowance"] != stored["policy_sr_highest_within_allowance"]:
        raise ValueError("the recomputed verdict differs from the stored one: another evaluate version wrote this")
    edges = edge_rows(rows)
    policy = next(r for r in rows if r["strategy"] == "policy")
    floor = v["accuracy_floor"]
    beating = [r["strategy"] for r in rows if r["strategy"] != "policy" and not r.get("upper_bound")
               and r["accuracy"] >= floor - 1e-12 and r["sr"] > policy["sr"] + 1e-9]
    edge_names = {e["strategy"] for e in edges}
    by_name = {r["strategy"]: r for r in rows}
    close = {name for name in beating if by_name[name]["sr"] - policy["sr"] < sr_spread(by_name[name], policy)}
    lost = bool(v["policy_within_allowance"] and beating)
    detail = {"won": bool(v["policy_sr_highest_within_allowance"]), "within": bool(v["policy_within_allowance"]),
              "beaten_within_allowance_by": beating, "edge_rows": edges,
              "edge_loss": lost and set(beating) <= edge_names,
              "loss_within_one_spread": lost and set(beating) <= edge_names | close,
              "edge_win": bool(v["policy_sr_highest_within_allowance"] and edges)}
    try:
        runs = seed_verdicts(rows)
    except (KeyError, ValueError):
        runs = []
    if runs:
        detail["won_runs"] = [bool(r["policy_sr_highest_within_allowance"]) for r in runs]
    paired = paired_verdict(rows)
    if paired:
        detail["paired"] = {"holds": paired["policy_holds"], "beaten_by": paired["beaten_by"],
                            "leads": [{k: lead[k] for k in ("strategy", "lead_points", "standard_error_points", "t")}
                                      for lead in paired["leads"]]}
    return detail


def summarise(details: List[Dict[str, Any]]) -> Dict[str, Any]:
    with_runs = [d for d in details if "won_runs" in d]
    found = {"recordings": len(details), "won_on_the_means": sum(d["won"] for d in details),
             "within_allowance": sum(d["within"] for d in details),
             "losses_within_allowance": sum(d["within"] and not d["won"] for d in details),
             "edge_losses": sum(d["edge_loss"] for d in details),
             "losses_within_one_spread": sum(d["loss_within_one_spread"] for d in details),
             "edge_wins": sum(d["edge_win"] for d in details),
             "recordings_with_runs": len(with_runs)}
    if with_runs:
        found.update(won_every_run=sum(all(d["won_runs"]) for d in with_runs),
                     won_no_run=sum(not any(d["won_runs"]) for d in with_runs),
                     won_some_runs=sum(any(d["won_runs"]) and not all(d["won_runs"]) for d in with_runs),
                     verdict_flips_with_the_run=sum(len(set(d["won_runs"])) > 1 for d in with_runs))
    paired = [d for d in details if "paired" in d]
    if paired:
        found.update(holds_by_paired_test=sum(d["paired"]["holds"] for d in paired),
                     beaten_by_paired_test={d["recording"]: d["paired"]["beaten_by"] for d in paired
                                            if d["paired"]["beaten_by"]})
    return found


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("documents", nargs="+", type=Path, help="bench/evaluate_heldout.py or validation_check.py JSON")
    parser.add_argument("--out", help="also write the JSON document here")
    args = parser.parse_args(argv)
    report = dict(header("verdict_spread"), allowance_points=100 * ACCURACY_ALLOWANCE, documents=[])
    for path in args.documents:
        try:
            found = recordings(json.loads(path.read_text()))
        except (OSError, ValueError) as exc:
            print("verdict_spread: %s: %s" % (path, exc), file=sys.stderr)
            return 2
        per_policy = {}  # type: Dict[str, List[Dict[str, Any]]]
        for policy, recording, rows, stored in found:
            try:
                detail = recording_detail(rows, stored)
            except ValueError as exc:
                print("verdict_spread: %s: %s: %s" % (path, recording, exc), file=sys.stderr)
                return 2
            per_policy.setdefault(policy, []).append(dict({"recording": recording}, **detail))
        for policy, details in per_policy.items():
            report["documents"].append({"document": str(path), "policy": policy, "summary": summarise(details),
                                        "recordings": details})
    emit(report, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
