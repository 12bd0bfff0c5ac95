"""``edgesplit add-exits``: give any ONNX classifier early exits, trained from labelled data.

1. Place K exits on valid cuts at roughly equal steps of compute (``placement``).
2. Split the data (``dataset``): train / calibration / test, seeded.
3. Run the frozen model with onnxruntime over the train split and keep each exit cut's feature map,
   pooled to the head's grid (``features``); train one head per exit on them in torch (``heads``).
4. Run the model and the exported ONNX heads with onnxruntime over the calibration and test
   splits: each exit's logits, hence its normalised entropy and correctness per image.
5. Choose the default thresholds on the calibration split (``calibration``), measure them on the
   test split, and write the bundle with ``split_model``: the main branch is the user's model cut at
   the exit cuts, unchanged; the manifest records each exit's test accuracy, MACs and threshold, and
   the provenance how and on what data they were measured. The bundle's main branch is checked
   bit-exact against the model on a few test images before the report is returned.
"""
import datetime
import logging
import tempfile
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from edgesplit.codegen.exits import calibration
from edgesplit.codegen.exits.dataset import LabelledData, check_images, class_counts, split_data
from edgesplit.codegen.exits.features import FeatureReader, pool
from edgesplit.codegen.exits.heads import design_head, head_model, train_head
from edgesplit.codegen.exits.placement import place_exits
from edgesplit.codegen.graph import ModelError, analyse_model, default_opset, load_model
from edgesplit.codegen.split import ExitHead, split_model
from edgesplit.runtime import __version__
from edgesplit.runtime.bundle.store import load_bundle
from edgesplit.runtime.errors import BundleError

log = logging.getLogger(__name__)

DEFAULT_EPOCHS = 30
BIT_EXACT_SAMPLES = 8
HEAD_TRAINING = ("Adam lr 1e-3, weight decay 1e-4, batch 64, cross entropy, on the train split's pooled features "
                 "standardised (folded into the first Gemm); torch CPU, one thread, seed + exit index")
THRESHOLD_RULE = ("of every per-exit combination on %s, the one with the least mean compute per task on the "
                  "calibration split whose cascade accuracy there is within %.1f points of the final exit's; ties "
                  "to the more accurate")


def _bar(progress: bool, desc: str, unit: str):
    from tqdm import tqdm

    return lambda it: tqdm(it, desc=desc, unit=unit, disable=not progress, leave=False, mininterval=0.5)


