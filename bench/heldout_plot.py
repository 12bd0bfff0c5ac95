"""Plot held-out results: per recording, the policy's SR minus the best other row within the accuracy allowance.

Reads the JSON documents of bench/evaluate_heldout.py (one per training seed of the same policy family) and draws one
bar group per recording, one bar per document: above zero, the policy is the highest SR within the allowance there;
a hatched bar marks a recording where the policy itself is outside the allowance. Prints one JSON document: per
document the count of recordings won within the allowance, and the plot's path.

    python bench/heldout_plot.py R0.json R1.json R2.json --out docs/F.png [--title T]
"""
import argparse
import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402 (after the backend is chosen)


def margins(document: dict) -> list:
    """(recording, points over the best eligible other row, policy within the allowance, highest within it)."""
    found = []
    for recording in document["recordings"]:
        verdict = recording["verdict"]
        found.append((recording["recording"], float(verdict["policy_sr_minus_best_eligible_points"]),
                      bool(verdict["policy_within_allowance"]), bool(verdict["policy_sr_highest_within_allowance"])))
    return found


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", nargs="+", type=Path, help="bench/evaluate_heldout.py JSON documents")
    parser.add_argument("--out", type=Path, required=True, help="the PNG written")
    parser.add_argument("--title", default="policy SR minus the best other row within the accuracy allowance")
    args = parser.parse_args(argv)
    per_document = [margins(json.loads(path.read_text())) for path in args.results]
    names = [row[0] for row in per_document[0]]
    for path, rows in zip(args.results, per_document):
        if [row[0] for row in rows] != names:
            raise SystemExit("heldout_plot: %s has other recordings than %s" % (path, args.results[0]))
    width = 0.8 / len(per_document)
    figure, axes = plt.subplots(figsize=(max(8.0, 0.55 * len(names) + 2), 4.5))
    for k, (path, rows) in enumerate(zip(args.results, per_document)):
        xs = [i - 0.4 + width * (k + 0.5) for i in range(len(names))]
        values = [row[1] for row in rows]
        bars = axes.bar(xs, values, width, label=path.stem)
        for bar, row in zip(bars, rows):
            if not row[2]:
                bar.set_hatch("//")
    axes.axhline(0.0, color="black", linewidth=0.8)
    axes.set_xticks(range(len(names)))
    axes.set_xticklabels([Path(name).name for name in names], rotation=60, ha="right", fontsize=8)
    axes.set_ylabel("SR points (policy - best eligible other)")
    axes.set_title(args.title, fontsize=10)
    axes.legend(fontsize=7)
    figure.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(str(args.out), dpi=110)
    print(json.dumps({"bench": "heldout_plot", "plot": str(args.out), "recordings": len(names),
                      "highest_within_allowance": {str(path): sum(row[3] for row in rows)
                                                   for path, rows in zip(args.results, per_document)}}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
