"""``edgesplit peer``: serve the rest of a bundle's model to devices over ZeroMQ."""
import json
import logging
import signal
import sys
import threading
import time
from typing import Any, Dict

from edgesplit.runtime.default_bundle import resolve_bundle
from edgesplit.runtime.errors import InputError
from edgesplit.runtime.executor.executor import Executor
from edgesplit.runtime.daemon.sd_notify import SystemdNotifier
from edgesplit.runtime.peer.batching import BatchPolicy
from edgesplit.runtime.peer.server import PeerServer
from edgesplit.runtime.security.curve import describe, keys_for_bind
from edgesplit.runtime.transport import wire
from edgesplit.runtime.transport.endpoint import zmq_endpoint

log = logging.getLogger(__name__)


def register(commands) -> None:
    parser = commands.add_parser(
        "peer",
        description="Loads BUNDLE (the same bundle the devices run), binds a ZeroMQ ROUTER and answers "
                    "offload requests from any number of devices: it runs the model from the cut the device "
                    "chose, with the device's exit thresholds, and replies with the result, the exit used and "
                    "its compute time. Devices with a different bundle hash are refused; malformed or "
                    "oversized messages are answered 'bad_request' (or cut off by ZeroMQ) without affecting "
                    "other devices. Stops cleanly on SIGTERM or Ctrl-C.")
    parser.add_argument("bundle", metavar="BUNDLE",
                        help="bundle directory (with manifest.json), or 'default' for the embedded MNIST bundle")
    parser.add_argument("--bind", default="tcp://0.0.0.0:5555",
                        help="ZeroMQ endpoint to listen on: tcp://HOST:PORT, HOST:PORT or ipc://PATH (default "
                             "%(default)s; tcp://127.0.0.1:* picks a free port and prints it)")
    parser.add_argument("--max-bytes", type=int, default=wire.DEFAULT_LIMITS.max_total_bytes,
                        help="largest tensor payload accepted per request, in bytes (default %(default)s = "
                             "64 MiB); larger frames are cut off by ZeroMQ before allocation")
    parser.add_argument("--max-queue", type=int, default=64,
                        help="requests waiting at most; more are answered 'overloaded' (default %(default)s)")
    parser.add_argument("--max-batch", type=int, default=1, metavar="ROWS",
                        help="dynamic batching: requests for the same cut that wait together run as one pass of "
                             "at most ROWS rows (default %(default)s = off; only where the bundle's batch "
                             "dimension is dynamic)")
    parser.add_argument("--batch-window-us", type=int, default=0, metavar="US",
                        help="with --max-batch: how long the oldest request of a batch may wait for more, in "
                             "microseconds (default %(default)s = batch only what is already waiting); never "
                             "past a request's deadline")
    parser.add_argument("--threads", type=int, default=None,
                        help="onnxruntime intra-op threads per segment (default: by segment size)")
    parser.add_argument("--secret-key", metavar="FILE",
                        help="this peer's CurveZMQ NAME.key_secret (from 'edgesplit keys generate'); with "
                             "--allowed-keys turns on the secure link. Required when --bind is not a loopback "
                             "address, unless --insecure")
    parser.add_argument("--allowed-keys", metavar="DIR",
                        help="directory of device public keys (NAME.key files) allowed to connect; any other "
                             "device gets nothing and is logged")
    parser.add_argument("--insecure", action="store_true",
                        help="serve without CurveZMQ on a non-loopback address (only on a trusted network)")
    parser.add_argument("--json-log", action="store_true", help="write log records as JSON lines on stderr")
    parser.add_argument("--json", action="store_true",
                        help="print a JSON line when ready (with the bound endpoint) and JSON stats at exit")
    parser.set_defaults(handler=run_peer)


class JsonLogFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {"time": round(record.created, 3), "level": record.levelname, "logger": record.name,
                 "message": record.getMessage()}
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def _use_json_logs() -> None:
    root = logging.getLogger()
    if not root.handlers:
        root.addHandler(logging.StreamHandler(sys.stderr))
    for handler in root.handlers:
        handler.setFormatter(JsonLogFormatter())
    # The peer's own decisions (refusals, mismatches) are worth a line in a structured log.
    if root.level > logging.INFO:
        root.setLevel(logging.INFO)


