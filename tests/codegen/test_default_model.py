"""The default-model pipeline: training, threshold rule, export and the bundle it writes.

Quick builds use 2 epochs: after 1 epoch the two early heads are both near 50% and their order is
a coin toss, after 2 they are reliably ordered (about 70% < 76% < 93%).
"""
import sys

import numpy as np
import pytest

pytestmark = pytest.mark.workstation

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")

from edgesplit.codegen.default_model import data as mnist  # noqa: E402
from edgesplit.codegen.default_model import train as training  # noqa: E402
from edgesplit.codegen.default_model.build import build_default  # noqa: E402
from edgesplit.codegen.default_model.export import bundle_exit_logits, check_bundle_matches, export_heads, export_main  # noqa: E402
from edgesplit.codegen.split import ExitHead, split_model  # noqa: E402
from edgesplit.runtime.bundle.store import load_bundle  # noqa: E402
from edgesplit.runtime.default_bundle import BUNDLE_DIR_NAME, HELDOUT_FILE_NAME  # noqa: E402

QUICK_EPOCHS = 2


@pytest.fixture(scope="module")
def splits():
    return mnist.split_mnist()


@pytest.fixture(scope="module")
def quick_build(tmp_path_factory):
    out = tmp_path_factory.mktemp("default")
    report = build_default(out, training.TrainConfig(epochs=QUICK_EPOCHS), progress=False)
    return out, report


def test_split_is_disjoint_fixed_and_normalised(splits):
    sizes = splits.sizes()
    assert sizes == {"train": mnist.TRAIN_SIZE, "validation": mnist.VALIDATION_SIZE, "test": mnist.TEST_SIZE}
    again = mnist.split_mnist()
    assert np.array_equal(again.test.images, splits.test.images)
    train_rows = {row.tobytes() for row in splits.train.images}
    assert not any(row.tobytes() in train_rows for row in splits.test.images)
    assert splits.train.images.dtype == np.float32 and splits.train.images.shape[1:] == (1, 28, 28)
    assert 0.0 <= splits.train.images.min() and splits.train.images.max() <= 1.0


def test_quick_build_writes_a_bundle_whose_exits_are_ordered_as_measured(quick_build, splits):
    out, report = quick_build
    bundle = load_bundle(out / BUNDLE_DIR_NAME)
    manifest = bundle.manifest
    assert manifest.name == "mnist-branchy" and manifest.opset == 13
    claimed = [e.accuracy for e in manifest.exits]
    assert claimed == report.exit_accuracy
    assert claimed == sorted(claimed) and len(set(claimed)) == len(claimed)
    measured = [float((out_.argmax(axis=1) == splits.test.labels).mean())
                for out_ in bundle_exit_logits(bundle, splits.test.images)]
    assert measured == pytest.approx(claimed, abs=1e-9)
    assert [e.threshold for e in manifest.exits[:-1]] == report.thresholds
    assert manifest.provenance["training"]["epochs"] == QUICK_EPOCHS
    assert report.max_abs_diff_vs_torch <= 1e-4


def test_quick_build_ships_test_images_only(quick_build, splits):
    out, _ = quick_build
    with np.load(str(out / HELDOUT_FILE_NAME)) as held:
        images, labels = held["images"], held["labels"]
    assert images.dtype == np.float32 and labels.dtype == np.int64
    assert np.array_equal(images, splits.test.images[:len(images)])
    assert np.array_equal(labels, splits.test.labels[:len(labels)])


def test_exported_chain_and_heads_match_torch(tmp_path, splits):
    model = training.train(splits.train, training.TrainConfig(epochs=1), progress=False)
    main = export_main(model, tmp_path / "main.onnx")
    heads = [ExitHead(str(p), accuracy=None, threshold=0.5) for p in export_heads(model, tmp_path)]
    bundle = split_model(main, tmp_path / "bundle", cuts="all", exit_heads=heads, name="check")
    assert len(bundle.manifest.main) > 3  # every valid cut, not only the exits' cuts
    assert check_bundle_matches(bundle, model, splits.test.images[:64]) <= 1e-4


def test_same_seed_trains_the_same_weights(splits):
    config = training.TrainConfig(epochs=1, seed=3)
    first = training.train(splits.train, config, progress=False).state_dict()
    second = training.train(splits.train, config, progress=False).state_dict()
    assert all(torch.equal(first[k], second[k]) for k in first)


def _logits_with_entropy_rank(count: int, label: int = 0) -> np.ndarray:
    """Rows whose entropy rises with the row index, all predicting ``label``."""
    logits = np.zeros((count, 10))
    logits[:, label] = np.linspace(12.0, 0.5, count)
    return logits


def test_threshold_rule_stops_before_the_first_costly_step():
    count = 40
    labels = np.zeros(count, dtype=np.int64)
    side = _logits_with_entropy_rank(count)
    wrong = 25  # the exit is wrong from this row on (higher entropy); the final exit is always right
    side[wrong:, 0], side[wrong:, 1] = 0.0, np.linspace(3.0, 0.5, count - wrong)
    final = _logits_with_entropy_rank(count)
    thresholds = training.choose_thresholds([side, final], labels)
    from edgesplit.runtime.executor.entropy import normalised_entropy

    entropy = normalised_entropy(side)
    assert (np.diff(entropy) > 0).all()
    # Every row below the first wrong one exits; the first wrong one does not.
    assert thresholds == [np.floor(entropy[wrong] * 100) / 100]
    assert (entropy[:wrong] < thresholds[0]).sum() >= wrong - 1


def test_command_module_does_not_import_torch():
    import subprocess

    code = "import sys, codegen.default_model.command; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
