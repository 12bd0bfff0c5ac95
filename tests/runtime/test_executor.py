"""The executor on the embedded bundle: exits, stopping at a cut, resuming from it."""
import numpy as np
import pytest

from edgesplit.runtime.bundle.store import load_bundle
from edgesplit.runtime.default_bundle import default_bundle_path, load_heldout
from edgesplit.runtime.errors import InputError
from edgesplit.runtime.executor.entropy import normalised_entropy
from edgesplit.runtime.executor.executor import Executor


@pytest.fixture(scope="module")
def executor():
    return Executor(load_bundle(default_bundle_path()))


@pytest.fixture(scope="module")
def images():
    return load_heldout()[0][:32]


def test_entropy_bounds():
    assert normalised_entropy(np.array([[0.0, 0.0, 0.0]]))[0] == pytest.approx(1.0)
    assert normalised_entropy(np.array([[100.0, 0.0, 0.0]]))[0] == pytest.approx(0.0, abs=1e-12)
    probs = np.array([[0.5, 0.5, 0.0, 0.0]])
    assert normalised_entropy(probs)[0] == pytest.approx(np.log(2) / np.log(4))


def test_zero_thresholds_never_exit_early_and_one_always_does(executor, images):
    side = len(executor.side_exits)
    full = executor.run(images[:1], thresholds=[0.0] * side)
    assert full.exit_id == executor.manifest.exits[-1].id
    assert [e for e, _ in full.entropies] == [e.id for e in executor.manifest.exits]
    first = executor.run(images[:1], thresholds=[1.0] * side)
    assert first.exit_id == executor.manifest.exits[0].id
    assert first.macs < full.macs


def test_no_exits_matches_zero_thresholds(executor, images):
    a = executor.run(images[:1], use_exits=False)
    b = executor.run(images[:1], thresholds=[0.0] * len(executor.side_exits))
    np.testing.assert_allclose(a.output, b.output, atol=1e-6)


@pytest.mark.parametrize("cut", [0, 1, 2])
def test_stop_at_cut_then_resume_equals_local(executor, images, cut):
    x = images[3:4]
    local = executor.run(x, use_exits=False)
    head = executor.run(x, use_exits=False, stop_at_cut=cut)
    assert head.stopped_at_cut == cut and head.exit_id is None
    assert sorted(head.live) == sorted(t.name for t in executor.manifest.cuts[cut].tensors)
    tail = executor.run_from(cut, head.live, use_exits=False)
    np.testing.assert_allclose(tail.output, local.output, atol=1e-5)
    assert head.macs + tail.macs == local.macs


def test_wrong_shape_and_dtype_are_refused(executor, images):
    with pytest.raises(InputError, match="shape"):
        executor.run(images[0])
    with pytest.raises(InputError, match="dtype float64"):
        executor.run(images[:1].astype(np.float64))
    with pytest.raises(InputError, match="2 thresholds|thresholds but the bundle has"):
        executor.run(images[:1], thresholds=[0.5] * (len(executor.side_exits) + 1))


def test_the_executors_exit_entropy_equals_the_array_formula_on_every_kind_of_row():
    from edgesplit.runtime.executor.entropy import max_normalised_entropy, normalised_entropy

    rng = np.random.default_rng(3)
    rows = [rng.standard_normal((1, 10)).astype(np.float32) * 4, np.full((1, 10), 0.1, np.float32),
            np.array([[np.nan] + [0.0] * 9], np.float32), np.array([[np.inf, 1.0, 2.0]], np.float32),
            np.array([[-np.inf, 1.0, 2.0]]), np.array([[1e308, 1e308, 0.0]]), np.array([[0.5, 0.5, 0.0]]),
            rng.standard_normal((3, 10)), rng.standard_normal((1, 1, 10)).astype(np.float16), np.array([[3.0]]),
            rng.standard_normal((1, 100)), np.array([[1000.0, -1000.0]], np.float32)]
    for scores in rows:
        assert max_normalised_entropy(scores) == pytest.approx(float(normalised_entropy(scores).max()), abs=1e-12)
