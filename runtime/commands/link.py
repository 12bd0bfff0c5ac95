"""``edgesplit link``: a software link between device and peer that replays a bandwidth trace."""
import asyncio
import json
import logging
import signal

from edgesplit.runtime.commands.output import print_json, print_table
from edgesplit.runtime.errors import InputError
from edgesplit.runtime.link.relay import DEFAULT_BURST_BYTES, SoftwareLink, parse_tcp_endpoint
from edgesplit.runtime.link.shipped import DEFAULT_TRACE, resolve_trace, shipped_traces
from edgesplit.runtime.link.trace_readers import FORMATS, read_trace

log = logging.getLogger(__name__)


def register(commands) -> None:
    parser = commands.add_parser(
        "link",
        description="Listens on --listen, forwards every connection to --to, and limits each direction to the "
                    "trace's bandwidth, one trace step per second (faster with --time-scale), adding half the "
                    "base RTT each way. Needs no root. Point the device at the --listen address instead of the "
                    "peer. Traces: a file in the FCC / Norway 3G / Ghent 4G (Pensieve 'cooked', Mbit/s), Ghent raw "
                    "or ReCoCo JSON, or multipath (CSV, bytes/s) formats, or the name of a shipped trace "
                    "(--list-traces).")
    parser.add_argument("--listen", default="tcp://127.0.0.1:5556", help="where devices connect (default %(default)s)")
    parser.add_argument("--to", default="tcp://127.0.0.1:5555", help="the peer's endpoint (default %(default)s)")
    parser.add_argument("--trace", default=DEFAULT_TRACE,
                        help="trace file or shipped trace name (default %(default)s, a Norway 3G car ride)")
    parser.add_argument("--format", choices=FORMATS, default="auto", help="trace format (default: detect)")
    parser.add_argument("--rtt-ms", type=float, default=20.0, help="base round-trip time in ms (default %(default)s)")
    parser.add_argument("--time-scale", type=float, default=1.0,
                        help="replay speed: 2 plays each 1-s trace step in 0.5 s (default %(default)s)")
    parser.add_argument("--burst-bytes", type=int, default=DEFAULT_BURST_BYTES,
                        help="bytes the link may save up while idle and send at once (default %(default)s: every "
                             "byte waits its serialisation time, as on a real bottleneck; 1500 = one MTU)")
    parser.add_argument("--list-traces", action="store_true", help="list the shipped traces and exit")
    parser.add_argument("--json", action="store_true",
                        help="print JSON: a ready line, one line per trace step, stats at exit")
    parser.set_defaults(handler=run_link)


def _list_traces(as_json: bool) -> int:
    summaries = [dict(read_trace(path).summary(), name=name) for name, path in shipped_traces().items()]
    if as_json:
        print_json(summaries)
    else:
        print_table(["name", "steps (s)", "mean Mbit/s", "min", "max"],
                    [[s["name"], s["steps"], s["mean_mbps"], s["min_mbps"], s["max_mbps"]] for s in summaries])
    return 0


def run_link(args) -> int:
    if args.list_traces:
        return _list_traces(args.json)
    if args.rtt_ms < 0 or not args.time_scale > 0 or args.burst_bytes < 0:
        raise InputError("--rtt-ms and --burst-bytes must be >= 0 and --time-scale > 0 (got %s, %s and %s)"
                         % (args.rtt_ms, args.burst_bytes, args.time_scale))
    try:
        listen = parse_tcp_endpoint(args.listen, "--listen")
        target = parse_tcp_endpoint(args.to, "--to")
    except ValueError as exc:
        raise InputError(str(exc)) from None
    trace = read_trace(resolve_trace(args.trace), args.format)
    link = SoftwareLink(listen, target, trace, rtt_s=args.rtt_ms / 1000.0, time_scale=args.time_scale,
                        burst_bytes=args.burst_bytes)
    return asyncio.run(_serve(link, args))


async def _serve(link: SoftwareLink, args) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_event_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        port = await link.start()
    except OSError as exc:
        raise InputError("cannot listen on %s: %s" % (args.listen, exc)) from None
    endpoint = "tcp://%s:%d" % (link.listen[0], port)
    summary = link.schedule.trace.summary()
    if args.json:
        print(json.dumps({"event": "ready", "endpoint": endpoint, "to": args.to, "rtt_ms": args.rtt_ms,
                          "time_scale": args.time_scale, "trace": summary}), flush=True)
    else:
        print("edgesplit link: %s -> %s, trace %s (mean %.2f Mbit/s), base RTT %.0f ms, time scale %g; Ctrl-C to stop"
              % (endpoint, args.to, summary["source"], summary["mean_mbps"], args.rtt_ms, args.time_scale), flush=True)
    while not stop.is_set():
        now = link.clock()
        if args.json:
            print(json.dumps({"event": "step", "step": link.schedule.step_index(now),
                              "rate_mbps": round(link.rate_bps() / 1e6, 3), "bytes_up": link.stats.bytes_up,
                              "bytes_down": link.stats.bytes_down}), flush=True)
        else:
            log.info("step %d: %.3f Mbit/s", link.schedule.step_index(now), link.rate_bps() / 1e6)
        try:
            await asyncio.wait_for(stop.wait(), timeout=max(0.001, link.schedule.next_change(now) - link.clock()))
        except asyncio.TimeoutError:
            pass
    await link.close()
    if args.json:
        print(json.dumps({"event": "stopped", "connections": link.stats.connections,
                          "bytes_up": link.stats.bytes_up, "bytes_down": link.stats.bytes_down}), flush=True)
    return 0
