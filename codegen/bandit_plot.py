"""Fig. 3 of the seed paper 000: normalised time-average QoE against rounds played (matplotlib)."""
from pathlib import Path
from typing import Dict

import numpy as np

from edgesplit.runtime.errors import InputError

LABELS = {"oracle": "Oracle (knows theta)", "linucb": "LinUCB-LMMSE (delay-aware)",
          "plain_linucb": "plain LinUCB (ignores delay)", "static": "Static (best single arm)",
          "worst": "worst arm"}
STYLES = {"oracle": "k-", "linucb": "C0-", "plain_linucb": "C1--", "static": "C2-", "worst": "C3:"}


def plot_curve(curve: Dict[str, np.ndarray], runs: int, out: Path) -> None:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise InputError("--plot needs matplotlib (a workstation dependency): pip install 'edgesplit[codegen]' "
                         "or pip install matplotlib; --json works without it") from None
    figure, axes = plt.subplots(figsize=(6.4, 4.0))
    rounds = np.arange(1, len(curve["oracle"]) + 1)
    for name in ("oracle", "linucb", "plain_linucb", "static", "worst"):
        axes.plot(rounds, curve[name], STYLES[name], label=LABELS[name], linewidth=1.4)
    axes.set_xlabel("rounds played")
    axes.set_ylabel("normalised time-average QoE")
    axes.set_title("Model selection with late, noisy feedback (median of %d runs)" % runs, fontsize=10)
    axes.set_ylim(-0.05, 1.05)
    axes.grid(alpha=0.3)
    axes.legend(loc="lower right", fontsize=8)
    figure.tight_layout()
    figure.savefig(str(out), dpi=120)
    plt.close(figure)


def plot_live_shares(reports, out: Path) -> None:
    """Share of tasks on each board's best arm per window of tasks, one line per board and run."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise InputError("plotting needs matplotlib (a workstation dependency)") from None
    figure, axes = plt.subplots(figsize=(6.4, 3.6))
    colours = {}
    for report in reports:
        for board in report["boards"]:
            window = board["window_tasks"]
            shares = board["share_of_best_per_window"]
            x = [window * (i + 1) for i in range(len(shares))]
            colour = colours.setdefault(board["board"], "C%d" % len(colours))
            label = "%s (best: %s)" % (board["board"], board["best_arm"])
            axes.plot(x, shares, "-o", color=colour, markersize=3, linewidth=1.2, alpha=0.8,
                      label=label if label not in axes.get_legend_handles_labels()[1] else None)
    axes.set_xlabel("tasks served")
    axes.set_ylabel("share of tasks on the best arm\n(per window of %d)" % window)
    axes.set_ylim(-0.05, 1.05)
    axes.grid(alpha=0.3)
    axes.legend(loc="lower right", fontsize=8)
    axes.set_title("Live daemon, 3 variants, late noisy ratings (%d runs per board)" % len(reports), fontsize=10)
    figure.tight_layout()
    figure.savefig(str(out), dpi=120)
    plt.close(figure)
