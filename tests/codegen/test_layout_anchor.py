"""Layout anchors: a segment whose input is also read by a residual Add gets an exact 1x1 depthwise
convolution in front, onnxruntime then keeps the whole segment in its blocked layout (x86), and the
chain still reproduces the model exactly."""
import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from edgesplit.codegen.graph import analyse_model, load_model  # noqa: E402
from edgesplit.codegen.split import split_model  # noqa: E402
from edgesplit.runtime.executor.executor import Executor  # noqa: E402

pytestmark = pytest.mark.workstation


def cut_id_of(path, tensor: str) -> int:
    cuts = analyse_model(load_model(path))
    return next(c.id for c in cuts.inner if c.tensor == tensor)


def anchors(path):
    graph = onnx.load(str(path)).graph
    return [n for n in graph.node if n.name.endswith("__layout")]


def optimised_ops(path, tmp_path, name: str):
    """The node types of the graph onnxruntime runs (ORT_ENABLE_ALL, CPU)."""
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.optimized_model_filepath = str(tmp_path / (name + ".optimised.onnx"))
    ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
    graph = onnx.load(options.optimized_model_filepath).graph
    return [(n.domain, n.op_type) for n in graph.node]


@pytest.fixture(scope="module")
def resnet(zoo):
    return zoo("light_resnet50")


def test_residual_cut_gets_an_exact_anchor_and_chains_back(resnet, tmp_path):
    cut = cut_id_of(resnet, "r99")  # stage 3, read by the next block's conv and its identity-skip Add
    bundle = split_model(resnet, tmp_path / "anchored", cuts=[cut])
    (anchor,) = anchors(bundle.path_of("main1"))
    assert anchor.op_type == "Conv" and anchor.input[0] == "r99"
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in anchor.attribute}
    assert attrs["group"] == 1024 and list(attrs["kernel_shape"]) == [1, 1]
    assert anchors(bundle.path_of("main0")) == []  # the first segment reads the model input: never anchored

    x = np.random.default_rng(0).standard_normal((1, 3, 224, 224)).astype(np.float32)
    whole = ort.InferenceSession(str(resnet), providers=["CPUExecutionProvider"]).run(None, {"gpu_0/data_0": x})[0]
    executor = Executor(bundle, threads=1, warm_up=False)
    stopped = executor.run(x, use_exits=False, stop_at_cut=1)
    resumed = executor.run_from(1, stopped.live, use_exits=False)
    assert np.abs(resumed.output - whole).max() <= 1e-4
    assert np.abs(executor.run(x, use_exits=False).output - whole).max() <= 1e-4

    plain = split_model(resnet, tmp_path / "plain", cuts=[cut], layout_anchors=False)
    assert anchors(plain.path_of("main1")) == []


def test_cut_read_only_by_convolutions_gets_no_anchor(resnet, tmp_path):
    bundle = split_model(resnet, tmp_path / "b", cuts=[cut_id_of(resnet, "r35")])  # feeds two convs only
    assert anchors(bundle.path_of("main1")) == []


def test_onnxruntime_fuses_every_residual_add_of_an_anchored_segment(resnet, tmp_path):
    cut = cut_id_of(resnet, "r99")
    anchored = split_model(resnet, tmp_path / "anchored", cuts=[cut]).path_of("main1")
    plain = split_model(resnet, tmp_path / "plain", cuts=[cut], layout_anchors=False).path_of("main1")
    plain_ops = optimised_ops(plain, tmp_path, "plain")
    if not any(domain == "com.microsoft.nchwc" for domain, _ in plain_ops):
        pytest.skip("onnxruntime's NCHWc layout pass is not active on this CPU (it is x86 AVX2/AVX-512 only)")
    unfused = {"Add", "Sum"}
    assert sum(op in unfused for _, op in plain_ops) >= 4  # the skip chain stays in NCHW, block after block
    anchored_ops = optimised_ops(anchored, tmp_path, "anchored")
    assert not any(op in unfused for _, op in anchored_ops)
    assert sum(op == "ReorderInput" for _, op in anchored_ops) == 1  # one conversion, at the boundary


def test_split_reports_its_anchors(resnet, tmp_path, capsys):
    from edgesplit.runtime.cli import main as cli_main

    assert cli_main(["split", str(resnet), "--out", str(tmp_path / "b"), "--cuts", str(cut_id_of(resnet, "r99")),
                     "--json"]) == 0
    import json

    report = json.loads(capsys.readouterr().out)
    assert report["layout_anchors"] == ["main1:r99"]
    bundle_provenance = json.loads((tmp_path / "b" / "manifest.json").read_text())["provenance"]
    assert bundle_provenance["layout_anchors"] == ["main1:r99"]
