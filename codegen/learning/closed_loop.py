"""The closed loop, with real processes: a board serves, its traces go off-board, a policy is retrained from
them, the board reloads it on SIGHUP.

    edgesplit serve ([emulation] board + link: a recording replayed to the real edgesplit peer)
      -> tasks through the local API, one every period -> trace database (tasks, transitions)
      -> a consistent copy of the database (what a fleet ships off the board)
      -> edgesplit train --from-traces COPY (the board's transitions replayed off-policy, mixed with the
         environment's experience) -> a new policy file
      -> the policy file replaced, SIGHUP -> the daemon serves the new policy from its next decision

Workstation only (``bench/closed_loop.py`` measures it, ``tests/learning/test_closed_loop.py`` checks its
mechanics). Every step is a real command: nothing here decides, trains or serves by itself.
"""
import json
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from edgesplit.runtime.api.client import ApiClient
from edgesplit.runtime.emulation.link.recording_readers import read_recording

CLI = [sys.executable, "-m", "edgesplit.runtime.cli"]


@dataclass
class BoardSetup:
    """The emulated board the daemon serves as, and the network it serves under."""

    recording: Path                  # replayed by the daemon's software link (a file, e.g. write_recording's)
    board: str = "jetson_nano_cpu"
    workload_scale: float = 112.0    # what the workstation believes (train is told this)
    # What the daemon really serves at ([emulation] workload_scale; None: as believed): a board slower than its
    # profile (another unit, throttling, a heavier input pipeline), which only its traces tell train.
    served_workload_scale: Optional[float] = None
    link_scale: float = 1.0
    rtt_ms: float = 20.0
    latency_bound_ms: float = 100.0
    energy_bound_mj: float = 900.0
    period_s: float = 0.1            # one task arrives every period_s (real = emulated seconds in serve)

    @property
    def served_scale(self) -> float:
        return self.workload_scale if self.served_workload_scale is None else self.served_workload_scale


def write_recording(source: Path, out: Path, mean_mbps: Optional[float] = None, start_s: float = 0.0,
                    seconds: Optional[float] = None) -> Dict[str, Any]:
    """A window of ``source`` (any readable format), rescaled to ``mean_mbps``, as ``time mbps`` lines.

    A phase of the loop that lasts exactly ``seconds`` then sees every second of the window once, however the
    link's replay is aligned with it (the link repeats its recording)."""
    recording = read_recording(source)
    step = recording.step_s
    first = int(round(start_s / step))
    count = len(recording.bps) - first if seconds is None else int(round(seconds / step))
    rates = np.asarray(recording.bps[first:first + count], dtype=float)
    if len(rates) < count or not len(rates):
        raise ValueError("%s has %d samples of %.3g s: no window of %s s from %.1f s"
                         % (source, len(recording.bps), step, seconds, start_s))
    scale = 1.0 if mean_mbps is None else mean_mbps * 1e6 / max(float(rates.mean()), 1.0)
    rates = rates * scale
    with open(out, "w", encoding="utf-8") as handle:
        for i, bps in enumerate(rates):
            handle.write("%.3f\t%.6f\n" % (i * step, bps / 1e6))
    return {"source": str(source), "out": str(out), "start_s": start_s, "seconds": len(rates) * step,
            "scale": scale, "mean_mbps": float(rates.mean() / 1e6), "min_mbps": float(rates.min() / 1e6)}


def daemon_config(setup: BoardSetup, peer: str, policy: Path, traces: Path, socket: Path) -> str:
    return ("[model]\npolicy = \"%s\"\n[peer]\naddress = \"%s\"\n[bounds]\nlatency_ms = %r\nenergy = %r\n"
            "[emulation]\nboard = \"%s\"\nworkload_scale = %r\nlink = \"%s\"\nlink_scale = %r\nrtt_ms = %r\n"
            "[traces]\npath = \"%s\"\nflush_interval_s = 0.2\n[api]\nsocket = \"%s\"\ndefault_deadline_ms = %r\n"
            % (policy, peer, float(setup.latency_bound_ms), float(setup.energy_bound_mj), setup.board,
               float(setup.served_scale), setup.recording, float(setup.link_scale), float(setup.rtt_ms), traces,
               socket, float(setup.latency_bound_ms)))


