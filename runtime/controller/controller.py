"""The EdgeML control loop: hold an action for its interval, then score it and choose the next.

Per task the device asks ``action(peer_alive, bandwidth)`` and reports ``record(outcome)``. When the
current action's interval (in tasks) has run out, the controller closes the interval, computes the
reward over its tasks (EdgeML eq. 4/5, ``reward.py``), forms the next state from the last q
intervals, logs the transition (state, action, reward, next state, policy id) and asks the strategy
for the next action. The controller keeps no clock of its own: ``clock`` only stamps transitions.
"""
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

from edgesplit.runtime.controller.reward import Bounds, TaskOutcome, reward
from edgesplit.runtime.controller.state import DEFAULT_Q, FEATURES, StateWindow, as_state
from edgesplit.runtime.controller.strategies import Action, Strategy
from edgesplit.runtime.traces import TraceStore
from edgesplit.runtime.traces.records import JsonText, dumps


class Controller:
    def __init__(self, strategy: Strategy, bounds: Bounds, q: int = DEFAULT_Q, store: Optional[TraceStore] = None,
                 clock: Callable[[], float] = time.monotonic, run_id: Optional[str] = None):
        self.strategy = strategy
        self.bounds = bounds
        self.window = StateWindow(q)
        self.store = store
        self.clock = clock
        self.run_id = run_id
        self.step = 0
        self.decisions = []  # type: List[Dict[str, Any]]
        self.decide_seconds = 0.0
        self._action = None  # type: Optional[Action]
        self._state = None  # type: Optional[Dict[str, float]]
        self._tasks = []  # type: List[TaskOutcome]
        # Transition rows: a decision's state is the last closed interval's next state (the same tuple, which
        # the store's writer encodes once), and an action holds until the strategy gives another (static: always
        # the same), so its JSON is made once per action.
        self._state_values = None  # type: Optional[Tuple[float, ...]]
        self._next_state_values = None  # type: Optional[Tuple[float, ...]]
        self._action_json = (None, None)  # type: Any
        self._action_dict = (None, None)  # type: Any  # (action, its to_dict()): the decision log's, made once per action

    @property
    def current(self) -> Optional[Action]:
        return self._action

    def action(self, peer_alive: bool, bandwidth_bps: Optional[float], task_id: int = -1) -> Action:
        """The action for the next task; a new decision when the interval has run out."""
        current = self._action
        if current is not None:
            if len(self._tasks) < current.interval:
                return current
            # The closed interval's next state is this decision's state: the same window, the same link.
            self._state = self._close(peer_alive, bandwidth_bps)
            self._state_values = self._next_state_values
        else:
            self._state = self.window.state(peer_alive, bandwidth_bps)
            self._state_values = None
        started = time.perf_counter()
        current = self._action = self.strategy.decide(self._state)
        self.decide_seconds += time.perf_counter() - started
        # The state dict is the window's fresh one, never changed after: kept as it is, not copied. The action's dict
        # is shared by the decisions of one action (a static one: all of them); nothing changes a logged decision.
        if self._action_dict[0] is not current:
            self._action_dict = (current, current.to_dict())
        self.decisions.append({"step": self.step, "task": task_id, "time_s": self.clock(), "state": self._state,
                               "action": self._action_dict[1]})
        return current

    def record(self, outcome: TaskOutcome, task_id: int = -1) -> None:
        """One finished task under the current action (``task_id``: the caller's, not kept)."""
        self._tasks.append(outcome)

    def finish(self, peer_alive: bool, bandwidth_bps: Optional[float]) -> None:
        """Close a partly used interval at the end of a stream so its transition is logged too."""
        if self._action is not None and self._tasks:
            self._close(peer_alive, bandwidth_bps)

    def _close(self, peer_alive: bool, bandwidth_bps: Optional[float]) -> Dict[str, float]:
        tasks = self._tasks
        value = reward(tasks, self.bounds)
        window = self.window
        window.close_interval(tasks, self._action.cut == 0)
        store = self.store
        if store is not None:
            next_values = window.state_values(peer_alive, bandwidth_bps)
            next_state = as_state(next_values)
            state = self._state_values or _ordered(self._state)
            self._next_state_values = next_values
            action = self._action
            if self._action_json[0] is not action:
                described = self._action_dict[1] if self._action_dict[0] is action else action.to_dict()
                self._action_json = (action, JsonText(dumps(described, "action")))
            # Raw values: the store's writer checks and encodes them (log_task_values), off this thread.
            store.log_transition_values((self.run_id, self.step, self.clock(), state, self._action_json[1], value,
                                         next_values, self.strategy.policy_id))
        else:
            next_state = as_state(window.state_values(peer_alive, bandwidth_bps))
        self.decisions[-1]["reward"] = value
        self.step += 1
        self._action = None
        self._tasks = []
        return next_state


def _ordered(state: Dict[str, float]) -> Tuple[float, ...]:
    """The state as the transition row stores it: its features in order."""
    return tuple([state[k] for k in FEATURES])
