"""DDPG as in EdgeML (Zhao et al., IoTDI '21, section 4.2.4), one readable file (CleanRL style).

One *epoch* is EdgeML's: one action, held for its interval of tasks, then scored with the runtime's
reward (``runtime/controller/reward.py``). The agent:

- **actor** mu(s): three dense layers, tanh, tanh, sigmoid, so every output is in [0, 1]:
  ``[g_0 .. g_{E-1}, c, t]``: one entropy threshold per side exit, the cut and the action interval;
- **critic** Q(s, a): three dense layers (ReLU, ReLU, identity) on the state and the action;
- **exploration**: an Ornstein-Uhlenbeck process added to mu(s) (EdgeML eq. 6), its sigma decaying
  linearly over the run, the sum clipped to [0, 1];
- **replay buffer** of (s, a, r, s'), uniform sampling; transitions read from trace databases
  (``--from-traces``) go in it too (off-policy), and then the agent first learns from them alone;
- **target networks** for both, soft-updated with rate tau; the critic's target is
  ``r + gamma Q'(s', mu'(s'))`` (an episode's end is a time limit, not a terminal state).

Actions are decoded by ``policies_lite``'s own edgeml decoder (``thresholds: clip``, ``scale:
unit``: the cut is ``floor(c * n_cuts)``, the interval ``floor(1 + t * max_interval)``, both
clipped to their ranges, as EdgeML floors its continuous outputs), so what the agent did in training
is exactly what the frozen actor does on the board. The state is EdgeML's, the runtime's ``EDGEML_FEATURES`` (mean
latency, mean energy, mean bandwidth over the last q intervals, peer alive), normalised with a mean
and std fitted on the warm-up states (random actions) and frozen there: ``policies_lite`` stores them
and folds them into the first layer, so the board reproduces the normalisation exactly.
"""
import copy
import logging
import time
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import nn

from edgesplit.policies_lite import save_policy
from edgesplit.policies_lite.decoders import EdgeMLDecoder
from edgesplit.policies_lite.format import EdgeMLDecoderSpec
from edgesplit.runtime.controller.state import EDGEML_FEATURES
from edgesplit.runtime.controller.strategies import Action

log = logging.getLogger(__name__)

ALGORITHM = "ddpg"
ACTOR_ACTIVATIONS = ("tanh", "tanh", "sigmoid")  # as policies_lite names them; the last keeps outputs in [0, 1]


@dataclass
class Args:
    """DDPG's hyperparameters (EdgeML gives the architecture, not these values: they are ours)."""

    seed: int = 0
    """seeds torch, numpy, the exploration noise and the environment's episodes"""
    epochs: int = 1000
    """EdgeML epochs: actions taken in the environment (each holds for its interval of tasks)"""
    hidden: int = 64
    """units in each of the two hidden layers of the actor and of the critic"""
    actor_lr: float = 1e-3
    """Adam learning rate of the actor"""
    critic_lr: float = 1e-3
    """Adam learning rate of the critic"""
    gamma: float = 0.5
    """discount of future rewards (per epoch); an action barely moves the next state (mostly the link), so the
    immediate reward dominates: on the Fig. 9 wave 0.9 / 0.5 / 0.0 gave SR 0.925 / 0.967 / 0.980 over 5 seeds
    (docs/learning.md); 0 would leave the target networks nothing to bootstrap"""
    tau: float = 0.01
    """soft target update: target <- tau * online + (1 - tau) * target, after every update"""
    batch_size: int = 64
    """transitions per gradient step"""
    buffer_size: int = 100_000
    """replay buffer capacity (oldest transitions are overwritten)"""
    warmup_epochs: int = 100
    """first epochs take uniform random actions; the state normalisation is fitted on their states"""
    updates_per_epoch: int = 1
    """gradient steps (critic then actor) after each epoch, once the buffer holds a batch"""
    pretrain_updates: int = 1000
    """with transitions from trace databases: gradient steps on them alone before the first epoch"""
    warmup_with_traces: bool = False
    """with transitions from trace databases, still take the random warm-up (default: start from the pretrained
    actor)"""
    ou_theta: float = 0.15
    """Ornstein-Uhlenbeck mean reversion"""
    ou_sigma: float = 0.3
    """Ornstein-Uhlenbeck sigma at the start (actions live in [0, 1])"""
    ou_sigma_final: float = 0.05
    """sigma at the last epoch (linear decay)"""
    max_interval: int = 5
    """the longest action interval in tasks (EdgeML's N_max)"""
    features: Tuple[str, ...] = EDGEML_FEATURES
    """state features the actor reads, in order (EdgeML's, the runtime's EDGEML_FEATURES; others only if the board supplies them)"""
    select_every: int = 25
    """after the warm-up, every this many epochs run the greedy actor on validation episodes of the TRAINING
    recordings and keep the best actor seen (higher SR, then accuracy) instead of the last; 0: keep the last. On the
    Fig. 9 wave it took the held-out SR of 10 seeds from 5 at 0.99-1.00 to 7 at 1.00 (docs/learning.md)"""
    select_episodes: int = 4
    """validation episodes per check: one per training recording in turn (from its start), fixed seeds"""
    restarts: int = 1
    """independent runs (seeds seed, seed + 1000, ...), each with its own selection; the run whose kept actor
    validated best is the result. DDPG sometimes settles in a poor optimum (on the Fig. 9 wave 1 seed in 5 offloads
    everything); a restart costs one more training run, and the choice still sees the training recordings only"""


