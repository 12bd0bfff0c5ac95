"""Split an ONNX classification model into a bundle: main-branch segments cut at valid cut points,
optional exit heads, and a manifest that chains them back into the whole model.

Each main segment is extracted with onnx's Extractor (the machinery of ``onnx.utils.extract_model``):
its inputs are the tensors crossing the cut before it that it reads, its outputs the tensors it
produces that cross the cut after it. Tensors produced earlier and still live later (shape tensors
of a dynamic-batch flatten, for example) pass through the executor's environment, not through the
segment. A main segment after the first gets a layout anchor on each input that a non-Conv op
also reads (``edgesplit.codegen.layout_anchor``: an exact 1x1 depthwise convolution that keeps onnxruntime's
x86 blocked layout across the boundary); ``layout_anchors=False`` writes the plain extracts.
Everything is written by ``write_bundle`` into a temporary directory renamed into place at
the end, so a failure never leaves a partial bundle behind.
"""
import datetime
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Union

import numpy as np

from edgesplit.codegen.graph import CutError, ModelCuts, ModelError, analyse_model, default_opset, load_model, resolve_cut_ids
from edgesplit.codegen.graph.dataflow import build_dataflow, topological_order
from edgesplit.codegen.graph.macs import needed_for, node_macs
from edgesplit.codegen.graph.shapes import ShapeTable
from edgesplit.runtime import __version__
from edgesplit.runtime.bundle.manifest import Cut, Exit, Manifest, Segment, TensorSpec, file_sha256
from edgesplit.runtime.bundle.store import Bundle, write_bundle

log = logging.getLogger(__name__)

PathLike = Union[str, Path]
BACKEND = "onnxruntime"
_UNSET_SHA = "0" * 64  # write_bundle fills in each file's real sha256
_MIN_IR_WITHOUT_INPUT_INITIALIZERS = 4  # IR 3 lists every initializer as a graph input


@dataclass(frozen=True)
class ExitHead:
    """A side classifier: an ONNX model whose single input is a tensor of the main model."""

    onnx_path: PathLike
    accuracy: Optional[float] = None
    threshold: float = 0.5


@dataclass
class _LoadedHead:
    head: ExitHead
    model: object
    input_name: str
    output: TensorSpec
    macs: int
    cut_id: int = 0  # the analysis cut id whose data tensor the head reads


def split_model(model_path: PathLike, out_dir: PathLike, cuts="auto", exit_heads: Sequence[ExitHead] = (),
                final_accuracy: Optional[float] = None, name: Optional[str] = None,
                provenance: Optional[Dict] = None, opset: Optional[int] = None,
                overwrite: bool = False, layout_anchors: bool = True) -> Bundle:
    """Write a bundle of ``model_path`` cut at ``cuts`` ("auto", "all" or cut ids from ``edgesplit cuts``).

    Each exit head's cut is included even when not requested. Raises ModelError/CutError (model or
    request problems) or BundleError (``out_dir`` exists and ``overwrite`` is false).
    """
    model_path = Path(model_path)
    model = load_model(model_path)
    if opset is not None and opset != default_opset(model):
        model = _convert_opset(model, opset, model_path)
    analysis = analyse_model(model)
    heads = [_load_head(head, analysis) for head in exit_heads]
    _check_unit("final_accuracy", final_accuracy, allow_none=True)
    source_ids = sorted(set(resolve_cut_ids(analysis, cuts)) | {h.cut_id for h in heads})
    points = [analysis.points[0]] + [analysis.points[i] for i in source_ids] + [analysis.points[-1]]
    main = _main_segments(analysis, points)
    bundle_cut = {source_id: k for k, source_id in enumerate(source_ids, start=1)}
    heads.sort(key=lambda h: bundle_cut[h.cut_id])
    head_segments = [_head_segment(i, h, analysis) for i, h in enumerate(heads)]
    exits = [Exit(i, bundle_cut[h.cut_id], head_segments[i].id, h.head.accuracy, h.head.threshold,
                  analysis.points[h.cut_id].macs_before + h.macs) for i, h in enumerate(heads)]
    exits.append(Exit(len(heads), len(points) - 1, None, final_accuracy, 1.0, analysis.total_macs))
    manifest = Manifest(
        name=name or model_path.stem,
        opset=default_opset(model),
        inputs=analysis.inputs,
        outputs=(analysis.output,),
        segments=tuple(main + head_segments),
        cuts=tuple(Cut(k, p.tensors, p.bytes_per_sample, p.macs_before, p.macs_after) for k, p in enumerate(points)),
        exits=tuple(exits),
        provenance=_provenance(model_path, cuts, source_ids, heads, provenance),
    )

    def write_files(tmp: Path) -> None:
        anchored = _write_main_segments(analysis, main, tmp, layout_anchors)
        if anchored:  # write_bundle serialises the manifest after this returns: the provenance says so
            manifest.provenance["layout_anchors"] = anchored
            log.info("layout anchors on %s", ", ".join(anchored))
        for segment, head in zip(head_segments, heads):
            _save(head.model, tmp / segment.file, segment.id)

    bundle = write_bundle(out_dir, manifest, write_files, overwrite=overwrite)
    log.info("wrote %s: %d main segments, %d exit heads", out_dir, len(main), len(heads))
    return bundle


