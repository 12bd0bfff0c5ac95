"""``edgesplit profile``: time every segment of a bundle on this board and store the profile in the bundle."""
import argparse
import logging
import shutil
import sys
from pathlib import Path
from typing import Optional

from edgesplit.runtime.boards.config import board_configs_dir, load_all_boards, load_named_board
from edgesplit.runtime.bundle.store import load_bundle
from edgesplit.runtime.boards.detect import GENERIC_CPU, GENERIC_GPU, detect_board
from edgesplit.runtime.commands.output import print_json, print_table
from edgesplit.runtime.default_bundle import resolve_bundle
from edgesplit.runtime.errors import BundleError, InputError
from edgesplit.runtime.package_paths import installed_location
from edgesplit.runtime.profiling.measure import profile_bundle
from edgesplit.runtime.profiling.store import PROFILES_DIR, save_profile
from edgesplit.runtime.segments.providers import runner_factory_for_board
from edgesplit.runtime.sensors.sysroot import SysRoot

log = logging.getLogger(__name__)


def register(commands) -> None:
    parser = commands.add_parser(
        "profile",
        description="Runs every main segment and exit head of BUNDLE alone, batch 1, on the tensors a real "
                    "pass produces: WARMUP untimed calls, then REPEATS timed ones. Prints median and p90 per "
                    "segment and the bytes crossing each cut, and writes BUNDLE/%s/BOARD.json (atomically; into a "
                    "copy of BUNDLE with --out DIR), which the controller and the emulator read. The manifest is not touched, so the bundle "
                    "hash stays the same. Segments run with the board config's execution providers and "
                    "threads; a provider this onnxruntime lacks is skipped with a warning." % PROFILES_DIR,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  edgesplit profile my_bundle\n"
               "  edgesplit profile my_bundle --board jetson_nano --repeats 200 --json\n"
               "  edgesplit profile default --out my_mnist   # the embedded bundle is never written into")
    parser.add_argument("bundle", help="bundle directory, or 'default' for the embedded MNIST bundle")
    parser.add_argument("--board", metavar="NAME",
                        help="board config to profile as (see 'edgesplit board list'); default: detect this board. "
                             "Refused when this host is detected as another board, unless --force")
    parser.add_argument("--force", action="store_true",
                        help="with --board: profile as that board even when this host is detected as another one "
                             "(the stored timings are then this host's)")
    parser.add_argument("--configs", metavar="DIR", help="board config folder (default: %s)" % board_configs_dir())
    parser.add_argument("--repeats", type=int, default=50, help="timed calls per segment (default 50)")
    parser.add_argument("--warmup", type=int, default=10, help="untimed calls per segment first (default 10)")
    parser.add_argument("--threads", type=int, default=None,
                        help="threads per segment (default: the board's intra_op_threads, or per segment size)")
    parser.add_argument("--out", metavar="DIR",
                        help="store the profile in a copy of BUNDLE at DIR (made if missing; or an earlier copy of "
                             "the same bundle) instead of BUNDLE itself. Needed for 'default' and any bundle "
                             "inside the installed package, which is never written into")
    parser.add_argument("--energy-seconds", type=float, default=None, metavar="S",
                        help="read the board config's energy proxy ([policy] energy_proxy, in its unit) for S seconds "
                             "with nothing running, then S seconds with every segment running back to back, and "
                             "record both means in the profile ('build-policy --measured-profile' plans energy in "
                             "that unit from them). Default: the board's [sensors] window_s, at least 3 sensor "
                             "periods; 0: record no energy")
    parser.add_argument("--no-save", action="store_true", help="measure and print only; write nothing")
    parser.add_argument("--json", action="store_true", help="print the profile document as JSON")
    parser.set_defaults(handler=run_profile)


def _writable_target(bundle, out: Optional[str]) -> Optional[Path]:
    """Where the profile goes: None for BUNDLE itself, else the copy at ``out`` (checked, not yet made)."""
    if out is None:
        inside = installed_location(bundle.root)
        if inside is not None:
            raise InputError("%s is inside the installed package (%s), which edgesplit never writes into: pass "
                             "--out DIR to store the profile in a copy of the bundle at DIR (then 'edgesplit run "
                             "DIR --measured-profile BOARD'), or --no-save to only print it" % (bundle.root, inside))
        return None
    target = Path(out)
    inside = installed_location(target)
    if inside is not None:
        raise InputError("--out %s is inside the installed package (%s): choose a folder of your own" % (out, inside))
    if target.exists():
        try:
            same = load_bundle(target).hash == bundle.hash
        except BundleError:
            same = False
        if not same:
            raise InputError("--out %s exists and is not a copy of bundle %s (%s...): give a new folder or an "
                             "earlier copy of this bundle" % (out, bundle.manifest.name, bundle.hash[:12]))
    return target


