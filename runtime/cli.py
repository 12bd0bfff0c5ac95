"""The ``edgesplit`` command line.

Board-side commands live in ``edgesplit.runtime.commands``; workstation commands (cuts, split, ...) are
registered through the ``edgesplit.commands`` entry-point group, so this module never imports
off-board code. Every command returns an exit code; an ``EdgesplitError`` becomes one line on
stderr and exit status 1.

Commands are loaded lazily: only the module of the command being run is imported (with numpy,
onnxruntime, pyzmq behind it), so ``edgesplit --help`` and a mistyped command answer at once. The
one-line help of each built-in command lives in ``BUILTIN`` below; its full parser in its module.
Workstation commands' entry points name ``LazyCommand`` entries as well (``edgesplit.codegen.commands``).
"""
import argparse
import logging
import sys
from typing import Callable, Iterator, List, Optional, Sequence

from edgesplit.runtime import __version__
from edgesplit.runtime.commands.lazy import LazyCommand
from edgesplit.runtime.errors import EdgesplitError

_BUILTIN_HELP = (
    ("board", "detect this board, show its config and live sensor readings"),
    ("demo", "adaptive vs static split inference over a replayed real bandwidth recording (EMULATED board)"),
    ("infer", "run a bundle locally on a .npy of inputs, exiting early on low entropy"),
    ("link", "relay device<->peer traffic through an emulated link that replays a bandwidth recording"),
    ("peer", "serve the rest of the model to devices (run on the edge server)"),
    ("pool", "a front end of a peer pool on Ray Serve replicas, for sites that outgrow one peer (server)"),
    ("profile", "time each segment and exit head of a bundle on this board; store it in the bundle"),
    ("run", "run a stream of inputs split between this device and a peer (adaptive or static)"),
    ("traces", "summarise or export a trace database"),
    ("policy", "show what a frozen policy file is: features, layers, decoder, provenance"),
    ("serve", "run the device daemon: local API, adaptive split inference, traces"),
    ("submit", "run inputs through the daemon, or post feedback (label, rating) for a finished task"),
    ("status", "show the running daemon's queue, action, peer, fallbacks, policy and uptime"),
    ("keys", "create and show CurveZMQ keys for the secure link"),
)
# In listing order; each module's register(commands) builds the full parser.
BUILTIN = tuple(LazyCommand(name, "edgesplit.runtime.commands." + name, text) for name, text in _BUILTIN_HELP)
PLUGIN_GROUP = "edgesplit.commands"
GLOBAL_FLAGS = ("-v", "--verbose", "-vv", "-vvv", "-h", "--help", "--version")

log = logging.getLogger("edgesplit")


class CommandParser(argparse.ArgumentParser):
    """A subcommand's parser: takes -v/--verbose after the command name as well as before it."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # Its own dest: a subparser's default would otherwise overwrite a -v given before the command.
        self.add_argument("-v", "--verbose", dest="command_verbose", action="count", default=argparse.SUPPRESS,
                          help="more log output (-vv for debug)")


def _plugins(name: Optional[str]) -> Iterator[Callable]:
    """Registrars of the workstation commands: only ``name``'s when an entry point has that name."""
    from importlib import metadata

    found = metadata.entry_points()
    group = found.select(group=PLUGIN_GROUP) if hasattr(found, "select") else found.get(PLUGIN_GROUP, ())
    entries = sorted(group, key=lambda e: e.name)
    named = [e for e in entries if e.name == name]
    for entry in named or entries:
        try:
            yield entry.load()
        except ImportError as exc:
            log.debug("command %s unavailable: %s", entry.name, exc)


def requested_command(argv: Sequence[str]) -> Optional[str]:
    """The command word in ``argv`` (the first argument that is not a global flag), or None."""
    for arg in argv:
        if arg not in GLOBAL_FLAGS:
            return None if arg.startswith("-") else arg
    return None


def build_parser(argv: Sequence[str] = (), everything: bool = False) -> argparse.ArgumentParser:
    """The parser for ``argv``: the requested command's full parser, the others as one-line entries.

    ``everything`` builds every command's full parser (tests, documentation checks)."""
    parser = argparse.ArgumentParser(
        prog="edgesplit",
        description="Run one DNN adaptively between this board and a peer server: split models into "
                    "bundles, run them locally with early exits, offload the rest.",
    )
    parser.add_argument("--version", action="version", version="edgesplit " + __version__)
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=CommandParser)
    wanted = requested_command(argv)
    for command in BUILTIN:
        if everything or command.name == wanted:
            command(commands)
        else:
            command.list_in(commands)
    if everything or wanted not in [c.name for c in BUILTIN]:
        for register in _plugins(None if everything else wanted):
            if isinstance(register, LazyCommand) and not everything and register.name != wanted:
                register.list_in(commands)
                continue
            try:
                register(commands)
            except ImportError as exc:  # e.g. a workstation command without the codegen extra
                log.warning("command %s unavailable: %s", getattr(register, "name", register), exc)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    args.verbose += getattr(args, "command_verbose", 0)
    # -v and -vv are for following a run as it happens: each line says when (warnings alone stay short; under
    # systemd the journal stamps every line already)
    from edgesplit.runtime.daemon.logs import under_systemd

    stamp = "%(asctime)s " if args.verbose and not under_systemd() else ""
    logging.basicConfig(level=logging.WARNING - 10 * min(args.verbose, 2),
                        format=stamp + "%(levelname)s %(name)s: %(message)s")
    if not getattr(args, "handler", None):
        parser.print_help()
        return 2
    try:
        from edgesplit.runtime.commands.number_flags import check_number_flags

        check_number_flags(args)  # every command's shared number flags, before it starts anything
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
