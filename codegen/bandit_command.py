"""``edgesplit bandit simulate``: the seed paper's Table II model-selection simulation and its Fig. 3."""
from pathlib import Path

from edgesplit.runtime.commands.output import print_json, print_table
from edgesplit.runtime.errors import InputError


def register(commands) -> None:
    parser = commands.add_parser("bandit", help="contextual-bandit model selection (LinUCB with late, noisy feedback)")
    actions = parser.add_subparsers(dest="bandit_command", metavar="ACTION")
    simulate = actions.add_parser(
        "simulate", help="the seed paper's Table II simulation against Static, Oracle, plain LinUCB and the worst arm",
        description="T=2000 rounds, A=10 arms, d=4, contexts uniform in [0,1]^d, delays uniform in 1..40, alpha=1.5, "
                    "delta=0.1, lambda_eta=0.4, lambda_v(d)=5/d^2, theta=[-0.5, 0.37, -0.36, 0.69]. Prints the "
                    "learnt theta and the QoE over the last 500 rounds per run; --json prints everything including "
                    "the normalised time-average QoE curve (Fig. 3), --plot draws it. See docs/bandit.md.")
    simulate.add_argument("--runs", type=int, default=10, help="independent runs (seeds SEED, SEED+1, ...)")
    simulate.add_argument("--seed", type=int, default=0)
    simulate.add_argument("--json", action="store_true", help="one JSON document on stdout")
    simulate.add_argument("--plot", metavar="OUT.png", help="draw Fig. 3 (needs matplotlib)")
    simulate.set_defaults(handler=run_simulate)
    parser.set_defaults(handler=lambda args: parser.print_help() or 2)


def run_simulate(args) -> int:
    from edgesplit.codegen.bandit_simulation import Args, simulate, summary, to_json

    if args.runs < 1:
        raise InputError("--runs must be >= 1, got %d" % args.runs)
    if args.plot and Path(args.plot).suffix.lower() != ".png":
        raise InputError("--plot %s: give a .png path" % args.plot)
    params = Args(runs=args.runs, seed=args.seed)
    results, curve = simulate(params)
    if args.plot:
        from edgesplit.codegen.bandit_plot import plot_curve

        plot_curve(curve, args.runs, Path(args.plot))
    if args.json:
        print_json(to_json(params, results, curve))
        return 0
    print("QoE: normalised time-average expected QoE over the last 500 rounds (oracle 1, worst arm 0)")
    print_table(["seed", "theta learnt", "L2 err", "L2 err plain", "QoE linucb", "QoE plain", "QoE static"],
                [[r.seed, "[%s]" % ", ".join("%.2f" % v for v in r.theta_learned), "%.3f" % r.theta_error,
                  "%.3f" % r.theta_error_plain, "%.3f" % r.normalised_last_500["linucb"],
                  "%.3f" % r.normalised_last_500["plain_linucb"], "%.3f" % r.normalised_last_500["static"]]
                 for r in results])
    total = summary(params, results)
    norm = total["median_normalised_last_500"]
    print("median over %d runs: theta L2 error %.3f (plain LinUCB %.3f); normalised QoE last 500: linucb %.4f, "
          "plain %.4f, static %.3f; delay-aware beats plain in %d/%d runs (QoE), %d/%d (theta)"
          % (total["runs"], total["median_theta_error"], total["median_theta_error_plain"], norm["linucb"],
             norm["plain_linucb"], norm["static"], total["runs_linucb_beats_plain_qoe"], total["runs"],
             total["runs_linucb_beats_plain_theta"], total["runs"]))
    if args.plot:
        print("plot: %s" % args.plot)
    return 0
