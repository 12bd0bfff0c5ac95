"""Export a bundle with TFLite segments that is interchangeable with an onnxruntime bundle (any bundle).

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

Where the torch modules come from (the converter candidates, per segment): for the default model,
its own torch modules with the weights read back from the ONNX segments; for every bundle, the ONNX
segment interpreted by ``edgesplit.codegen.onnx_to_torch``. Each candidate that builds is converted
and measured against onnxruntime on the same tensors; the one with the smallest difference within
the tolerance is kept, and the manifest records per segment which one and its difference, with the
tolerance, under ``provenance.derived_from``.

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
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from edgesplit.runtime.bundle.manifest import Manifest
from edgesplit.runtime.bundle.store import Bundle, load_bundle, write_bundle
from edgesplit.runtime.errors import EdgesplitError

log = logging.getLogger(__name__)

MATCH_TOLERANCE = 1e-4
DEFAULT_MODULES = "default model torch modules"
GRAPH_INTERPRETER = "ONNX graph interpreted in torch"
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
    segments: Dict[str, Dict] = dataclasses.field(default_factory=dict)  # id -> converter, difference, candidates
    tolerance: float = MATCH_TOLERANCE
    example_inputs: str = ""

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

    The names (spelled by ``signature_name``: the converter needs identifiers) become the TFLite
    signature's input and output names.
    """
    import torch

    from edgesplit.runtime.segments.tflite_runner import signature_name

    input_names = [signature_name(n) for n in input_names]
    output_names = [signature_name(n) for n in output_names]

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
    from edgesplit.runtime.segments.tflite_runner import signature_name

    kwargs = {signature_name(name): torch.from_numpy(np.ascontiguousarray(array[:1])) for name, array in sample.items()}
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


def scaled_difference(got: np.ndarray, want: np.ndarray) -> float:
    """max |got - want|, relative to the reference's magnitude where that exceeds 1.

    An absolute tolerance suits logits and probabilities; deep in a network activations can reach
    thousands, where float32 rounding alone differs by more than 1e-4 between two correct kernels.
    """
    want = want.astype(np.float64)
    return float(np.abs(got.astype(np.float64) - want).max() / max(1.0, float(np.abs(want).max())))


def compare_bundles(a: Bundle, b: Bundle, inputs: np.ndarray, scaled: bool = False) -> Dict[str, float]:
    """Largest |a - b| per exit over ``inputs`` (``scaled``: as ``scaled_difference``)."""
    got, want = exit_outputs(a, inputs), exit_outputs(b, inputs)
    if scaled:
        return {name: scaled_difference(got[name], want[name]) for name in want}
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


def segment_difference(segment, path: Path, env: Dict[str, np.ndarray]) -> float:
    """Largest ``scaled_difference`` of one converted file's outputs, run on the ONNX bundle's tensors."""
    from edgesplit.runtime.segments.tflite_runner import TfliteRunner

    produced = TfliteRunner(segment, path).run(env)
    return max(scaled_difference(produced[t.name], env[t.name]) for t in segment.outputs)


# ---------------------------------------------------------------- the bundle


def tflite_manifest(source: Manifest, provenance: Dict) -> Manifest:
    """The source manifest with every segment a .tflite file (sha256 is filled in when written)."""
    segments = tuple(dataclasses.replace(s, file=s.id + ".tflite", backend="tflite") for s in source.segments)
    return dataclasses.replace(source, segments=segments, profiles={}, provenance=provenance)


Candidate = Tuple[str, Callable[[], object]]  # (converter name, builds the torch module for one segment)


