"""Cut discovery on real graphs: model-zoo DAGs (residual, dense, inception, shuffle) and torch exports."""
import json
import random
import subprocess
import sys

import pytest

onnx = pytest.importorskip("onnx")

from edgesplit.codegen.graph import CutError, ModelError, analyse_model, load_model, resolve_cut_ids, select_auto  # noqa: E402
from edgesplit.codegen.graph.dataflow import build_dataflow  # noqa: E402
from edgesplit.codegen.graph.partition import find_partitions  # noqa: E402
from edgesplit.runtime.cli import main as cli_main  # noqa: E402

pytestmark = pytest.mark.workstation


def _is_subset(small: int, big: int) -> bool:
    return small & ~big == 0


def test_zoo_cuts_form_a_chain_along_the_main_branch(zoo, zoo_model):
    cuts = analyse_model(load_model(zoo(zoo_model)))
    assert cuts.inner, "%s: no cut offered" % zoo_model
    assert [p.id for p in cuts.points] == list(range(len(cuts.points)))
    for before, after in zip(cuts.points, cuts.points[1:]):
        assert _is_subset(before.side_a, after.side_a) and before.side_a != after.side_a
        assert before.macs_before <= after.macs_before
    for point in cuts.points:
        assert point.macs_before + point.macs_after == cuts.total_macs
        assert point.tensors[0].batched and point.bytes_per_sample > 0
        assert all(t.dtype == "int64" for t in point.tensors[1:] if not t.batched)


@pytest.mark.parametrize("model,gmacs", [("light_resnet50", 4.09), ("light_vgg19", 19.63),
                                         ("light_densenet121", 2.83), ("light_squeezenet", 0.349)])
def test_zoo_macs_match_the_published_counts(zoo, model, gmacs):
    cuts = analyse_model(load_model(zoo(model)))
    assert cuts.total_macs / 1e9 == pytest.approx(gmacs, rel=0.01)


def test_densenet_offers_a_cut_after_every_dense_layer(zoo):
    cuts = analyse_model(load_model(zoo("light_densenet121")))
    concat_outputs = {n.output[0] for n in cuts.flow.nodes if n.op_type == "Concat"}
    offered = {p.tensor for p in cuts.inner}
    assert concat_outputs <= offered  # each dense layer ends in a Concat that holds everything live
    assert len(cuts.inner) > 60


@pytest.mark.parametrize("model", ["light_resnet50", "light_inception_v1", "light_shufflenet",
                                   "light_densenet121"])
def test_cuts_do_not_depend_on_node_order(zoo, model):
    original = load_model(zoo(model))
    expected = [(p.tensor, p.crossing) for p in find_partitions(build_dataflow(original))]
    shuffled = onnx.ModelProto()
    shuffled.CopyFrom(original)
    nodes = list(shuffled.graph.node)
    random.Random(7).shuffle(nodes)  # not even topological: the finder must not care
    copies = []
    for node in nodes:
        copy = onnx.NodeProto()
        copy.CopyFrom(node)
        copies.append(copy)
    del shuffled.graph.node[:]
    shuffled.graph.node.extend(copies)
    assert [(p.tensor, p.crossing) for p in find_partitions(build_dataflow(shuffled))] == expected


def test_residual_blocks_are_never_cut_inside(torch_models):
    cuts = analyse_model(load_model(torch_models[("residual", 17)]))
    offered = [p.tensor for p in cuts.inner]
    assert not [name for name in offered if name.startswith(("/block1/", "/block2/", "/project/"))]
    assert "/Add_output_0" in offered and "/Add_1_output_0" in offered


def test_concat_branches_are_never_cut_inside(torch_models):
    cuts = analyse_model(load_model(torch_models[("branches", 9)]))
    offered = [p.tensor for p in cuts.inner]
    assert not [name for name in offered if name.startswith(("/b1/", "/b2/", "/b3/"))]
    assert "/Concat_output_0" in offered


@pytest.mark.parametrize("opset", [9, 17])
def test_dynamic_batch_shape_tensors_cross_listed_and_unbatched(torch_models, opset):
    cuts = analyse_model(load_model(torch_models[("input_shape", opset)]))
    assert cuts.inputs[0].shape == (None, 3, 16, 16)
    before_flatten = [p for p in cuts.inner if p.tensors[0].shape[1:] != (128,)]
    assert before_flatten
    for point in before_flatten:
        data, *shapes = point.tensors
        assert data.batched and data.shape[0] is None
        assert [(t.dtype, t.batched, t.shape) for t in shapes] == [("int64", False, (2,))]
        assert point.bytes_per_sample == data.bytes_per_sample() + 16


