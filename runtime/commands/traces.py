"""``edgesplit traces``: look into and export a trace database (tasks, transitions, runs).

    edgesplit traces summary DB [--json]
    edgesplit traces export DB --format jsonl|csv|npz|parquet --out FILE [--table tasks|transitions] [--run ID]
"""
import argparse

from edgesplit.policies_lite import short_policy_id
from edgesplit.runtime.commands.output import print_json, print_table
from edgesplit.runtime.traces import FORMATS, export, summarize

_SCHEMA_HINT = ("Tables: runs (one row per run: board, bundle hash, versions, config), tasks (one row per "
                "task: arrival, deadline, exit, cut, per-segment times, bytes, transfer time, entropies, "
                "bandwidth estimate, fallback, result, label), transitions (state, action, reward, next "
                "state, policy id), dropped (rows removed by the size cap). Times are seconds, bandwidth "
                "bits/s.")


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "traces",
        description="Inspect or export the SQLite trace database written by the device (--traces DB). "
                    + _SCHEMA_HINT)
    commands = parser.add_subparsers(dest="traces_command", metavar="SUBCOMMAND")
    parser.set_defaults(handler=lambda args: _usage(parser))

    summary = commands.add_parser(
        "summary", help="rows per table, runs, rows dropped by the size cap",
        description="Print rows per table, the runs recorded, labelled and fallback tasks, and how many "
                    "old rows the size cap dropped.")
    summary.add_argument("db", metavar="DB", help="trace database file")
    summary.add_argument("--json", action="store_true", help="print one JSON document")
    summary.set_defaults(handler=_summary)

    out = commands.add_parser(
        "export", help="write a table as JSONL, CSV, npz or Parquet (atomic)",
        description="Export one table for analysis or training. jsonl: one JSON object per row (JSON "
                    "columns decoded, nested); csv and parquet: one flat, typed column per value (segment "
                    "times as segment_s.<segment>, entropies as entropy.<exit>, state.<i>, action.<key>; "
                    "see docs/traces-parquet.md; parquet needs pyarrow, a workstation package); "
                    "npz: arrays. For transitions the npz holds state (N,d), action (N,a), reward (N,), "
                    "next_state (N,d), step, time_s, run_id, policy_id, action_names; for tasks one array "
                    "per column (NULL -> NaN or ''). Every npz also holds dropped_rows. The file is written "
                    "to a temporary name and renamed, so a reader never sees half a file.")
    out.add_argument("db", metavar="DB", help="trace database file")
    out.add_argument("--format", required=True, choices=FORMATS, help="output format")
    out.add_argument("--out", required=True, metavar="FILE", help="output file (replaced atomically)")
    out.add_argument("--table", choices=("tasks", "transitions"), default=None,
                     help="table to export (default: transitions for npz, tasks otherwise)")
    out.add_argument("--run", metavar="RUN_ID", default=None, help="only this run")
    out.add_argument("--json", action="store_true", help="print what was written as JSON")
    out.set_defaults(handler=_export)


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def _summary(args) -> int:
    info = summarize(args.db)
    if args.json:
        print_json(info)
        return 0
    print("%s (trace schema %d)" % (info["path"], info["schema_version"]))
    print_table(["table", "rows", "dropped by size cap"],
                [[t, n, info["dropped"].get(t, "")] for t, n in info["rows"].items()])
    print("labelled tasks: %d, rated tasks: %d, fallback tasks: %d"
          % (info["labelled_tasks"], info.get("rated_tasks", 0), info["fallback_tasks"]))
    if info["runs"]:
        print()
        print_table(["run", "started_s", "board", "bundle", "tasks", "transitions"],
                    [[r["run_id"], "%.3f" % r["started_s"], r["board"] or "-", (r["bundle_hash"] or "-")[:12],
                      r["tasks"], r["transitions"]] for r in info["runs"]])
    if info["policies"]:
        print()
        print_table(["policy (in the order it served)", "tasks", "deadline met", "accuracy (labelled)", "fallbacks",
                     "mean ms", "p95 ms"],
                    [[short_policy_id(p["policy_id"] or "-"), p["tasks"], _share(p["deadline_met"]),
                      "-" if p["accuracy"] is None else "%s (%d)" % (_share(p["accuracy"]), p["labelled"]),
                      p["fallbacks"], _ms(p["mean_latency_ms"]), _ms(p["p95_latency_ms"])]
                     for p in info["policies"]])
    return 0


def _share(value) -> str:
    return "-" if value is None else "%.1f%%" % (100 * value)


def _ms(value) -> str:
    return "-" if value is None else "%.1f" % value


def _export(args) -> int:
    info = export(args.db, args.out, args.format, table=args.table, run_id=args.run)
    if args.json:
        print_json(info)
    else:
        note = (" (%d older rows were dropped by the size cap and are not in it)" % info["dropped_rows"]
                if info["dropped_rows"] else "")
        print("wrote %d %s rows to %s%s" % (info["rows"], info["table"], info["out"], note))
    return 0
