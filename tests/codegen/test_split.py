"""Splitting real models into bundles: every offered cut chains back to the whole model.

Each bundle is run with the real Executor (onnxruntime sessions) from cut 0 to the end, and stopped
at every cut and resumed from the live tensors there; both must match the monolithic model within
1e-4 on the final output, and the live tensors must match the whole model's intermediates.
"""
import json
import warnings
from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from edgesplit.codegen.graph import CutError, ModelError  # noqa: E402
from edgesplit.codegen.split import ExitHead, split_model  # noqa: E402
from edgesplit.runtime.bundle.manifest import file_sha256  # noqa: E402
from edgesplit.runtime.bundle.store import load_bundle  # noqa: E402
from edgesplit.runtime.cli import main as cli_main  # noqa: E402
from edgesplit.runtime.errors import BundleError  # noqa: E402
from edgesplit.runtime.executor.executor import Executor  # noqa: E402

pytestmark = pytest.mark.workstation

TOLERANCE = 1e-4


def random_input(spec, batch: int, seed: int = 0) -> np.ndarray:
    shape = [batch if dim is None else dim for dim in spec.shape]
    return np.random.default_rng(seed).standard_normal(shape).astype(spec.dtype)


def whole_model(path: Path, feeds, extra_outputs=()):
    """The monolithic model's output and the named intermediate tensors, on one thread."""
    model = onnx.load(str(path))
    for name in extra_outputs:
        model.graph.output.append(onnx.ValueInfoProto(name=name))
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.log_severity_level = 3
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    names = [model.graph.output[0].name] + list(extra_outputs)
    values = session.run(names, feeds)
    return values[0], dict(zip(names[1:], values[1:]))


def assert_chains_back(model_path: Path, bundle, batch: int) -> None:
    """Whole pass and stop/resume at every cut reproduce the monolithic model within TOLERANCE."""
    manifest = bundle.manifest
    executor = Executor(bundle, threads=1, warm_up=False)
    spec = manifest.inputs[0]
    x = random_input(spec, batch)
    data_tensors = [c.tensors[0].name for c in manifest.cuts[1:-1]]
    expected, intermediates = whole_model(model_path, {spec.name: x}, data_tensors)

    chained = executor.run(x, use_exits=False)
    assert chained.exit_id == manifest.exits[-1].id
    assert np.abs(chained.output - expected).max() <= TOLERANCE

    live = {spec.name: x}
    for k in range(1, executor.last_cut):
        stopped = executor.run_from(k - 1, live, use_exits=False, stop_at_cut=k)
        assert stopped.stopped_at_cut == k and stopped.output is None
        live = stopped.live
        assert sorted(live) == sorted(t.name for t in manifest.cuts[k].tensors)
        name = manifest.cuts[k].tensors[0].name
        reference = intermediates[name]
        scale = max(1.0, float(np.abs(reference).max()))
        assert np.abs(live[name] - reference).max() <= TOLERANCE * scale, "cut %d (%s)" % (k, name)
        resumed = executor.run_from(k, live, use_exits=False)
        assert np.abs(resumed.output - expected).max() <= TOLERANCE, "resumed from cut %d" % k
    middle = executor.last_cut // 2
    from_start = executor.run(x, use_exits=False, stop_at_cut=middle)
    name = manifest.cuts[middle].tensors[0].name
    # At cut 0 (a one-segment bundle) the tensor is the model's input: compared with the input given.
    reference = x if middle == 0 else intermediates[name]
    assert np.abs(from_start.live[name] - reference).max() <= TOLERANCE * max(1.0, float(np.abs(reference).max()))


def test_zoo_model_split_at_every_cut_chains_back(zoo, zoo_model, tmp_path):
    path = zoo(zoo_model)
    bundle = split_model(path, tmp_path / "bundle", cuts="all")
    manifest = bundle.manifest
    assert len(manifest.main) == len(manifest.cuts) - 1 >= 2
    assert manifest.opset == 9 and manifest.provenance["source_sha256"] == file_sha256(path)
    assert_chains_back(path, bundle, batch=1)


@pytest.mark.parametrize("batch", [1, 3])
def test_torch_model_split_at_every_cut_chains_back(torch_models, torch_key, tmp_path, batch):
    path = torch_models[torch_key]
    bundle = split_model(path, tmp_path / "bundle", cuts="all")
    assert bundle.manifest.opset == torch_key[1]
    assert bundle.manifest.inputs[0].shape == (None, 3, 16, 16)
    assert_chains_back(path, bundle, batch=batch)


def test_shape_tensors_pass_through_segments_that_do_not_use_them(torch_models, tmp_path):
    bundle = split_model(torch_models[("input_shape", 9)], tmp_path / "b", cuts="all")
    manifest = bundle.manifest
    shape_tensor = [t for t in manifest.cuts[1].tensors if not t.batched][0].name
    carriers = [c.id for c in manifest.cuts if shape_tensor in [t.name for t in c.tensors]]
    assert carriers == [1, 2, 3, 4]
    assert [s.id for s in manifest.main if shape_tensor in [t.name for t in s.outputs]] == ["main0"]
    assert [s.id for s in manifest.main if shape_tensor in [t.name for t in s.inputs]] == ["main4"]