# ---------------------------------------------------------------- segments


def _main_segments(analysis: ModelCuts, points) -> List[Segment]:
    flow = analysis.flow
    segments = []
    for k in range(len(points) - 1):
        before, after = points[k], points[k + 1]
        nodes = after.side_a & ~before.side_a
        inputs = tuple(t for t in before.tensors if flow.tensors[t.name].consumers & nodes)
        outputs = tuple(t for t in after.tensors if _produced_in(flow.tensors[t.name].producer, nodes))
        if not inputs or not outputs:
            raise ModelError("internal error: segment %d between cuts %d and %d has no %s"
                             % (k, before.id, after.id, "inputs" if not inputs else "outputs"))
        segments.append(Segment("main%d" % k, "main", "main%d.onnx" % k, BACKEND, _UNSET_SHA, inputs, outputs,
                                after.macs_before - before.macs_before))
    return segments


def _produced_in(producer: Optional[int], nodes: int) -> bool:
    return producer is not None and bool(nodes >> producer & 1)


def _write_main_segments(analysis: ModelCuts, segments: Sequence[Segment], tmp: Path,
                         layout_anchors: bool = True) -> List[str]:
    """Extract and save every main segment; returns "segment:tensor" for each layout anchor added."""
    import onnx.utils

    from edgesplit.codegen.layout_anchor import anchor_inputs

    extractor = onnx.utils.Extractor(_with_boundary_types(analysis, segments))
    anchored = []
    for index, segment in enumerate(segments):
        try:
            part = extractor.extract_model([t.name for t in segment.inputs], [t.name for t in segment.outputs])
        except (ValueError, KeyError) as exc:
            raise ModelError("cannot extract segment %s (inputs %s, outputs %s): %s"
                             % (segment.id, [t.name for t in segment.inputs], [t.name for t in segment.outputs],
                                exc)) from None
        if part.ir_version < _MIN_IR_WITHOUT_INPUT_INITIALIZERS:
            part.ir_version = _MIN_IR_WITHOUT_INPUT_INITIALIZERS
        if layout_anchors and index > 0:
            anchored += ["%s:%s" % (segment.id, name) for name in anchor_inputs(part)]
        _save(part, tmp / segment.file, segment.id)
    return anchored


def _with_boundary_types(analysis: ModelCuts, segments: Sequence[Segment]):
    """A copy of the model whose value_info types every segment boundary tensor (Extractor needs them)."""
    import onnx
    from onnx import helper

    boundary: Dict[str, TensorSpec] = {}
    for segment in segments:
        for spec in segment.inputs + segment.outputs:
            boundary[spec.name] = spec
    model = onnx.ModelProto()
    model.CopyFrom(analysis.model)
    _sort_nodes(model.graph)
    kept = [v for v in model.graph.value_info if v.name not in boundary]
    del model.graph.value_info[:]
    model.graph.value_info.extend(kept)
    for spec in boundary.values():
        shape = ["batch" if dim is None else dim for dim in spec.shape]
        elem_type = helper.np_dtype_to_tensor_dtype(np.dtype(spec.dtype))
        model.graph.value_info.append(helper.make_tensor_value_info(spec.name, elem_type, shape))
    return model


