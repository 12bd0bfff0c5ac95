"""``edgesplit policy``: what a frozen policy file is, without writing Python.

    edgesplit policy show P.npz|demo [--json]

The file is loaded with ``policies_lite`` exactly as ``serve`` and ``run`` load it (every field checked, the
content id recomputed), so a file that shows here loads there, and a damaged one is refused with the same message.
"""
import argparse
import json
from collections import Counter
from typing import Any, List, Mapping, Optional, Tuple

from edgesplit.policies_lite import PolicyError, load_policy
from edgesplit.policies_lite.format import spec_to_meta
from edgesplit.policies_lite.provenance import recorded_bounds
from edgesplit.runtime.commands.output import print_json
from edgesplit.runtime.controller.strategies import PolicyLoadError
from edgesplit.runtime.shipped_policy import DEMO_POLICY, resolve_policy_path

TOP_WIDTH = 10
PROVENANCE_WIDTH = 19
# Provenance keys the text shows on their own line (or folds into one); the rest are listed by name only.
SHOWN = ("algorithm", "date", "board", "board_emulated", "bundle", "bundle_sha256", "bounds", "latency_bound_s",
         "energy_bound", "energy_unit", "environment_version", "seeds", "seed", "recordings", "traces", "from_traces",
         "hyperparameters", "gated_policy", "policy_id", "workload_scale", "link_mean_mbps", "link_scale",
         "recording_speed", "period_s", "rtt_s")


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "policy",
        description="Look into frozen policy files (.npz written by build-policy, train or policies_lite.save_policy).")
    commands = parser.add_subparsers(dest="policy_command", metavar="SUBCOMMAND")
    parser.set_defaults(handler=lambda args: _usage(parser))
    show = commands.add_parser(
        "show", help="what a policy file is: features, layers, decoder, provenance",
        description="Load a frozen policy as serve and run load it and print what it is: its id, kind (linear or "
                    "mlp), the features it needs in order, the layer sizes and activations, the action decoder "
                    "(edgeml: exits, cuts, max interval; task_choice: the (exit, cut) pairs), and a summary of its "
                    "provenance (algorithm, date, board, bundle and its sha256, bounds, environment version, seeds, "
                    "the bandwidth recordings counted by role, hyperparameters on one line, a search policy's gated "
                    "policy); provenance keys the file lacks are left out. A file that does not load is refused with "
                    "the loader's message.")
    show.add_argument("policy", metavar="P.npz",
                      help="policy file, or '%s' for the policy shipped for the demo (unless a file of that name "
                           "exists here)" % DEMO_POLICY)
    show.add_argument("--json", action="store_true",
                      help="print one JSON object: path, policy id, parameter count and the whole metadata, "
                           "provenance in full (every recording's path and sha256)")
    show.set_defaults(handler=_show)


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def _show(args) -> int:
    path = resolve_policy_path(args.policy)
    try:
        policy = load_policy(path)
    except PolicyError as exc:
        raise PolicyLoadError(str(exc)) from None
    meta = spec_to_meta(policy.spec)
    sizes = meta["layer_sizes"]
    parameters = sum(n_in * n_out + n_out for n_in, n_out in zip(sizes[:-1], sizes[1:]))
    if args.json:
        print_json({"path": str(path), "policy_id": policy.policy_id, "parameters": parameters, "meta": meta})
        return 0
    layers = " -> ".join([str(sizes[0])] + ["%d %s" % (n, act) for n, act in zip(sizes[1:], meta["activations"])])
    _print_rows([("policy", str(path)), ("id", policy.policy_id), ("kind", meta["kind"]),
                 ("features", ", ".join(meta["features"])),
                 ("layers", "%s (%d parameters)" % (layers, parameters)),
                 ("decoder", _decoder(meta["decoder"])), ("provenance", "")], TOP_WIDTH, "")
    _print_rows(_provenance_rows(meta["provenance"]), PROVENANCE_WIDTH, "  ")
    return 0


def _print_rows(rows: List[Tuple[str, str]], width: int, indent: str) -> None:
    for name, value in rows:
        print(("%s%-*s  %s" % (indent, width, name, value)).rstrip())


def _decoder(decoder: Mapping[str, Any]) -> str:
    if decoder["type"] == "task_choice":
        pairs = ["(%d, %s)" % (e, "local" if c is None else c) for e, c in decoder["choices"]]
        return "task_choice: %d choices (exit, cut): %s" % (len(pairs), ", ".join(pairs))
    return "%s: %s" % (decoder["type"], ", ".join("%s %s" % (k, v) for k, v in decoder.items() if k != "type"))


def _provenance_rows(prov: Mapping[str, Any]) -> List[Tuple[str, str]]:
    rows = [("algorithm", prov.get("algorithm")), ("date", prov.get("date")), ("board", _board(prov)),
            ("bundle", _bundle(prov)), ("bounds", _bounds(prov)), ("scenario", _scenario(prov)),
            ("environment_version", prov.get("environment_version")), ("seeds", _seeds(prov)),
            ("recordings", _recordings(prov.get("recordings"))),
            ("traces", None if "recordings" in prov else _count_paths(prov.get("traces"))),
            ("from_traces", _count_paths(prov.get("from_traces")) if prov.get("from_traces") else None),
            ("hyperparameters", _one_line(prov.get("hyperparameters"))),
            ("gated_policy", _gated(prov.get("gated_policy")))]
    rows = [(name, str(value)) for name, value in rows if value not in (None, "")]
    others = sorted(k for k in prov if k not in SHOWN)
    if others:
        rows.append(("other", "%s (--json shows them)" % ", ".join(others)))
    return rows


