"""Model variants of one bundle for the variant selector (``[model] variants``, docs/bandit.md).

- ``quantize_bundle``: every segment quantised with onnxruntime's dynamic quantisation (int8 weights);
- ``truncate_bundle``: a smaller model, the main branch up to a side exit whose head becomes the output;
- ``no_exit_bundle``: the same files with the side exits switched off (threshold 0: always run to the end).

Each variant's accuracy is measured on labelled images with the variant's own runtime (per exit, and
with its default thresholds) and written into its manifest, so the selector's context has it.
Workstation code: onnxruntime.quantization needs the ``onnx`` package.
"""
import dataclasses
import logging
import shutil
from pathlib import Path
from typing import Any, Dict, Optional

import numpy as np

from edgesplit.runtime.bundle.manifest import Cut, Exit
from edgesplit.runtime.bundle.store import Bundle, load_bundle, write_bundle
from edgesplit.runtime.errors import InputError
from edgesplit.runtime.executor.executor import Executor

NEVER, ALWAYS = -1.0, 2.0  # normalised entropies lie in [0, 1]


def measure_accuracy(bundle: Bundle, images: np.ndarray, labels: np.ndarray) -> Dict[str, Any]:
    """Per exit (every task forced there) and with the default thresholds, on ``images``."""
    executor = Executor(bundle, threads=1)
    side = executor.side_exits

    def accuracy(thresholds) -> float:
        hits = 0
        for image, label in zip(images, labels):
            out = executor.run({bundle.manifest.inputs[0].name: image[None]}, thresholds=thresholds)
            hits += int(np.argmax(out.output.reshape(-1)) == label)
        return hits / len(labels)

    per_exit = [accuracy([ALWAYS if j == i else NEVER for j in range(len(side))]) for i in range(len(side))]
    per_exit.append(accuracy([NEVER] * len(side)))
    return {"per_exit": per_exit, "with_defaults": accuracy(list(executor.default_thresholds)),
            "images": int(len(labels))}


def _with_accuracy(bundle: Bundle, out_dir: Path, images, labels, how: str) -> Bundle:
    measured = measure_accuracy(bundle, images, labels)
    manifest = bundle.manifest
    exits = tuple(dataclasses.replace(e, accuracy=round(a, 4)) for e, a in zip(manifest.exits, measured["per_exit"]))
    provenance = dict(manifest.provenance)
    thresholds = dict(provenance.get("thresholds") or {})
    thresholds["test_accuracy_with_defaults"] = round(measured["with_defaults"], 4)
    thresholds.pop("test_exit_shares_with_defaults", None)
    provenance.update(thresholds=thresholds, variant={"how": how, "accuracy_measured_on": "%d labelled images"
                                                      % measured["images"]})
    manifest = dataclasses.replace(manifest, exits=exits, provenance=provenance)
    files = {s.file: bundle.root / s.file for s in manifest.segments}
    return write_bundle(out_dir, manifest, lambda tmp: [shutil.copyfile(str(src), str(tmp / name))
                                                        for name, src in files.items()], overwrite=True)


