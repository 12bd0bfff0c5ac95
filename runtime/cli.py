"""The ``edgesplit`` command line.

Board-side commands live in ``edgesplit.runtime.commands``; workstation commands (cuts, split, ...) are
registered through the ``edgesplit.commands`` entry-point group, so this module never imports
off-board code. Every command returns an exit code; an ``EdgesplitError`` becomes one line on
stderr and exit status 1.
"""
import argparse
import logging
import sys
from typing import List, Optional

from edgesplit.runtime import __version__
from edgesplit.runtime.commands import board, demo, infer, keys, link, peer, profile, run, serve, status, submit, traces
from edgesplit.runtime.errors import EdgesplitError

BUILTIN = (board.register, demo.register, infer.register, link.register, peer.register, profile.register, run.register, traces.register,
           serve.register, submit.register, status.register, keys.register,)
PLUGIN_GROUP = "edgesplit.commands"

log = logging.getLogger("edgesplit")


def _plugin_registrars():
    from importlib import metadata

    found = metadata.entry_points()
    group = found.select(group=PLUGIN_GROUP) if hasattr(found, "select") else found.get(PLUGIN_GROUP, ())
    for entry in sorted(group, key=lambda e: e.name):
        try:
            yield entry.load()
        except ImportError as exc:
            log.debug("command %s unavailable: %s", entry.name, exc)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="edgesplit",
        description="Run one DNN adaptively between this board and a peer server: split models into "
                    "bundles, run them locally with early exits, offload the rest.",
    )
    parser.add_argument("--version", action="version", version="edgesplit " + __version__)
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for register in BUILTIN:
        register(commands)
    for register in _plugin_registrars():
        register(commands)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING - 10 * min(args.verbose, 2),
                        format="%(levelname)s %(name)s: %(message)s")
    if not getattr(args, "handler", None):
        parser.print_help()
        return 2
    try:
        return int(args.handler(args) or 0)
    except EdgesplitError as exc:
        print("edgesplit %s: error: %s" % (args.command, exc), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader (e.g. `| head`) went away: stop quietly, as other Unix tools do.
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
