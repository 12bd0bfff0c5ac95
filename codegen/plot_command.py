"""``edgesplit plot TRACES.db --out run.png``: one run of a trace database as a figure (workstation)."""
import argparse
from pathlib import Path

from edgesplit.runtime.commands.output import print_json
from edgesplit.runtime.errors import EdgesplitError, InputError

INSTALL_HINT = "edgesplit plot needs matplotlib, a workstation package: pip install 'edgesplit[codegen]'"


def register(commands) -> None:
    parser = commands.add_parser(
        "plot", help="plot one run of a trace database: latency, bandwidth, cut, exit, satisfaction (workstation)",
        description="Draw one run of a trace database (written by run, demo or serve with --traces) in the style of "
                    "EdgeML's Fig. 10: per task over time, the latency against the latency bound, the device's "
                    "bandwidth estimate against the link's rate (when the run replayed a bandwidth recording), the cut each "
                    "task was offloaded at, the exit it finished at, and the satisfaction rate over a rolling window.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  edgesplit demo --traces demo.db && edgesplit plot demo.db --out adaptive.png\n"
               "  edgesplit traces summary run.db && edgesplit plot run.db --run RUN_ID --out run.png")
    parser.add_argument("db", metavar="TRACES.db", help="trace database")
    parser.add_argument("--out", required=True, metavar="FILE", help="image to write (.png, .svg or .pdf)")
    parser.add_argument("--run", metavar="RUN_ID", help="run to plot (default: the one started last)")
    parser.add_argument("--window", type=int, default=20, help="tasks in the rolling satisfaction rate (default 20)")
    parser.add_argument("--json", action="store_true", help="print what was plotted as JSON")
    parser.set_defaults(handler=run_plot_command)


def run_plot_command(args) -> int:
    out = Path(args.out)
    if out.suffix.lower() not in (".png", ".svg", ".pdf"):
        raise InputError("--out %s: give a .png, .svg or .pdf file name" % out)
    if args.window < 1:
        raise InputError("--window must be at least 1 task (got %d)" % args.window)
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise EdgesplitError(INSTALL_HINT) from None
    from edgesplit.codegen.run_plot import draw, load_run

    shown = draw(load_run(Path(args.db), args.run), out, window=args.window)
    if args.json:
        print_json(shown)
    else:
        others = (" (other runs in the file: %s; choose with --run)" % ", ".join(shown["other_runs"])
                  if shown["other_runs"] else "")
        print("plotted run %s (%s, %d tasks, SR %.1f%%) to %s%s" % (shown["run_id"], shown["strategy"], shown["tasks"],
                                                                   100 * shown["sr"], shown["out"], others))
    return 0
