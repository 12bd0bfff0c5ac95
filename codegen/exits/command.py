"""``edgesplit add-exits``: early exits for any ONNX classifier, trained from labelled data (workstation)."""
import argparse
import textwrap

from edgesplit.runtime.commands.output import print_json, print_table
from edgesplit.runtime.errors import EdgesplitError, InputError


def register(commands) -> None:
    parser = commands.add_parser(
        "add-exits",
        description=textwrap.fill(
            "Give MODEL.onnx early exits: place them on valid cuts at roughly equal steps of compute, compute "
            "the features there with onnxruntime from the frozen model, train one small head per exit (average "
            "pooling to at most 4x4 and a one-hidden-layer MLP, torch on the CPU, seeded), measure each exit "
            "on held-out images and choose default thresholds (the least compute on a calibration split whose "
            "accuracy stays within --accuracy-tolerance of the final exit's), then write a bundle whose main "
            "branch is the model unchanged. The data is split 60/20/20 into train / calibration / test; the "
            "manifest records each exit's test accuracy, MACs and threshold.", 100),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  edgesplit add-exits model.onnx --images x.npy --labels y.npy --out model.bundle\n"
               "  edgesplit add-exits model.onnx --image-dir photos/ --mean 0.485,0.456,0.406 "
               "--std 0.229,0.224,0.225 --out m.bundle --at 12,30")
    parser.add_argument("model", metavar="MODEL.onnx", help="ONNX classifier: one input, (N, classes) output")
    parser.add_argument("--out", required=True, metavar="BUNDLE", help="bundle directory to create")
    parser.add_argument("--images", metavar="X.npy",
                        help="images exactly as the model reads them: shape (N, *input shape), the input's dtype")
    parser.add_argument("--labels", metavar="Y.npy", help="class index per image (1-D integers)")
    parser.add_argument("--image-dir", metavar="DIR", help="instead of --images/--labels: one subfolder per class "
                        "(sorted names = class 0, 1, ...), preprocessed by --size/--mean/--std/--layout")
    parser.add_argument("--size", metavar="H,W", help="--image-dir: resize to this (default: the model input's)")
    parser.add_argument("--mean", metavar="M[,M,M]", default="0", help="--image-dir: per-channel mean on the "
                        "[0, 1] scale, subtracted after dividing by 255 (default 0)")
    parser.add_argument("--std", metavar="S[,S,S]", default="1", help="--image-dir: per-channel std (default 1)")
    parser.add_argument("--layout", choices=("nchw", "nhwc"), default="nchw", help="--image-dir: the input layout")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--exits", type=int, metavar="K", help="number of exits (default: 1 for a model with 1-2 "
                       "usable cuts, 3 for one with more than 24, else 2)")
    where.add_argument("--at", metavar="CUT,CUT", help="put the exits on these cut ids (see 'edgesplit cuts')")
    where.add_argument("--no-exits", action="store_true", help="write the bundle cut where the exits would go, "
                       "without heads (its main branch is the same as the bundle's with exits)")
    parser.add_argument("--epochs", type=int, default=30, help="training epochs per head (default 30)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the data split and the head training")
    parser.add_argument("--accuracy-tolerance", type=float, default=1.0, metavar="POINTS",
                        help="how far below the final exit's accuracy the default thresholds may go on the "
                             "calibration split, in points (default 1.0)")
    parser.add_argument("--name", help="bundle name in the manifest (default: the model file's stem)")
    parser.add_argument("--model-source", metavar="FILE.json",
                        help="where the model and the data come from (package, version, file, licence, citation, "
                             "...): a JSON object of strings, recorded as the manifest's provenance.model_source")
    parser.add_argument("--force", action="store_true", help="replace BUNDLE if it already exists")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bars (stderr)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.set_defaults(handler=run)


def _numbers(text: str, flag: str, kind=float):
    try:
        return [kind(part) for part in text.split(",")]
    except ValueError:
        raise InputError("%s: %r is not a comma-separated list of numbers" % (flag, text)) from None