# ---------------------------------------------------------------- networks


class Actor(nn.Module):
    """mu(s): normalised state -> action in [0, 1]^(n_exits + 2)."""

    def __init__(self, n_features: int, n_actions: int, hidden: int):
        super().__init__()
        self.layers = nn.ModuleList([nn.Linear(n_features, hidden), nn.Linear(hidden, hidden),
                                     nn.Linear(hidden, n_actions)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.tanh(self.layers[0](x))
        h = torch.tanh(self.layers[1](h))
        return torch.sigmoid(self.layers[2](h))


class Critic(nn.Module):
    """Q(s, a): normalised state and action -> expected discounted reward."""

    def __init__(self, n_features: int, n_actions: int, hidden: int):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(n_features + n_actions, hidden), nn.ReLU(),
                                 nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, 1))

    def forward(self, x: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([x, a], dim=1)).squeeze(1)


class OrnsteinUhlenbeck:
    """Temporally correlated exploration noise: dx = theta (0 - x) + sigma N(0, 1), per epoch."""

    def __init__(self, size: int, theta: float, sigma: float, rng: np.random.Generator):
        self.size, self.theta, self.sigma, self.rng = size, theta, sigma, rng
        self.x = np.zeros(size)

    def reset(self) -> None:
        self.x = np.zeros(self.size)

    def sample(self) -> np.ndarray:
        self.x = self.x - self.theta * self.x + self.sigma * self.rng.standard_normal(self.size)
        return self.x


class ReplayBuffer:
    """A ring of (s, a, r, s') in numpy arrays; ``sample`` draws uniformly."""

    def __init__(self, capacity: int, n_features: int, n_actions: int):
        self.capacity = capacity
        self.state = np.zeros((capacity, n_features), dtype=np.float32)
        self.action = np.zeros((capacity, n_actions), dtype=np.float32)
        self.reward = np.zeros(capacity, dtype=np.float32)
        self.next_state = np.zeros((capacity, n_features), dtype=np.float32)
        self.size = 0
        self._next = 0

    def add(self, state: np.ndarray, action: np.ndarray, reward: float, next_state: np.ndarray) -> None:
        i = self._next
        self.state[i], self.action[i], self.reward[i], self.next_state[i] = state, action, reward, next_state
        self._next = (i + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)

    def add_many(self, batch: "Transitions") -> None:
        for i in range(len(batch.reward)):
            self.add(batch.state[i], batch.action[i], batch.reward[i], batch.next_state[i])

    def sample(self, rng: np.random.Generator, n: int) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        idx = rng.integers(0, self.size, size=n)
        return self.state[idx], self.action[idx], self.reward[idx], self.next_state[idx]


@dataclass
class Transitions:
    """(s, a, r, s') rows in the actor's spaces: raw states in feature order, actions in [0, 1]."""

    state: np.ndarray
    action: np.ndarray
    reward: np.ndarray
    next_state: np.ndarray
    source: List[str] = field(default_factory=list)  # where they came from (trace database paths)


