"""One run of a trace database as a figure, in the style of EdgeML's Fig. 10 (workstation).

Five panels over the run's time, one point per task: latency against the latency bound; the
device's bandwidth estimate against the link's rate (when the run replayed a bandwidth recording through
the software link); the cut each task was offloaded at (or "device"); the exit it finished at; and
the satisfaction rate (both bounds, as ``edgesplit run`` reports it) over a rolling window of tasks.
"""
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy as np

from edgesplit.runtime.errors import InputError
from edgesplit.runtime.traces.export import check_run, open_readonly, tasks_arrays

log = logging.getLogger(__name__)

FIGURE_INCHES = (11.0, 12.0)
DPI = 110


@dataclass
class RunData:
    run_id: str
    board: Optional[str]
    bundle_hash: Optional[str]
    config: Dict[str, Any]
    tasks: Dict[str, np.ndarray]
    other_runs: List[str]

    @property
    def strategy(self) -> str:
        strategy = self.config.get("strategy") or {}
        return strategy.get("name") or strategy.get("policy_id") or "unknown strategy"

    @property
    def latency_bound_s(self) -> Optional[float]:
        return (self.config.get("bounds") or {}).get("latency_s")

    @property
    def energy_bound(self) -> Optional[float]:
        return (self.config.get("bounds") or {}).get("energy")


def load_run(db: Path, run_id: Optional[str] = None) -> RunData:
    """The tasks and metadata of ``run_id`` (default: the run started last); refuses other files."""
    with open_readonly(db) as conn:
        runs = conn.execute("SELECT run_id, board, bundle_hash, config FROM runs ORDER BY started_s").fetchall()
        if not runs:
            raise InputError("%s: the trace database has no runs yet" % db)
        ids = [r[0] for r in runs]
        if run_id is not None:
            check_run(conn, db, run_id)
        chosen = runs[-1] if run_id is None else runs[ids.index(run_id)]
        tasks = tasks_arrays(conn, chosen[0])
    if len(tasks["task_id"]) == 0:
        raise InputError("%s: run %s has no tasks to plot" % (db, chosen[0]))
    try:
        config = json.loads(chosen[3] or "{}")
    except ValueError:
        config = {}
    return RunData(chosen[0], chosen[1], chosen[2], config, tasks, [i for i in ids if i != chosen[0]])


def link_rate_bps(config: Dict[str, Any], times_s: np.ndarray) -> Optional[np.ndarray]:
    """The emulated link's capacity at each task's time, or None when the run had no emulated link.

    The software link starts replaying the bandwidth recording with the run's first task
    (``recording_speed`` recording seconds per run second) and multiplies its rates by ``link_scale``.
    Runs logged before the recordings were named so say ``trace``, ``trace_speed``, ``trace_summary``.
    """
    link = config.get("link")
    if not link:
        return None
    from edgesplit.runtime.emulation.link.recording_readers import FORMATS, RecordingError, read_recording
    from edgesplit.runtime.emulation.link.shipped import resolve_recording

    name = link.get("recording", link.get("trace"))
    summary = link.get("recording_summary", link.get("trace_summary")) or {}
    speed = float(link.get("recording_speed", link.get("trace_speed")) or 1.0)
    fmt = summary.get("format") if summary.get("format") in FORMATS else "auto"  # "cooked" is detected
    for candidate in (name, summary.get("source")):
        if not candidate:
            continue
        try:
            recording = read_recording(resolve_recording(candidate), fmt)
        except RecordingError as exc:
            log.info("link recording %s not readable here: %s", candidate, exc)
            continue
        scale = float(link.get("link_scale") or 1.0)
        return np.array([recording.rate_at(t * speed) for t in times_s]) * scale
    log.warning("the run replayed link recording %s, which is not on this machine: plotting the estimate alone", name)
    return None


def satisfied(run: RunData) -> np.ndarray:
    """Per task: latency within the bound and, when the run had one, energy within its bound."""
    latency = run.tasks["latency_s"]
    ok = latency <= run.latency_bound_s if run.latency_bound_s is not None else np.ones(len(latency), dtype=bool)
    if run.energy_bound is not None:
        ok = ok & (run.tasks["energy"] <= run.energy_bound)
    return ok


def rolling_mean(values: np.ndarray, window: int) -> np.ndarray:
    cumulative = np.concatenate([[0.0], np.cumsum(values.astype(np.float64))])
    index = np.arange(1, len(values) + 1)
    start = np.maximum(0, index - window)
    return (cumulative[index] - cumulative[start]) / (index - start)


def _title(run: RunData) -> str:
    link = run.config.get("link") or {}
    parts = ["run %s: %s" % (run.run_id[:12], run.strategy), "board %s" % (run.board or "unknown")]
    if link:
        parts.append("link %s x%.3g" % (link.get("recording", link.get("trace")), float(link.get("link_scale") or 1.0)))
    elif run.config.get("peer"):
        parts.append("peer %s (real link)" % run.config.get("peer"))
    else:
        parts.append("no peer")
    return ", ".join(parts)


