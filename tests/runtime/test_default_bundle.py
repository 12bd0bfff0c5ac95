"""The embedded default bundle (mnist-branchy) and its held-out images, as a board sees them.

Runs on the board-side install (Python 3.8, onnxruntime, numpy): nothing here needs torch or onnx.
Accuracies are measured on the shipped held-out images, which are a 500-image part of the 1,000
test images the manifest's accuracies were measured on, hence the 3-point tolerance.
"""
import numpy as np
import pytest

from edgesplit.runtime.bundle.store import load_bundle
from edgesplit.runtime.default_bundle import default_bundle_path, load_heldout
from edgesplit.runtime.executor.executor import Executor

SUBSET_TOLERANCE = 0.03
MAX_BUNDLE_BYTES = 1 << 20
SWEEP = (0.0, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 1.0)


@pytest.fixture(scope="module")
def bundle():
    return load_bundle(default_bundle_path())


@pytest.fixture(scope="module")
def executor(bundle):
    return Executor(bundle, threads=1)


@pytest.fixture(scope="module")
def heldout():
    return load_heldout()


def run_each(executor, images, **kwargs):
    """Run image by image (the executor exits a batch only when every row is confident)."""
    return [executor.run(images[i:i + 1], **kwargs) for i in range(len(images))]


def summarise(results, labels):
    predictions = np.array([int(r.output.argmax()) for r in results])
    return (float((predictions == labels).mean()), float(np.mean([r.macs for r in results])),
            [r.exit_id for r in results])


def every_exit_logits(executor, images):
    """Each exit's logits on every image: the main chain on the whole batch, each head on its cut."""
    manifest = executor.manifest
    env = {manifest.inputs[0].name: images}
    for segment in manifest.main:
        env.update(executor.runners[segment.id].run(env))
    logits = []
    for ex in manifest.exits:
        if ex.head is None:
            logits.append(env[manifest.outputs[0].name])
        else:
            logits.append(executor.runners[ex.head].run(env)[manifest.segment(ex.head).outputs[0].name])
    return logits


def test_shipped_bundle_loads_verified_and_small(bundle):
    manifest = bundle.manifest
    assert manifest.name == "mnist-branchy"
    assert manifest.opset <= 15  # onnxruntime 1.10 on the oldest boards
    assert [t.name for t in manifest.inputs] == ["image"]
    assert manifest.inputs[0].shape == (None, 1, 28, 28)
    side = [e for e in manifest.exits if e.head is not None]
    assert len(side) >= 2
    assert all(e.accuracy is not None for e in manifest.exits)
    macs = [e.macs for e in manifest.exits]
    assert macs == sorted(macs) and len(set(macs)) == len(macs)
    size = sum(p.stat().st_size for p in bundle.root.iterdir())
    assert size < MAX_BUNDLE_BYTES
    for key in ("dataset", "input_normalisation", "split", "training", "regenerate", "created"):
        assert key in manifest.provenance, key


def test_heldout_images_are_normalised_digits(heldout):
    images, labels = heldout
    assert images.dtype == np.float32 and images.shape[1:] == (1, 28, 28)
    assert labels.dtype == np.int64 and labels.shape == (images.shape[0],)
    assert images.shape[0] >= 300
    assert 0.0 <= images.min() and images.max() <= 1.0
    assert set(np.unique(labels)) == set(range(10))


def test_each_exit_accuracy_matches_manifest_and_early_exits_are_less_accurate(executor, heldout):
    images, labels = heldout
    measured = [float((out.argmax(axis=1) == labels).mean()) for out in every_exit_logits(executor, images)]
    claimed = [e.accuracy for e in executor.manifest.exits]
    for index, (got, want) in enumerate(zip(measured, claimed)):
        assert abs(got - want) <= SUBSET_TOLERANCE, "exit %d: measured %.3f, manifest %.3f" % (index, got, want)
    # On the 1,000 test images the manifest cites, every early exit is less accurate than the final one;
    # on the 500 shipped held-out images (half of them) exit 2 may tie it, never beat it.
    assert max(claimed[:-1]) < claimed[-1]
    assert max(measured[:-1]) <= measured[-1] and measured[0] < measured[-1]


def test_default_thresholds_exit_early_and_save_compute(executor, heldout):
    images, labels = heldout
    full_accuracy, full_macs, _ = summarise(run_each(executor, images, use_exits=False), labels)
    accuracy, macs, exits = summarise(run_each(executor, images), labels)
    final_id = executor.manifest.exits[-1].id
    early = [e for e in exits if e != final_id]
    assert len(early) > 0.1 * len(exits)
    assert len(set(early)) == len(executor.side_exits)  # every side exit takes some tasks
    assert macs < 0.8 * full_macs
    assert accuracy >= full_accuracy - 0.02


def test_threshold_sweep_trades_accuracy_for_compute(executor, heldout):
    images, labels = heldout
    side = len(executor.side_exits)
    points = [summarise(run_each(executor, images, thresholds=[t] * side), labels) for t in SWEEP]
    macs = [p[1] for p in points]
    accuracy = [p[0] for p in points]
    assert all(later <= earlier for earlier, later in zip(macs, macs[1:])), macs
    assert macs[-1] < 0.5 * macs[0]
    assert accuracy[-1] < accuracy[0] - 0.02
    final_id = executor.manifest.exits[-1].id
    assert all(e == final_id for e in points[0][2])  # threshold 0 never exits early
