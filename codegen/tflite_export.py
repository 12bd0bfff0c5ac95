"""Export a bundle with TFLite segments that is interchangeable with an onnxruntime bundle.

The TFLite bundle has the same cuts, exits, segment ids and tensor names (and specs) as the ONNX
bundle it is made from; only each segment's file and backend differ. Each segment is a torch module
converted with litert-torch (no TensorFlow needed), which keeps the NCHW layout, so the tensors
crossing a cut are the same bytes whichever backend produced them. Inputs are passed as keyword
arguments named after the manifest's tensors and outputs returned as a dict keyed the same way, so
the file's signature carries the manifest's names and the runtime maps them by name.

Before anything is written, each converted file is run on the ONNX bundle's own tensors, then every
exit and the final output of the whole new bundle are compared with the ONNX bundle on example
inputs; a difference above the tolerance (1e-4) refuses the export. The new
manifest records the source bundle's hash under ``provenance.derived_from``: that is the hash it
presents on the wire (``Bundle.wire_hash``), so a TFLite device talks to an onnxruntime peer.

Files are converted with a fixed batch of 1 (a Flatten becomes a Reshape to a constant shape); the
runtime runs a larger batch row by row.
"""
import argparse
import contextlib
import dataclasses
import io
import logging
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Dict, Mapping, Sequence, Tuple

import numpy as np

from edgesplit.runtime.bundle.manifest import Manifest
from edgesplit.runtime.bundle.store import Bundle, load_bundle, write_bundle
from edgesplit.runtime.errors import EdgesplitError

log = logging.getLogger(__name__)

MATCH_TOLERANCE = 1e-4
INSTALL_HINT = "exporting TFLite segments needs litert-torch and torch: pip install litert-torch"


class TfliteExportError(EdgesplitError):
    """The TFLite bundle could not be made, or does not match its source bundle."""


@dataclasses.dataclass
class ExportReport:
    bundle_dir: str
    bundle_sha256: str
    wire_sha256: str
    source_bundle: str
    converter: str
    segment_bytes: Dict[str, int]
    max_abs_diff: Dict[str, float]  # per exit ("exit0", ..., "final") over the example inputs
    compared_inputs: int

    def to_dict(self) -> Dict:
        return dataclasses.asdict(self)


def converter_version() -> str:
    try:
        from importlib import metadata

        return "litert-torch %s" % metadata.version("litert-torch")
    except Exception:  # metadata raises PackageNotFoundError, or anything from a broken install
        return "litert-torch (version unknown)"


# ---------------------------------------------------------------- torch side