def _copy_of(bundle, target: Path):
    if not target.exists():
        staging = target.with_name(".%s.partial" % target.name)
        shutil.rmtree(str(staging), ignore_errors=True)
        try:
            shutil.copytree(str(bundle.root), str(staging))
            staging.rename(target)
        except OSError as exc:
            shutil.rmtree(str(staging), ignore_errors=True)
            raise InputError("cannot copy bundle %s to %s: %s" % (bundle.root, target, exc)) from None
        log.info("copied bundle %s to %s", bundle.root, target)
    return load_bundle(target)


def _same_hardware(named: str, detected: str) -> bool:
    # The CPU-only x86 config is a fair description of an x86 host with an NVIDIA GPU too.
    return named == detected or (named == GENERIC_CPU and detected == GENERIC_GPU)


def run_profile(args) -> int:
    if args.repeats < 1:
        raise InputError("--repeats must be at least 1, got %d" % args.repeats)
    if args.warmup < 0:
        raise InputError("--warmup must be 0 or more, got %d" % args.warmup)
    if args.threads is not None and args.threads < 1:
        raise InputError("--threads must be at least 1, got %d" % args.threads)
    if args.energy_seconds is not None and args.energy_seconds < 0:
        raise InputError("--energy-seconds must be 0 (no energy reading) or more, got %g" % args.energy_seconds)
    bundle = resolve_bundle(args.bundle)
    detection = detect_board(SysRoot.from_env(), load_all_boards(args.configs))
    log.info("this host: %s (%s)", detection.board, detection.reason)
    board = load_named_board(args.board or detection.board, args.configs)
    if not _same_hardware(board.name, detection.board):
        if not args.force:
            raise InputError("this host was detected as %s (%s), not %s: its timings would be stored as %s's. "
                             "Profile on the %s itself, or pass --force to store this host's timings under %s "
                             "anyway" % (detection.board, detection.reason, board.name, board.name, board.name,
                                         board.name))
        log.warning("--force: profiling as %s, measured on a host detected as %s (%s)", board.name,
                    detection.board, detection.reason)
    out = None if args.no_save else _writable_target(bundle, args.out)
    factory = runner_factory_for_board(board)
    threads = args.threads or board.execution.intra_op_threads or None
    sampler = None
    energy = None
    if args.energy_seconds != 0:
        from edgesplit.runtime.device.pipeline import open_sampler
        from edgesplit.runtime.profiling.energy import measure_proxy

        sampler, _ = open_sampler(board)
        seconds = board.sensors.window_s if args.energy_seconds is None else args.energy_seconds

        def energy(work):
            return measure_proxy(sampler, board.policy.energy_proxy, seconds, work)
    try:
        profile = profile_bundle(bundle, board.name, factory, warmup=args.warmup, repeats=args.repeats,
                                 threads=threads, providers=list(board.execution.providers), energy=energy)
    finally:
        if sampler is not None:
            sampler.stop()
    path = None
    if not args.no_save:
        target = bundle if out is None else _copy_of(bundle, out)
        path = save_profile(target, profile)
    if args.json:
        print_json(profile)
        if path:
            print("saved %s" % path, file=sys.stderr)
        return 0
    print("bundle %s (%s...) on board %s, batch 1, %d warm-up + %d timed calls per segment"
          % (bundle.manifest.name, bundle.hash[:12], board.name, args.warmup, args.repeats))
    print_table(["segment", "role", "backend", "provider", "MACs", "median ms", "p90 ms"],
                [[s["id"], s["role"], s["backend"], s["provider"] or "-", s["macs"], "%.3f" % s["median_ms"],
                  "%.3f" % s["p90_ms"]] for s in profile["segments"]])
    print()
    print_table(["cut", "tensors", "bytes/sample", "main ms before", "main ms after"],
                [[c["id"], ",".join(c["tensors"]), c["bytes_per_sample"], "%.3f" % c["main_median_ms_before"],
                  "%.3f" % c["main_median_ms_after"]] for c in profile["cuts"]])
    print()
    reading = profile.get("energy")
    if reading:
        print("energy proxy %s: %.6g %s busy, %.6g %s idle (%d and %d samples)"
              % (reading["proxy"], reading["busy_mean"], reading["unit"], reading["idle_mean"], reading["unit"],
                 reading["busy_samples"], reading["idle_samples"]))
    elif args.energy_seconds != 0:
        print("energy proxy %s: unavailable, not recorded" % board.policy.energy_proxy)
    print("saved %s" % path if path else "not saved (--no-save)")
    return 0
