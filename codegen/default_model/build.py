"""The whole default-model pipeline: split the data, train, measure, choose thresholds, export, ship.

Accuracies in the manifest are measured on the test split (each exit on every test image, i.e. the
accuracy of that exit if every task left there); thresholds are chosen on the validation split (rule
in ``train``); the shipped held-out images are the first ``HELDOUT_COUNT`` images of the test split.
The exported bundle is checked against the torch model (every exit within 1e-4) before it is kept.
"""
import datetime
import logging
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np

from edgesplit.codegen.default_model import data as mnist
from edgesplit.codegen.default_model import train as training
from edgesplit.codegen.default_model.model import ARCHITECTURE
from edgesplit.runtime.default_bundle import BUNDLE_DIR_NAME, HELDOUT_FILE_NAME
from edgesplit.policies_lite.files import atomic_write

log = logging.getLogger(__name__)

BUNDLE_NAME = "mnist-branchy"
HELDOUT_COUNT = 500
REGENERATE_COMMAND = "edgesplit build-default"


@dataclass
class BuildReport:
    bundle_dir: str
    heldout_file: str
    bundle_sha256: str
    epochs: int
    seed: int
    test_images: int
    exit_accuracy: List[float]
    exit_macs: List[int]
    thresholds: List[float]
    test_cascade_accuracy: float
    test_cascade_exit_shares: List[float]
    max_abs_diff_vs_torch: float
    bundle_bytes: int

    def to_dict(self) -> Dict:
        return asdict(self)


def created_date() -> str:
    """Today (UTC), or SOURCE_DATE_EPOCH's date when set, so rebuilds can be byte-reproducible."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    moment = (datetime.datetime.fromtimestamp(int(epoch), datetime.timezone.utc) if epoch
              else datetime.datetime.now(datetime.timezone.utc))
    return moment.date().isoformat()


def build_default(out_dir: Path, config: training.TrainConfig = training.TrainConfig(),
                  progress: bool = True, regenerate_command: Optional[str] = None) -> BuildReport:
    """Train, export and write ``out_dir/mnist_branchy`` and ``out_dir/mnist_heldout.npz``."""
    from edgesplit.codegen.default_model.export import check_bundle_matches, export_heads, export_main
    from edgesplit.codegen.split import ExitHead, split_model

    out_dir = Path(out_dir)
    splits = mnist.split_mnist()
    model = training.train(splits.train, config, progress=progress)
    test_logits = training.exit_logits(model, splits.test.images)
    accuracy = training.exit_accuracies(test_logits, splits.test.labels)
    thresholds = training.choose_thresholds(training.exit_logits(model, splits.validation.images),
                                            splits.validation.labels)
    cascade_accuracy, shares = training.cascade(test_logits, splits.test.labels, thresholds)
    log.info("test accuracy per exit %s, thresholds %s, cascade %.4f", accuracy, thresholds, cascade_accuracy)

    provenance = _provenance(splits, config, accuracy, thresholds, cascade_accuracy, shares,
                             regenerate_command or REGENERATE_COMMAND)
    bundle_dir = out_dir / BUNDLE_DIR_NAME
    with tempfile.TemporaryDirectory(prefix="edgesplit-default-") as work:
        work_dir = Path(work)
        main_path = export_main(model, work_dir / "mnist_branchy.onnx")
        head_paths = export_heads(model, work_dir)
        heads = [ExitHead(str(p), accuracy=accuracy[i], threshold=thresholds[i]) for i, p in enumerate(head_paths)]
        bundle = split_model(main_path, bundle_dir, cuts="auto", exit_heads=heads, final_accuracy=accuracy[-1],
                             name=BUNDLE_NAME, provenance=provenance, overwrite=True)
    worst = check_bundle_matches(bundle, model, splits.test.images)
    heldout = out_dir / HELDOUT_FILE_NAME
    write_heldout(heldout, splits.test.images[:HELDOUT_COUNT], splits.test.labels[:HELDOUT_COUNT])
    return BuildReport(
        bundle_dir=str(bundle_dir), heldout_file=str(heldout), bundle_sha256=bundle.hash, epochs=config.epochs,
        seed=config.seed, test_images=len(splits.test), exit_accuracy=accuracy,
        exit_macs=[e.macs for e in bundle.manifest.exits], thresholds=thresholds,
        test_cascade_accuracy=cascade_accuracy, test_cascade_exit_shares=shares, max_abs_diff_vs_torch=worst,
        bundle_bytes=sum(p.stat().st_size for p in bundle_dir.iterdir()))


def write_heldout(path: Path, images: np.ndarray, labels: np.ndarray) -> None:
    """Write the held-out arrays atomically (temporary file renamed into place)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path) as handle:
        np.savez_compressed(handle, images=images.astype(np.float32), labels=labels.astype(np.int64))


def _provenance(splits: mnist.MnistSplits, config: training.TrainConfig, accuracy: List[float],
                thresholds: List[float], cascade_accuracy: float, shares: List[float], command: str) -> Dict:
    import torch

    return {
        "created": created_date(),
        "regenerate": command,
        "model": ARCHITECTURE,
        "dataset": mnist.DATASET,
        "input_normalisation": mnist.NORMALISATION,
        "split": dict(seed=mnist.SPLIT_SEED, **splits.sizes()),
        "training": {
            "seed": config.seed, "epochs": config.epochs, "batch_size": config.batch_size,
            "optimiser": "Adam", "learning_rate": config.learning_rate,
            "loss": "BranchyNet joint loss: weighted sum of each exit's cross-entropy",
            "exit_loss_weights": list(config.exit_weights),
            "augmentation": "random shift of up to %d pixels per axis, zero fill" % config.augment_shift, "device": "cpu", "threads": training.TRAIN_THREADS,
            "torch": torch.__version__.split("+")[0],
        },
        "exit_accuracy": {
            "measured_on": "%d test images (each exit on every image: its accuracy if every task left there)"
                           % len(splits.test),
            "per_exit": accuracy,
        },
        "thresholds": {
            "chosen_on": "%d validation images" % len(splits.validation),
            "rule": "per side exit in order: the largest t on the grid 0.00..1.00 (step 0.01) such that at t "
                    "and at every smaller grid value the tasks that would exit there (not taken earlier, "
                    "normalised softmax entropy < value) are at least as accurate at that exit as the final "
                    "exit is on the same tasks, minus %.1f point" % (100 * training.THRESHOLD_TOLERANCE),
            "per_exit": thresholds,
            "test_accuracy_with_defaults": cascade_accuracy,
            "test_exit_shares_with_defaults": shares,
        },
        "heldout": {"file": HELDOUT_FILE_NAME, "images": HELDOUT_COUNT,
                    "from": "the first %d images of the test split" % HELDOUT_COUNT},
    }
