"""The TFLite backend runs a bundle like onnxruntime does: same tensors in, same tensors out (1e-4)."""
import shutil
import sys

import numpy as np
import pytest
from support.tflite_twin import needs_tflite

from edgesplit.runtime.bundle.manifest import TensorSpec
from edgesplit.runtime.bundle.store import load_bundle
from edgesplit.runtime.errors import BackendError, InputError
from edgesplit.runtime.executor.executor import Executor
from edgesplit.runtime.segments.registry import open_runner
from edgesplit.runtime.segments.tflite_runner import TfliteRunner

TOLERANCE = 1e-4


def every_exit(bundle, images):
    """Each exit's scores and the final output, running every segment on every image."""
    executor = Executor(bundle, threads=1, warm_up=False)
    env = {bundle.manifest.inputs[0].name: images}
    for seg in bundle.manifest.main:
        env.update(executor.runners[seg.id].run(env))
    out = {}
    for ex in bundle.manifest.exits:
        if ex.head is None:
            out["final"] = env[bundle.manifest.outputs[0].name]
        else:
            out[ex.head] = executor.runners[ex.head].run(env)[bundle.manifest.segment(ex.head).outputs[0].name]
    return out


def test_twin_has_the_same_cuts_exits_and_tensors(onnx_bundle, tflite_bundle):
    a, b = onnx_bundle.manifest, tflite_bundle.manifest
    assert a.cuts == b.cuts and a.exits == b.exits and a.inputs == b.inputs and a.outputs == b.outputs
    assert [(s.id, s.inputs, s.outputs) for s in a.segments] == [(s.id, s.inputs, s.outputs) for s in b.segments]
    assert {s.backend for s in b.segments} == {"tflite"}
    assert tflite_bundle.hash != onnx_bundle.hash and tflite_bundle.wire_hash == onnx_bundle.hash


@needs_tflite
def test_every_exit_matches_onnxruntime(onnx_bundle, tflite_bundle, images):
    want, got = every_exit(onnx_bundle, images), every_exit(tflite_bundle, images)
    assert sorted(got) == ["exit0", "exit1", "final"]
    for name in want:
        assert got[name].shape == want[name].shape and got[name].dtype == np.float32
        np.testing.assert_allclose(got[name], want[name], atol=TOLERANCE, rtol=0, err_msg=name)


@needs_tflite
def test_executor_takes_the_same_exits(onnx_bundle, tflite_bundle, images):
    onnx_run, tflite_run = Executor(onnx_bundle), Executor(tflite_bundle)
    for image in images:
        want, got = onnx_run.run(image[None]), tflite_run.run(image[None])
        assert got.exit_id == want.exit_id
        np.testing.assert_allclose(got.output, want.output, atol=TOLERANCE, rtol=0)


@needs_tflite
@pytest.mark.parametrize("cut", [0, 1, 2, 3])
def test_mixed_pair_tflite_device_onnxruntime_peer(onnx_bundle, tflite_bundle, images, cut):
    """Device: TFLite up to the cut; peer: onnxruntime from the cut on. Same NCHW tensors cross."""
    device, peer = Executor(tflite_bundle), Executor(onnx_bundle)
    whole = peer.run(images, use_exits=False)
    shipped = device.run(images, use_exits=False, stop_at_cut=cut)
    if cut == 3:
        assert shipped.exit_id == 2
        np.testing.assert_allclose(shipped.output, whole.output, atol=TOLERANCE, rtol=0)
        return
    assert shipped.stopped_at_cut == cut
    for spec in onnx_bundle.manifest.cuts[cut].tensors:
        assert shipped.live[spec.name].dtype == np.dtype(spec.dtype)
        assert shipped.live[spec.name].shape[1:] == tuple(spec.shape[1:])
    rest = peer.run_from(cut, shipped.live, use_exits=False)
    assert rest.exit_id == whole.exit_id
    np.testing.assert_allclose(rest.output, whole.output, atol=TOLERANCE, rtol=0)
    # And the other way round: onnxruntime device, TFLite peer.
    back = device.run_from(cut, peer.run(images, use_exits=False, stop_at_cut=cut).live, use_exits=False)
    np.testing.assert_allclose(back.output, whole.output, atol=TOLERANCE, rtol=0)


@needs_tflite
def test_a_batch_runs_row_by_row_in_a_batch_one_file(tflite_bundle, images):
    seg = tflite_bundle.manifest.segment("main2")  # Flatten -> Reshape to a constant [1, 576]
    runner = open_runner(seg, tflite_bundle.path_of("main2"))
    block2 = Executor(tflite_bundle, warm_up=False).run(images[:3], use_exits=False, stop_at_cut=2).live
    batched = runner.run(block2)["logits"]
    rows = np.concatenate([runner.run({"block2_out": block2["block2_out"][i:i + 1]})["logits"] for i in range(3)])
    assert batched.shape == (3, 10)
    np.testing.assert_array_equal(batched, rows)


@needs_tflite
def test_names_are_mapped_through_the_files_signature(tflite_bundle):
    seg = tflite_bundle.manifest.segment("main1")
    runner = TfliteRunner(seg, tflite_bundle.path_of("main1"))
    assert runner.signature_key == "serving_default"
    renamed = seg.__class__(**dict(seg.__dict__, inputs=(TensorSpec("other", "float32", (None, 16, 14, 14)),)))
    with pytest.raises(BackendError, match="no signature has the manifest's inputs"):
        TfliteRunner(renamed, tflite_bundle.path_of("main1"))


@needs_tflite
def test_a_file_that_is_not_tflite_is_refused_naming_the_segment(tflite_bundle, tmp_path):
    bad = tmp_path / "main0.tflite"
    bad.write_bytes(b"not a flatbuffer at all" * 10)
    with pytest.raises(BackendError, match="segment main0 .*TFLite cannot load it"):
        TfliteRunner(tflite_bundle.manifest.segment("main0"), bad)


@needs_tflite
def test_a_batch_the_file_cannot_take_is_an_input_error(tflite_bundle):
    runner = TfliteRunner(tflite_bundle.manifest.segment("main1"), tflite_bundle.path_of("main1"))
    runner._fixed_batch = {"block1_out": 2}  # as a file exported with a fixed batch of 2 would say
    with pytest.raises(InputError, match="takes exactly 2"):
        runner.run({"block1_out": np.zeros((3, 16, 14, 14), np.float32)})


def test_missing_tflite_library_is_a_backend_error_saying_what_to_install(tflite_bundle, monkeypatch):
    for name in ("ai_edge_litert", "ai_edge_litert.interpreter", "tflite_runtime", "tflite_runtime.interpreter"):
        monkeypatch.setitem(sys.modules, name, None)  # None in sys.modules makes the import fail
    with pytest.raises(BackendError, match="pip install ai-edge-litert .*tflite-runtime"):
        Executor(tflite_bundle)


@needs_tflite
def test_a_copied_twin_loads_and_verifies(tflite_bundle, tmp_path):
    copy = tmp_path / "twin"
    shutil.copytree(str(tflite_bundle.root), str(copy))
    assert load_bundle(copy).hash == tflite_bundle.hash
