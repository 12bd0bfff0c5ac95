"""How a client command finds the daemon's local API socket (``--socket``, ``--config``, default).

Shared by ``status`` and ``submit``; not a command itself.
"""
from edgesplit.runtime.api.client import DEFAULT_SOCKET


def add_socket_arguments(parser) -> None:
    parser.add_argument("--socket", default=None, metavar="PATH",
                        help="the daemon's API socket (default: api.socket from --config, else %s)" % DEFAULT_SOCKET)
    parser.add_argument("--config", default=None, metavar="FILE", help="read the socket path from this daemon config")
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for the daemon (default 5)")


def socket_of(args) -> str:
    if args.socket:
        return args.socket
    if args.config:
        from edgesplit.runtime.daemon.config import DaemonConfigError, load_daemon_config

        try:
            return load_daemon_config(args.config).api.socket
        except DaemonConfigError as exc:
            # The running daemon may be serving an older, valid version of this file (a bad reload is refused).
            raise DaemonConfigError("%s\n(the socket path comes from --config, which does not read: to reach a daemon "
                                    "running with an earlier version of the file, give its socket with --socket PATH)"
                                    % exc) from None
    return DEFAULT_SOCKET
