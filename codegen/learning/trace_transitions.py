"""Transitions (s, a, r, s') from trace databases written by ``run``/``serve`` (or the environment), for replay;
and the other way: a training run's transitions written as a trace database (``train --write-traces``).

Each run in a database records its bundle hash, the state features its controller logged and the
unit of its energy readings (``runs.config``, schema v4). A run is usable only when all three match
the training scenario: another bundle's cuts and exits mean other actions; another feature order or
energy unit puts other numbers in the state. A database with a run that does not match is refused
whole, naming the file, the run and the field, so nothing is mixed in silently. Logged actions
(thresholds, cut, interval) are mapped to the middle of the cell of the actor's [0, 1] output
space that decodes to them (``ActionCodec.encode``).
"""
import json
from pathlib import Path
from typing import Any, Dict, List, Mapping, Sequence

import numpy as np

from edgesplit.runtime.controller.strategies import Action
from edgesplit.runtime.errors import EdgesplitError
from edgesplit.runtime.traces import TraceError, TraceStore, TransitionRecord, default_versions, open_readonly, \
    transitions_arrays

from edgesplit.codegen.learning.ddpg import ActionCodec, Transitions


class TraceMismatchError(EdgesplitError):
    """A trace database cannot be mixed into this training run (the message names the file and why)."""


def _runs(conn) -> List[Dict[str, Any]]:
    rows = conn.execute("SELECT run_id, board, bundle_hash, config FROM runs ORDER BY started_s").fetchall()
    return [{"run_id": r[0], "board": r[1], "bundle_hash": r[2], "config": json.loads(r[3] or "{}")} for r in rows]


def _check_run(path: Path, run: Dict[str, Any], bundle_hash: str, features: Sequence[str], energy_unit: str) -> None:
    where = "%s: run %s (board %s)" % (path, run["run_id"], run["board"])
    if run["bundle_hash"] != bundle_hash:
        raise TraceMismatchError("%s was recorded with bundle %s, this training uses bundle %s: give trace databases "
                                 "of the same bundle (edgesplit traces summary DB shows each run's bundle)"
                                 % (where, (run["bundle_hash"] or "none")[:12], bundle_hash[:12]))
    logged = run["config"].get("state_features")
    if logged is None:
        raise TraceMismatchError("%s records no state_features in its run config: it was not written by edgesplit run, "
                                 "serve or the learning environment" % where)
    missing = [name for name in features if name not in logged]
    if missing:
        raise TraceMismatchError("%s logged the state features %s; training needs %s (missing: %s)"
                                 % (where, list(logged), list(features), ", ".join(missing)))
    unit = run["config"].get("energy_unit")
    if unit is None:
        raise TraceMismatchError("%s records no energy unit (a run on a host without an energy reading, no --board): "
                                 "its energy_mean states mean nothing to the training environment (%s); use traces "
                                 "of an emulated board (run --board NAME)" % (where, energy_unit))
    if unit != energy_unit:
        raise TraceMismatchError("%s logged energy in %s, the training environment measures it in %s: its "
                                 "energy_mean states are on another scale; use traces of an emulated board (or train "
                                 "for that board's energy proxy)" % (where, unit, energy_unit))


def _actions(path: Path, run_id: str, arrays: Dict[str, np.ndarray], codec: ActionCodec) -> np.ndarray:
    names = [str(n) for n in arrays["action_names"]]
    index = {name: i for i, name in enumerate(names)}
    thresholds = ["thresholds[%d]" % k for k in range(codec.n_exits)]
    needed = thresholds + ["cut", "interval"]
    if any(name not in index for name in needed) or "thresholds[%d]" % codec.n_exits in index:
        raise TraceMismatchError("%s: run %s logged actions %s; this bundle's actions have %d thresholds, a cut and an "
                                 "interval" % (path, run_id, names, codec.n_exits))
    out = np.empty((len(arrays["reward"]), codec.size))
    for i, row in enumerate(arrays["action"]):
        use_exits = bool(row[index["use_exits"]]) if "use_exits" in index else True
        action = Action(tuple(float(row[index[t]]) for t in thresholds), int(row[index["cut"]]),
                        int(row[index["interval"]]), use_exits)
        out[i] = codec.encode(action)
    return out


def read_transitions(paths: Sequence[Path], bundle_hash: str, features: Sequence[str], energy_unit: str,
                     codec: ActionCodec) -> Transitions:
    """Every transition of every run in ``paths``, states reduced to ``features``; refuses a mismatch by name."""
    parts = []  # type: List[Transitions]
    for path in map(Path, paths):
        found = 0
        try:
            with open_readonly(path) as conn:
                for run in _runs(conn):
                    arrays = transitions_arrays(conn, run["run_id"])
                    if not len(arrays["reward"]):
                        continue
                    _check_run(path, run, bundle_hash, features, energy_unit)
                    logged = list(run["config"]["state_features"])
                    if arrays["state"].shape[1] != len(logged):
                        raise TraceMismatchError("%s: run %s has %d state values per transition but lists %d "
                                                 "state_features" % (path, run["run_id"], arrays["state"].shape[1],
                                                                     len(logged)))
                    columns = [logged.index(name) for name in features]
                    parts.append(Transitions(arrays["state"][:, columns], _actions(path, run["run_id"], arrays, codec),
                                             arrays["reward"], arrays["next_state"][:, columns]))
                    found += len(arrays["reward"])
        except TraceError as exc:
            raise TraceMismatchError(str(exc)) from None
        if not found:
            raise TraceMismatchError("%s: no transitions (state, action, reward, next state) in any run: the "
                                     "controller logs one per action interval; was it written with --traces by a "
                                     "run that finished at least one interval?" % path)
        for part in parts:
            if not part.source:
                part.source.append(str(path))
    n = len(features)
    if not parts:
        return Transitions(np.zeros((0, n)), np.zeros((0, codec.size)), np.zeros(0), np.zeros((0, n)))
    bad = [i for i, p in enumerate(parts) if not (np.isfinite(p.state).all() and np.isfinite(p.next_state).all()
                                                   and np.isfinite(p.reward).all())]
    if bad:
        raise TraceMismatchError("%s: a transition holds NaN or infinite values: re-export the traces"
                                 % parts[bad[0]].source[0])
    return Transitions(np.concatenate([p.state for p in parts]), np.concatenate([p.action for p in parts]),
                       np.concatenate([p.reward for p in parts]), np.concatenate([p.next_state for p in parts]),
                       [str(p) for p in paths])


def write_transitions(db: Path, logged: Transitions, codec: ActionCodec, bundle_hash: str, board: str,
                      features: Sequence[str], energy_unit: str, config: Mapping[str, Any]) -> str:
    """``logged`` as one run of a trace database, in the schema run/serve write; return the run id."""
    with TraceStore(str(db)) as store:
        run_id = store.start_run(board=board, bundle_hash=bundle_hash, versions=default_versions(),
                                 config=dict(config, state_features=list(features), energy_unit=energy_unit))
        for i in range(len(logged.reward)):
            store.log_transition(TransitionRecord(
                step=i, time_s=float(i), state=logged.state[i].tolist(),
                action=codec.decode(logged.action[i]).to_dict(), reward=float(logged.reward[i]),
                next_state=logged.next_state[i].tolist(), policy_id="training", run_id=run_id))
    return run_id
