"""``edgesplit link``: a software link between device and peer that replays a bandwidth recording."""
import asyncio
import json
import logging
import signal

from edgesplit.runtime.commands.output import print_json, print_table
from edgesplit.runtime.errors import InputError
from edgesplit.runtime.emulation.link.relay import DEFAULT_BURST_BYTES, SoftwareLink, parse_tcp_endpoint
from edgesplit.runtime.emulation.link.shipped import DEFAULT_RECORDING, resolve_recording, shipped_recordings
from edgesplit.runtime.emulation.link.recording_readers import FORMATS, read_recording

log = logging.getLogger(__name__)


def register(commands) -> None:
    parser = commands.add_parser(
        "link",
        description="Listens on --listen, forwards every connection to --to, and limits each direction to the "
                    "bandwidth recording's rate, one recorded step per second (faster with --time-scale), adding half the "
                    "base RTT each way. Needs no root. Point the device at the --listen address instead of the "
                    "peer. Bandwidth recordings (recorded link capacity over time, called traces in the datasets; "
                    "not the task traces of 'edgesplit traces'): a file in the FCC / Norway 3G / Ghent 4G (Pensieve 'cooked', Mbit/s), Ghent raw "
                    "or ReCoCo JSON, multipath (CSV, bytes/s) or mahimahi (.up/.down: packet-delivery milliseconds) "
                    "formats, or the name of a shipped recording (--list-recordings). --describe reads a recording "
                    "and prints its rates without relaying.")
    parser.add_argument("--listen", default="tcp://127.0.0.1:5556", help="where devices connect (default %(default)s)")
    parser.add_argument("--to", default="tcp://127.0.0.1:5555", help="the peer's endpoint (default %(default)s)")
    parser.add_argument("--recording", "--trace", dest="recording", metavar="NAME_OR_FILE", default=DEFAULT_RECORDING,
                        help="bandwidth recording: a file or a shipped recording's name (default %(default)s, a "
                             "Norway 3G car ride); --trace is its old name")
    parser.add_argument("--format", choices=FORMATS, default="auto", help="recording file format (default: detect)")
    parser.add_argument("--rtt-ms", type=float, default=20.0, help="base round-trip time in ms (default %(default)s)")
    parser.add_argument("--time-scale", type=float, default=1.0,
                        help="replay speed: 2 plays each 1-s recorded step in 0.5 s (default %(default)s)")
    parser.add_argument("--burst-bytes", type=int, default=DEFAULT_BURST_BYTES,
                        help="bytes the link may save up while idle and send at once (default %(default)s: every "
                             "byte waits its serialisation time, as on a real bottleneck; 1500 = one MTU)")
    parser.add_argument("--list-recordings", "--list-traces", dest="list_recordings", action="store_true",
                        help="list the shipped bandwidth recordings and exit (--list-traces is its old name)")
    parser.add_argument("--describe", action="store_true",
                        help="read --recording (with --format), print its format, length and rates, and exit "
                             "without relaying: to check a recording file before using it")
    parser.add_argument("--json", action="store_true",
                        help="print JSON: a ready line, one line per recorded step, stats at exit (with "
                             "--list-recordings or --describe: one document)")
    parser.set_defaults(handler=run_link)


def _list_recordings(as_json: bool) -> int:
    summaries = [dict(read_recording(path).summary(), name=name) for name, path in shipped_recordings().items()]
    if as_json:
        print_json(summaries)
    else:
        print_table(["name", "steps (s)", "mean Mbit/s", "min", "max"],
                    [[s["name"], s["steps"], s["mean_mbps"], s["min_mbps"], s["max_mbps"]] for s in summaries])
    return 0


def _describe(args) -> int:
    summary = read_recording(resolve_recording(args.recording), args.format).summary()
    if args.json:
        print_json(summary)
    else:
        print_table(["recording", "format", "steps (s)", "mean Mbit/s", "min", "max"],
                    [[summary["source"], summary["format"], summary["steps"], summary["mean_mbps"], summary["min_mbps"],
                      summary["max_mbps"]]])
    return 0


def run_link(args) -> int:
    if args.list_recordings:
        return _list_recordings(args.json)
    if args.describe:
        return _describe(args)
    # --rtt-ms and --time-scale are checked with every command's number flags (runtime/commands/number_flags.py).
    if args.burst_bytes < 0:
        raise InputError("--burst-bytes must be zero or a positive number of bytes, got %d" % args.burst_bytes)
    try:
        listen = parse_tcp_endpoint(args.listen, "--listen")
        target = parse_tcp_endpoint(args.to, "--to")
    except ValueError as exc:
        raise InputError(str(exc)) from None
    recording = read_recording(resolve_recording(args.recording), args.format)
    link = SoftwareLink(listen, target, recording, rtt_s=args.rtt_ms / 1000.0, time_scale=args.time_scale,
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
    summary = link.schedule.recording.summary()
    if args.json:
        print(json.dumps({"event": "ready", "endpoint": endpoint, "to": args.to, "rtt_ms": args.rtt_ms,
                          "time_scale": args.time_scale, "recording": summary}), flush=True)
    else:
        print("edgesplit link: %s -> %s, recording %s (mean %.2f Mbit/s), base RTT %.0f ms, time scale %g; Ctrl-C to stop"
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
