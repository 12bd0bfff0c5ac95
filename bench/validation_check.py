"""Training-side check: policies against every baseline on the validation recordings, never the held-out ones.

The validation recordings are every fourth training recording of ``codegen/learning/trace_split`` (what
``train --algo search`` validates on by default). For each policy and each of them it runs ``edgesplit evaluate
--json --no-oracle`` with the baselines chosen on the other training recordings, and prints one JSON document:
per run the verdict and every strategy's row, per policy a summary (on how many recordings its SR is the highest
within the accuracy allowance, on the means and on every evaluation seed's run alone, strictly the highest, within
the allowance at all). What a search's rules are
checked against before a held-out run (docs/learning.md, "A fourth look").

    python bench/validation_check.py --policy A.npz B.npz --link-mean-mbps 1 --out R.json
"""
import argparse
import concurrent.futures
import json
import subprocess
import sys
from pathlib import Path
from typing import Optional

from report import emit, header

from edgesplit.codegen.learning.evaluate import paired_verdict, seed_verdicts

ROOT = Path(__file__).resolve().parents[1]
VALIDATION_EVERY = 4  # as train --algo search's default


def evaluate(policy: str, recording: Path, training, args) -> dict:
    command = [sys.executable, "-m", "edgesplit.runtime.cli", "evaluate", "--link", str(recording),
               "--link-mean-mbps", str(args.link_mean_mbps), "--policy", policy, "--tasks", str(args.tasks),
               "--seeds", str(args.seeds), "--seed", str(args.seed), "--json", "--no-progress", "--no-oracle"]
    for path in training:
        if path != recording:
            command += ["--train-link", str(path)]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode:
        return {"policy": policy, "link": str(recording), "error": done.stderr[-2000:]}
    report = json.loads(done.stdout)
    # each row without its description (the policy's whole provenance, 86 recordings' paths, on every row)
    rows = [{k: v for k, v in row.items() if k != "description"} for row in report["results"]]
    return {"policy": policy, "link": str(recording), "verdict": report["verdict"], "results": rows}


def paired_holds(done) -> Optional[int]:
    """On how many recordings the policy holds under evaluate's paired test; None without a test (one seed)."""
    verdicts = [paired_verdict(r["results"]) for r in done]
    if not verdicts or any(v is None for v in verdicts):
        return None
    return sum(bool(v["policy_holds"]) for v in verdicts)


def summary(policy: str, runs) -> dict:
    done = [r for r in runs if r["policy"] == policy and "verdict" in r]
    verdicts = [r["verdict"] for r in done]
    srs = [next(x["sr"] for x in r["results"] if x["strategy"] == "policy") for r in done]
    per_run = [seed_verdicts(r["results"]) for r in done]  # each evaluation seed's run alone
    return {"policy": policy, "recordings": len(done),
            "errors": sum(1 for r in runs if r["policy"] == policy and "error" in r),
            "highest_within_allowance": sum(bool(v["policy_sr_highest_within_allowance"]) for v in verdicts),
            "strictly_highest": sum(bool(v["policy_sr_highest"]) for v in verdicts),
            "within_allowance": sum(bool(v["policy_within_allowance"]) for v in verdicts),
            "highest_within_allowance_every_run": sum(all(v["policy_sr_highest_within_allowance"] for v in runs)
                                                      for runs in per_run),
            "holds_by_paired_test": paired_holds(done),
            "mean_sr": sum(srs) / len(srs) if srs else None,
            "worst_sr_minus_best_eligible_points": min(
                (v["policy_sr_minus_best_eligible_points"] for v in verdicts), default=None)}


def main() -> int:
    from edgesplit.codegen.learning.trace_split import shared_traces_dir, split

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--policy", nargs="+", required=True, help="the policies checked")
    parser.add_argument("--traces-dir", default=str(shared_traces_dir(ROOT)), help="the shared traces folder")
    parser.add_argument("--link-mean-mbps", type=float, default=1.0, help="every recording scaled to this mean rate")
    parser.add_argument("--tasks", type=int, default=500)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0,
                        help="the first evaluation seed (evaluate --seed; also MOEA's search seed; default 0)")
    parser.add_argument("--jobs", type=int, default=2, help="evaluate processes at once (default 2)")
    parser.add_argument("--only", type=int, help="only the first N validation recordings")
    parser.add_argument("--out", help="also write the JSON document here")
    args = parser.parse_args()
    if args.only is not None and args.only < 1:
        parser.error("--only must be at least 1")
    training, _ = split(Path(args.traces_dir))
    validation = [p for i, p in enumerate(training) if i % VALIDATION_EVERY == VALIDATION_EVERY - 1][:args.only]
    started = header("validation_check")  # when it started, not when it ended
    jobs = [(policy, recording) for policy in args.policy for recording in validation]
    with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
        runs = list(pool.map(lambda job: evaluate(job[0], job[1], training, args), jobs))
    report = dict(started, **{
              "validation": [str(p.relative_to(args.traces_dir)) for p in validation],
              "link_mean_mbps": args.link_mean_mbps, "tasks": args.tasks, "seeds": args.seeds, "first_seed": args.seed,
              "summary": [summary(policy, runs) for policy in args.policy], "runs": runs})
    emit(report, args.out)
    return 1 if any("error" in r for r in runs) else 0


if __name__ == "__main__":
    sys.exit(main())