# ---------------------------------------------------------------- actions and states


class ActionCodec:
    """[0, 1]^(E+2) <-> the controller's Action, through policies_lite's edgeml decoder (board-identical)."""

    def __init__(self, n_exits: int, n_cuts: int, max_interval: int):
        self.n_exits, self.n_cuts, self.max_interval = n_exits, n_cuts, max_interval
        self.spec = EdgeMLDecoderSpec(n_exits=n_exits, n_cuts=n_cuts, max_interval=max_interval,
                                      thresholds="clip", scale="unit")
        self._decode = EdgeMLDecoder(self.spec)

    @property
    def size(self) -> int:
        return self.n_exits + 2

    def decode(self, a: np.ndarray) -> Action:
        decided = self._decode(np.asarray(a, dtype=np.float64))
        return Action(tuple(decided.thresholds), decided.cut, decided.interval, True)

    def encode(self, action: Action) -> np.ndarray:
        """The point of [0, 1]^(E+2) in the middle of the cell that decodes to ``action`` (for logged actions).

        An action run to the final exit (``use_exits`` False, e.g. Neurosurgeon) is thresholds 0: no
        entropy is below 0, so no side exit is taken."""
        thresholds = list(action.thresholds) if action.use_exits else [0.0] * self.n_exits
        cut = (min(max(action.cut, 0), self.n_cuts - 1) + 0.5) / self.n_cuts
        interval = (min(max(action.interval, 1), self.max_interval) - 0.5) / self.max_interval
        return np.clip(np.array(thresholds + [cut, interval], dtype=np.float64), 0.0, 1.0)

    def decoder_meta(self) -> Dict[str, Any]:
        return self.spec.to_meta()


def state_vector(state: Mapping[str, float], features: Sequence[str]) -> np.ndarray:
    return np.array([state[name] for name in features], dtype=np.float64)