def export_tflite_bundle(main_modules: Sequence, head_modules: Mapping[str, object], onnx_bundle: Bundle,
                         out_dir, example_inputs: np.ndarray, tolerance: float = MATCH_TOLERANCE,
                         overwrite: bool = False) -> Tuple[Bundle, ExportReport]:
    """Write a TFLite twin of ``onnx_bundle`` to ``out_dir`` from the given torch modules.

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
    candidates = {seg_id: [("torch module given", (lambda m=module: m))] for seg_id, module in modules.items()}
    return export_with_candidates(candidates, onnx_bundle, out_dir, example_inputs, tolerance, overwrite)


def _best_file(seg, choices: List[Candidate], env: Dict[str, np.ndarray], work_dir: Path,
               tolerance: float) -> Tuple[Path, str, float, Dict[str, object]]:
    """Convert ``seg`` with every candidate that builds; keep the closest to onnxruntime within tolerance.

    Also returns every candidate's outcome: its max |diff|, or why it failed.
    """
    best = None  # type: Optional[Tuple[Path, str, float]]
    failures = []
    outcomes = {}  # type: Dict[str, object]
    for k, (name, build) in enumerate(choices):
        path = work_dir / ("%s.%d.tflite" % (seg.id, k))
        try:
            module = build()
            wrapped = segment_module(module, [t.name for t in seg.inputs], [t.name for t in seg.outputs])
            convert_segment(wrapped, {t.name: env[t.name] for t in seg.inputs}, path)
            diff = segment_difference(seg, path, env)
        except EdgesplitError as exc:
            failures.append("%s: %s" % (name, exc))
            outcomes[name] = str(exc)
            continue
        except Exception as exc:  # a converter's own failure (torch.export, MLIR) is one candidate's outcome
            failures.append("%s: conversion failed (%s: %s)" % (name, type(exc).__name__, str(exc)[:200]))
            outcomes[name] = "conversion failed (%s)" % type(exc).__name__
            continue
        outcomes[name] = float("%.3g" % diff)
        log.info("segment %s by %s: %d bytes, max |diff| %.3g", seg.id, name, path.stat().st_size, diff)
        if diff > tolerance:
            failures.append("%s: the TFLite file differs from the ONNX segment by %.3g (> %g, relative where "
                            "values exceed 1) on the same inputs" % (name, diff, tolerance))
        elif best is None or diff < best[2]:
            best = (path, name, diff)
    if best is None:
        raise TfliteExportError("segment %s: no converter gives a TFLite file matching onnxruntime; nothing was "
                                "written. %s" % (seg.id, "; ".join(failures)))
    return best + (outcomes,)


def export_with_candidates(candidates: Mapping[str, List[Candidate]], onnx_bundle: Bundle, out_dir,
                           example_inputs: np.ndarray, tolerance: float = MATCH_TOLERANCE,
                           overwrite: bool = False, inputs_note: str = "") -> Tuple[Bundle, ExportReport]:
    """Write a TFLite twin of ``onnx_bundle``, each segment by its most faithful candidate converter."""
    manifest = onnx_bundle.manifest
    env = _onnx_tensors(onnx_bundle, example_inputs)
    out_dir = Path(out_dir)
    chosen = {}  # type: Dict[str, Dict]
    with tempfile.TemporaryDirectory(prefix="edgesplit-tflite-") as work:
        work_dir = Path(work)
        files = work_dir / "files"
        files.mkdir()
        for seg in manifest.segments:
            path, name, diff, outcomes = _best_file(seg, candidates[seg.id], env, work_dir, tolerance)
            shutil.move(str(path), str(files / (seg.id + ".tflite")))
            chosen[seg.id] = {"converter": name, "difference": float("%.3g" % diff), "candidates": outcomes}

        def copy_files(target: Path) -> None:
            for path in files.iterdir():
                shutil.copyfile(str(path), str(target / path.name))

        derived = {"bundle_sha256": onnx_bundle.hash, "name": manifest.name, "backend": "onnxruntime",
                   "converter": converter_version(), "layout": "NCHW, as the source",
                   "batch": "fixed at 1 in each file; the runtime runs larger batches row by row",
                   "tolerance": tolerance, "segments": chosen,
                   "difference": "max |tflite - onnxruntime| over each segment's outputs, divided by the largest "
                                 "|onnxruntime| value where that exceeds 1; must be <= tolerance"}
        if inputs_note:
            derived["example_inputs"] = inputs_note
        trial = write_bundle(work_dir / "trial", tflite_manifest(manifest, dict(manifest.provenance,
                                                                                derived_from=derived)), copy_files)
        scaled = compare_bundles(trial, onnx_bundle, example_inputs, scaled=True)
        if max(scaled.values()) > tolerance:
            raise TfliteExportError("the TFLite segments differ from %s by up to %.3g (> %g, relative where the "
                                    "output exceeds 1) per exit: %s; nothing was written"
                                    % (onnx_bundle.root, max(scaled.values()), tolerance, scaled))
        diffs = compare_bundles(trial, onnx_bundle, example_inputs)
        derived["max_abs_diff"] = {k: float("%.3g" % v) for k, v in diffs.items()}
        derived["compared_inputs"] = int(len(example_inputs))
        bundle = write_bundle(out_dir, tflite_manifest(manifest, dict(manifest.provenance, derived_from=derived)),
                              copy_files, overwrite=overwrite)
    report = ExportReport(
        bundle_dir=str(bundle.root), bundle_sha256=bundle.hash, wire_sha256=bundle.wire_hash,
        source_bundle=str(onnx_bundle.root), converter=derived["converter"],
        segment_bytes={s.id: (bundle.root / s.file).stat().st_size for s in bundle.manifest.segments},
        max_abs_diff=diffs, compared_inputs=int(len(example_inputs)), segments=chosen, tolerance=tolerance,
        example_inputs=inputs_note)
    return bundle, report


def graph_candidate(onnx_bundle: Bundle, seg, env: Dict[str, np.ndarray]) -> Candidate:
    """The segment's ONNX graph interpreted in torch (any bundle)."""
    def build():
        import onnx

        from edgesplit.codegen.onnx_to_torch import onnx_segment_module

        model = onnx.load(str(onnx_bundle.path_of(seg.id)))
        return onnx_segment_module(model, [t.name for t in seg.inputs], [t.name for t in seg.outputs],
                                   {t.name: env[t.name] for t in seg.inputs})
    return GRAPH_INTERPRETER, build