def _board(prov: Mapping[str, Any]) -> Optional[str]:
    if not prov.get("board"):
        return None
    return "%s%s" % (prov["board"], " (emulated)" if prov.get("board_emulated") else "")


def _bundle(prov: Mapping[str, Any]) -> Optional[str]:
    sha = prov.get("bundle_sha256")
    digest = "sha256 %s" % sha[:12] if isinstance(sha, str) and sha else None
    if prov.get("bundle"):
        return "%s (%s)" % (prov["bundle"], digest) if digest else str(prov["bundle"])
    return digest


def _bounds(prov: Mapping[str, Any]) -> Optional[str]:
    bounds = recorded_bounds(prov)
    latency, energy = bounds.get("latency_s"), bounds.get("energy")
    has_energy = "energy" in bounds
    parts = []
    if isinstance(latency, (int, float)):
        parts.append("latency %g ms" % (1e3 * latency))
    if isinstance(energy, (int, float)):
        parts.append(("energy %g %s" % (energy, prov.get("energy_unit", ""))).rstrip())
    elif has_energy:
        parts.append("no energy bound")
    return ", ".join(parts) or None


def _scenario(prov: Mapping[str, Any]) -> Optional[str]:
    """What else of the scenario it was trained in ('edgesplit evaluate' warns where its own differs)."""
    def number(key: str) -> Optional[float]:
        value = prov.get(key)
        return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None

    parts = []
    if number("workload_scale") is not None:
        parts.append("workload x%g" % number("workload_scale"))
    if number("link_mean_mbps") is not None:
        parts.append("recordings scaled to a %g Mbit/s mean" % number("link_mean_mbps"))
    elif number("link_scale") is not None:
        parts.append("link scale %g" % number("link_scale"))
    if number("recording_speed") is not None:
        parts.append("recording speed %g" % number("recording_speed"))
    if number("period_s") is not None:
        parts.append("one task per %g ms" % (1e3 * number("period_s")))
    if number("rtt_s") is not None:
        parts.append("RTT %g ms" % (1e3 * number("rtt_s")))
    return ", ".join(parts) or None


def _seeds(prov: Mapping[str, Any]) -> Optional[str]:
    seeds = prov.get("seeds", [prov["seed"]] if "seed" in prov else None)
    if not isinstance(seeds, list) or not seeds:
        return None
    return ", ".join(str(s) for s in seeds)


def _recordings(recordings: Any) -> Optional[str]:
    if not isinstance(recordings, list):
        return None
    # a role is text when save_policy's callers wrote it; anything else is shown, never trusted to be hashable
    roles = Counter(_text(r.get("role")) for r in recordings if isinstance(r, dict) and r.get("role") is not None)
    by_role = ", ".join("%d %s" % (n, role) for role, n in roles.items() if role)  # first-seen order
    return "%d: %s" % (len(recordings), by_role) if by_role else str(len(recordings))


def _count_paths(paths: Any) -> Optional[str]:
    if not isinstance(paths, list):
        return None
    return "%d (paths with --json)" % len(paths) if paths else "none"


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(not isinstance(v, (list, dict)) for v in value):
        return ",".join(_text(v) for v in value)
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def _one_line(params: Any) -> Optional[str]:
    if not isinstance(params, dict):
        return None if params is None else _text(params)
    return " ".join("%s=%s" % (k, _text(v)) for k, v in sorted(params.items()))


def _gated(gated: Any) -> Optional[str]:
    """A search policy's two actions and its gate; any other shape as compact JSON."""
    if gated is None:
        return None
    try:
        sides = ["%s: cut %d, thresholds %s" % (side, gated[side]["cut"],
                                                ", ".join("%g" % t for t in gated[side]["thresholds"]))
                 for side in ("local", "remote")]
        text = "%s; gate %g Mbit/s, interval %s" % ("; ".join(sides), gated["gate_mbps"], gated["interval"])
        fast = gated.get("fast")
        if fast is not None:  # a search policy with a memory (train --algo search --memory)
            steps = int(fast.get("steps", 1))  # --fast-steps K: step k from remote_share >= k/K of the share gate
            if steps > 1:
                text += ("; fast: cut %d, threshold %g, while the gate is shut, in %d steps: the k-th from remote_share"
                         " >= k/%d x %g" % (fast["cut"], fast["threshold"], steps, steps, fast["share_gate"]))
            else:
                text += "; fast: cut %d, threshold %g, while the gate is shut and remote_share >= %g" % (
                    fast["cut"], fast["threshold"], fast["share_gate"])
        fast_remote = gated.get("fast_remote")
        if fast_remote is not None:  # train --algo search --memory --fast-remote
            text += "; fast remote: cut %d, threshold %g, while the gate is open and remote_share >= %g" % (
                fast_remote["cut"], fast_remote["threshold"], fast_remote["share_gate"])
        if gated.get("hysteresis_mbps") is not None:  # train --algo search --hysteresis
            text += "; the gate lowered by %g Mbit/s x remote_share" % gated["hysteresis_mbps"]
        return text
    except (KeyError, TypeError, ValueError):
        return _text(gated)
