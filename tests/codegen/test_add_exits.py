"""``edgesplit add-exits`` on a user's model: a plain CNN trained here on real MNIST digits (the user's
model) and a residual net (random weights, random labels: the mechanics on a branching graph).

What is checked is behaviour: the bundle validates; its exits sit on valid cuts; re-running the
written bundle through the runtime's Executor on the test split reproduces the accuracy, exit shares
and compute the report and manifest claim; the main branch is the model, bit for bit, and the same
as the ``--no-exits`` bundle's; bad data is refused with an error that says what to do.
"""
import json

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
torch = pytest.importorskip("torch")
ort = pytest.importorskip("onnxruntime")

from edgesplit.codegen.exits.dataset import minimum_images, split_data  # noqa: E402
from edgesplit.codegen.graph import CutError, analyse_model, load_model  # noqa: E402
from edgesplit.runtime.bundle.store import load_bundle  # noqa: E402
from edgesplit.runtime.cli import main as cli_main  # noqa: E402
from edgesplit.runtime.executor.executor import Executor  # noqa: E402

pytestmark = pytest.mark.workstation


def _replay(bundle, images, labels):
    """The Executor with the manifest's thresholds over the images: accuracy, exit counts, mean MACs."""
    executor = Executor(bundle, warm_up=False)
    correct, macs, exits = 0, 0, [0] * len(bundle.manifest.exits)
    for i in range(len(labels)):
        result = executor.run(images[i:i + 1])
        correct += int(np.argmax(result.output[0]) == labels[i])
        macs += result.macs
        exits[result.exit_id] += 1
    n = float(len(labels))
    return correct / n, [e / n for e in exits], macs / n


def test_add_exits_writes_a_bundle_whose_claims_the_executor_reproduces(plain_user_model, capfd):
    root, model = plain_user_model
    out, plain = root / "bundle", root / "plain_bundle"
    assert cli_main(["add-exits", str(model), "--images", str(root / "x.npy"), "--labels", str(root / "y.npy"),
                     "--out", str(out), "--epochs", "8", "--json"]) == 0
    captured = capfd.readouterr()
    report = json.loads(captured.out)
    assert "training exit 1/" in captured.err and "exits (test split)" in captured.err  # progress bars

    bundle = load_bundle(out)
    manifest = bundle.manifest
    side = [e for e in manifest.exits if e.head is not None]
    assert len(side) == len(report["exits"]) >= 2
    valid = {c.tensor for c in analyse_model(load_model(model)).inner}
    assert all(c.tensors[0].name in valid for c in manifest.cuts[1:-1])
    shares = [e["share_of_model_macs"] for e in report["exits"]]
    assert shares == sorted(shares) and shares[0] < 0.5  # spread over the compute, the first early

    test = split_data(np.load(root / "x.npy"), np.load(root / "y.npy"), 0, {}).test
    accuracy, exit_shares, mean_macs = _replay(bundle, test.images, test.labels)
    assert accuracy == pytest.approx(report["test"]["accuracy"])
    assert exit_shares == pytest.approx(report["test"]["exit_shares"], abs=1e-4)
    assert mean_macs == pytest.approx(report["test"]["mean_macs"])
    assert [e.threshold for e in side] == report["thresholds"]
    for ex, claimed in zip(side, report["exits"]):
        assert ex.accuracy == pytest.approx(claimed["accuracy_test"])
        assert ex.macs == claimed["macs"]
    recorded = manifest.provenance["exits"]
    assert recorded["data"]["split"] == {"train": 900, "calibration": 300, "test": 300}
    assert recorded["data"]["images_sha256"] and recorded["threshold_rule"]
    assert recorded["test"]["accuracy"] >= recorded["test"]["final_accuracy"] - 0.03
    assert report["main_branch_bit_exact"] is True

    # --no-exits: the same cuts, no heads; its main branch is the same model, bit for bit.
    assert cli_main(["add-exits", str(model), "--images", str(root / "x.npy"), "--labels", str(root / "y.npy"),
                     "--out", str(plain), "--no-exits", "--no-progress"]) == 0
    without = load_bundle(plain)
    assert [e.head for e in without.manifest.exits] == [None]
    assert [c.tensors for c in without.manifest.cuts] == [c.tensors for c in manifest.cuts]
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    with_exits, no_exits = Executor(bundle, warm_up=False), Executor(without, warm_up=False)
    for i in range(20):
        x = test.images[i:i + 1]
        whole = session.run(None, {"image": x})[0]
        assert np.array_equal(with_exits.run(x, use_exits=False).output, whole)
        assert np.array_equal(no_exits.run(x).output, whole)


def test_residual_net_gets_exits_on_cuts_between_its_blocks(torch_models, tmp_path):
    """A branching graph: every exit reads a tensor that alone separates the model (no skip crosses it)."""
    from edgesplit.codegen.exits.build import add_exits

    model = torch_models[("residual", 17)]
    rng = np.random.default_rng(0)
    images = rng.standard_normal((200, 3, 16, 16)).astype(np.float32)
    labels = rng.integers(0, 10, 200)
    # Its valid cuts sit at 9 %, 60 % and 99.6 % of the compute: of the steps at 1/3 and 2/3 only the second
    # has a cut within half a step, so two exits asked for give one, at 60 %.
    placed = add_exits(model, images, labels, tmp_path / "a", {"images_file": "random"}, count=2, epochs=1)
    assert [e["share_of_model_macs"] for e in placed["exits"]] == [pytest.approx(0.6, abs=0.01)]
    report = add_exits(model, images, labels, tmp_path / "b", {"images_file": "random"}, at=[2, 4], epochs=2)
    bundle = load_bundle(tmp_path / "b")
    assert len([e for e in bundle.manifest.exits if e.head]) == len(report["cuts"]) == 2
    assert all(len(c.tensors) == 1 for c in bundle.manifest.cuts[1:-1])  # one live tensor: no skip crosses
    assert report["main_branch_bit_exact"] is True
    assert all(0.0 <= t <= 1.0 for t in report["thresholds"])


