"""TFLite twin of the default bundle: litert-torch conversion, checked against onnxruntime.

Converting the five segments takes about 10 s (litert-torch imports jax and lowers through MLIR),
so the export runs once per module.
"""
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.workstation

pytest.importorskip("torch")
pytest.importorskip("onnx")
pytest.importorskip("litert_torch")

from edgesplit.codegen.default_model.model import BranchyCNN  # noqa: E402
from edgesplit.codegen.tflite_export import (TfliteExportError, compare_bundles, default_model_modules,  # noqa: E402
                                   export_default_tflite, export_tflite_bundle)
from edgesplit.runtime.bundle.store import load_bundle  # noqa: E402
from edgesplit.runtime.cli import main  # noqa: E402
from edgesplit.runtime.default_bundle import default_bundle_path, load_heldout  # noqa: E402
from edgesplit.runtime.executor.executor import Executor  # noqa: E402

TOLERANCE = 1e-4
SHIPPED_TWIN = Path(__file__).resolve().parents[1] / "support" / "data" / "mnist_branchy_tflite"


@pytest.fixture(scope="module")
def onnx_bundle():
    return load_bundle(default_bundle_path())


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    return export_default_tflite(tmp_path_factory.mktemp("tflite") / "twin", images=16)


@pytest.fixture(scope="module")
def images():
    return load_heldout()[0][:200]


def test_export_keeps_cuts_exits_and_names_and_presents_the_source_hash(exported, onnx_bundle):
    bundle, report = exported
    assert bundle.manifest.cuts == onnx_bundle.manifest.cuts and bundle.manifest.exits == onnx_bundle.manifest.exits
    assert [s.file for s in bundle.manifest.segments] == ["main0.tflite", "main1.tflite", "main2.tflite",
                                                          "exit0.tflite", "exit1.tflite"]
    assert report.wire_sha256 == onnx_bundle.hash == bundle.wire_hash != bundle.hash
    derived = bundle.manifest.provenance["derived_from"]
    assert derived["converter"].startswith("litert-torch ") and derived["compared_inputs"] == 16
    assert max(report.max_abs_diff.values()) <= TOLERANCE
    assert sum(report.segment_bytes.values()) < 1_000_000


def test_every_exit_matches_onnxruntime_on_heldout_images(exported, onnx_bundle, images):
    diffs = compare_bundles(exported[0], onnx_bundle, images)
    assert sorted(diffs) == ["exit0", "exit1", "final"]
    assert max(diffs.values()) <= TOLERANCE, diffs


def test_end_to_end_and_mixed_pairs_through_the_executor(exported, onnx_bundle, images):
    tflite, onnx_run = Executor(exported[0]), Executor(onnx_bundle)
    batch = images[:20]
    whole = onnx_run.run(batch, use_exits=False)
    np.testing.assert_allclose(tflite.run(batch, use_exits=False).output, whole.output, atol=TOLERANCE, rtol=0)
    for cut in range(len(onnx_bundle.manifest.main)):
        live = tflite.run(batch, use_exits=False, stop_at_cut=cut).live
        np.testing.assert_allclose(onnx_run.run_from(cut, live, use_exits=False).output, whole.output,
                                   atol=TOLERANCE, rtol=0, err_msg="cut %d" % cut)


def test_the_shipped_twin_is_current(onnx_bundle, exported, images):
    shipped = load_bundle(SHIPPED_TWIN)
    assert shipped.wire_hash == onnx_bundle.hash, (
        "tests/support/data/mnist_branchy_tflite was made from another default bundle: refresh it with "
        "'edgesplit export-tflite --out tests/support/data/mnist_branchy_tflite --force'")
    assert max(compare_bundles(shipped, exported[0], images[:20]).values()) <= TOLERANCE


def test_a_mismatch_refuses_the_export_and_writes_nothing(onnx_bundle, tmp_path, images):
    mains, heads = default_model_modules(onnx_bundle)
    mains = [BranchyCNN().block1.eval()] + mains[1:]  # untrained weights for main0
    out = tmp_path / "bad"
    with pytest.raises(TfliteExportError, match="segment main0: .*differs from the ONNX segment"):
        export_tflite_bundle(mains, heads, onnx_bundle, out, images[:4])
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_the_command_exports_a_non_default_bundle(tmp_path, capsys):
    from support.tiny_bundle import write_tiny_bundle

    bundle = write_tiny_bundle(tmp_path / "tiny")
    assert main(["export-tflite", str(bundle.root), "--out", str(tmp_path / "out"), "--images", "4"]) == 0
    assert "ONNX graph interpreted in torch" in capsys.readouterr().out
    twin = load_bundle(tmp_path / "out")
    x = np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32)
    assert twin.wire_hash == bundle.hash and max(compare_bundles(twin, bundle, x).values()) <= TOLERANCE
