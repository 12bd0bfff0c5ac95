"""What a policy's provenance says about the scenario it was made for, read one way by every command.

Provenance is free-form JSON (``format``): only ``traces``, ``algorithm`` and ``date`` are required. The bounds are
recorded in two shapes: ``train`` (DDPG and the search) writes ``{"bounds": {"latency_s": ..., "energy": ...}}``,
``build-policy`` writes ``latency_bound_s`` and ``energy_bound``. ``recorded_bounds`` gives either as the first.
"""
from typing import Any, Dict, Mapping


def recorded_bounds(provenance: Mapping[str, Any]) -> Dict[str, Any]:
    """The bounds the policy was made for: ``latency_s`` (seconds) and ``energy`` (None: made without an energy bound),
    each only where the provenance records it; values as recorded (free-form JSON: check their type before use)."""
    bounds = provenance.get("bounds")
    if isinstance(bounds, dict):
        return {k: bounds[k] for k in ("latency_s", "energy") if k in bounds}
    return {k: provenance[old] for k, old in (("latency_s", "latency_bound_s"), ("energy", "energy_bound"))
            if old in provenance}
