"""What decides the action: a frozen policy, or one of the static baselines, behind one interface.

An ``Action`` is EdgeML's (per-exit thresholds, cut, interval in tasks) plus ``use_exits`` (False:
run to the final exit, as Neurosurgeon does). ``Strategy.decide(state)`` gets the controller's
state as a name -> number mapping (see ``edgesplit.runtime.controller.state.FEATURES``).
"""
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Mapping, NamedTuple, Optional, Sequence, Tuple

from edgesplit.policies_lite import FrozenPolicy, PolicyError, load_policy

from edgesplit.runtime.controller.state import FEATURES
from edgesplit.runtime.errors import EdgesplitError, InputError
from edgesplit.runtime.shipped_policy import resolve_policy_path


log = logging.getLogger(__name__)


class PolicyLoadError(EdgesplitError):
    """A policy file cannot be used on this board (the message names the file and the problem)."""


class EnergyInput(NamedTuple):
    """What the session feeds the controller as energy: the reading, its unit, and where that is set."""

    proxy: str  # the board config's [policy] energy_proxy (gpu_freq, power_total, ...), or "emulated"
    unit: str  # MHz, W, mJ, ...
    source: str  # e.g. "board x86_cpu" or "the emulated board's power model"


@dataclass(frozen=True)
class Action:
    thresholds: Tuple[float, ...]
    cut: int
    interval: int = 1
    use_exits: bool = True

    def to_dict(self) -> Dict[str, Any]:
        # Asked several times per task (decision log, transition row, daemon status): rounded once per action.
        cached = self.__dict__.get("_as_dict")
        if cached is None:
            cached = (tuple(round(t, 4) for t in self.thresholds), self.cut, self.interval, self.use_exits)
            object.__setattr__(self, "_as_dict", cached)  # frozen: fields stay as they are, this is a cache
        return {"thresholds": list(cached[0]), "cut": cached[1], "interval": cached[2], "use_exits": cached[3]}


class Strategy:
    name = "strategy"
    policy_id = None  # type: Optional[str]

    def decide(self, state: Mapping[str, float]) -> Action:
        raise NotImplementedError

    def describe(self) -> Dict[str, Any]:
        return {"name": self.name, "policy_id": self.policy_id}


class StaticStrategy(Strategy):
    """The same action for every task (the interval only sets how often a transition is logged)."""

    def __init__(self, name: str, action: Action):
        self.name = name
        self.action = action
        self.policy_id = "static:%s" % name

    def decide(self, state: Mapping[str, float]) -> Action:
        return self.action

    def describe(self) -> Dict[str, Any]:
        return dict(super().describe(), action=self.action.to_dict())


class PolicyStrategy(Strategy):
    """A frozen policy (``policies_lite``) with an EdgeML decoder."""

    def __init__(self, policy: FrozenPolicy, name: str = "adaptive"):
        if policy.decoder_type != "edgeml":
            raise PolicyLoadError("%s: decoder %r; the controller applies EdgeML actions (thresholds, cut, "
                                  "interval): export the policy with an edgeml decoder"
                                  % (policy.source, policy.decoder_type))
        self.policy = policy
        self.name = name
        self.policy_id = policy.policy_id

    def decide(self, state: Mapping[str, float]) -> Action:
        try:
            decided = self.policy.decide_from(state)
        except PolicyError as exc:
            raise InputError("policy %s: %s" % (self.policy_id[:12], exc)) from None
        return Action(tuple(decided.thresholds), decided.cut, decided.interval, True)

    def describe(self) -> Dict[str, Any]:
        return dict(super().describe(), source=str(self.policy.source), features=list(self.policy.features),
                    provenance={k: v for k, v in self.policy.provenance.items() if k != "grid_check"})