def segment_candidates(onnx_bundle: Bundle, env: Dict[str, np.ndarray]) -> Dict[str, List[Candidate]]:
    """Per segment: the default model's own modules when the bundle is that model, then the interpreter."""
    try:
        mains, heads = default_model_modules(onnx_bundle)
        native = dict(zip([s.id for s in onnx_bundle.manifest.main], mains))
        native.update(heads)
    except TfliteExportError as exc:
        log.debug("not the default model (%s): interpreting the ONNX segments", exc)
        native = {}
    out = {}
    for seg in onnx_bundle.manifest.segments:
        out[seg.id] = ([(DEFAULT_MODULES, (lambda m=native[seg.id]: m))] if seg.id in native else [])
        out[seg.id].append(graph_candidate(onnx_bundle, seg, env))
    return out


def example_inputs_for(onnx_bundle: Bundle, inputs_path: Optional[str], count: int) -> Tuple[np.ndarray, str]:
    """Inputs at cut 0 to trace and check with: --inputs, the held-out images of the default model, or random."""
    spec = onnx_bundle.manifest.inputs[0]
    if inputs_path:
        from edgesplit.runtime.inputs import load_inputs

        examples = load_inputs(inputs_path)[:count]
        return examples, "%d rows of %s" % (len(examples), inputs_path)
    from edgesplit.runtime.default_bundle import load_heldout

    heldout = load_heldout()[0][:count]
    fits = len(spec.shape) == heldout.ndim and all(d is None or d == g for d, g in zip(spec.shape[1:], heldout.shape[1:]))
    if fits and np.dtype(spec.dtype) == heldout.dtype:
        return heldout, "%d held-out MNIST images" % len(heldout)
    shape = [count if spec.batched and i == 0 else (d or 1) for i, d in enumerate(spec.shape)]
    if spec.dtype.startswith("float"):
        examples = np.random.default_rng(0).standard_normal(shape).astype(spec.dtype)
    else:
        raise TfliteExportError("the bundle's input %r is %s: give example inputs with --inputs X.npy"
                                % (spec.name, spec.dtype))
    return examples, "%d standard-normal random inputs (seed 0): pass --inputs for real data" % count