def test_segments_keep_the_source_opset_and_record_provenance(zoo, tmp_path):
    path = zoo("light_squeezenet")
    bundle = split_model(path, tmp_path / "sq", cuts=[3, 10], name="squeeze", provenance={"note": "test"})
    manifest = bundle.manifest
    assert manifest.name == "squeeze" and [c.id for c in manifest.cuts] == [0, 1, 2, 3]
    for segment in manifest.segments:
        part = onnx.load(str(bundle.path_of(segment.id)))
        assert [(o.domain, o.version) for o in part.opset_import] == [("", 9)]
        onnx.checker.check_model(part)
    prov = manifest.provenance
    assert prov["source"] == "light_squeezenet.onnx" and prov["source_cut_ids"] == [3, 10]
    assert prov["tool_version"] and prov["created"] and prov["note"] == "test"
    assert load_bundle(bundle.root).hash == bundle.hash


def test_opset_conversion_on_request(torch_models, tmp_path):
    path = torch_models[("residual", 9)]
    bundle = split_model(path, tmp_path / "b", cuts="all", opset=13)
    assert bundle.manifest.opset == 13
    assert_chains_back(path, bundle, batch=2)
    with pytest.raises(ModelError, match="cannot convert from opset 9 to opset 99"):
        split_model(path, tmp_path / "c", opset=99)


def test_no_cut_gives_one_segment(zoo, tmp_path):
    path = zoo("light_squeezenet")
    bundle = split_model(path, tmp_path / "one", cuts=[])
    assert [s.id for s in bundle.manifest.segments] == ["main0"] and len(bundle.manifest.cuts) == 2
    assert_chains_back(path, bundle, batch=1)


def test_auto_split_chains_back(zoo, tmp_path):
    path = zoo("light_inception_v1")
    bundle = split_model(path, tmp_path / "auto")
    assert 2 <= len(bundle.manifest.main) <= 5
    assert_chains_back(path, bundle, batch=1)


# ---------------------------------------------------------------- exit heads


def _export_head(path: Path, reads: str, channels: int, classes: int = 10) -> Path:
    import torch
    from torch import nn

    torch.manual_seed(1)
    head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels, classes)).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(head, torch.randn(2, channels, 16, 16), str(path), opset_version=17, dynamo=False,
                          input_names=[reads], output_names=["scores"],
                          dynamic_axes={reads: {0: "batch"}, "scores": {0: "batch"}})
    return path


def test_exit_heads_become_exit_segments_on_their_cut(torch_models, tmp_path):
    main_path = torch_models[("residual", 17)]
    head_path = _export_head(tmp_path / "head.onnx", "/Relu_1_output_0", 8)
    bundle = split_model(main_path, tmp_path / "b", cuts=[2], final_accuracy=0.9,
                         exit_heads=[ExitHead(head_path, accuracy=0.5, threshold=0.3)])
    manifest = bundle.manifest
    assert manifest.provenance["source_cut_ids"] == [2, 4]  # the head's cut was added
    early, final = manifest.exits
    assert (early.cut, early.head, early.accuracy, early.threshold) == (2, "exit0", 0.5, 0.3)
    assert (final.cut, final.head, final.accuracy, final.threshold) == (3, None, 0.9, 1.0)
    assert early.macs == manifest.cuts[2].macs_before + 8 * 10
    assert manifest.segment("exit0").role == "exit"

    executor = Executor(bundle, threads=1, warm_up=False)
    x = random_input(manifest.inputs[0], 2)
    taken = executor.run(x, thresholds=[1.0])  # any non-uniform softmax is below 1.0: exit early
    _, live = whole_model(main_path, {"x": x}, ["/Relu_1_output_0"])
    head_scores, _ = whole_model(head_path, {"/Relu_1_output_0": live["/Relu_1_output_0"]})
    assert taken.exit_id == 0 and taken.macs == early.macs
    assert np.abs(taken.output - head_scores).max() <= TOLERANCE
    full = executor.run(x, thresholds=[0.0])
    assert full.exit_id == 1 and [e for e, _ in full.entropies] == [0, 1]


@pytest.mark.parametrize("reads,message", [
    ("/block1/block1.0/Conv_output_0", "not a valid cut of the main model"),
    ("no_such_tensor", "not a tensor of the main model"),
])
def test_exit_head_on_an_invalid_cut_is_refused(torch_models, tmp_path, reads, message):
    head_path = _export_head(tmp_path / "head.onnx", reads, 8)
    with pytest.raises(CutError, match=message):
        split_model(torch_models[("residual", 17)], tmp_path / "b", exit_heads=[ExitHead(head_path, 0.5, 0.3)])
    assert not (tmp_path / "b").exists()