def _data(args, model_path: str):
    from edgesplit.codegen.exits.dataset import load_arrays

    if args.image_dir:
        if args.images or args.labels:
            raise InputError("give either --image-dir or --images/--labels, not both")
        from edgesplit.codegen.exits.image_folder import Preprocessing, load_image_folder
        from edgesplit.codegen.graph import analyse_model, load_model

        size = tuple(_numbers(args.size, "--size", int)) if args.size else None
        if size is not None and len(size) != 2:
            raise InputError("--size wants H,W, got %r" % args.size)
        model_input = analyse_model(load_model(model_path)).inputs[0]
        shape = list(model_input.shape)
        if size is not None and len(shape) == 4:
            wanted = tuple(shape[1:3] if str(args.layout).upper() == "NHWC" else shape[2:4])
            if all(isinstance(v, int) for v in wanted) and size != wanted:
                raise InputError("--size %s: the model's input %r is %s (%s), so it reads %dx%d images: give --size "
                                 "%d,%d (or leave --size out)" % (args.size, model_input.name, shape, args.layout,
                                                                  wanted[0], wanted[1], wanted[0], wanted[1]))
        prep = Preprocessing(size, _numbers(args.mean, "--mean"), _numbers(args.std, "--std"), args.layout)
        return load_image_folder(args.image_dir, model_input, prep)
    if not args.images or not args.labels:
        raise InputError("add-exits needs labelled data: --images X.npy --labels Y.npy, or --image-dir DIR")
    return load_arrays(args.images, args.labels)


def _model_source(path):
    """The --model-source file: a JSON object whose values are strings."""
    import json

    if path is None:
        return None
    try:
        with open(path, encoding="utf-8") as handle:
            source = json.load(handle)
    except OSError as exc:
        raise InputError("--model-source %s: cannot read it (%s)" % (path, exc.strerror or exc)) from None
    except ValueError as exc:
        raise InputError("--model-source %s: not valid JSON (%s)" % (path, exc)) from None
    if not isinstance(source, dict) or not all(isinstance(v, str) for v in source.values()):
        raise InputError("--model-source %s: expected a JSON object of strings, such as {\"package\": "
                         "\"facenet-pytorch 2.6.0\", \"licence\": \"MIT\"}" % path)
    return source


def run(args) -> int:
    try:
        from edgesplit.codegen.exits.build import add_exits
    except ImportError as exc:
        raise EdgesplitError("add-exits needs the workstation extra: pip install 'edgesplit[codegen]' (%s)"
                             % exc) from None
    if args.epochs < 1:
        raise InputError("--epochs must be at least 1")
    model_source = _model_source(args.model_source)
    images, labels, source = _data(args, args.model)
    at = _numbers(args.at, "--at", int) if args.at else None
    if at is not None and len(set(at)) != len(at):
        raise InputError("--at %s: names a cut twice; one exit per cut (give distinct cut ids, see 'edgesplit cuts')"
                         % args.at)
    report = add_exits(args.model, images, labels, args.out, source, count=args.exits, at=at, epochs=args.epochs,
                       seed=args.seed, tolerance=args.accuracy_tolerance / 100.0, no_exits=args.no_exits,
                       overwrite=args.force, progress=not args.no_progress, name=args.name,
                       model_source=model_source)
    if args.json:
        print_json(report)
        return 0
    print("wrote %s (bundle sha256 %s)" % (report["bundle"], report["bundle_sha256"][:12]))
    if not report["exits"]:
        print("no exits; cuts %s; final exit accuracy %.4f on the test split"
              % (report["cuts"], report["final_accuracy"]))
    else:
        print_table(("exit", "cut", "tensor", "compute share", "head", "test accuracy", "threshold"),
                    [(i, e["cut"], e["tensor"], "%.0f %%" % (100 * e["share_of_model_macs"]), e["head"],
                      "%.4f" % e["accuracy_test"], e["threshold"]) for i, e in enumerate(report["exits"])])
        test = report["test"]
        print("test split (%d images), default thresholds: accuracy %.4f (final exit %.4f), compute saved %.0f %%, "
              "tasks per exit %s" % (test["images"], test["accuracy"], test["final_accuracy"],
                                     100 * test["compute_saved"], test["exit_shares"]))
    print("main branch bit-exact with the model: %s" % ("yes" if report["main_branch_bit_exact"] else "NO"))
    return 0 if report["main_branch_bit_exact"] else 1