def segment_module(module, input_names: Sequence[str], output_names: Sequence[str]):
    """Wrap ``module`` (positional tensors in, a tensor or tuple out) to take and return named tensors.

    The names become the TFLite signature's input and output names.
    """
    import torch

    class NamedSegment(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = module

        def forward(self, **tensors):
            produced = self.inner(*[tensors[name] for name in input_names])
            if not isinstance(produced, (tuple, list)):
                produced = (produced,)
            if len(produced) != len(output_names):
                raise TfliteExportError("segment module returns %d tensors but the segment has outputs %s"
                                        % (len(produced), list(output_names)))
            return dict(zip(output_names, produced))

    return NamedSegment().eval()


def convert_segment(module, sample: Mapping[str, np.ndarray], path: Path) -> None:
    """Convert one named-tensor module to ``path`` (.tflite), traced on ``sample`` (batch 1)."""
    import torch

    try:
        import litert_torch
    except ImportError as exc:
        raise TfliteExportError("%s (%s)" % (INSTALL_HINT, exc)) from None
    kwargs = {name: torch.from_numpy(np.ascontiguousarray(array[:1])) for name, array in sample.items()}
    chatter = io.StringIO()
    # litert-torch prints progress on stdout, which would break a command's --json output: keep it for -vv.
    with warnings.catch_warnings(), contextlib.redirect_stdout(chatter):
        warnings.simplefilter("ignore")  # litert-torch's notices about torch internals, not about this model
        converted = litert_torch.convert(module.eval(), sample_kwargs=kwargs)
        converted.export(str(path))
    log.debug("litert-torch output for %s:\n%s", path.name, chatter.getvalue())


# ---------------------------------------------------------------- the default model


# The default model's main branch between its named tensors, stage by stage.
_DEFAULT_POINTS = ("image", "block1_out", "block2_out", "logits")


def default_model_from_bundle(onnx_bundle: Bundle):
    """The branchy CNN with the weights read back from the ONNX bundle's segments."""
    import onnx
    import torch
    from onnx import numpy_helper

    from edgesplit.codegen.default_model.model import BranchyCNN

    model = BranchyCNN().eval()
    expected = set(model.state_dict())
    state = {}
    heads_by_input = {"block1_out": "exit1", "block2_out": "exit2"}
    for seg in onnx_bundle.manifest.segments:
        if seg.backend != "onnxruntime":
            raise TfliteExportError("%s: segment %s has backend %r: give the onnxruntime bundle as the source"
                                    % (onnx_bundle.root, seg.id, seg.backend))
        graph = onnx.load(str(onnx_bundle.path_of(seg.id))).graph
        if seg.role == "main":
            prefix, strip = "", "model."
        else:
            head = heads_by_input.get(seg.inputs[0].name)
            if head is None:
                raise TfliteExportError("%s: exit segment %s reads %r, not a block output of the default model"
                                        % (onnx_bundle.root, seg.id, seg.inputs[0].name))
            prefix, strip = head + ".", ""
        for init in graph.initializer:
            name = init.name[len(strip):] if init.name.startswith(strip) else init.name
            state[prefix + name] = torch.from_numpy(numpy_helper.to_array(init).copy())
    missing, unknown = expected - set(state), set(state) - expected
    if missing or unknown:
        raise TfliteExportError("%s: the ONNX segments' weights do not map onto the default model (missing %s, "
                                "unknown %s): is this the mnist-branchy bundle?"
                                % (onnx_bundle.root, sorted(missing), sorted(unknown)))
    model.load_state_dict(state)
    return model


def default_model_modules(onnx_bundle: Bundle):
    """Torch modules for each main segment (in order) and each exit head (by segment id).

    Works for any cuts of the default model that fall on its named tensors (image, block1_out,
    block2_out, logits); a segment spanning several blocks gets them chained.
    """
    import torch

    model = default_model_from_bundle(onnx_bundle)
    stages = [model.block1, model.block2, torch.nn.Sequential(model.block3, model.classifier)]
    mains = []
    for seg in onnx_bundle.manifest.main:
        if len(seg.inputs) != 1 or len(seg.outputs) != 1:
            raise TfliteExportError("segment %s: the default model's segments have one input and one output" % seg.id)
        try:
            start = _DEFAULT_POINTS.index(seg.inputs[0].name)
            stop = _DEFAULT_POINTS.index(seg.outputs[0].name)
        except ValueError:
            raise TfliteExportError("segment %s cuts the default model inside a block (%s -> %s); the TFLite export "
                                    "supports cuts at %s" % (seg.id, seg.inputs[0].name, seg.outputs[0].name,
                                                             ", ".join(_DEFAULT_POINTS))) from None
        chain = stages[start:stop]
        mains.append(chain[0] if len(chain) == 1 else torch.nn.Sequential(*chain))
    heads = {}
    for seg in onnx_bundle.manifest.segments:
        if seg.role == "exit":
            heads[seg.id] = model.exit1 if seg.inputs[0].name == "block1_out" else model.exit2
    return mains, heads


# ---------------------------------------------------------------- running bundles


def exit_outputs(bundle: Bundle, inputs: np.ndarray, threads: int = 1) -> Dict[str, np.ndarray]:
    """Every exit's scores ("exit0", ...) and the final output ("final") for ``inputs``.

    Runs every segment on every input (no early exit), through the runtime's own runners.
    """
    from edgesplit.runtime.executor.executor import Executor

    executor = Executor(bundle, threads=threads, warm_up=False)
    manifest = bundle.manifest
    env = {manifest.inputs[0].name: inputs}  # type: Dict[str, np.ndarray]
    for seg in manifest.main:
        env.update(executor.runners[seg.id].run(env))
    out = {}
    for ex in manifest.exits:
        if ex.head is None:
            out["final"] = env[manifest.outputs[0].name]
        else:
            head = manifest.segment(ex.head)
            out["exit%d" % ex.id] = executor.runners[ex.head].run(env)[head.outputs[0].name]
    return out


def compare_bundles(a: Bundle, b: Bundle, inputs: np.ndarray) -> Dict[str, float]:
    """Largest |a - b| per exit over ``inputs``."""
    got, want = exit_outputs(a, inputs), exit_outputs(b, inputs)
    return {name: float(np.abs(got[name] - want[name]).max()) for name in want}


def _onnx_tensors(onnx_bundle: Bundle, inputs: np.ndarray) -> Dict[str, np.ndarray]:
    """Every tensor of the ONNX bundle (main branch and heads) for ``inputs``: samples and references."""
    from edgesplit.runtime.executor.executor import Executor

    executor = Executor(onnx_bundle, threads=1, warm_up=False)
    env = {onnx_bundle.manifest.inputs[0].name: inputs}
    for seg in onnx_bundle.manifest.main:
        env.update(executor.runners[seg.id].run(env))
    for seg in onnx_bundle.manifest.segments:
        if seg.role == "exit":
            env.update(executor.runners[seg.id].run(env))
    return env


def _check_segment(segment, path: Path, env: Dict[str, np.ndarray], tolerance: float) -> float:
    """Run one converted file on the ONNX bundle's tensors; refuse it if its outputs differ."""
    from edgesplit.runtime.segments.tflite_runner import TfliteRunner

    produced = TfliteRunner(segment, path).run(env)
    worst = max(float(np.abs(produced[t.name] - env[t.name]).max()) for t in segment.outputs)
    if worst > tolerance:
        raise TfliteExportError("segment %s: the TFLite file differs from the ONNX segment by %.3g (> %g) on the "
                                "same inputs: is its torch module the right one, with the trained weights? Nothing "
                                "was written" % (segment.id, worst, tolerance))
    return worst


# ---------------------------------------------------------------- the bundle


def tflite_manifest(source: Manifest, provenance: Dict) -> Manifest:
    """The source manifest with every segment a .tflite file (sha256 is filled in when written)."""
    segments = tuple(dataclasses.replace(s, file=s.id + ".tflite", backend="tflite") for s in source.segments)
    return dataclasses.replace(source, segments=segments, profiles={}, provenance=provenance)


def export_tflite_bundle(main_modules: Sequence, head_modules: Mapping[str, object], onnx_bundle: Bundle,
                         out_dir, example_inputs: np.ndarray, tolerance: float = MATCH_TOLERANCE,
                         overwrite: bool = False) -> Tuple[Bundle, ExportReport]:
    """Write a TFLite twin of ``onnx_bundle`` to ``out_dir``.

    ``main_modules[k]`` computes main segment k (its inputs positionally, in manifest order, to its
    outputs); ``head_modules[segment_id]`` computes each exit head. ``example_inputs`` (a batch at
    cut 0) trace the conversion (first row) and check the result (all rows).
    """
    manifest = onnx_bundle.manifest
    main = manifest.main
    if len(main_modules) != len(main):
        raise TfliteExportError("got %d main modules for the %d main segments of %s"
                                % (len(main_modules), len(main), onnx_bundle.root))
    head_ids = [s.id for s in manifest.segments if s.role == "exit"]
    if sorted(head_modules) != sorted(head_ids):
        raise TfliteExportError("got head modules for %s but %s has exit segments %s"
                                % (sorted(head_modules), onnx_bundle.root, head_ids))
    modules = dict(zip([s.id for s in main], main_modules))
    modules.update(head_modules)
    env = _onnx_tensors(onnx_bundle, example_inputs)
    out_dir = Path(out_dir)
    with tempfile.TemporaryDirectory(prefix="edgesplit-tflite-") as work:
        work_dir = Path(work)
        files = work_dir / "files"
        files.mkdir()
        for seg in manifest.segments:
            path = files / (seg.id + ".tflite")
            wrapped = segment_module(modules[seg.id], [t.name for t in seg.inputs], [t.name for t in seg.outputs])
            convert_segment(wrapped, {t.name: env[t.name] for t in seg.inputs}, path)
            diff = _check_segment(seg, path, env, tolerance)
            log.info("converted %s: %d bytes, max |diff| %.3g", seg.id, path.stat().st_size, diff)

        def copy_files(target: Path) -> None:
            for path in files.iterdir():
                shutil.copyfile(str(path), str(target / path.name))

        derived = {"bundle_sha256": onnx_bundle.hash, "name": manifest.name, "backend": "onnxruntime",
                   "converter": converter_version(), "layout": "NCHW, as the source",
                   "batch": "fixed at 1 in each file; the runtime runs larger batches row by row"}
        trial = write_bundle(work_dir / "trial", tflite_manifest(manifest, dict(manifest.provenance,
                                                                                derived_from=derived)), copy_files)
        diffs = compare_bundles(trial, onnx_bundle, example_inputs)
        worst = max(diffs.values())
        if worst > tolerance:
            raise TfliteExportError("the TFLite segments differ from %s by up to %.3g (> %g) per exit: %s; nothing "
                                    "was written" % (onnx_bundle.root, worst, tolerance, diffs))
        derived["max_abs_diff"] = {k: float("%.3g" % v) for k, v in diffs.items()}
        derived["compared_inputs"] = int(len(example_inputs))
        bundle = write_bundle(out_dir, tflite_manifest(manifest, dict(manifest.provenance, derived_from=derived)),
                              copy_files, overwrite=overwrite)
    report = ExportReport(
        bundle_dir=str(bundle.root), bundle_sha256=bundle.hash, wire_sha256=bundle.wire_hash,
        source_bundle=str(onnx_bundle.root), converter=derived["converter"],
        segment_bytes={s.id: (bundle.root / s.file).stat().st_size for s in bundle.manifest.segments},
        max_abs_diff=diffs, compared_inputs=int(len(example_inputs)))
    return bundle, report


def export_default_tflite(out_dir, onnx_bundle_dir=None, images: int = 64,
                          overwrite: bool = False) -> Tuple[Bundle, ExportReport]:
    """The TFLite twin of the default (or a rebuilt) mnist-branchy bundle, checked on held-out images."""
    from edgesplit.runtime.default_bundle import default_bundle_path, load_heldout

    onnx_bundle = load_bundle(onnx_bundle_dir or default_bundle_path())
    mains, heads = default_model_modules(onnx_bundle)
    examples = load_heldout()[0][:images]
    return export_tflite_bundle(mains, heads, onnx_bundle, out_dir, examples, overwrite=overwrite)


# ---------------------------------------------------------------- command


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "export-tflite",
        description="Convert each segment of an onnxruntime bundle of the default mnist-branchy model to "
                    "TFLite with litert-torch and write a bundle with the same cuts, exits and tensor names "
                    "(NCHW, as the ONNX one). Every exit is checked against the ONNX bundle on held-out "
                    "images (max |diff| <= 1e-4) before anything is written. The new bundle presents the "
                    "ONNX bundle's hash on the wire, so a TFLite device can offload to an onnxruntime peer.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        epilog="example:\n  edgesplit export-tflite --out mnist_branchy_tflite")
    parser.add_argument("bundle", nargs="?", default=None,
                        help="the onnxruntime bundle of the default model (default: the one shipped in the package)")
    parser.add_argument("--out", required=True, metavar="DIR", help="bundle directory to create")
    parser.add_argument("--images", type=int, default=64, help="held-out images to compare the bundles on")
    parser.add_argument("--force", action="store_true", help="replace DIR if it exists")
    parser.add_argument("--json", action="store_true", help="print the export report as JSON")
    parser.set_defaults(handler=run_export)


def run_export(args) -> int:
    from edgesplit.runtime.commands.output import print_json, print_table

    if args.images < 1:
        raise TfliteExportError("--images must be at least 1, got %d" % args.images)
    # torchao (a litert-torch dependency) warns about optional CUDA kernels it cannot load on a CPU machine.
    logging.getLogger("torchao").setLevel(logging.ERROR)
    try:
        import litert_torch  # noqa: F401
        import onnx  # noqa: F401
        import torch  # noqa: F401
    except ImportError as exc:
        raise TfliteExportError("%s (%s)" % (INSTALL_HINT, exc)) from None
    bundle, report = export_default_tflite(args.out, args.bundle, images=args.images, overwrite=args.force)
    if args.json:
        print_json(report.to_dict())
        return 0
    print("wrote %s (bundle %s..., on the wire %s... like %s)" % (
        report.bundle_dir, report.bundle_sha256[:12], report.wire_sha256[:12], report.source_bundle))
    print_table(["segment", "bytes"], [[k, v] for k, v in report.segment_bytes.items()])
    print("max |tflite - onnxruntime| on %d images: %s" % (
        report.compared_inputs, ", ".join("%s %.2g" % kv for kv in report.max_abs_diff.items())))
    return 0

