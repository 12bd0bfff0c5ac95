"""``edgesplit pool``: a stateless front end that serves devices from Ray Serve replicas (server side)."""
import asyncio
import json
import logging
import signal
import time

from edgesplit.runtime.default_bundle import resolve_bundle
from edgesplit.runtime.errors import InputError
from edgesplit.runtime.security.curve import describe, keys_for_bind
from edgesplit.runtime.transport import wire
from edgesplit.runtime.transport.endpoint import zmq_endpoint

log = logging.getLogger(__name__)


DEFAULT_REPLICAS = 2

def register(commands) -> None:
    parser = commands.add_parser(
        "pool",
        description="A front end of a peer pool for sites that outgrow one 'edgesplit peer': it speaks the peer's "
                    "ZeroMQ wire protocol to devices and hands each request to a Ray Serve replica that runs "
                    "BUNDLE from the device's cut. The first front end deploys the replicas on the Ray cluster; "
                    "more front ends (on any node) share them. Front ends keep no state: list several in the "
                    "devices' peer address (comma-separated) and they fail over between them. Needs "
                    "pip install 'edgesplit[pool]' on the server, nothing on the boards. See docs/pool.md.",
        epilog="example: ray start --head --port 6379 && edgesplit pool default --ray-address 127.0.0.1:6379 "
               "--replicas 2 --bind tcp://127.0.0.1:5555")
    parser.add_argument("bundle", metavar="BUNDLE",
                        help="bundle directory (the same path on every Ray node), or 'default' for the embedded "
                             "MNIST bundle")
    parser.add_argument("--bind", default="tcp://0.0.0.0:5555",
                        help="ZeroMQ endpoint to listen on, as for 'edgesplit peer' (default %(default)s; "
                             "tcp://127.0.0.1:* picks a free port and prints it)")
    parser.add_argument("--ray-address", default="auto",
                        help="the Ray cluster to join: HOST:PORT of the head node ('ray start --head' prints it), "
                             "or 'auto' on a node that already runs Ray (default %(default)s)")
    parser.add_argument("--application", metavar="NAME",
                        help="the Ray Serve application to join or deploy (default: 'edgesplit-' and the first 16 "
                             "characters of the bundle's wire hash); front ends with the same NAME share replicas")
    parser.add_argument("--replicas", type=int, default=None,
                        help="replicas to deploy when this bundle is not deployed yet (default %d); a "
                             "front end that finds it running shares the replicas that are there (and says so "
                             "when their number is not this)" % DEFAULT_REPLICAS)
    parser.add_argument("--replica-cpus", type=float, default=1.0,
                        help="CPUs Ray reserves per replica (default %(default)s); the cluster must offer "
                             "replicas x this")
    parser.add_argument("--threads", type=int, default=1,
                        help="onnxruntime intra-op threads per replica (default %(default)s)")
    parser.add_argument("--max-ongoing", type=int, default=64,
                        help="requests one replica holds at once, queued inside it (default %(default)s); more wait "
                             "in the front end's Ray Serve router, which retries with back-off: keep replicas x this "
                             "above the devices' requests in flight")
    parser.add_argument("--max-in-flight", type=int, default=256,
                        help="requests this front end has out at once; more are answered 'overloaded' so the "
                             "device tries its next front end (default %(default)s)")
    parser.add_argument("--max-bytes", type=int, default=wire.DEFAULT_LIMITS.max_total_bytes,
                        help="largest tensor payload accepted per request, in bytes (default %(default)s)")
    parser.add_argument("--secret-key", metavar="FILE",
                        help="the pool's CurveZMQ NAME.key_secret (the same on every front end, so devices pin one "
                             "key); with --allowed-keys turns on the secure link, as for 'edgesplit peer'")
    parser.add_argument("--allowed-keys", metavar="DIR", help="directory of device public keys allowed to connect")
    parser.add_argument("--insecure", action="store_true",
                        help="serve without CurveZMQ on a non-loopback address (only on a trusted network)")
    parser.add_argument("--json", action="store_true",
                        help="print a JSON line when ready and one with the stats (and CPU seconds) at exit")
    parser.set_defaults(handler=run_pool)


def _check(args) -> None:
    for name, value in (("--replicas", DEFAULT_REPLICAS if args.replicas is None else args.replicas),
                        ("--max-ongoing", args.max_ongoing),
                        ("--max-in-flight", args.max_in_flight), ("--max-bytes", args.max_bytes),
                        ("--threads", args.threads)):
        if value < 1:
            raise InputError("%s must be at least 1, got %d" % (name, value))
    if not args.replica_cpus > 0:
        raise InputError("--replica-cpus must be a positive number of CPUs, got %r" % args.replica_cpus)


def run_pool(args) -> int:
    _check(args)
    args.bind = zmq_endpoint(args.bind, "--bind", bind=True)
    curve = keys_for_bind(args.bind, args.secret_key, args.allowed_keys, args.insecure)
    bundle = resolve_bundle(args.bundle)
    from edgesplit.runtime.pool.engine import PoolEngine
    from edgesplit.runtime.pool.front_end import PoolFrontEnd

    engine = PoolEngine(args.ray_address)
    try:
        replica = engine.deploy(args.bundle, bundle.wire_hash, args.replicas or DEFAULT_REPLICAS, threads=args.threads,
                                replica_cpus=args.replica_cpus, max_ongoing_requests=args.max_ongoing,
                                application=args.application)
        front = PoolFrontEnd(engine, bundle.wire_hash, wire.Limits(max_total_bytes=args.max_bytes),
                             max_in_flight=args.max_in_flight, curve=curve)
        endpoint = front.bind(args.bind)
        try:
            return asyncio.run(_serve(args, front, engine, bundle, endpoint, replica, describe(curve)))
        finally:
            front.close()
    finally:
        engine.close()


async def _serve(args, front, engine, bundle, endpoint, replica, security) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    ready = {"event": "ready", "endpoint": endpoint, "bundle": bundle.manifest.name, "bundle_sha256": bundle.hash,
             "application": engine.app, "replicas": engine.replicas(), "replica_pid": replica["pid"]}
    log.info("pool front end on %s (%s): bundle %s on %d replicas of %s", endpoint, security, bundle.hash[:12],
             ready["replicas"], engine.app)
    if engine.joined and args.replicas is not None and args.replicas != ready["replicas"]:
        log.warning("--replicas %d not applied: %s was already running, with the %d replicas the front end that "
                    "deployed it asked for; this front end shares them (to change the number, delete the application "
                    "and start a front end with the new --replicas)", args.replicas, engine.app, ready["replicas"])
    if args.json:
        print(json.dumps(ready), flush=True)
    else:
        print("edgesplit pool: serving %s (bundle %s) on %s from %d Ray Serve replicas; Ctrl-C to stop"
              % (bundle.manifest.name, bundle.hash[:12], endpoint, ready["replicas"]), flush=True)
    started, cpu_started = time.monotonic(), time.process_time()
    stats = await front.serve(stop)
    summary = dict(stats.as_dict(), event="stopped", uptime_s=round(time.monotonic() - started, 3),
                   cpu_s=round(time.process_time() - cpu_started, 4))
    log.info("stopped: %s", summary)
    if args.json:
        print(json.dumps(summary), flush=True)
    return 0
