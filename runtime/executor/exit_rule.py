"""The exit rule, in one place for the executor, the device loop's fallback and the off-board environment.

An early exit is taken when its head's normalised entropy is strictly below the exit's threshold
(``takes_exit``; it works on numbers and on numpy arrays alike, so the planner and the environment
apply it to a whole profiling set at once). When the peer fails a task, the device finishes it at the
deepest exit it can still reach before the deadline, or at the first exit after the cut when none can
(``fallback_target``).
"""
from typing import Sequence


def takes_exit(entropy, threshold):
    """True where the exit is confident enough to answer: entropy < threshold."""
    return entropy < threshold


def fallback_target(reach_s: Sequence[float], remaining_s: float) -> int:
    """Index (into ``reach_s``) of the exit a fallback forces.

    ``reach_s[i]``: estimated local seconds from the cut to the i-th exit after it (non-decreasing).
    The deepest exit reachable within ``remaining_s``; the first one when none is.
    """
    if not reach_s:
        raise ValueError("no exit after the cut to fall back to")
    target = 0
    for i, seconds in enumerate(reach_s):
        if seconds <= remaining_s:
            target = i
    return target
