"""The strategy that ``run``'s action flags describe, for ``run`` and for anything that must decide as it does.

``--policy FILE`` loads a frozen policy (on an emulated board its energy input is the board's power model
in mJ; on a live board ``run`` measures no energy); otherwise ``--cut``/``--thresholds``/``--no-exits``
give a static action, defaulting to everything local with the manifest's thresholds.
"""
from typing import Optional

from edgesplit.runtime.controller.strategies import EnergyInput, Strategy, fixed, load_policy_strategy
from edgesplit.runtime.emulation.board import ENERGY_UNIT
from edgesplit.runtime.errors import InputError
from edgesplit.runtime.inputs import parse_thresholds


def strategy_from_flags(manifest, policy: Optional[str] = None, cut: Optional[int] = None,
                        thresholds: Optional[str] = None, no_exits: bool = False,
                        emulated_board: Optional[str] = None, bundle=None) -> Strategy:
    n_side = len([e for e in manifest.exits if e.head is not None])
    if policy and (cut is not None or thresholds):
        raise InputError("give either --policy or --cut/--thresholds, not both")
    if policy:
        energy = (EnergyInput("emulated", ENERGY_UNIT, "the emulated board %s" % emulated_board)
                  if emulated_board else None)
        return load_policy_strategy(policy, n_side, len(manifest.cuts), energy=energy, bundle=bundle,
                                    board_name=emulated_board)
    cut = len(manifest.main) if cut is None else cut
    if not 0 <= cut <= len(manifest.main):
        raise InputError("--cut %d: the bundle's cuts are 0..%d" % (cut, len(manifest.main)))
    parsed = parse_thresholds(thresholds)
    if parsed is None:
        parsed = [e.threshold for e in manifest.exits if e.head is not None]
    if len(parsed) != n_side:
        raise InputError("--thresholds: got %d thresholds for %d early exits" % (len(parsed), n_side))
    return fixed("static cut %d" % cut, cut, parsed, use_exits=not no_exits)
