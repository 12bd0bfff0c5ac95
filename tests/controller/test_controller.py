"""Controller: EdgeML windows, interval expiry, transition logging, reward branches."""
import json
import math
import sqlite3

import pytest

from edgesplit.runtime.controller.controller import Controller
from edgesplit.runtime.controller.reward import Bounds, TaskOutcome, reward
from edgesplit.runtime.controller.state import FEATURES, REMOTE_WINDOW, StateWindow, as_state
from edgesplit.runtime.controller.strategies import Action, Strategy, StaticStrategy
from edgesplit.runtime.traces import TraceStore

BOUNDS = Bounds(latency_s=0.1, energy=100.0)


def outcome(latency=0.05, energy=50.0, bandwidth=1e6, exit_index=2, exits=3):
    return TaskOutcome(latency, energy, bandwidth, exit_index, exits)


class Recording(Strategy):
    """Returns interval 2, cut = number of decisions so far; remembers the states it saw."""

    name = "recording"
    policy_id = "test-policy"

    def __init__(self):
        self.states = []

    def decide(self, state):
        self.states.append(dict(state))
        return Action((0.1, 0.2), len(self.states) - 1, 2, True)


def test_state_is_the_mean_over_the_last_q_intervals():
    window = StateWindow(q=3)
    for latency in (0.01, 0.02, 0.03, 0.04):
        window.close_interval([outcome(latency=latency, energy=latency * 1000, bandwidth=latency * 1e8)])
    state = window.state(peer_alive=True, bandwidth_now_bps=None)
    assert state["latency_mean_s"] == pytest.approx(0.03)  # 0.02, 0.03, 0.04: the first interval left the window
    assert state["energy_mean"] == pytest.approx(30.0)
    assert state["bandwidth_mbps"] == pytest.approx(3.0)
    assert state["peer_alive"] == 1.0
    assert set(state) == set(FEATURES)


def test_empty_window_uses_the_current_bandwidth_estimate_and_peer_state():
    state = StateWindow().state(peer_alive=False, bandwidth_now_bps=2.5e6)
    assert state == {"latency_mean_s": 0.0, "energy_mean": 0.0, "bandwidth_mbps": 2.5, "peer_alive": 0.0,
                     "remote_share": 0.0}
    assert StateWindow().state(True, None)["bandwidth_mbps"] == 0.0


def test_remote_share_counts_the_last_tasks_under_a_cut_0_action_beyond_the_window():
    window = StateWindow(q=3)
    assert window.state(True, None)["remote_share"] == 0.0  # no task yet
    window.close_interval([outcome()] * 3, remote=True)
    window.close_interval([outcome()], remote=False)
    assert window.state(True, None)["remote_share"] == pytest.approx(0.75)  # per task, not per interval
    for _ in range(REMOTE_WINDOW - 4):
        window.close_interval([outcome()], remote=False)
    assert window.state(True, None)["remote_share"] == pytest.approx(3 / REMOTE_WINDOW)  # a full memory
    window.close_interval([outcome()], remote=False)
    # the first remote task has left the memory, two are in it
    assert window.state(True, None)["remote_share"] == pytest.approx(2 / REMOTE_WINDOW)
    for _ in range(2):
        window.close_interval([outcome()], remote=False)
    assert window.state(True, None)["remote_share"] == 0.0
    window.close_interval([outcome()] * (2 * REMOTE_WINDOW), remote=True)
    assert window.state(True, None)["remote_share"] == 1.0
    window.close_interval([outcome()], remote=True)  # a full memory of the same mark: unchanged
    window.close_interval([outcome()], remote=False)
    assert window.state(True, None)["remote_share"] == pytest.approx((REMOTE_WINDOW - 1) / REMOTE_WINDOW)


def test_the_controller_marks_tasks_remote_by_their_action_s_cut(tmp_path):
    class Alternating(Strategy):
        name = "alternating"

        def __init__(self):
            self.states = []

        def decide(self, state):
            self.states.append(dict(state))
            return Action((0.1, 0.2), 0 if len(self.states) % 2 else 3, 2, True)  # cut 0, cut 3, cut 0, ...

    strategy = Alternating()
    with TraceStore(tmp_path / "t.db", background_flush=False) as store:
        store.start_run(board="test")
        controller = Controller(strategy, BOUNDS, store=store, clock=lambda: 1.0)
        for task in range(6):
            controller.action(True, 1e6, task)
            controller.record(outcome(), task)
        controller.finish(True, 1e6)
    assert [s["remote_share"] for s in strategy.states] == [0.0, 1.0, 0.5]
    with sqlite3.connect(str(tmp_path / "t.db")) as conn:
        states = [json.loads(r[0]) for r in conn.execute("SELECT next_state FROM transitions ORDER BY step")]
    # The transition rows carry it, in FEATURES order.
    assert [s[FEATURES.index("remote_share")] for s in states] == [1.0, 0.5, pytest.approx(4 / 6)]


