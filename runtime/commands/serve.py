"""``edgesplit serve``: the long-running device daemon (what the systemd unit starts)."""
import logging
import sys

from edgesplit.runtime.commands.output import print_json
from edgesplit.runtime.daemon.config import load_daemon_config

log = logging.getLogger(__name__)

DEFAULT_CONFIG = "/etc/edgesplit/edgesplit.toml"


def register(commands) -> None:
    parser = commands.add_parser(
        "serve",
        description="Loads the bundle, board config, policy and trace database named in the TOML config, warms "
                    "the model up, opens the local API socket and serves tasks until SIGTERM (which drains the "
                    "queue and flushes the traces). SIGHUP reloads the policy and the reloadable config keys; a "
                    "policy that does not load is refused and the old one keeps serving. Under systemd it "
                    "reports READY, STATUS and watchdog pings (Type=notify). '--local DIR' writes a working config to "
                    "start from; docs/daemon.md lists every key (the source tree's systemd/edgesplit.toml is the "
                    "example the installer copies).")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--config", default=DEFAULT_CONFIG, metavar="FILE",
                       help="daemon config (default %(default)s)")
    where.add_argument("--local", metavar="DIR",
                       help="run as yourself with every path under DIR: uses DIR/edgesplit.toml, writing it the "
                            "first time (traces DIR/traces.db, API socket DIR/api.sock, metrics DIR/metrics.prom); "
                            "then 'edgesplit status --config DIR/edgesplit.toml'")
    parser.add_argument("--check-config", action="store_true",
                        help="validate the config and what it names (bundle, board, policy, keys), then exit: "
                             "0 when it would start")
    parser.add_argument("--json", action="store_true", help="with --check-config: print the result as JSON")
    parser.set_defaults(handler=run_serve)


def check_config(path: str):
    """Everything start-up would refuse, without opening sockets or the database; every problem at once."""
    from edgesplit.runtime.bundle.store import load_bundle
    from edgesplit.runtime.daemon.config import DaemonConfigError
    from edgesplit.runtime.daemon.preflight import machine_problems
    from edgesplit.runtime.daemon.service import build_emulation, build_strategy, resolve_board
    from edgesplit.runtime.default_bundle import default_bundle_path
    from edgesplit.runtime.errors import EdgesplitError

    config = load_daemon_config(path)
    problems = machine_problems(config)
    bundle = board = strategy = None
    try:
        emulation, _ = build_emulation(config)
        board = None if emulation is not None else resolve_board(config.model.board)
    except EdgesplitError as exc:
        problems.append(str(exc))
    try:
        bundle = load_bundle(config.model.bundle or default_bundle_path())
        strategy = build_strategy(config, bundle, board)
    except EdgesplitError as exc:
        problems.append(str(exc))
    if problems:
        raise DaemonConfigError("\n".join(problems))
    return config, {"config": path, "ok": True, "bundle": bundle.manifest.name, "bundle_sha256": bundle.hash,
                    "board": board.name if board is not None else (
                        "%s (emulated)" % config.emulation.board if config.emulation.board else None), "policy_id": strategy.policy_id,
                    "peer": config.peer.address or None, "secure_link": bool(config.peer.server_key),
                    "api_socket": config.api.socket, "traces": config.traces.path}


def run_serve(args) -> int:
    if args.local:
        from edgesplit.runtime.daemon.local import local_config

        args.config = local_config(args.local)
        print("config: %s" % args.config, file=sys.stderr)
    if args.check_config:
        _, report = check_config(args.config)
        if args.json:
            print_json(report)
        else:
            print("%s: OK (bundle %s, board %s, policy %s, peer %s)" % (
                args.config, report["bundle"], report["board"], report["policy_id"], report["peer"] or "none"))
        return 0
    import os

    from edgesplit.runtime.daemon.logs import configure_logging
    from edgesplit.runtime.daemon.service import Daemon

    from edgesplit.runtime.daemon.preflight import check_machine

    config = load_daemon_config(args.config)
    check_machine(config)
    configure_logging(config.log_level)
    os.umask(0o007)  # API socket, traces and metrics: owner and group only
    return Daemon(config).run()