def _with_watchdog(stop, notifier, server):
    """``should_stop`` for the serve loop that also pings the systemd watchdog and refreshes STATUS.

    The serve loop calls it once per pass, so the pings stop when the loop stops making progress."""
    state = {"status_at": 0.0}

    def should_stop() -> bool:
        now = time.monotonic()
        notifier.watchdog_if_due(now)
        if now - state["status_at"] >= 5.0:
            state["status_at"] = now
            stats, (queued, _) = server.stats, server.queue_depth()
            notifier.status("served %d, probes %d, refused %d, queue %d"
                            % (stats.served, stats.probes, stats.bad_requests + stats.bundle_mismatches
                               + stats.expired + stats.overloaded, queued))
        return stop.is_set()

    return should_stop


def run_peer(args) -> int:
    if args.json_log:
        _use_json_logs()
    if args.max_bytes < 1:
        raise InputError("--max-bytes must be a positive number of bytes, got %d" % args.max_bytes)
    args.bind = zmq_endpoint(args.bind, "--bind", bind=True)
    curve = keys_for_bind(args.bind, args.secret_key, args.allowed_keys, args.insecure)
    if curve is not None and not curve.allowed:
        log.warning("--allowed-keys %s holds no device keys (NAME.key files): every device is refused until "
                    "keys are copied there and the peer restarted", args.allowed_keys)
    if args.max_queue < 1:
        raise InputError("--max-queue must be at least 1 (requests waiting; more are answered 'overloaded'), got %d"
                         % args.max_queue)
    if args.threads is not None and args.threads < 1:
        raise InputError("--threads must be at least 1 (onnxruntime threads per segment; leave it out for the "
                         "default), got %d" % args.threads)
    if not 1 <= args.max_batch <= 4096:
        raise InputError("--max-batch must be 1 (off) to 4096 rows, got %d" % args.max_batch)
    if not 0 <= args.batch_window_us <= 1000000:
        raise InputError("--batch-window-us must be 0 to 1000000 microseconds, got %d" % args.batch_window_us)
    bundle = resolve_bundle(args.bundle)
    executor = Executor(bundle, threads=args.threads)
    limits = wire.Limits(max_total_bytes=args.max_bytes)
    server = PeerServer(executor, limits=limits, max_queue=args.max_queue,
                        max_queued_bytes=max(4 * args.max_bytes, 64 * 1024 * 1024), curve=curve,
                        batch=BatchPolicy(args.max_batch, args.batch_window_us / 1e6))
    stop = threading.Event()

    def request_stop(signum, frame) -> None:
        log.info("signal %d: stopping", signum)
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    endpoint = server.bind(args.bind)
    log.info("serving bundle %s (%s) on %s", bundle.manifest.name, bundle.hash[:12], endpoint)
    ready = {"event": "ready", "endpoint": endpoint, "bundle": bundle.manifest.name,
             "bundle_sha256": bundle.hash, "max_bytes": args.max_bytes, "max_batch": args.max_batch,
             "batch_window_us": args.batch_window_us}
    if args.json:
        print(json.dumps(ready), flush=True)
    else:
        print("edgesplit peer: serving %s (bundle %s) on %s; Ctrl-C to stop"
              % (bundle.manifest.name, bundle.hash[:12], endpoint), flush=True)
    started = time.monotonic()
    notifier = SystemdNotifier.from_environment()
    notifier.ready("serving %s on %s (%s)" % (bundle.hash[:12], endpoint, describe(curve)))
    should_stop = _with_watchdog(stop, notifier, server)
    try:
        stats = server.serve(should_stop)
    finally:
        server.close()
    notifier.stopping()
    summary = dict(stats.as_dict(), event="stopped", uptime_s=round(time.monotonic() - started, 3))
    log.info("stopped: %s", summary)
    if args.json:
        print(json.dumps(summary), flush=True)  # JSON Lines, like the ready event
    else:
        print(stopped_line(summary), flush=True)
    return 0


def stopped_line(summary: Dict[str, Any]) -> str:
    """The stop summary for people (``--json`` prints every counter)."""
    refused = ", ".join("%s %d" % (name, summary[key]) for name, key in (
        ("bad requests", "bad_requests"), ("wrong bundle", "bundle_mismatches"), ("expired", "expired"),
        ("overloaded", "overloaded"), ("failed handshakes", "handshake_failures")) if summary.get(key))
    return ("edgesplit peer: stopped after %.1f s: served %d, probes %d, errors %d, refused %s; batching %s"
            % (summary["uptime_s"], summary["served"], summary["probes"], summary["errors"], refused or "none",
               "%d passes of more than one request answered %d" % (summary["batches"], summary["batched"])
               if summary.get("batches") else "no pass held more than one request"))

