"""Held-out evaluation: a policy against every baseline and the oracle on each held-out shared recording.

For each recording of ``codegen/learning/trace_split.HELD_OUT`` (under ``../shared/traces``) it runs
``edgesplit evaluate --json`` with the baselines chosen on the training recordings of the same split,
every recording scaled to one mean rate (``--link-mean-mbps``, default: the demo's, norway_car_3 x its
link scale), and prints one JSON document: the command, machine, date, and per recording every
strategy's SR, accuracy, mean latency and reward (mean and spread over the seeds) with the verdict.
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
            found += sorted(p for p in path.iterdir() if p.suffix in (".up", ".down"))
        elif path.is_file():
            found.append(path)
        else:
            raise SystemExit("evaluate_heldout: --recordings %s: no such file or folder" % path)
    if not found:
        raise SystemExit("evaluate_heldout: --recordings %s: no .up or .down file there" % " ".join(map(str, paths)))
    return found


def named(path: Path, traces_dir: str) -> str:
    """A shared recording by its path under the shared folder, any other by its file name."""
    try:
        return str(path.relative_to(traces_dir))
    except ValueError:
        return path.name


def main() -> int:
    from edgesplit.codegen.learning.trace_split import shared_traces_dir, split

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--policy", default=str(ROOT / "runtime" / "assets" / "policies" / "demo_policy.npz"),
                        help="the policy evaluated (default: the shipped planner policy)")
    parser.add_argument("--traces-dir", default=str(shared_traces_dir(ROOT)), help="the shared traces folder")
    parser.add_argument("--link-mean-mbps", type=float, default=DEMO_MEAN_MBPS,
                        help="every recording scaled to this mean rate (default: the demo's)")
    parser.add_argument("--tasks", type=int, default=500)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--recordings", nargs="+", type=Path, metavar="PATH",
                        help="evaluate on these recordings (files, or folders of .up/.down files) instead of the "
                             "split's held-out set; the baselines are still chosen on the split's training recordings "
                             "(e.g. the fresh set of bench/fetch_mahimahi_recordings.py)")
    parser.add_argument("--only", type=int, help="only the first N held-out recordings")
    parser.add_argument("--no-oracle", action="store_true")
    parser.add_argument("--out", help="also write the JSON document here")
    args = parser.parse_args()
    training, held_out = split(Path(args.traces_dir))
    if args.recordings:
        held_out = given_recordings(args.recordings)
    held_out = held_out[:args.only]
    started = time.monotonic()
    report = {"bench": "evaluate_heldout", "date": datetime.datetime.now(datetime.timezone.utc).isoformat(
        timespec="seconds"), "machine": {"host": platform.node(), "cpus": os.cpu_count(),
                                         "python": platform.python_version(), "platform": platform.platform()},
              "command": " ".join([Path(sys.executable).name] + sys.argv), "policy": args.policy,
              "link_mean_mbps": args.link_mean_mbps, "tasks": args.tasks, "seeds": args.seeds,
              "training": [str(p.relative_to(args.traces_dir)) for p in training],
              "held_out": [named(p, args.traces_dir) for p in held_out], "recordings": []}
    for i, recording in enumerate(held_out):
        command = [sys.executable, "-m", "edgesplit.runtime.cli", "evaluate", "--link", str(recording),
                   "--link-mean-mbps", str(args.link_mean_mbps), "--policy", args.policy, "--tasks", str(args.tasks),
                   "--seeds", str(args.seeds), "--json", "--no-progress"]
        for path in training:
            command += ["--train-link", str(path)]
        if args.no_oracle:
            command.append("--no-oracle")
        print("evaluate_heldout: %d/%d %s (%.0f s)" % (i + 1, len(held_out), recording.name,
                                                        time.monotonic() - started), file=sys.stderr, flush=True)
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            print(done.stderr, file=sys.stderr)
            return done.returncode
        result = json.loads(done.stdout)
        report["recordings"].append({
            "recording": named(recording, args.traces_dir), "link_scale": result["scenario"]["link_scale"],
            "verdict": result["verdict"],
            "results": [dict({k: r[k] for k in ("strategy", "sr", "sr_std", "accuracy", "accuracy_std",
                                                 "mean_latency_ms", "reward", "reward_std", "fallbacks")},
                             upper_bound=bool(r.get("upper_bound", False)))
                        for r in result["results"]]})
    report["wall_s"] = round(time.monotonic() - started, 1)
    text = json.dumps(report, indent=1)
    if args.out:
        Path(args.out).write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