class ServedBoard:
    """``edgesplit serve --config`` as a subprocess, serving ``policy`` (a path the loop replaces)."""

    def __init__(self, workdir: Path, setup: BoardSetup, peer: str, policy: Path,
                 env: Optional[Dict[str, str]] = None):
        workdir.mkdir(parents=True, exist_ok=True)
        self.env = env  # the daemon's environment (None: this process's)
        self.workdir = workdir
        self.setup = setup
        self.policy = policy
        self.sockdir = Path(tempfile.mkdtemp(prefix="es-cl-", dir="/tmp"))  # unix socket paths stay short
        self.socket = self.sockdir / "api.sock"
        self.traces = workdir / "traces.db"
        self.config = workdir / "edgesplit.toml"
        self.log = workdir / "daemon.log"
        self.config.write_text(daemon_config(setup, peer, policy, self.traces, self.socket))
        self.process = None  # type: Optional[subprocess.Popen]
        self.command = ["edgesplit", "serve", "--config", str(self.config)]

    def start(self, timeout_s: float = 60.0) -> "ServedBoard":
        self._log = open(str(self.log), "ab")
        self.process = subprocess.Popen(CLI + ["serve", "--config", str(self.config)], stdout=self._log,
                                        stderr=subprocess.STDOUT, env=self.env)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError("edgesplit serve exited with %s:\n%s" % (self.process.returncode,
                                                                           self.log.read_text()))
            if self.socket.exists():
                with ApiClient(str(self.socket), timeout_s=1.0) as client:
                    if client.ping():
                        return self
            time.sleep(0.05)
        raise RuntimeError("edgesplit serve not answering within %.0f s:\n%s" % (timeout_s, self.log.read_text()))

    def status(self) -> Dict[str, Any]:
        with ApiClient(str(self.socket), timeout_s=10.0) as client:
            return client.status()

    def feed(self, images: np.ndarray, labels: np.ndarray, count: int, offset: int = 0) -> List[Dict[str, Any]]:
        """``count`` tasks, one arriving every ``period_s`` (a late answer delays only its own submission)."""
        answers = []
        period = self.setup.period_s
        with ApiClient(str(self.socket), timeout_s=10.0) as client:
            origin = time.perf_counter()
            for i in range(count):
                time.sleep(max(0.0, origin + i * period - time.perf_counter()))
                k = (offset + i) % len(images)
                answers.append(client.submit(images[k:k + 1], label=int(labels[k])).to_dict())
        return answers

    def reload(self, policy_id: str, timeout_s: float = 30.0) -> Dict[str, Any]:
        """SIGHUP, then wait until ``edgesplit status`` names ``policy_id``; returns that status."""
        self.process.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            status = self.status()
            if status["policy"]["policy_id"] == policy_id:
                return status
            if status["policy"]["note"]:
                raise RuntimeError("reload refused (%s):\n%s" % (status["policy"]["note"], self.log.read_text()))
            time.sleep(0.05)
        raise RuntimeError("the daemon did not take policy %s within %.0f s" % (policy_id[:12], timeout_s))

    def cli_status(self) -> Dict[str, Any]:
        """``edgesplit status --config ... --json``: what an operator sees."""
        out = subprocess.run(CLI + ["status", "--config", str(self.config), "--json"], check=True,
                             capture_output=True, text=True, timeout=60)
        return json.loads(out.stdout)

    def stop(self) -> int:
        if self.process is None:
            return 0
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self._log.close()
        return self.process.returncode

    def cleanup(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        for leftover in self.sockdir.iterdir() if self.sockdir.exists() else ():
            leftover.unlink()
        if self.sockdir.exists():
            self.sockdir.rmdir()


def export_traces(live: Path, out: Path) -> Dict[str, int]:
    """A consistent copy of a trace database the daemon is still writing (SQLite's online backup)."""
    if out.exists():
        out.unlink()
    with sqlite3.connect(str(live)) as source, sqlite3.connect(str(out)) as target:
        source.backup(target)
    with sqlite3.connect(str(out)) as db:
        return {"tasks": db.execute("SELECT COUNT(*) FROM tasks").fetchone()[0],
                "transitions": db.execute("SELECT COUNT(*) FROM transitions").fetchone()[0]}


def phase_figures(db: Path, policy_id: str, bounds_latency_s: float, energy_bound: float,
                  after_seq: int = 0, task_ids: Optional[Sequence[int]] = None) -> Dict[str, Any]:
    """SR (both bounds met), accuracy and mean latency of the tasks ``policy_id`` decided (seq > after_seq; with
    ``task_ids``, only those tasks: a phase that kept the previous phase's policy)."""
    with sqlite3.connect(str(db)) as conn:
        rows = conn.execute("SELECT latency_s, energy, result, label, fallback, cut, task_id FROM tasks "
                            "WHERE policy_id = ? AND seq > ? ORDER BY seq", (policy_id, after_seq)).fetchall()
    if task_ids is not None:
        wanted = set(task_ids)
        rows = [r for r in rows if r[6] in wanted]
    if not rows:
        return {"tasks": 0}
    latency = np.array([r[0] for r in rows], dtype=float)
    energy = np.array([r[1] if r[1] is not None else np.nan for r in rows], dtype=float)
    met = (latency <= bounds_latency_s + 1e-9) & (energy <= energy_bound + 1e-9)
    correct = np.array([r[2] == r[3] for r in rows])
    return {"tasks": len(rows), "sr": float(met.mean()), "accuracy": float(correct.mean()),
            "mean_latency_ms": float(1e3 * latency.mean()), "offloaded": int(sum(r[5] is not None for r in rows)),
            "fallbacks": int(sum(r[4] for r in rows))}


def last_seq(db: Path) -> int:
    with sqlite3.connect(str(db)) as conn:
        return int(conn.execute("SELECT COALESCE(MAX(seq), 0) FROM tasks").fetchone()[0])


@dataclass
class TrainSetup:
    """``edgesplit train`` for the board above, from the recordings and trace databases given."""

    recordings: Sequence[Path]
    from_traces: Sequence[Path]
    out: Path
    seed: int = 0
    epochs: Optional[int] = 1000     # None: not given (an algorithm without epochs)
    episode_tasks: int = 500
    extra: List[str] = field(default_factory=list)
    algo: str = "ddpg"

    def argv(self, setup: BoardSetup) -> List[str]:
        argv = ["train", "--algo", self.algo, "--board", setup.board, "--workload-scale", repr(setup.workload_scale),
                "--link-traces"] + [str(r) for r in self.recordings] + [
                "--rtt-ms", repr(setup.rtt_ms), "--latency-bound-ms", repr(setup.latency_bound_ms),
                "--energy-bound", repr(setup.energy_bound_mj), "--period-ms", repr(1e3 * setup.period_s),
                "--episode-tasks", str(self.episode_tasks), "--seed", str(self.seed),
                "--out", str(self.out), "--json", "--no-progress"] + list(self.extra)
        if self.epochs is not None:
            argv += ["--epochs", str(self.epochs)]
        if self.from_traces:
            argv += ["--from-traces"] + [str(db) for db in self.from_traces]
        return argv


def train(setup: BoardSetup, training: TrainSetup, timeout_s: float = 3600.0) -> Dict[str, Any]:
    """Runs ``edgesplit train``; returns its JSON summary with the command line added (``written`` false when its
    guard refused the new policy: nothing was written)."""
    from edgesplit.codegen.learning.retraining import REFUSED_EXIT_CODE

    argv = training.argv(setup)
    done = subprocess.run(CLI + argv, capture_output=True, text=True, timeout=timeout_s,
                          env=dict(os.environ, OMP_NUM_THREADS="1"))
    if done.returncode not in (0, REFUSED_EXIT_CODE):
        raise RuntimeError("edgesplit %s failed (%d):\n%s" % (" ".join(argv), done.returncode, done.stderr[-4000:]))
    summary = json.loads(done.stdout)
    summary["command"] = "edgesplit " + " ".join(argv)
    summary["refusal"] = done.stderr.strip().splitlines()[-1] if done.returncode == REFUSED_EXIT_CODE else None
    return summary


def install_policy(new: Path, served: Path) -> None:
    """Replace the served policy file atomically (the daemon reads it on SIGHUP, never half-written)."""
    tmp = served.with_name(served.name + ".tmp")
    tmp.write_bytes(new.read_bytes())
    os.replace(str(tmp), str(served))
