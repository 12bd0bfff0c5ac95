"""``edgesplit board``: which board this is, its config, and what its sensors read right now."""
import argparse
import os
from typing import Any, List, Optional

from edgesplit.runtime.boards.config import (BoardConfig, board_configs_dir, load_all_boards, load_board_config,
                                   load_named_board)
from edgesplit.runtime.boards.detect import Detection, detect_board
from edgesplit.runtime.commands.output import print_json, print_table
from edgesplit.runtime.sensors.catalog import GPU_SOURCES, POWER_SOURCES, SENSOR_KINDS, Hardware, build_sensors
from edgesplit.runtime.sensors.reading import Reading
from edgesplit.runtime.sensors.sysroot import ENV_VAR, SysRoot


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "board",
        description="Board configs live in board_configs/*.toml (one per board); they are the names --board "
                    "takes in every command: live under 'serve', 'profile' and 'board show', EMULATED from the "
                    "config's [emulation] table under 'run' and 'build-policy'. 'detect' matches the "
                    "device-tree model string against them; 'show' prints a config and one reading of each "
                    "of its sensors, with where it came from or why it is unavailable; 'list' lists them and "
                    "how each is emulated; 'validate' checks config files strictly. See docs/boards.md.")
    parser.set_defaults(handler=lambda args: (parser.print_help(), 2)[1])
    commands = parser.add_subparsers(dest="board_command", metavar="SUBCOMMAND")

    detect = commands.add_parser("detect", help="say which board config this host uses, and why",
                                 description="Reads /proc/device-tree/model under the sysfs root and matches "
                                             "it against the board configs; unknown hosts fall back to "
                                             "x86_nvidia (NVML works or /dev/nvidia0 exists) or x86_cpu.")
    _common(detect)
    detect.set_defaults(handler=run_detect)

    show = commands.add_parser("show", help="print a board config and one live reading of every sensor",
                               description="Without --board the board is detected. Every sensor the config "
                                           "enables is read once; unavailable ones say why.")
    _common(show)
    show.add_argument("--board", metavar="NAME", help="a board config name (see 'board list'); default: detect")
    show.add_argument("--all-sensors", action="store_true",
                      help="read every sensor kind from every source, not just the config's")
    show.set_defaults(handler=run_show)

    listing = commands.add_parser(
        "list", help="list the shipped board configs and how each is emulated",
        description="One row per board config: the names --board takes everywhere ('edgesplit board list' is "
                    "the catalogue). The 'emulated' column says whether 'run --board NAME' can emulate the board "
                    "and where its compute figure comes from: measured (published measurements of the board), "
                    "derived (from a measured board and published specs) or assumption; --json gives each "
                    "figure's full provenance.")
    _common(listing)
    listing.set_defaults(handler=run_list)

    validate = commands.add_parser("validate", help="check board config files strictly (file, key, line)")
    validate.add_argument("files", nargs="*", metavar="FILE", help="TOML files; default: every shipped config")
    validate.add_argument("--json", action="store_true", help="print the parsed configs as JSON")
    validate.set_defaults(handler=run_validate)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.add_argument("--sysroot", metavar="DIR",
                        help="filesystem root the sensors read (default: $%s or /)" % ENV_VAR)
    parser.add_argument("--configs", metavar="DIR", help="board config folder (default: %s)" % board_configs_dir())


def _root(args: argparse.Namespace) -> SysRoot:
    return SysRoot(args.sysroot) if args.sysroot else SysRoot.from_env()


def run_detect(args: argparse.Namespace) -> int:
    detection = detect_board(_root(args), load_all_boards(args.configs))
    if args.json:
        print_json(detection.to_dict())
        return 0
    print("board: %s%s" % (detection.board, " (fallback)" if detection.fallback else ""))
    print("model: %s" % (detection.model if detection.model is not None else "-"))
    print("why:   %s" % detection.reason)
    return 0


def run_list(args: argparse.Namespace) -> int:
    boards = load_all_boards(args.configs)
    if args.json:
        print_json([b.to_dict() for b in boards])
        return 0
    print_table(["board", "models", "energy proxy", "emulated", "description"],
                [[b.name, _models(b), b.policy.energy_proxy, _emulated(b), b.description] for b in boards])
    return 0