def add_exits(model_path, images: np.ndarray, labels: np.ndarray, out_dir, data_source: Dict[str, Any],
              count: Optional[int] = None, at: Optional[Sequence[int]] = None, epochs: int = DEFAULT_EPOCHS,
              seed: int = 0, tolerance: float = calibration.DEFAULT_TOLERANCE, no_exits: bool = False,
              overwrite: bool = False, progress: bool = False, name: Optional[str] = None,
              model_source: Optional[Dict[str, str]] = None) -> Dict[str, Any]:
    """Write the bundle at ``out_dir`` and return the report (what the manifest and provenance record).

    ``model_source``: where the model and data come from (package, licence, citation), kept in the provenance."""
    if Path(out_dir).exists() and not overwrite:  # before the training, not after it
        raise BundleError("%s already exists: choose another --out or remove it first (or --force)" % out_dir)
    model_path = Path(model_path)
    model = load_model(model_path)
    analysis = analyse_model(model)
    classes = _classes(model_path, analysis)
    check_images(images, labels, analysis.inputs[0], classes, data_source.get("images_file", "images"),
                 data_source.get("labels_file", "labels"))
    cut_ids = place_exits(analysis, count, at)
    data = split_data(images, labels, seed, data_source)
    data.source["class_counts"] = class_counts(np.asarray(labels, dtype=np.int64), classes)
    reader = FeatureReader(model, analysis.inputs[0].name, [] if no_exits else
                           [analysis.points[c].tensor for c in cut_ids], analysis.output.name,
                           analysis.inputs[0].shape[0] is None)
    procedure = {"tool": "edgesplit add-exits", "tool_version": __version__, "exit_cuts": cut_ids,
                 "data": data.source, "seed": seed,
                 "created": datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat()}
    if no_exits:
        final = _final_accuracy(reader, data, progress)
        procedure["final_accuracy_test"] = final
        bundle = split_model(model_path, out_dir, cuts=cut_ids, final_accuracy=final, name=name,
                             provenance=_provenance("edgesplit add-exits --no-exits", procedure, model_source),
                             overwrite=overwrite)
        return {"bundle": str(out_dir), "bundle_sha256": bundle.hash, "exits": [], "cuts": cut_ids,
                "final_accuracy": final, "main_branch_bit_exact": _check_bit_exact(bundle, model, data)}
    specs = [analysis.points[c].tensors[0] for c in cut_ids]
    designs = [design_head(spec, classes, analysis.total_macs) for spec in specs]
    with tempfile.TemporaryDirectory(prefix="edgesplit-heads-") as tmp:
        head_paths, head_models = _train_heads(model, reader, data, specs, designs, epochs, seed, Path(tmp), progress)
        outcomes = {part: _outcomes(reader, head_models, getattr(data, part), progress, part)
                    for part in ("calibration", "test")}
        costs = calibration.CascadeCosts.build([analysis.points[c].macs_before for c in cut_ids],
                                               [d.macs for d in designs], analysis.total_macs)
        thresholds = calibration.choose_thresholds(outcomes["calibration"], costs, tolerance)
        measured = {part: calibration.summary(o, thresholds, costs) for part, o in outcomes.items()}
        exits = [_exit_record(i, analysis, cut_id, specs[i], designs[i], costs, thresholds[i], outcomes)
                 for i, cut_id in enumerate(cut_ids)]
        procedure.update({"exits": exits, "epochs": epochs, "head_training": HEAD_TRAINING,
                          "threshold_rule": THRESHOLD_RULE % (list(calibration.THRESHOLD_GRID), 100 * tolerance),
                          "accuracy_tolerance": tolerance, "calibration": measured["calibration"],
                          "test": measured["test"]})
        heads = [ExitHead(path, accuracy=ex["accuracy_test"], threshold=ex["threshold"])
                 for path, ex in zip(head_paths, exits)]
        split_model(model_path, out_dir, cuts=cut_ids, exit_heads=heads,
                    final_accuracy=measured["test"]["final_accuracy"], name=name,
                    provenance=_provenance("edgesplit add-exits", procedure, model_source), overwrite=overwrite)
    bundle = load_bundle(out_dir)
    return {"bundle": str(out_dir), "bundle_sha256": bundle.hash, "cuts": cut_ids, "exits": exits,
            "thresholds": thresholds, "calibration": measured["calibration"], "test": measured["test"],
            "main_branch_bit_exact": _check_bit_exact(bundle, model, data)}


def _provenance(tool: str, procedure: Dict[str, Any], model_source: Optional[Dict[str, str]]) -> Dict[str, Any]:
    provenance = {"tool": tool, "exits": procedure}  # type: Dict[str, Any]
    if model_source:
        provenance["model_source"] = dict(model_source)
    return provenance


def _classes(model_path: Path, analysis) -> int:
    if len(analysis.inputs) != 1:
        raise ModelError("%s has %d inputs; add-exits handles single-input classifiers"
                         % (model_path, len(analysis.inputs)))
    output = analysis.output
    # (N, classes), or (N, classes, 1, 1) as SqueezeNet's final pooling leaves it.
    if (len(output.shape) < 2 or output.shape[1] is None or output.shape[1] < 2
            or any(d != 1 for d in output.shape[2:])):
        raise ModelError("%s: output %r has shape %s; add-exits needs a classifier's (N, classes) scores"
                         % (model_path, output.name, list(output.shape)))
    return int(output.shape[1])