def test_exit_head_threshold_outside_unit_interval_is_refused(torch_models, tmp_path):
    head_path = _export_head(tmp_path / "head.onnx", "/Relu_1_output_0", 8)
    with pytest.raises(ModelError, match="threshold must be a number in"):
        split_model(torch_models[("residual", 17)], tmp_path / "b", exit_heads=[ExitHead(head_path, 0.5, 1.5)])


# ---------------------------------------------------------------- errors and atomicity


def _leftovers(root: Path):
    return sorted(p.name for p in root.iterdir())


def test_split_errors_say_why_and_leave_nothing(zoo, tmp_path):
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"\x08\x07\xff\xffnot onnx at all")
    with pytest.raises(ModelError, match="not an ONNX model"):
        split_model(garbage, tmp_path / "out1")
    with pytest.raises(ModelError, match="no such file"):
        split_model(tmp_path / "missing.onnx", tmp_path / "out2")
    with pytest.raises(CutError, match="unknown cut id 500: valid cut ids are 1-33"):
        split_model(zoo("light_squeezenet"), tmp_path / "out3", cuts=[1, 500])
    assert _leftovers(tmp_path) == ["garbage.onnx"]


def test_model_without_valid_cut_is_refused(tmp_path, export):
    import torch
    from torch import nn

    class SkipFromInput(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 3, 3, padding=1)

        def forward(self, x):
            return x + self.conv(torch.relu(self.conv(x)))

    path = export(SkipFromInput(), tmp_path / "skip.onnx", 17)
    with pytest.raises(CutError, match="no valid cut point"):
        split_model(path, tmp_path / "b", cuts="all")
    assert _leftovers(tmp_path) == ["skip.onnx"]


def test_existing_out_is_refused_unless_forced(zoo, tmp_path):
    out = tmp_path / "bundle"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(BundleError, match="already exists"):
        split_model(zoo("light_squeezenet"), out, cuts=[5])
    assert _leftovers(out) == ["keep.txt"]
    bundle = split_model(zoo("light_squeezenet"), out, cuts=[5], overwrite=True)
    assert not (out / "keep.txt").exists() and len(bundle.manifest.main) == 2


@pytest.mark.parametrize("error", [ValueError, RuntimeError])
def test_failure_midway_leaves_no_partial_bundle(zoo, tmp_path, monkeypatch, error):
    real = onnx.utils.Extractor.extract_model
    calls = []

    def flaky(self, inputs, outputs):
        calls.append(outputs)
        if len(calls) == 3:
            raise error("simulated failure while extracting")
        return real(self, inputs, outputs)

    monkeypatch.setattr(onnx.utils.Extractor, "extract_model", flaky)
    with pytest.raises((ModelError, RuntimeError), match="simulated failure"):
        split_model(zoo("light_resnet50"), tmp_path / "bundle", cuts="all")
    assert len(calls) == 3
    assert _leftovers(tmp_path) == []


# ---------------------------------------------------------------- the command


def test_split_command_writes_a_bundle_and_reports_it(zoo, tmp_path, capsys):
    path = str(zoo("light_resnet50"))
    out = str(tmp_path / "r50")
    assert cli_main(["split", path, "--out", out, "--cuts", "4,15,31", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert [c["model_cut_id"] for c in report["cuts"]] == [0, 4, 15, 31, None]
    assert report["bundle_sha256"] == load_bundle(out).hash
    assert len(report["segments"]) == 4

    assert cli_main(["split", path, "--out", out, "--cuts", "4"]) == 1
    assert "already exists" in capsys.readouterr().err
    assert cli_main(["split", path, "--out", out, "--cuts", "4", "--force", "--name", "r50"]) == 0
    text = capsys.readouterr().out
    assert "wrote" in text and "r3 1x64x56x56" in text
    assert load_bundle(out).manifest.name == "r50"


@pytest.mark.parametrize("cuts,message", [("3,x", "'x' is not a cut id"), ("0", "unknown cut id 0"),
                                          ("all,3", "is not a cut id")])
def test_split_command_bad_cuts(zoo, tmp_path, capsys, cuts, message):
    assert cli_main(["split", str(zoo("light_squeezenet")), "--out", str(tmp_path / "b"), "--cuts", cuts]) == 1
    assert message in capsys.readouterr().err
    assert _leftovers(tmp_path) == []


def test_an_opset_the_oldest_boards_cannot_load_is_warned_about(torch_models, tmp_path, caplog):
    import onnx

    from edgesplit.codegen.graph import load_model

    model = onnx.load(str(torch_models[("residual", 17)]))
    load_model(torch_models[("residual", 17)])
    assert "opset" not in caplog.text
    for entry in model.opset_import:
        if entry.domain in ("", "ai.onnx"):
            entry.version = 22
    newer = tmp_path / "opset22.onnx"
    onnx.save(model, str(newer))
    with caplog.at_level("WARNING"):
        load_model(newer)
    assert "opset 22 is newer than onnxruntime 1.19 loads (up to 21" in caplog.text
    assert "opset_version=17" in caplog.text