def test_action_holds_for_its_interval_then_a_transition_is_logged(tmp_path):
    strategy = Recording()
    with TraceStore(tmp_path / "t.db", background_flush=False) as store:
        store.start_run(board="test")
        controller = Controller(strategy, BOUNDS, store=store, clock=lambda: 1.0)
        cuts = []
        for task in range(5):
            action = controller.action(True, 1e6, task)
            cuts.append(action.cut)
            controller.record(outcome(latency=0.05 if task < 2 else 0.2), task)
        controller.finish(True, 1e6)
    assert cuts == [0, 0, 1, 1, 2]
    assert len(strategy.states) == 3
    with sqlite3.connect(str(tmp_path / "t.db")) as conn:
        rows = conn.execute("SELECT step, reward, policy_id, action FROM transitions ORDER BY step").fetchall()
    assert [r[0] for r in rows] == [0, 1, 2]
    assert rows[0][1] == pytest.approx(1.0)  # both bounds met, final exit: BE = 1
    assert rows[1][1] < 0  # latency over the bound
    assert rows[0][2] == "test-policy"
    # The second decision saw the first interval's tasks in its state.
    assert strategy.states[1]["latency_mean_s"] == pytest.approx(0.05)


def test_static_strategy_ignores_the_state():
    action = Action((0.3, 0.3), 3, 1, True)
    strategy = StaticStrategy("local", action)
    assert strategy.decide({"bandwidth_mbps": 0.0}) is action
    assert strategy.decide({"bandwidth_mbps": 100.0}) is action


@pytest.mark.parametrize("latency, energy, expected", [
    (0.05, 50.0, "positive"),
    (0.2, 200.0, -1.0),
    (0.2, 50.0, "latency"),
    (0.05, 200.0, "energy"),
])
def test_reward_branches(latency, energy, expected):
    value = reward([outcome(latency=latency, energy=energy, exit_index=1)], BOUNDS)
    if expected == "positive":
        assert value == pytest.approx(0.5)
    elif expected == "latency":
        assert value == pytest.approx(-(2 / math.pi) * math.atan((0.2 - 0.1) / 0.1))
    elif expected == "energy":
        assert value == pytest.approx(-(2 / math.pi) * math.atan((200.0 - 100.0) / 100.0))
    else:
        assert value == expected


def _transitions(db):
    import json
    with sqlite3.connect(str(db)) as conn:
        rows = conn.execute("SELECT step, state, action, next_state FROM transitions ORDER BY step").fetchall()
    return [(step, json.loads(state), json.loads(action), json.loads(next_state))
            for step, state, action, next_state in rows]


def test_each_transition_row_holds_the_state_its_decision_saw_and_the_next_one(tmp_path):
    """A decision right after a closed interval decides on that interval's next state; one after ``finish``
    (a stream's end, a policy reload) decides on a fresh state of the link as it is then."""
    actions = [Action((0.1, 0.2), 1, 1, True), Action((0.3, 0.4), 2, 1, True)]

    class Alternating(Strategy):
        policy_id = "alternating"

        def __init__(self):
            self.states = []

        def decide(self, state):
            self.states.append([state[k] for k in FEATURES])
            return actions[len(self.states) % 2]

    strategy = Alternating()
    with TraceStore(tmp_path / "t.db", background_flush=False) as store:
        store.start_run(board="test")
        controller = Controller(strategy, BOUNDS, store=store, clock=lambda: 1.0)
        for task in range(3):  # chained intervals of one task, the peer away
            controller.action(False, None, task)
            controller.record(outcome(latency=0.01 * (task + 1), bandwidth=0.0), task)
        controller.finish(False, None)
        for task in range(3, 5):  # the peer is back: a fresh state, not the closed interval's next state
            controller.action(True, 4e6, task)
            controller.record(outcome(latency=0.05, bandwidth=4e6), task)
        controller.finish(True, 4e6)
    rows = _transitions(tmp_path / "t.db")
    assert [r[0] for r in rows] == [0, 1, 2, 3, 4]
    assert [r[1] for r in rows] == strategy.states  # every row's state is what its decision saw
    assert rows[0][3] == rows[1][1] and rows[1][3] == rows[2][1]  # chained: next state = next decision's state
    assert rows[2][3][FEATURES.index("peer_alive")] == 0.0
    assert rows[3][1][FEATURES.index("peer_alive")] == 1.0  # after finish: the state as the link is now
    assert rows[3][1][FEATURES.index("bandwidth_mbps")] == pytest.approx(4.0)
    assert [r[2]["thresholds"] for r in rows] == [[0.3, 0.4], [0.1, 0.2], [0.3, 0.4], [0.1, 0.2], [0.3, 0.4]]
    assert [r[2]["cut"] for r in rows] == [2, 1, 2, 1, 2]


def test_the_state_mapping_follows_features_in_order():
    # as_state writes the feature names out for speed: it must stay FEATURES, in order, or decisions and rows disagree.
    values = tuple(float(i + 1) for i in range(len(FEATURES)))
    state = as_state(values)
    assert list(state) == list(FEATURES) and list(state.values()) == list(values)
