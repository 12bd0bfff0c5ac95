"""``edgesplit split``: cut an ONNX model into a bundle of chained segments (workstation command)."""
import argparse
import textwrap
from typing import List, Optional, Union

from edgesplit.codegen.cuts_command import INSTALL_HINT, human_bytes, human_count, tensors_text
from edgesplit.runtime.commands.output import print_json, print_table
from edgesplit.runtime.errors import EdgesplitError


def register(commands) -> None:
    parser = commands.add_parser(
        "split",
        description=textwrap.fill(
            "Cut MODEL.onnx at valid cut points (see 'edgesplit cuts') and write a bundle: one ONNX "
            "segment per piece of the main branch and a manifest listing every tensor that crosses "
            "each cut, with sha256 sums. The segments chain back to the whole model. The bundle is "
            "written to a temporary directory and renamed into place, so a failure leaves nothing "
            "behind.", 100),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  edgesplit split resnet50.onnx --out resnet50.bundle\n"
               "  edgesplit split resnet50.onnx --out r50 --cuts 4,15,31 --force --json")
    parser.add_argument("model", metavar="MODEL.onnx", help="ONNX classification model (one output; opset 9-21: onnxruntime 1.19 on JetPack 4 loads up to 21, a newer one is warned about)")
    parser.add_argument("--out", required=True, metavar="BUNDLE", help="bundle directory to create")
    parser.add_argument("--cuts", default="auto",
                        help="'auto' (about 4 cuts at equal steps of compute, smallest crossing in each step; "
                             "the default), 'all' (every valid cut) or comma-separated cut ids from "
                             "'edgesplit cuts'")
    parser.add_argument("--name", help="bundle name in the manifest (default: the model file's stem)")
    parser.add_argument("--force", action="store_true", help="replace BUNDLE if it already exists")
    parser.add_argument("--json", action="store_true", help="print a JSON summary instead of a table")
    parser.set_defaults(handler=run_split)


def parse_cuts(text: str) -> Union[str, List[int]]:
    text = text.strip()
    if text in ("auto", "all"):
        return text
    ids = []
    for part in text.split(","):
        try:
            ids.append(int(part))
        except ValueError:
            raise EdgesplitError("--cuts: %r is not a cut id; give 'auto', 'all' or ids like 3,7,12" % part) from None
    return ids


def run_split(args) -> int:
    cuts = parse_cuts(args.cuts)
    try:
        import onnx  # noqa: F401

        from edgesplit.codegen.split import split_model
    except ImportError as exc:
        raise EdgesplitError("%s (%s)" % (INSTALL_HINT, exc)) from None
    bundle = split_model(args.model, args.out, cuts=cuts, name=args.name, overwrite=args.force)
    manifest = bundle.manifest
    source_ids = manifest.provenance.get("source_cut_ids", [])
    if args.json:
        print_json({
            "bundle": str(bundle.root),
            "bundle_sha256": bundle.hash,
            "name": manifest.name,
            "opset": manifest.opset,
            "segments": [{"id": s.id, "role": s.role, "file": s.file, "macs": s.macs} for s in manifest.segments],
            "cuts": [{"id": c.id, "model_cut_id": _model_cut_id(c.id, source_ids, len(manifest.cuts)),
                      "tensors": [t.name for t in c.tensors], "bytes_per_sample": c.bytes_per_sample,
                      "macs_before": c.macs_before, "macs_after": c.macs_after} for c in manifest.cuts],
            "layout_anchors": manifest.provenance.get("layout_anchors", []),
        })
        return 0
    print("wrote %s: %d segments, bundle sha256 %s" % (bundle.root, len(manifest.segments), bundle.hash))
    print_table(("cut", "model cut", "tensor", "bytes/sample", "MACs before", "MACs after"),
                [(c.id, _model_cut_text(c.id, source_ids, len(manifest.cuts)), tensors_text(c),
                  human_bytes(c.bytes_per_sample), human_count(c.macs_before), human_count(c.macs_after))
                 for c in manifest.cuts])
    anchors = manifest.provenance.get("layout_anchors", [])
    if anchors:
        print("layout anchors (exact 1x1 depthwise identity; docs/commands.md, edgesplit split): %s"
              % ", ".join(anchors))
    return 0


def _model_cut_id(bundle_cut: int, source_ids, cut_count: int) -> Optional[int]:
    """The id 'edgesplit cuts' shows for a bundle cut: 0 for the input, None for the output."""
    if bundle_cut == 0:
        return 0
    if bundle_cut == cut_count - 1:
        return None
    return int(source_ids[bundle_cut - 1])


def _model_cut_text(bundle_cut: int, source_ids, cut_count: int) -> str:
    model_cut = _model_cut_id(bundle_cut, source_ids, cut_count)
    return "out" if model_cut is None else str(model_cut)
