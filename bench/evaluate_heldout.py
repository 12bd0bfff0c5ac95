"""Held-out evaluation: a policy against every baseline and the oracle on each held-out shared recording.

For each recording of ``codegen/learning/trace_split.HELD_OUT`` (under ``../shared/traces``) it runs
``edgesplit evaluate --json`` with the baselines chosen on the training recordings of the same split,
every recording scaled to one mean rate (``--link-mean-mbps``, default: the demo's, norway_car_3 x its
link scale), and prints one JSON document: the command, machine, date, and per recording every
strategy's SR, accuracy and reward (mean and spread over the seeds), mean latency and fallbacks (tasks
per run; means over the seeds; each seed's SR and accuracy), the verdict on the means and on each seed's run
alone (``verdict_per_seed``), and ``scenario_differences``: where the evaluation's
scenario differs from the one the policy was trained in (empty when none; evaluate's warning is also
passed on). A recording that fails ends the run: the report holds the recordings before it and ``failed``,
and the exit status is 1. In the verdict a tie counts as the highest (``>=``), as ``edgesplit evaluate`` says.
``--recordings`` evaluates on other recordings instead (a fresh held-out set, e.g. mahimahi's, fetched by
bench/fetch_mahimahi_recordings.py); the baselines are still chosen on the split's training recordings.

    python bench/evaluate_heldout.py --policy runtime/assets/policies/demo_policy.npz --seeds 3 --out R.json
    python bench/evaluate_heldout.py --policy P.npz --recordings ~/.cache/edgesplit/mahimahi-traces-0.98-1.1
"""
import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import List

ROOT = Path(__file__).resolve().parents[1]
DEMO_MEAN_MBPS = 0.4459  # norway_car_3's mean rate x the demo's link scale (3136 / 12288)


def given_recordings(paths: List[Path]) -> List[Path]:
    """``--recordings``: each file as given, each folder's mahimahi files (.up, .down) in name order."""
    found = []  # type: List[Path]
    for path in paths:
        if path.is_dir():
            inside = sorted(p for p in path.iterdir() if p.suffix in (".up", ".down"))
            if not inside:
                raise SystemExit("evaluate_heldout: --recordings %s: a folder with no .up or .down file (name other "
                                 "recordings one by one)" % path)
            found += inside
        elif path.is_file():
            found.append(path)
        else:
            raise SystemExit("evaluate_heldout: --recordings %s: no such file or folder" % path)
    if not found:
        raise SystemExit("evaluate_heldout: --recordings %s: no .up or .down file there" % " ".join(map(str, paths)))
    names = [p.name for p in found]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise SystemExit("evaluate_heldout: --recordings: two files named %s: the report names recordings by file "
                         "name, so give one of them" % ", ".join(twice))
    return found


def named(path: Path, traces_dir: Path) -> str:
    """A shared recording by its path under the shared folder, any other by its file name."""
    try:
        return str(path.resolve().relative_to(traces_dir))
    except ValueError:
        return path.name