def draw(run: RunData, out: Path, window: int = 20) -> Dict[str, Any]:
    """Write the figure to ``out`` (format from its suffix: .png, .svg, .pdf); return what it shows."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    t = run.tasks
    time_s = t["arrival_s"] - t["arrival_s"][0]
    latency_ms = 1e3 * t["latency_s"]
    fallback = t["fallback"].astype(bool)
    ok = satisfied(run)
    figure = Figure(figsize=FIGURE_INCHES, dpi=DPI, constrained_layout=True)
    FigureCanvasAgg(figure)
    axes = figure.subplots(5, 1, sharex=True, gridspec_kw={"height_ratios": [3, 3, 2, 2, 2]})
    figure.suptitle(_title(run), fontsize=12)

    ax = axes[0]
    late = latency_ms > 1e3 * run.latency_bound_s if run.latency_bound_s is not None else np.zeros(len(ok), bool)
    over_energy = ~ok & ~late
    ax.plot(time_s[ok], latency_ms[ok], ".", color="tab:blue", markersize=4, label="within the bounds")
    if late.any():
        ax.plot(time_s[late], latency_ms[late], ".", color="tab:red", markersize=6, label="over the latency bound")
    if over_energy.any():
        ax.plot(time_s[over_energy], latency_ms[over_energy], "^", color="tab:orange", markersize=4,
                label="over the energy bound (%g %s)" % (run.energy_bound, run.config.get("energy_unit") or ""))
    if fallback.any():
        ax.plot(time_s[fallback], latency_ms[fallback], "x", color="black", markersize=5, label="fallback (peer failed)")
    top = float(np.nanmax(latency_ms))
    if run.latency_bound_s is not None:
        ax.axhline(1e3 * run.latency_bound_s, color="tab:red", linestyle="--", linewidth=1.2,
                   label="latency bound %.0f ms" % (1e3 * run.latency_bound_s))
        top = max(top, 1e3 * run.latency_bound_s)
    ax.set_ylabel("latency (ms)")
    ax.set_ylim(0, 1.35 * top)  # head room for the legend
    ax.legend(loc="upper left", fontsize=8, ncol=3)

    ax = axes[1]
    estimate = t["bandwidth_bps"] / 1e6
    link = link_rate_bps(run.config, time_s)
    if link is not None:
        ax.step(time_s, link / 1e6, where="post", color="tab:gray", linewidth=1.5, label="link rate (replayed recording)")
    if np.isfinite(estimate).any():
        ax.plot(time_s, estimate, color="tab:orange", linewidth=1.2, label="device's bandwidth estimate")
    else:
        ax.text(0.5, 0.5, "no bandwidth estimate (no peer)", transform=ax.transAxes, ha="center", va="center")
    ax.set_ylabel("bandwidth (Mbit/s)")
    ax.set_ylim(bottom=0)
    if link is not None or np.isfinite(estimate).any():
        ax.legend(loc="lower right", fontsize=8)

    cuts = t["cut"]
    device_level = int(np.nanmax(cuts)) + 1 if np.isfinite(cuts).any() else 0
    ax = axes[2]
    offloaded = np.isfinite(cuts)
    if offloaded.any():
        ax.plot(time_s[offloaded], cuts[offloaded], "|", color="tab:purple", markersize=8,
                label="offloaded at this cut (%d tasks)" % int(offloaded.sum()))
    if (~offloaded).any():
        ax.plot(time_s[~offloaded], np.full(int((~offloaded).sum()), device_level), "|", color="tab:green",
                markersize=8, label="finished on the device (%d tasks)" % int((~offloaded).sum()))
    ax.set_yticks(list(range(device_level)) + [device_level])
    ax.set_yticklabels([str(c) for c in range(device_level)] + ["device"])
    ax.set_ylim(-0.5, device_level + 0.5)
    ax.set_ylabel("cut (0 = input\nsent to the peer)")
    ax.legend(loc="upper right", fontsize=8, ncol=2)

    ax = axes[3]
    exits = t["exit"]
    ax.plot(time_s, exits, "|", color="tab:brown", markersize=8)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    top = int(np.nanmax(exits)) if np.isfinite(exits).any() else 0
    ax.set_ylim(-0.5, top + 0.5)
    ax.set_ylabel("exit taken\n(0 = first)")

    ax = axes[4]
    sr = rolling_mean(ok, window)
    ax.plot(time_s, 100 * sr, color="tab:blue", label="rolling, last %d tasks" % window)
    ax.plot(time_s, 100 * np.cumsum(ok) / np.arange(1, len(ok) + 1), color="tab:blue", linestyle=":",
            label="since the start (%.1f%% overall)" % (100 * ok.mean()))
    bounds = "latency" + (" and energy" if run.energy_bound is not None else "")
    ax.set_ylabel("satisfaction\nrate (%)")
    ax.set_ylim(-2, 102)
    ax.set_title("tasks within the %s bound%s" % (bounds, "s" if run.energy_bound is not None else ""),
                 fontsize=9, loc="left")
    ax.legend(loc="lower left", fontsize=8, ncol=2)
    ax.set_xlabel("time since the run's first task (s%s)"
                  % (", emulated" if (run.config.get("emulation") or {}).get("emulated") else ""))
    for ax in axes:
        ax.grid(True, alpha=0.3)
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(str(out))
    return {"out": str(out), "run_id": run.run_id, "strategy": run.strategy, "board": run.board,
            "tasks": int(len(time_s)), "sr": float(ok.mean()), "link_rate": link is not None,
            "other_runs": run.other_runs}