def test_bad_data_is_refused_with_what_to_do(plain_user_model, tmp_path, capsys):
    root, model = plain_user_model
    images = np.load(root / "x.npy")
    np.save(tmp_path / "hwc.npy", images.reshape(-1, 28, 28, 1))
    assert cli_main(["add-exits", str(model), "--images", str(tmp_path / "hwc.npy"), "--labels",
                     str(root / "y.npy"), "--out", str(tmp_path / "b")]) != 0
    err = capsys.readouterr().err
    assert "hwc.npy" in err and "(N, 1, 28, 28)" in err

    few = minimum_images(10) - 1
    np.save(tmp_path / "few_x.npy", images[:few])
    np.save(tmp_path / "few_y.npy", np.load(root / "y.npy")[:few])
    assert cli_main(["add-exits", str(model), "--images", str(tmp_path / "few_x.npy"), "--labels",
                     str(tmp_path / "few_y.npy"), "--out", str(tmp_path / "b")]) != 0
    err = capsys.readouterr().err
    assert "too few" in err and "at least %d" % (few + 1) in err
    assert not (tmp_path / "b").exists()

    from edgesplit.codegen.exits.build import add_exits

    with pytest.raises(CutError, match="usable cuts are"):
        add_exits(model, images, np.load(root / "y.npy"), tmp_path / "b", {}, at=[999])
    assert cli_main(["add-exits", str(model), "--images", str(root / "x.npy"), "--labels", str(root / "y.npy"),
                     "--at", "6,6", "--out", str(tmp_path / "b")]) != 0
    assert "--at 6,6: names a cut twice" in capsys.readouterr().err and not (tmp_path / "b").exists()
    assert cli_main(["add-exits", str(model), "--image-dir", str(tmp_path), "--size", "32,32",
                     "--out", str(tmp_path / "b")]) != 0
    assert "reads 28x28 images: give --size 28,28" in capsys.readouterr().err
    nan = images.copy()
    nan[3:5] = np.nan  # two whole rows: every value of both counted, the file named
    np.save(tmp_path / "nan_x.npy", nan)
    assert cli_main(["add-exits", str(model), "--images", str(tmp_path / "nan_x.npy"), "--labels",
                     str(root / "y.npy"), "--out", str(tmp_path / "b")]) != 0
    err = capsys.readouterr().err
    assert "nan_x.npy: tensor" in err and "has %d non-finite value(s)" % (2 * images[0].size) in err
    assert "in row 3" in err, err
    (tmp_path / "taken").mkdir()
    assert cli_main(["add-exits", str(model), "--images", str(root / "x.npy"), "--labels", str(root / "y.npy"),
                     "--out", str(tmp_path / "taken"), "--no-progress"]) != 0
    assert "already exists" in capsys.readouterr().err

    (tmp_path / "source.json").write_text('["not", "an object"]')
    assert cli_main(["add-exits", str(model), "--images", str(root / "x.npy"), "--labels", str(root / "y.npy"),
                     "--model-source", str(tmp_path / "source.json"), "--out", str(tmp_path / "b2")]) != 0
    err = capsys.readouterr().err
    assert "source.json" in err and "JSON object of strings" in err and not (tmp_path / "b2").exists()


def test_image_folder_is_preprocessed_as_the_flags_say(tmp_path):
    from PIL import Image

    from edgesplit.codegen.exits.image_folder import Preprocessing, load_image_folder
    from edgesplit.runtime.bundle.manifest import TensorSpec

    for name, value in (("cat", 200), ("ant", 50)):
        (tmp_path / name).mkdir()
        for i in range(2):
            Image.fromarray(np.full((10, 12, 3), value, dtype=np.uint8)).save(tmp_path / name / ("%d.png" % i))
    spec = TensorSpec("x", "float32", (None, 3, 4, 4))
    images, labels, source = load_image_folder(tmp_path, spec, Preprocessing(None, [0.5], [0.25], "nchw"))
    assert images.shape == (4, 3, 4, 4) and images.dtype == np.float32
    assert labels.tolist() == [0, 0, 1, 1] and source["classes"] == ["ant", "cat"]  # sorted names
    assert np.allclose(images[0], (50 / 255.0 - 0.5) / 0.25) and np.allclose(images[3], (200 / 255.0 - 0.5) / 0.25)


def test_a_model_zoo_graph_with_a_fixed_batch_and_a_4d_output(zoo, tmp_path):
    """SqueezeNet from the onnx wheel (placeholder weights, random images: the mechanics only): batch fixed at 1,
    scores shaped (1, 1000, 1, 1), labels of a few of its 1000 classes."""
    from edgesplit.codegen.exits.build import add_exits

    rng = np.random.default_rng(0)
    images = rng.standard_normal((120, 3, 224, 224)).astype(np.float32)
    report = add_exits(zoo("light_squeezenet"), images, rng.integers(0, 5, 120), tmp_path / "b",
                       {"images_file": "random"}, epochs=1)
    assert len(report["exits"]) == 3 and report["main_branch_bit_exact"] is True  # 33 usable cuts: a deep model
    bundle = load_bundle(tmp_path / "b")
    assert [e.macs for e in bundle.manifest.exits[:-1]] == [e["macs"] for e in report["exits"]]