def fit_normalisation(states: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Mean and std per feature; a constant feature (e.g. peer_alive always 1) gets std 1."""
    mean = states.mean(axis=0)
    std = states.std(axis=0)
    std = np.where(std > 1e-6 * np.maximum(1.0, np.abs(mean)), std, 1.0)
    return mean, std


# ---------------------------------------------------------------- the agent


class DDPG:
    def __init__(self, n_features: int, codec: ActionCodec, args: Args):
        self.args = args
        self.codec = codec
        torch.manual_seed(args.seed)
        self.rng = np.random.default_rng(args.seed)
        n_actions = codec.size
        self.actor = Actor(n_features, n_actions, args.hidden)
        self.critic = Critic(n_features, n_actions, args.hidden)
        self.actor_target = copy.deepcopy(self.actor)
        self.critic_target = copy.deepcopy(self.critic)
        self.actor_opt = torch.optim.Adam(self.actor.parameters(), lr=args.actor_lr)
        self.critic_opt = torch.optim.Adam(self.critic.parameters(), lr=args.critic_lr)
        self.buffer = ReplayBuffer(args.buffer_size, n_features, n_actions)
        self.noise = OrnsteinUhlenbeck(n_actions, args.ou_theta, args.ou_sigma, self.rng)
        self.mean = np.zeros(n_features)
        self.std = np.ones(n_features)
        self.updates = 0

    def set_normalisation(self, mean: np.ndarray, std: np.ndarray) -> None:
        self.mean, self.std = np.asarray(mean, dtype=np.float64), np.asarray(std, dtype=np.float64)

    def _norm(self, states: np.ndarray) -> torch.Tensor:
        return torch.as_tensor((np.atleast_2d(states) - self.mean) / self.std, dtype=torch.float32)

    def act(self, state: np.ndarray, explore: bool) -> np.ndarray:
        """mu(s) (plus OU noise when exploring), in [0, 1]."""
        with torch.no_grad():
            a = self.actor(self._norm(state))[0].numpy().astype(np.float64)
        if explore:
            a = a + self.noise.sample()
        return np.clip(a, 0.0, 1.0)

    def random_action(self) -> np.ndarray:
        return self.rng.random(self.codec.size)

    def update(self) -> Dict[str, float]:
        """One critic step and one actor step on a sampled batch, then the soft target update."""
        a = self.args
        s, act, r, s2 = self.buffer.sample(self.rng, a.batch_size)
        s, s2 = self._norm(s), self._norm(s2)
        act, r = torch.as_tensor(act), torch.as_tensor(r)
        with torch.no_grad():
            target = r + a.gamma * self.critic_target(s2, self.actor_target(s2))
        critic_loss = nn.functional.mse_loss(self.critic(s, act), target)
        self.critic_opt.zero_grad()
        critic_loss.backward()
        self.critic_opt.step()
        actor_loss = -self.critic(s, self.actor(s)).mean()
        self.actor_opt.zero_grad()
        actor_loss.backward()
        self.actor_opt.step()
        with torch.no_grad():
            for net, target_net in ((self.actor, self.actor_target), (self.critic, self.critic_target)):
                for p, tp in zip(net.parameters(), target_net.parameters()):
                    tp.mul_(1.0 - a.tau).add_(a.tau * p)
        self.updates += 1
        return {"critic_loss": critic_loss.item(), "actor_loss": actor_loss.item()}

    def actor_layers(self) -> List[Tuple[np.ndarray, np.ndarray]]:
        """(W, b) per layer, W shaped (outputs, inputs): the torch and policies_lite layout alike."""
        return [(layer.weight.detach().numpy().astype(np.float64), layer.bias.detach().numpy().astype(np.float64))
                for layer in self.actor.layers]

    def export(self, path, features: Sequence[str], provenance: Mapping[str, Any]) -> str:
        """Write the frozen actor with policies_lite (normalisation in the file); return its policy id. ``features``:
        the names of what it was trained on, in order (``Args.features``; by default EdgeML's, ``EDGEML_FEATURES``)."""
        inputs = self.actor_layers()[0][0].shape[1]
        if len(features) != inputs:
            raise ValueError("the actor reads %d state features, %d names given (%s): give the ones it was trained on, "
                             "in order (Args.features; by default EDGEML_FEATURES)"
                             % (inputs, len(features), ", ".join(features)))
        return save_policy(path, features=list(features), layers=self.actor_layers(),
                           activations=list(ACTOR_ACTIVATIONS), decoder=self.codec.decoder_meta(),
                           mean=self.mean.tolist(), std=self.std.tolist(), provenance=dict(provenance),
                           kind="mlp")


# ---------------------------------------------------------------- the training loop


@dataclass
class EpochLog:
    """Per epoch: the reward, the tasks run and how many met both bounds, how many were right."""

    reward: List[float] = field(default_factory=list)
    tasks: List[int] = field(default_factory=list)
    met: List[int] = field(default_factory=list)
    correct: List[int] = field(default_factory=list)
    cut: List[int] = field(default_factory=list)
    interval: List[int] = field(default_factory=list)

    def to_arrays(self) -> Dict[str, np.ndarray]:
        return {k: np.asarray(v) for k, v in asdict(self).items()}


@dataclass
class Selection:
    """Which actor ``train`` kept: the epoch it was taken at (None: the last) and its validation figures."""

    epoch: Optional[int] = None
    sr: Optional[float] = None
    accuracy: Optional[float] = None
    checks: int = 0
    restart: int = 0  # which of Args.restarts runs it came from

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)


@dataclass
class TrainResult:
    agent: DDPG
    log: EpochLog
    seconds: float
    tasks: int
    episodes: int
    offline_transitions: int
    logged: Transitions  # the transitions of this run, in the actor's spaces
    selection: Selection = field(default_factory=Selection)


VALIDATION_SEED = 1_000_003  # validation episodes never share a seed with training ones


class Validator:
    """Greedy episodes of the actor on the training recordings (fixed starts and seeds); keeps the best actor.

    The environment must offer ``clone()`` (the learning Environment does) and report ``sr`` and ``accuracy``
    in a step's info.
    Selection on validation episodes is part of training: it only sees the training recordings, never the ones a
    policy is evaluated on. It runs on a clone of the training environment, so training's episode is untouched."""

    def __init__(self, env, args: Args):
        self.training_env = env
        self.env = None
        self.args = args
        self.best = Selection()
        self._score = None  # type: Optional[Tuple[float, float]]
        self._actor = None  # type: Optional[Dict[str, torch.Tensor]]

    def check(self, agent: DDPG, epoch: int) -> None:
        infos = [self._episode(agent, k) for k in range(self.args.select_episodes)]
        sr = float(np.mean([i["sr"] for i in infos]))
        accuracy = float(np.mean([i["accuracy"] for i in infos]))
        self.best.checks += 1
        score = (round(sr, 4), round(accuracy, 4))
        if self._score is None or score > self._score:
            self._score = score
            self._actor = copy.deepcopy(agent.actor.state_dict())
            self.best.epoch, self.best.sr, self.best.accuracy = epoch, sr, accuracy

    def _episode(self, agent: DDPG, k: int) -> Mapping[str, Any]:
        if self.env is None:  # a copy, taken once training has reset the environment (it shares the static model)
            self.env = self.training_env.clone()
        recordings = len(getattr(getattr(self.env, "static", None), "recordings", ())) or 1
        state = self.env.reset(seed=VALIDATION_SEED + k, recording=k % recordings, start_s=0.0)
        while True:
            step = self.env.step(agent.codec.decode(agent.act(state_vector(state, self.args.features), explore=False)))
            if step.done:
                return step.info
            state = step.state

    def restore(self, agent: DDPG) -> Selection:
        """Put the best actor seen into ``agent`` (its target network is left as trained)."""
        if self._actor is not None:
            agent.actor.load_state_dict(self._actor)
        return self.best


def _episode_counts(info: Mapping[str, Any]) -> Tuple[int, int, int]:
    """(tasks, met, correct) so far in the episode, from a Step's info (episode-cumulative SR and accuracy)."""
    tasks = int(info["tasks"])
    return tasks, int(round(info["sr"] * tasks)), int(round(info["accuracy"] * tasks))


RESTART_SEED_STEP = 1000


def train(env, args: Args, offline: Optional[Transitions] = None,
          on_epoch: Optional[Callable[[int, EpochLog], None]] = None) -> TrainResult:
    """Train DDPG for ``args.epochs`` actions in ``env`` (the learning Environment contract).

    ``offline``: transitions from trace databases, put in the replay buffer first; the agent fits
    the state normalisation on their states, takes ``pretrain_updates`` gradient steps on them alone
    and (unless ``warmup_with_traces``) skips the random warm-up. With ``args.restarts`` > 1, that many
    runs (``on_epoch`` sees each); the one whose selected actor validated best is returned, with the
    tasks, episodes and seconds of all of them.
    """
    if args.restarts < 1:
        raise ValueError("restarts must be >= 1, got %d" % args.restarts)
    if args.restarts > 1 and not (args.select_every > 0 and args.select_episodes > 0):
        raise ValueError("restarts choose among runs by validation: select_every and select_episodes must be > 0")
    if args.restarts == 1:
        return _train_once(env, args, offline, on_epoch)
    started = time.perf_counter()
    runs = []
    for r in range(args.restarts):
        one = replace(args, seed=args.seed + RESTART_SEED_STEP * r, restarts=1)
        runs.append(_train_once(env.clone() if hasattr(env, "clone") else env, one, offline, on_epoch))
    best = max(runs, key=lambda run: (run.selection.sr or 0.0, run.selection.accuracy or 0.0))
    best.selection.restart = runs.index(best)
    best.tasks = sum(run.tasks for run in runs)
    best.episodes = sum(run.episodes for run in runs)
    best.seconds = time.perf_counter() - started
    return best


def _train_once(env, args: Args, offline: Optional[Transitions],
                on_epoch: Optional[Callable[[int, EpochLog], None]]) -> TrainResult:
    started = time.perf_counter()
    for name in args.features:
        if name not in env.features:
            raise ValueError("feature %r is not one the environment supplies (%s)" % (name, ", ".join(env.features)))
    codec = ActionCodec(env.n_exits, env.n_cuts, args.max_interval)
    agent = DDPG(len(args.features), codec, args)
    warmup = args.warmup_epochs
    n_offline = 0
    if offline is not None and len(offline.reward):
        n_offline = len(offline.reward)
        agent.buffer.add_many(offline)
        agent.set_normalisation(*fit_normalisation(np.concatenate([offline.state, offline.next_state])))
        if agent.buffer.size >= args.batch_size:
            for _ in range(args.pretrain_updates):
                agent.update()
        if not args.warmup_with_traces:
            warmup = 0
    validator = Validator(env, args) if args.select_every > 0 and args.select_episodes > 0 else None
    log_ = EpochLog()
    logged = {"state": [], "action": [], "reward": [], "next_state": []}  # type: Dict[str, List[Any]]
    state = env.reset(seed=args.seed)
    episodes = 1
    agent.noise.reset()
    warm_states = [state_vector(state, args.features)]
    before = (0, 0, 0)
    total_tasks = 0
    for epoch in range(args.epochs):
        x = state_vector(state, args.features)
        if epoch < warmup:
            a = agent.random_action()
        else:
            agent.noise.sigma = _sigma(args, epoch)
            a = agent.act(x, explore=True)
        action = codec.decode(a)
        step = env.step(action)
        x2 = state_vector(step.state, args.features)
        agent.buffer.add(x, a, step.reward, x2)
        for key, value in (("state", x), ("action", a), ("reward", step.reward), ("next_state", x2)):
            logged[key].append(value)
        tasks, met, correct = _episode_counts(step.info)
        log_.reward.append(float(step.reward))
        log_.tasks.append(tasks - before[0])
        log_.met.append(met - before[1])
        log_.correct.append(correct - before[2])
        log_.cut.append(action.cut)
        log_.interval.append(action.interval)
        total_tasks += tasks - before[0]
        before = (tasks, met, correct)
        if epoch < warmup:
            warm_states.append(x2)
            if epoch == warmup - 1:
                agent.set_normalisation(*fit_normalisation(np.array(warm_states)))
        if epoch >= warmup and agent.buffer.size >= args.batch_size:
            for _ in range(args.updates_per_epoch):
                agent.update()
        state = step.state
        if step.done:
            state = env.reset()
            episodes += 1
            agent.noise.reset()
            before = (0, 0, 0)
        if validator is not None and epoch >= warmup and (epoch + 1 - warmup) % args.select_every == 0:
            validator.check(agent, epoch)
        if on_epoch is not None:
            on_epoch(epoch, log_)
    if warmup >= args.epochs and warmup > 0:  # a run shorter than the warm-up still gets a normalisation
        agent.set_normalisation(*fit_normalisation(np.array(warm_states)))
    selection = Selection()
    if validator is not None and args.epochs > warmup:
        validator.check(agent, args.epochs - 1)  # the last actor is a candidate too
        selection = validator.restore(agent)
    log.info("ddpg: %d epochs, %d tasks, %d episodes, %d updates in %.1f s", args.epochs, total_tasks, episodes,
             agent.updates, time.perf_counter() - started)
    transitions = Transitions(np.array(logged["state"]).reshape(-1, len(args.features)),
                              np.array(logged["action"]).reshape(-1, codec.size), np.array(logged["reward"]),
                              np.array(logged["next_state"]).reshape(-1, len(args.features)))
    return TrainResult(agent, log_, time.perf_counter() - started, total_tasks, episodes, n_offline, transitions,
                       selection)


def _sigma(args: Args, epoch: int) -> float:
    span = max(1, args.epochs - args.warmup_epochs - 1)
    progress = min(1.0, max(0.0, (epoch - args.warmup_epochs) / span))
    return args.ou_sigma + (args.ou_sigma_final - args.ou_sigma) * progress


def hyperparameters(args: Args) -> Dict[str, Any]:
    """``Args`` as JSON-able provenance."""
    out = asdict(args)
    out["features"] = list(args.features)
    return out


def moving_average(values: Sequence[float], window: int) -> np.ndarray:
    values = np.asarray(values, dtype=float)
    if len(values) == 0:
        return values
    window = max(1, min(window, len(values)))
    csum = np.cumsum(np.insert(values, 0, 0.0))
    out = np.empty(len(values))
    for i in range(len(values)):
        lo = max(0, i + 1 - window)
        out[i] = (csum[i + 1] - csum[lo]) / (i + 1 - lo)
    return out