def _train_heads(model, reader: FeatureReader, data: LabelledData, specs, designs, epochs: int, seed: int,
                 tmp: Path, progress: bool):
    """Train and save one ONNX head per exit; returns (paths, models)."""
    import onnx

    pooled = _train_features(reader, data, designs, progress)
    paths, models = [], []
    for i, (spec, design, x) in enumerate(zip(specs, designs, pooled)):
        params = train_head(x, data.train.labels, design, epochs, seed + i,
                            _bar(progress, "training exit %d/%d" % (i + 1, len(specs)), "epoch"))
        head = head_model(spec, design, params, "exit%d_logits" % i, default_opset(model), model.ir_version)
        paths.append(tmp / ("exit%d.onnx" % i))
        onnx.save(head, str(paths[-1]))
        models.append(head)
    return paths, models


def _exit_record(i: int, analysis, cut_id: int, spec, design, costs, threshold: float, outcomes) -> Dict[str, Any]:
    before = analysis.points[cut_id].macs_before
    record = {"cut": cut_id, "tensor": spec.name, "head": design.describe(), "head_macs": design.macs,
              "macs": before + design.macs, "macs_if_taken": costs.exit_macs[i],
              "share_of_model_macs": round(before / float(analysis.total_macs), 4), "threshold": threshold}
    for part in ("test", "calibration"):
        record["accuracy_" + part] = float(outcomes[part].correct[:, i].mean())
        record["entropy_" + part] = calibration.entropy_quantiles(outcomes[part].entropies[:, i])
    return record


def _train_features(reader: FeatureReader, data: LabelledData, designs, progress: bool) -> List[np.ndarray]:
    chunks: List[List[np.ndarray]] = [[] for _ in designs]
    for _, features, _ in reader.batches(data.train.images, _bar(progress, "features (train split)", "batch")):
        for store, feature, design in zip(chunks, features, designs):
            store.append(pool(feature, design.kernel))
    return [np.concatenate(c) for c in chunks]


def _outcomes(reader: FeatureReader, heads, part, progress: bool, name: str) -> calibration.ExitOutcomes:
    import onnxruntime as ort

    sessions = [ort.InferenceSession(h.SerializeToString(), providers=["CPUExecutionProvider"]) for h in heads]
    logits: List[List[np.ndarray]] = [[] for _ in heads]
    finals = []
    for _, features, final in reader.batches(part.images, _bar(progress, "exits (%s split)" % name, "batch")):
        for store, session, feature in zip(logits, sessions, features):
            store.append(session.run(None, {session.get_inputs()[0].name: feature})[0])
        finals.append(final.reshape(len(final), -1))
    return calibration.ExitOutcomes.from_logits([np.concatenate(l) for l in logits], np.concatenate(finals),
                                                part.labels)


def _final_accuracy(reader: FeatureReader, data: LabelledData, progress: bool) -> float:
    finals = [final.reshape(len(final), -1)
              for _, _, final in reader.batches(data.test.images, _bar(progress, "final exit (test)", "batch"))]
    return float((np.concatenate(finals).argmax(axis=1) == data.test.labels).mean())


def _check_bit_exact(bundle, model, data: LabelledData) -> bool:
    """The bundle's main branch (no exits) against the user's model on a few test images, bit for bit."""
    import onnxruntime as ort

    from edgesplit.runtime.executor.executor import Executor

    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    executor = Executor(bundle, warm_up=False)
    name = bundle.manifest.inputs[0].name
    for i in range(min(BIT_EXACT_SAMPLES, len(data.test))):
        x = data.test.images[i:i + 1]
        want = session.run(None, {name: x})[0]
        got = executor.run(x, use_exits=False).output
        if not np.array_equal(want, got):
            log.warning("the bundle's main branch differs from the model on test image %d (max |diff| %g)",
                        i, float(np.abs(want - got).max()))
            return False
    return True