def _models(board: BoardConfig) -> str:
    if board.match.generic:
        return "(generic fallback)"
    models = ", ".join(board.match.models)
    return models if board.match.detect else "%s (by name only)" % models


def _emulated(board: BoardConfig) -> str:
    e = board.emulation
    if e is None:
        return "no"
    return "yes, %s: %.3g MAC/s" % (e.basis, e.macs_per_s)


def run_validate(args: argparse.Namespace) -> int:
    files = args.files or [os.path.join(board_configs_dir(), n + ".toml") for n in _names()]
    boards = [load_board_config(f) for f in files]
    if args.json:
        print_json([b.to_dict() for b in boards])
    else:
        for board in boards:
            print("ok  %s (%s)" % (board.path, board.name))
    return 0


def _names() -> List[str]:
    from edgesplit.runtime.boards.config import list_board_configs

    return list_board_configs()


def run_show(args: argparse.Namespace) -> int:
    root = _root(args)
    hw = Hardware(root)
    detection = None  # type: Optional[Detection]
    if args.board:
        board = load_named_board(args.board, args.configs)
    else:
        detection = detect_board(root, load_all_boards(args.configs), hw.nvml)
        board = load_named_board(detection.board, args.configs)
    readings = read_board(hw, board, args.all_sensors)
    skipped = [] if args.all_sensors else [k for k in SENSOR_KINDS if k not in board.sensors.enabled]
    if args.json:
        print_json({"board": board.name, "sysroot": root.path,
                    "detection": detection.to_dict() if detection else None,
                    "config": board.to_dict(), "readings": [r.to_dict() for r in readings],
                    "not_enabled": skipped})
        return 0
    _print_config(board, detection)
    print()
    print_table(["reading", "value", "unit", "source / reason"],
                [[r.name, _format(r.value) if r.available else "unavailable", r.unit,
                  r.source if r.available else r.reason] for r in readings]
                + [[kind, "not read", "", "not enabled in %s.toml (--all-sensors reads it)" % board.name]
                   for kind in skipped])
    return 0


def read_board(hw: Hardware, board: BoardConfig, all_sensors: bool = False) -> List[Reading]:
    s = board.sensors
    if all_sensors:
        sensors = build_sensors(hw, SENSOR_KINDS, GPU_SOURCES, POWER_SOURCES, s.total_power_rails, s.thermal_zones)
    else:
        sensors = build_sensors(hw, s.enabled, s.gpu_sources, s.power_sources, s.total_power_rails,
                                s.thermal_zones)
    readings = []  # type: List[Reading]
    for sensor in sensors:
        readings.extend(sensor.read())
    return readings


def _print_config(board: BoardConfig, detection: Optional[Detection]) -> None:
    print("board:        %s  (%s)" % (board.name, board.path))
    print("description:  %s" % board.description)
    if detection is not None:
        print("detected:     %s" % detection.reason)
    print("sensors:      %s" % ", ".join(board.sensors.enabled))
    if board.sensors.gpu_sources:
        print("gpu from:     %s" % " > ".join(board.sensors.gpu_sources))
    if board.sensors.power_sources:
        print("power from:   %s" % " > ".join(board.sensors.power_sources))
    print("sampling:     %g Hz, window %g s" % (board.sensors.rate_hz, board.sensors.window_s))
    print("providers:    %s" % " > ".join(board.execution.providers))
    print("threads:      intra-op %d, inter-op %d" % (board.execution.intra_op_threads,
                                                      board.execution.inter_op_threads))
    print("energy proxy: %s" % board.policy.energy_proxy)
    print("bounds:       latency %g ms, energy %g %s" % (board.bounds.latency_ms, board.bounds.energy,
                                                         board.bounds.energy_unit))
    e = board.emulation
    if e is None:
        print("emulated:     no ([emulation] table absent: 'run --board %s' refuses it)" % board.name)
    else:
        print("emulated:     %s, %.3g MAC/s, busy %g W, idle %g W, energy in %s" % (
            e.basis, e.macs_per_s, e.busy_power_w, e.idle_power_w, e.energy_unit))
        for key in ("macs_per_s", "busy_power_w", "idle_power_w"):
            print("  %-13s %s" % (key + ":", getattr(e, key + "_source")))


def _format(value: Optional[float]) -> str:
    if value is None:
        return "-"
    return ("%.0f" % value) if abs(value) >= 100 else ("%.3g" % value)