def at_least_one(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1, got %d" % value)
    return value


def main() -> int:
    from edgesplit.codegen.learning.trace_split import shared_traces_dir, split

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--policy", default=str(ROOT / "runtime" / "assets" / "policies" / "demo_policy.npz"),
                        help="the policy evaluated (default: the shipped planner policy)")
    parser.add_argument("--traces-dir", type=Path, default=shared_traces_dir(ROOT),
                        help="the shared traces folder: its training recordings choose the baselines (default: "
                             "%(default)s)")
    parser.add_argument("--link-mean-mbps", type=float, default=DEMO_MEAN_MBPS,
                        help="every recording scaled to this mean rate (default: the demo's, %(default)s; give the "
                             "rate the policy was trained at, which its provenance names)")
    parser.add_argument("--tasks", type=at_least_one, default=500)
    parser.add_argument("--seeds", type=at_least_one, default=3)
    parser.add_argument("--seed", type=int, default=0,
                        help="the first evaluation seed (evaluate --seed; also MOEA's search seed; default 0)")
    parser.add_argument("--recordings", nargs="+", type=Path, metavar="PATH",
                        help="evaluate on these recordings (files, or folders of .up/.down files) instead of the "
                             "split's held-out set; the baselines are still chosen on the split's training recordings "
                             "(e.g. the fresh set of bench/fetch_mahimahi_recordings.py)")
    parser.add_argument("--only", type=at_least_one, help="only the first N recordings")
    parser.add_argument("--no-oracle", action="store_true")
    parser.add_argument("--out", help="also write the JSON document here (also when a recording fails: what finished)")
    args = parser.parse_args()
    traces_dir = args.traces_dir.resolve()
    try:
        training, held_out = split(traces_dir)
    except (FileNotFoundError, NotADirectoryError) as exc:
        raise SystemExit("evaluate_heldout: --traces-dir %s: %s (the baselines are chosen on the split's training "
                         "recordings, so the shared folder is needed)" % (args.traces_dir, exc))
    if args.recordings:
        held_out = given_recordings(args.recordings)
        trained_on = {p.resolve() for p in training}
        seen = [str(p) for p in held_out if p.resolve() in trained_on]
        if seen:
            raise SystemExit("evaluate_heldout: --recordings: %s chooses the baselines (a training recording of the "
                             "split): a held-out evaluation cannot use it" % ", ".join(seen))
    held_out = held_out[:args.only]
    started = time.monotonic()
    report = {"bench": "evaluate_heldout", "date": datetime.datetime.now(datetime.timezone.utc).isoformat(
        timespec="seconds"), "machine": {"host": platform.node(), "cpus": os.cpu_count(),
                                         "python": platform.python_version(), "platform": platform.platform()},
              "command": " ".join([Path(sys.executable).name] + sys.argv), "policy": args.policy,
              "link_mean_mbps": args.link_mean_mbps, "tasks": args.tasks, "seeds": args.seeds,
              "first_seed": args.seed,
              "training": [str(p.relative_to(traces_dir)) for p in training],
              "evaluated_on": "--recordings " + " ".join(map(str, args.recordings)) if args.recordings
              else "the split's held-out set",
              "held_out": [named(p, traces_dir) for p in held_out], "recordings": []}
    failed = None
    for i, recording in enumerate(held_out):
        command = [sys.executable, "-m", "edgesplit.runtime.cli", "evaluate", "--link", str(recording),
                   "--link-mean-mbps", str(args.link_mean_mbps), "--policy", args.policy, "--tasks", str(args.tasks),
                   "--seeds", str(args.seeds), "--seed", str(args.seed), "--json", "--no-progress"]
        for path in training:
            command += ["--train-link", str(path)]
        if args.no_oracle:
            command.append("--no-oracle")
        print("evaluate_heldout: %d/%d %s (%.0f s)" % (i + 1, len(held_out), recording.name,
                                                        time.monotonic() - started), file=sys.stderr, flush=True)
        done = subprocess.run(command, capture_output=True, text=True)
        if done.stderr.strip():
            print(done.stderr.rstrip(), file=sys.stderr)  # evaluate's own warnings (a scenario the policy was not
            # trained in) and errors
        try:
            result = json.loads(done.stdout) if done.returncode == 0 else None
        except ValueError as exc:
            result, done.stderr = None, "%s\nevaluate's output is not JSON: %s" % (done.stderr, exc)
        if result is None:
            failed = {"recording": named(recording, traces_dir), "exit_code": done.returncode,
                      "error": done.stderr.strip().splitlines()[-1:] or ["(no message)"]}
            break
        report["recordings"].append({
            "recording": named(recording, traces_dir), "link_scale": result["scenario"]["link_scale"],
            "scenario_differences": result.get("scenario_differences", []),
            "verdict": result["verdict"], "verdict_per_seed": result.get("verdict_per_seed", []),
            "verdict_paired": result.get("verdict_paired"),
            "results": [dict({k: r[k] for k in ("strategy", "sr", "sr_std", "accuracy", "accuracy_std",
                                                 "mean_latency_ms", "reward", "reward_std", "fallbacks")},
                             upper_bound=bool(r.get("upper_bound", False)),
                             per_seed=[{k: s[k] for k in ("sr", "accuracy", "tasks")} for s in r["per_seed"]])
                        for r in result["results"]]})
    report["wall_s"] = round(time.monotonic() - started, 1)
    if failed:
        report["failed"] = failed
    text = json.dumps(report, indent=1)
    if args.out:
        Path(args.out).write_text(text + "\n")
    print(text)
    if failed:
        print("evaluate_heldout: evaluate failed on %s (exit %d); the %d recordings before it are in the report"
              % (failed["recording"], failed["exit_code"], len(report["recordings"])), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
