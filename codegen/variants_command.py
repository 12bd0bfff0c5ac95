"""``edgesplit build-variants``: fp32, int8, small and noexit variants of the default bundle (off-board)."""
from pathlib import Path

from edgesplit.runtime.commands.output import print_json, print_table


def register(commands) -> None:
    parser = commands.add_parser(
        "build-variants", help="build model variants of the default bundle for [model] variants (off-board)",
        description="Writes OUT/fp32 (a copy), OUT/int8 (onnxruntime dynamic quantisation, int8 weights), OUT/small "
                    "(the main branch up to the first exit, its head as the output) and OUT/noexit (the side exits "
                    "off), each with its accuracy measured on the bundle's 500 held-out images and written into its "
                    "manifest. List the ones to choose among in the daemon's [model] variants. See docs/bandit.md.")
    parser.add_argument("--out", required=True, help="folder for the variant bundles")
    parser.add_argument("--json", action="store_true")
    parser.set_defaults(handler=run)


def run(args) -> int:
    from edgesplit.codegen.variants import build_default_variants

    built = build_default_variants(Path(args.out))
    rows = {name: {"path": str(b.root), "accuracy": b.manifest.provenance["thresholds"]["test_accuracy_with_defaults"],
                   "macs": b.manifest.exits[-1].macs, "segments": len(b.manifest.segments)}
            for name, b in built.items()}
    if args.json:
        print_json(rows)
    else:
        print_table(["variant", "accuracy", "MACs", "path"],
                    [[n, "%.3f" % r["accuracy"], r["macs"], r["path"]] for n, r in rows.items()])
    return 0