def check_energy_unit(policy: FrozenPolicy, path, energy: EnergyInput) -> None:
    """Refuse a policy trained on energy in another unit, or on another live reading in the same unit: its energy
    input would be on another scale."""
    unit = policy.provenance.get("energy_unit")
    if unit is None:
        log.warning("%s: the policy records no energy unit (provenance.energy_unit); it gets %s in %s from %s",
                    path, energy.proxy, energy.unit, energy.source)
        return
    if unit != energy.unit:
        built = policy.provenance.get("energy_proxy") or ("an emulated board's power model"
                                                           if policy.provenance.get("board_emulated") else None)
        board = policy.provenance.get("board")
        if energy.proxy != "emulated" and (policy.provenance.get("board_emulated")
                                           or policy.provenance.get("energy_proxy") == "emulated"):
            # A policy trained in the emulator (train, build-policy) reads the emulated board's energy in mJ: what
            # makes it runnable is emulating that board, not another live reading.
            raise PolicyLoadError("%s: the policy was trained for the EMULATED board %s (energy in %s from its power "
                                  "model), but %s measures energy as %s in %s: run it where that board is emulated "
                                  "([emulation] board = %r in the daemon's config, run --board %s), or build one for "
                                  "this board's reading (edgesplit profile, then build-policy --measured-profile)"
                                  % (path, board or "(unnamed)", unit, energy.source, energy.proxy, energy.unit,
                                     board or "NAME", board or "NAME"))
        if energy.proxy == "emulated":
            # the other way round: a live board's policy where a board is emulated (run --board, demo, evaluate)
            raise PolicyLoadError("%s: the policy was built for energy in %s%s, a live board's reading, but %s "
                                  "measures energy in %s from its power model: run it on a board that reads %s, or "
                                  "build or train one for the emulated board (build-policy, train)"
                                  % (path, unit, " (%s)" % built if built else "", energy.source, energy.unit,
                                     built or unit))
        raise PolicyLoadError("%s: the policy was built for energy in %s%s, but %s measures energy as %s in %s: "
                              "build a policy for this energy proxy (traces from this board), or set the board "
                              "config's [policy] energy_proxy to a reading in %s"
                              % (path, unit, " (%s)" % built if built else "", energy.source, energy.proxy,
                                 energy.unit, unit))
    proxy = policy.provenance.get("energy_proxy")
    if proxy not in (None, "emulated") and energy.proxy != "emulated" and proxy != energy.proxy:
        # Same unit, another reading (the GPU clock for the CPU clock): another scale all the same.
        raise PolicyLoadError("%s: the policy was built for energy proxy %s (in %s), but %s feeds %s: build the "
                              "policy from a profile of this board (edgesplit profile, then build-policy "
                              "--measured-profile), or set the board config's [policy] energy_proxy = %r"
                              % (path, proxy, unit, energy.source, energy.proxy, proxy))


def load_policy_strategy(path, n_exits: int, n_cuts: int, name: str = "adaptive",
                         energy: Optional[EnergyInput] = None, features: Sequence[str] = FEATURES,
                         bundle=None, board_name: Optional[str] = None) -> PolicyStrategy:
    """Load and check a policy file against this bundle, the features the state supplies (the controller's;
    the learning environment supplies more) and, when ``energy`` says what the energy input is, the policy's
    energy unit. ``demo`` names the shipped demo policy (``resolve_policy_path``). With ``bundle`` (a loaded
    Bundle), a policy that records another bundle's hash is logged as a warning: its thresholds and cuts were
    chosen for another model's exits (the same counts let it load; a re-exported model changes the hash too,
    so it is not refused). With ``board_name`` (the board it will run on, emulated or live), a policy that records
    another board is logged as a warning too: its segment times and energy were that board's."""
    path = resolve_policy_path(str(path))
    try:
        policy = load_policy(Path(path), available_features=features)
    except PolicyError as exc:
        raise PolicyLoadError(str(exc)) from None
    decoder = policy.spec.decoder
    if getattr(decoder, "n_exits", None) != n_exits or getattr(decoder, "n_cuts", None) != n_cuts:
        raise PolicyLoadError("%s: the policy was built for %s early exits and %s cuts, the bundle has %d and %d: "
                              "build a policy for this bundle (edgesplit build-policy)"
                              % (path, getattr(decoder, "n_exits", "?"), getattr(decoder, "n_cuts", "?"), n_exits,
                                 n_cuts))
    if energy is not None:
        check_energy_unit(policy, path, energy)
    if bundle is not None:
        check_bundle(policy, path, bundle)
    trained_on = policy.provenance.get("board")
    if board_name and isinstance(trained_on, str) and trained_on != board_name:
        log.warning("%s: the policy was built for board %s, it runs on board %s: its timing and energy were "
                    "that board's; build or train one for %s", path, trained_on, board_name, board_name)
    return PolicyStrategy(policy, name)


def check_bundle(policy: FrozenPolicy, path, bundle) -> None:
    recorded = policy.provenance.get("bundle_sha256")
    if isinstance(recorded, str) and recorded not in (bundle.hash, bundle.wire_hash):
        log.warning("%s: the policy was built for bundle %s (sha256 %s...), this one is %s (sha256 %s...): its "
                    "thresholds and cuts were chosen for that model's exits; build or train one for this bundle",
                    path, policy.provenance.get("bundle", "?"), recorded[:12], bundle.manifest.name,
                    bundle.hash[:12])


def local_only(n_exits: int, last_cut: int, thresholds: Sequence[float]) -> StaticStrategy:
    return StaticStrategy("local-only", Action(tuple(thresholds), last_cut, 1, True))


def remote_only(n_exits: int) -> StaticStrategy:
    """Ship the input at cut 0; the peer runs the whole model to its final exit."""
    return StaticStrategy("remote-only", Action(tuple([0.0] * n_exits), 0, 1, False))


def fixed(name: str, cut: int, thresholds: Sequence[float], use_exits: bool = True) -> StaticStrategy:
    return StaticStrategy(name, Action(tuple(thresholds), cut, 1, use_exits))