def test_macs_of_a_known_net(tmp_path, export):
    import torch
    from torch import nn

    class Known(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 8, 3, padding=1)  # 16*16*8 outputs x 3*3*3 = 55296
            self.depthwise = nn.Conv2d(8, 8, 3, padding=1, groups=8)  # 16*16*8 x 1*3*3 = 18432
            self.fc = nn.Linear(8 * 16 * 16, 10)  # 2048 x 10 = 20480

        def forward(self, x):
            x = self.depthwise(torch.relu(self.conv(x)))
            return self.fc(x.view(x.size(0), -1))

    cuts = analyse_model(load_model(export(Known(), tmp_path / "known.onnx", 17)))
    assert cuts.total_macs == 55296 + 18432 + 20480
    assert [p.macs_before for p in cuts.inner] == [55296, 55296, 55296 + 18432, 55296 + 18432]


def test_a_model_with_no_single_tensor_cut_is_refused(tmp_path, export):
    import torch
    from torch import nn

    class SkipFromInput(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 3, 3, padding=1)

        def forward(self, x):
            return x + self.conv(torch.relu(self.conv(x)))

    cuts = analyse_model(load_model(export(SkipFromInput(), tmp_path / "skip.onnx", 17)))
    assert cuts.inner == []
    with pytest.raises(CutError, match="no valid cut point"):
        resolve_cut_ids(cuts, "all")


def test_auto_picks_at_most_four_cuts_one_per_step_of_compute(zoo):
    cuts = analyse_model(load_model(zoo("light_resnet50")))
    chosen = select_auto(cuts)
    assert 1 <= len(chosen) <= 4 and chosen == sorted(chosen)
    steps = [int(cuts.points[i].share_before * 5 + 0.5) for i in chosen]
    assert len(set(steps)) == len(steps)
    for i in chosen:  # the smallest crossing within its step
        step = int(cuts.points[i].share_before * 5 + 0.5)
        rivals = [p for p in cuts.inner if int(p.share_before * 5 + 0.5) == step]
        assert cuts.points[i].bytes_per_sample == min(p.bytes_per_sample for p in rivals)
    # ResNet-50: stage 2's first block, stage 2's third, stage 3's third, stage 4's first (after each Relu).
    assert [cuts.points[i].tensor for i in chosen] == ["r47", "r67", "r99", "r151"]


def test_unknown_cut_id_lists_the_valid_ones(zoo):
    cuts = analyse_model(load_model(zoo("light_squeezenet")))
    with pytest.raises(CutError, match=r"unknown cut id 99: valid cut ids are 1-%d" % len(cuts.inner)):
        resolve_cut_ids(cuts, [2, 99])


def test_unreadable_models_say_why(tmp_path, export):
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"\x00\xffthis is not a protobuf\x12\x99")
    with pytest.raises(ModelError, match="not an ONNX model"):
        load_model(garbage)
    with pytest.raises(ModelError, match="no such file"):
        load_model(tmp_path / "missing.onnx")
    with pytest.raises(ModelError, match="not a file"):
        load_model(tmp_path)

    import torch
    from torch import nn

    class TwoOutputs(nn.Module):
        def forward(self, x):
            return torch.relu(x), torch.sigmoid(x)

    path = tmp_path / "two.onnx"
    torch.onnx.export(TwoOutputs(), torch.randn(1, 3), str(path), dynamo=False, input_names=["x"],
                      output_names=["a", "b"])
    with pytest.raises(ModelError, match="2 outputs.*only single-output"):
        load_model(path)


def test_cuts_command_table_and_json(zoo, capsys):
    path = str(zoo("light_resnet50"))
    assert cli_main(["cuts", path]) == 0
    table = capsys.readouterr().out
    assert "39 valid cuts" in table and "r46 1x512x28x28" in table and "1.5 MiB" in table
    assert cli_main(["cuts", path, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert len(data["cuts"]) == 39 and data["total_macs"] == data["cuts"][0]["macs_before"] + \
        data["cuts"][0]["macs_after"]
    assert data["cuts"][10] == {
        "id": 11, "tensors": [{"name": "r46", "dtype": "float32", "shape": [1, 512, 28, 28], "batched": True}],
        "bytes_per_sample": 512 * 28 * 28 * 4, "macs_before": data["cuts"][10]["macs_before"],
        "macs_after": data["cuts"][10]["macs_after"], "share_before": data["cuts"][10]["share_before"]}


def test_cuts_command_errors_exit_1(tmp_path, capsys):
    (tmp_path / "bad.onnx").write_text("hello")
    assert cli_main(["cuts", str(tmp_path / "bad.onnx")]) == 1
    assert "not an ONNX model" in capsys.readouterr().err


def test_commands_do_not_import_onnx_until_run():
    code = ("import sys, codegen.cuts_command, codegen.split_command; "
            "sys.exit(1 if 'onnx' in sys.modules or 'torch' in sys.modules else 0)")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_commands_without_onnx_say_what_to_install(zoo, monkeypatch, capsys):
    path = str(zoo("light_squeezenet"))
    monkeypatch.setitem(sys.modules, "onnx", None)  # import onnx now raises ImportError
    assert cli_main(["cuts", path]) == 1
    assert "pip install 'edgesplit[codegen]'" in capsys.readouterr().err