def _sort_nodes(graph) -> None:
    """Put the nodes in a topological order (ONNX requires one; a few exporters do not keep it)."""
    available = {v.name for v in graph.input} | {t.name for t in graph.initializer}
    order = topological_order(graph.node, available)
    if order != sorted(order):
        nodes = [graph.node[i] for i in order]
        copies = []
        for node in nodes:
            copy = type(node)()
            copy.CopyFrom(node)
            copies.append(copy)
        del graph.node[:]
        graph.node.extend(copies)


def _save(model, path: Path, segment_id: str) -> None:
    import onnx

    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as exc:
        raise ModelError("segment %s does not pass the ONNX checker: %s" % (segment_id, exc)) from None
    onnx.save(model, str(path))


# ---------------------------------------------------------------- exit heads


def _load_head(head: ExitHead, analysis: ModelCuts) -> _LoadedHead:
    where = "exit head %s" % head.onnx_path
    _check_unit(where + ": accuracy", head.accuracy, allow_none=True)
    _check_unit(where + ": threshold", head.threshold, allow_none=False)
    model = load_model(head.onnx_path)
    flow = build_dataflow(model)
    if len(flow.inputs) != 1:
        raise ModelError("%s: has %d inputs %s; a head reads exactly one tensor of the main model"
                         % (where, len(flow.inputs), list(flow.inputs)))
    input_name = flow.inputs[0]
    matches = [c for c in analysis.inner if c.tensor == input_name]
    if not matches:
        if input_name not in analysis.flow.kind_of:
            raise CutError("%s: its input %r is not a tensor of the main model; name the head's input after the "
                           "main-model tensor it reads" % (where, input_name))
        raise CutError("%s: its input %r is not a valid cut of the main model (something else crosses there, or "
                       "it is the model input/output); valid cut tensors are listed by 'edgesplit cuts MODEL.onnx'"
                       % (where, input_name))
    cut = matches[0]
    shapes = ShapeTable(model, flow.inputs)
    needed = needed_for(flow.nodes)
    needed[input_name] = True
    needed[flow.output] = True
    shapes.resolve(needed)
    _check_head_input(where, shapes.spec(input_name, True), cut.tensors[0])
    macs = sum(node_macs(node, shapes.concrete) for node in flow.nodes)
    return _LoadedHead(head, model, input_name, shapes.spec(flow.output, True), macs, cut.id)


def _check_head_input(where: str, got: TensorSpec, want: TensorSpec) -> None:
    if got.dtype != want.dtype:
        raise ModelError("%s: its input %r is %s but the main model's tensor is %s"
                         % (where, got.name, got.dtype, want.dtype))
    mismatch = len(got.shape) != len(want.shape) or any(
        g is not None and w is not None and g != w for g, w in list(zip(got.shape, want.shape))[1:])
    if mismatch:
        raise ModelError("%s: its input %r has shape %s but the main model's tensor has shape %s"
                         % (where, got.name, list(got.shape), list(want.shape)))


def _head_segment(index: int, head: _LoadedHead, analysis: ModelCuts) -> Segment:
    spec = analysis.points[head.cut_id].tensors[0]
    return Segment("exit%d" % index, "exit", "exit%d.onnx" % index, BACKEND, _UNSET_SHA, (spec,), (head.output,),
                   head.macs)


def _check_unit(what: str, value, allow_none: bool) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
        raise ModelError("%s must be a number in [0, 1], got %r" % (what, value))


# ---------------------------------------------------------------- provenance and opset


def _provenance(model_path: Path, requested, source_ids: List[int], heads: List[_LoadedHead],
                extra: Optional[Dict]) -> Dict:
    data = {
        "source": model_path.name,
        "source_sha256": file_sha256(model_path),
        "tool": "edgesplit split",
        "tool_version": __version__,
        "created": datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat(),
        "cuts_requested": requested if isinstance(requested, str) else list(requested),
        "source_cut_ids": source_ids,
        "exit_heads": [{"source": Path(h.head.onnx_path).name, "source_sha256": file_sha256(h.head.onnx_path),
                        "reads": h.input_name} for h in heads],
    }
    data.update(extra or {})
    return data


def _convert_opset(model, opset: int, model_path: Path):
    import onnx.version_converter

    try:
        return onnx.version_converter.convert_version(model, opset)
    except (RuntimeError, ValueError, onnx.checker.ValidationError) as exc:
        raise ModelError("%s: cannot convert from opset %d to opset %d (%s); export the model at opset %d instead"
                         % (model_path, default_opset(model), opset, exc, opset)) from None