def quantize_bundle(source: Bundle, out_dir: Path, images: np.ndarray, labels: np.ndarray) -> Bundle:
    """An int8 copy: ``quantize_dynamic`` (QInt8 weights) on every segment; accuracy re-measured."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    staging = Path(str(out_dir) + ".staging")
    shutil.rmtree(str(staging), ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        root = logging.getLogger()
        level = root.level
        root.setLevel(logging.ERROR)  # quantize_dynamic warns on the root logger about optional pre-processing
        try:
            for seg in source.manifest.segments:
                quantize_dynamic(str(source.path_of(seg.id)), str(staging / seg.file), weight_type=QuantType.QInt8)
        finally:
            root.setLevel(level)
        manifest = dataclasses.replace(source.manifest, name=source.manifest.name + "-int8")
        draft = write_bundle(staging / "bundle", manifest, lambda tmp: [
            shutil.copyfile(str(staging / s.file), str(tmp / s.file)) for s in manifest.segments])
        return _with_accuracy(draft, out_dir, images, labels, "onnxruntime.quantization.quantize_dynamic, "
                              "QuantType.QInt8 weights, every segment, from bundle %s" % source.hash[:16])
    finally:
        shutil.rmtree(str(staging), ignore_errors=True)


def truncate_bundle(source: Bundle, out_dir: Path, images: np.ndarray, labels: np.ndarray,
                    exit_id: int = 0) -> Bundle:
    """A smaller model: the main branch up to side exit ``exit_id``, whose head is the last main segment."""
    manifest = source.manifest
    side = [e for e in manifest.exits if e.head is not None]
    if not 0 <= exit_id < len(side):
        raise InputError("exit %d is not a side exit of %s (it has %d)" % (exit_id, source.root, len(side)))
    keep = side[exit_id]
    head = dataclasses.replace(manifest.segment(keep.head), role="main")
    main = list(manifest.main[:keep.cut]) + [head]
    cuts = list(manifest.cuts[:keep.cut + 1])
    total = sum(s.macs for s in main)
    cuts = [dataclasses.replace(c, macs_after=total - c.macs_before) for c in cuts]
    out = head.outputs
    cuts.append(Cut(id=len(main), tensors=out, bytes_per_sample=sum(t.bytes_per_sample() for t in out),
                    macs_before=total, macs_after=0))
    truncated = dataclasses.replace(
        manifest, name="%s-exit%d" % (manifest.name, exit_id), outputs=out, segments=tuple(main), cuts=tuple(cuts),
        exits=(Exit(id=0, cut=len(main), head=None, accuracy=keep.accuracy, threshold=1.0, macs=total),))
    staging = Path(str(out_dir) + ".staging")
    shutil.rmtree(str(staging), ignore_errors=True)
    try:
        draft = write_bundle(staging, truncated, lambda tmp: [
            shutil.copyfile(str(source.path_of(s.id)), str(tmp / s.file)) for s in main])
        return _with_accuracy(draft, out_dir, images, labels, "main branch up to side exit %d of bundle %s, "
                              "its head as the output" % (exit_id, source.hash[:16]))
    finally:
        shutil.rmtree(str(staging), ignore_errors=True)


def no_exit_bundle(source: Bundle, out_dir: Path, images: np.ndarray, labels: np.ndarray) -> Bundle:
    """The same model with its side exits off (threshold 0): slower, as accurate as the last exit."""
    manifest = source.manifest
    exits = tuple(dataclasses.replace(e, threshold=0.0) if e.head is not None else e for e in manifest.exits)
    plain = dataclasses.replace(manifest, name=manifest.name + "-noexit", exits=exits)
    staging = Path(str(out_dir) + ".staging")
    shutil.rmtree(str(staging), ignore_errors=True)
    try:
        draft = write_bundle(staging, plain, lambda tmp: [
            shutil.copyfile(str(source.path_of(s.id)), str(tmp / s.file)) for s in manifest.segments])
        return _with_accuracy(draft, out_dir, images, labels, "side exits off (threshold 0), bundle %s"
                              % source.hash[:16])
    finally:
        shutil.rmtree(str(staging), ignore_errors=True)


def build_default_variants(out_dir: Path, images: Optional[np.ndarray] = None,
                           labels: Optional[np.ndarray] = None) -> Dict[str, Bundle]:
    """fp32 (a copy), int8, small (exit 0) and noexit variants of the embedded default bundle, all measured on
    the same labelled images (default: its held-out images)."""
    from edgesplit.runtime.default_bundle import default_bundle_path, load_heldout

    if images is None:
        images, labels = load_heldout()
    source = load_bundle(default_bundle_path())
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    return {"fp32": _with_accuracy(source, out_dir / "fp32", images, labels, "a copy of bundle %s" % source.hash[:16]),
            "int8": quantize_bundle(source, out_dir / "int8", images, labels),
            "small": truncate_bundle(source, out_dir / "small", images, labels, exit_id=0),
            "noexit": no_exit_bundle(source, out_dir / "noexit", images, labels)}
