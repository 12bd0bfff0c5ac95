"""``edgesplit cuts``: list the valid cut points of an ONNX model (workstation command)."""
import argparse
import textwrap
from typing import Any, Dict

from edgesplit.runtime.commands.output import print_json, print_table
from edgesplit.runtime.errors import EdgesplitError

INSTALL_HINT = "this command needs the workstation tools: pip install 'edgesplit[codegen]'"


def register(commands) -> None:
    parser = commands.add_parser(
        "cuts",
        description=textwrap.fill(
            "List where MODEL.onnx can be split. A cut is offered only where one activation tensor "
            "(plus, possibly, tiny shape tensors) is everything that crosses from the part before to "
            "the part after, so residual adds, concatenations and inception branches are never cut "
            "inside. Cut 0 is the model input and the last cut its output; the ids listed here are "
            "what 'edgesplit split --cuts' takes. MACs are per sample (Conv, ConvTranspose, Gemm, "
            "MatMul).", 100),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="example:\n  edgesplit cuts resnet50.onnx\n  edgesplit cuts resnet50.onnx --json > cuts.json")
    parser.add_argument("model", metavar="MODEL.onnx", help="ONNX classification model (one output; opset 9-21: onnxruntime 1.19 on JetPack 4 loads up to 21, a newer one is warned about)")
    parser.add_argument("--json", action="store_true", help="print one JSON document instead of a table")
    parser.set_defaults(handler=run_cuts)


def import_codegen():
    """The codegen graph package, or a clear error when the workstation extra is not installed."""
    try:
        import onnx  # noqa: F401

        from edgesplit.codegen import graph
    except ImportError as exc:
        raise EdgesplitError("%s (%s)" % (INSTALL_HINT, exc)) from None
    return graph


def human_count(value: float, unit: str = "") -> str:
    for factor, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= factor:
            return "%.2f%s%s" % (value / factor, suffix, unit)
    return "%d%s" % (value, unit)


def human_bytes(value: int) -> str:
    for factor, suffix in ((1 << 20, "MiB"), (1 << 10, "KiB")):
        if value >= factor:
            return "%.1f %s" % (value / factor, suffix)
    return "%d B" % value


def tensor_json(spec) -> Dict[str, Any]:
    return {"name": spec.name, "dtype": spec.dtype, "shape": list(spec.shape), "batched": spec.batched}


def cut_json(point) -> Dict[str, Any]:
    return {"id": point.id, "tensors": [tensor_json(t) for t in point.tensors],
            "bytes_per_sample": point.bytes_per_sample, "macs_before": point.macs_before,
            "macs_after": point.macs_after, "share_before": round(point.share_before, 6)}


def tensors_text(point) -> str:
    main = point.tensors[0]
    text = "%s %s" % (main.name, "x".join("N" if d is None else str(d) for d in main.shape))
    if len(point.tensors) > 1:
        text += " (+%d shape)" % (len(point.tensors) - 1)
    return text


def run_cuts(args) -> int:
    graph = import_codegen()
    model = graph.load_model(args.model)
    cuts = graph.analyse_model(model)
    if args.json:
        print_json({
            "model": args.model,
            "opset": graph.default_opset(model),
            "total_macs": cuts.total_macs,
            "input": cut_json(cuts.points[0]),
            "output": cut_json(cuts.points[-1]),
            "cuts": [cut_json(p) for p in cuts.inner],
        })
        return 0
    print("%s: opset %d, %s MACs per sample, %d valid cuts (cut 0 = input, cut %d = output)"
          % (args.model, graph.default_opset(model), human_count(cuts.total_macs), len(cuts.inner),
             len(cuts.points) - 1))
    print_table(("id", "tensor", "bytes/sample", "MACs before", "MACs after", "share"),
                [(p.id, tensors_text(p), human_bytes(p.bytes_per_sample), human_count(p.macs_before),
                  human_count(p.macs_after), "%.1f%%" % (100 * p.share_before)) for p in cuts.points])
    return 0
