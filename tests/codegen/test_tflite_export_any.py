"""export-tflite for any bundle: each ONNX segment interpreted in torch, converted, and measured.

Real converted files, checked through the runtime's own TFLite runner against onnxruntime.
"""
import json

import numpy as np
import pytest

pytestmark = pytest.mark.workstation

pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
pytest.importorskip("litert_torch")

from edgesplit.codegen.split import split_model  # noqa: E402
from edgesplit.codegen.tflite_export import (GRAPH_INTERPRETER, TfliteExportError, compare_bundles,  # noqa: E402
                                             export_any_tflite)
from edgesplit.runtime.cli import main  # noqa: E402
from edgesplit.runtime.executor.executor import Executor  # noqa: E402

TOLERANCE = 1e-4


@pytest.mark.parametrize("net, opset", [("residual", 17), ("shuffle", 9)])
def test_a_user_bundle_converts_segment_by_segment_within_tolerance(torch_models, tmp_path, net, opset):
    source = split_model(torch_models[(net, opset)], tmp_path / "onnx", cuts="auto")
    assert len(source.manifest.main) >= 2
    bundle, report = export_any_tflite(tmp_path / "tflite", source.root, count=8)
    assert bundle.wire_hash == source.hash and [s.backend for s in bundle.manifest.segments] == ["tflite"] * len(
        source.manifest.segments)
    derived = bundle.manifest.provenance["derived_from"]
    assert derived["tolerance"] == TOLERANCE and "random inputs" in derived["example_inputs"]
    for seg in source.manifest.segments:
        chosen = derived["segments"][seg.id]
        assert chosen["converter"] == GRAPH_INTERPRETER and chosen["difference"] <= TOLERANCE
    # Fresh inputs, every exit and every cut mixed across backends.
    x = np.random.default_rng(7).standard_normal((6, 3, 16, 16)).astype(np.float32)
    assert max(compare_bundles(bundle, source, x).values()) <= TOLERANCE
    tflite, onnx_run = Executor(bundle), Executor(source)
    whole = onnx_run.run(x, use_exits=False).output
    for cut in range(len(source.manifest.main)):
        live = tflite.run(x, use_exits=False, stop_at_cut=cut).live
        np.testing.assert_allclose(onnx_run.run_from(cut, live, use_exits=False).output, whole, atol=TOLERANCE,
                                   rtol=0, err_msg="cut %d" % cut)


def test_the_command_exports_a_non_default_bundle_with_given_inputs(torch_models, tmp_path, capsys):
    source = split_model(torch_models[("branches", 9)], tmp_path / "onnx", cuts="auto")
    inputs = tmp_path / "x.npy"
    np.save(str(inputs), np.random.default_rng(1).uniform(0, 1, (5, 3, 16, 16)).astype(np.float32))
    out = tmp_path / "tflite"
    assert main(["export-tflite", str(source.root), "--out", str(out), "--inputs", str(inputs), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["compared_inputs"] == 5 and report["example_inputs"] == "5 rows of %s" % inputs
    assert max(report["max_abs_diff"].values()) <= TOLERANCE and set(report["segments"]) == {
        s.id for s in source.manifest.segments}


def _model_with(op_type, path):
    from onnx import TensorProto, helper, numpy_helper

    weight = numpy_helper.from_array(np.ones((4, 3), np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["h"]), helper.make_node(op_type, ["h"], ["y"])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])], [weight])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(path))
    return path


def test_an_unsupported_operator_is_refused_briefly_by_name(tmp_path, capsys):
    source = split_model(_model_with("Celu", tmp_path / "celu.onnx"), tmp_path / "onnx", cuts=[])
    out = tmp_path / "tflite"
    assert main(["export-tflite", str(source.root), "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "segment main0" in err and "operator Celu is not supported" in err and len(err) < 400
    assert not out.exists()


def test_a_shape_tensor_across_a_cut_is_refused_with_what_to_do(torch_models, tmp_path):
    source = split_model(torch_models[("input_shape", 9)], tmp_path / "onnx", cuts="all")
    with pytest.raises(TfliteExportError, match="shape tensor.*x.flatten"):
        export_any_tflite(tmp_path / "tflite", source.root, count=2)
    assert not (tmp_path / "tflite").exists()