def export_any_tflite(out_dir, onnx_bundle_dir=None, inputs_path: Optional[str] = None,
                      count: int = 64, overwrite: bool = False) -> Tuple[Bundle, ExportReport]:
    """The TFLite twin of any onnxruntime bundle (default: the shipped one), each segment checked."""
    from edgesplit.runtime.default_bundle import default_bundle_path

    onnx_bundle = load_bundle(onnx_bundle_dir or default_bundle_path())
    for seg in onnx_bundle.manifest.segments:
        if seg.backend != "onnxruntime":
            raise TfliteExportError("%s: segment %s has backend %r: give the onnxruntime bundle as the source"
                                    % (onnx_bundle.root, seg.id, seg.backend))
        shapes = [t.name for t in seg.inputs + seg.outputs if not t.batched]
        if shapes:
            raise TfliteExportError("%s: segment %s passes shape tensor(s) %s across a cut; TFLite files run one row "
                                    "at a time, so a tensor that holds the batch size cannot cross: export the model "
                                    "so it does not read the batch size (x.flatten(1), not x.reshape(x.size(0), -1)) "
                                    "or split it at cuts such tensors do not cross"
                                    % (onnx_bundle.root, seg.id, shapes))
    batch = onnx_bundle.manifest.inputs[0].shape[0] if onnx_bundle.manifest.inputs[0].shape else None
    if batch is not None and count > batch:
        log.warning("the model's batch is fixed at %d: comparing on %d example input(s), not %d", batch, batch, count)
        count = batch
    examples, note = example_inputs_for(onnx_bundle, inputs_path, count)
    env = _onnx_tensors(onnx_bundle, examples)
    return export_with_candidates(segment_candidates(onnx_bundle, env), onnx_bundle, out_dir, examples,
                                  overwrite=overwrite, inputs_note=note)


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
        description="Convert each segment of an onnxruntime bundle to TFLite with litert-torch and write a bundle "
                    "with the same cuts, exits and tensor names (NCHW, as the ONNX one). Each segment becomes a "
                    "torch module (the default model's own modules, or the ONNX graph interpreted in torch for any "
                    "bundle); every candidate is converted and the one closest to onnxruntime on the same tensors "
                    "is kept (max |diff| <= 1e-4, relative to the values where they exceed 1), then every exit of the whole bundle is checked before anything "
                    "is written. The manifest records the converter and difference per segment. The new bundle "
                    "presents the ONNX bundle's hash on the wire, so a TFLite device can offload to an onnxruntime "
                    "peer.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        epilog="examples:\n  edgesplit export-tflite --out mnist_branchy_tflite\n"
               "  edgesplit export-tflite my_bundle --inputs x.npy --out my_bundle_tflite")
    parser.add_argument("bundle", nargs="?", default=None,
                        help="the onnxruntime bundle (default: the one shipped in the package)")
    parser.add_argument("--out", required=True, metavar="DIR", help="bundle directory to create")
    parser.add_argument("--inputs", metavar="X.npy", default=None,
                        help="example inputs (batch axis first) to trace and check with; default: held-out MNIST "
                             "images when the input fits them, else standard-normal random inputs")
    parser.add_argument("--images", type=int, default=64, help="how many example inputs to compare the bundles on")
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
    bundle, report = export_any_tflite(args.out, args.bundle, inputs_path=args.inputs, count=args.images,
                                       overwrite=args.force)
    if args.json:
        print_json(report.to_dict())
        return 0
    print("wrote %s (bundle %s..., on the wire %s... like %s)" % (
        report.bundle_dir, report.bundle_sha256[:12], report.wire_sha256[:12], report.source_bundle))
    print_table(["segment", "bytes", "converter", "difference"],
                [[k, v, report.segments[k]["converter"], report.segments[k]["difference"]]
                 for k, v in report.segment_bytes.items()])
    print("max |tflite - onnxruntime| per exit on %s: %s" % (
        report.example_inputs, ", ".join("%s %.2g" % kv for kv in report.max_abs_diff.items())))
    return 0

