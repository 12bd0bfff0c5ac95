"""``edgesplit status``: what the running daemon is doing, from its local API."""
from edgesplit.runtime.api.client import ApiClient
from edgesplit.runtime.commands.api_socket import add_socket_arguments, socket_of
from edgesplit.runtime.commands.output import print_json


def register(commands) -> None:
    parser = commands.add_parser(
        "status",
        description="Asks the daemon on its local API socket for its live figures: state, uptime, queue length "
                    "and capacity, the current action (thresholds, cut), the policy id, peer state and estimated "
                    "bandwidth, answered/fallback/expired/refused counts and recent latency.")
    add_socket_arguments(parser)
    parser.add_argument("--json", action="store_true", help="print the full status as JSON")
    parser.set_defaults(handler=run_status)


def run_status(args) -> int:
    with ApiClient(socket_of(args), timeout_s=args.timeout) as client:
        status = client.status()
    if args.json:
        print_json(status)
        return 0
    tasks, peer, queue, policy = status["tasks"], status["peer"], status["queue"], status["policy"]
    latency = tasks["latency_ms"]
    print("state      %s (pid %s, up %.0f s, ready %.2f s after start)" % (
        status["state"], status["pid"], status["uptime_s"], status["startup_s"] or float("nan")))
    print("queue      %d / %d" % (queue["length"], queue["capacity"]))
    if "board" in status:  # daemons before the one-pipeline change did not report these
        print("board      %s on %s" % (status["board"] or "none", ", ".join(status["providers"])))
        proxy = status["sensors"].get("energy_proxy")
        if proxy:
            print("energy     %s" % ("%s %.6g %s (%s)" % (proxy["reading"], proxy["latest"], proxy["unit"], proxy["source"])
                                     if proxy["available"] else "%s unavailable: %s" % (proxy["reading"], proxy["source"])))
    print("action     %s" % _action(status["current_action"]))
    print("policy     %s %s%s" % (policy["name"], policy["policy_id"], " (%s)" % policy["note"] if policy["note"] else ""))
    if peer["address"]:
        bandwidth = peer["bandwidth_bps"]
        print("peer       %s %s%s%s" % (peer["address"], "up" if peer["alive"] else "DOWN",
                                        ", %.2f Mbit/s" % (bandwidth / 1e6) if bandwidth else "",
                                        ", CurveZMQ" if peer["secure"] else ", plain"))
        if not peer["alive"] and peer["secure"]:
            print("           (no answer to probes: with CurveZMQ a peer that refuses this device's key is silent too; "
                  "its log says 'refused device key')")
    else:
        print("peer       none (every task runs locally)")
    print("tasks      %d answered, %d offloaded, %d fallbacks, %d expired, %d errors, %d late" % (
        tasks["ok"], tasks["offloaded"], tasks["fallbacks"], tasks["expired"], tasks["errors"],
        tasks["missed_deadline"]))
    if status["refused"]:
        print("refused    %s" % ", ".join("%s %d" % kv for kv in sorted(status["refused"].items())))
    if latency["p50"] is not None:
        print("latency    p50 %.2f ms, p95 %.2f ms (recent)" % (latency["p50"], latency["p95"]))
    print("traces     %s (%d rows committed)" % (status["traces"]["path"], status["traces"]["committed_rows"]))
    selector = status.get("selector")
    if selector:
        print("selector   %s, %d ratings, %d awaiting one" % (selector["kind"], selector["ratings"],
                                                            selector["awaiting_rating"]))
        for arm in selector["arms"]:
            print("  arm %-12s estimate %+.3f +- %.3f, chosen %d, rated %d, %.2f ms" % (
                arm["name"], arm["estimate"], arm["width"], arm["chosen"], arm["rated"], arm["latency_ms"]))
    if status["restart_needed_for"]:
        print("restart needed to apply: %s" % ", ".join(status["restart_needed_for"]))
    return 0


def _action(action) -> str:
    """The action the controller took last, as people read it (``--json`` has the mapping)."""
    if not action:
        return "none yet"
    if not isinstance(action, dict):
        return str(action)
    cut = action.get("cut")
    parts = ["cut %s" % cut if cut is not None else "local"]
    thresholds = action.get("thresholds")
    if action.get("use_exits", True) and thresholds:
        parts.append("exit thresholds %s" % ", ".join("%.4g" % t for t in thresholds))
    elif not action.get("use_exits", True):
        parts.append("no early exits")
    if action.get("interval") is not None:
        parts.append("for %s task(s)" % action["interval"])
    return ", ".join(parts)
