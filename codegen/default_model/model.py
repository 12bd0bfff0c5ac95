"""The branchy CNN: three main blocks of roughly equal compute, an exit head after blocks 1 and 2.

Following BranchyNet / EdgeML, side exits sit at roughly equal steps of compute along the main
branch (about 0.96 M, 0.9 M and 0.94 M MACs per block) and are deliberately small (an
average pool and one linear layer, a few thousand MACs), so taking an early exit is much cheaper
than going on, and honestly less accurate than the final classifier.

    image (1x28x28)
      block1: conv 1->8, conv 8->16, max-pool    -> block1_out (16x14x14) -> exit1 head
      block2: conv 16->32, max-pool              -> block2_out (32x7x7)   -> exit2 head
      block3: conv 32->64, max-pool, linear 576->64, linear 64->10 -> logits
"""
from typing import Tuple

import torch
from torch import nn

NUM_CLASSES = 10
INPUT_NAME = "image"
OUTPUT_NAME = "logits"
# Names of the block outputs in the exported main graph; each exit head's ONNX input has the same
# name, which is how the splitter knows where the head hangs.
BLOCK_OUTPUT_NAMES = ("block1_out", "block2_out")
ARCHITECTURE = ("block1 conv3x3 1->8, conv3x3 8->16, maxpool2 | block2 conv3x3 16->32, maxpool2 | block3 conv3x3 "
                "32->64, maxpool2, linear 576->64, linear 64->10 (ReLU after each conv and hidden linear); exit "
                "heads: avgpool(k4,s4) + linear 144->10 on block1_out, avgpool(k4,s3) + linear 128->10 on "
                "block2_out")
HEAD_OUTPUT_NAMES = ("exit0_logits", "exit1_logits")  # numbered like the manifest's exits


def _conv(cin: int, cout: int) -> nn.Module:
    return nn.Sequential(nn.Conv2d(cin, cout, kernel_size=3, padding=1), nn.ReLU())


class ExitHead(nn.Module):
    """A side classifier: average-pool the block output to a small grid, then one linear layer."""

    def __init__(self, channels: int, pool_kernel: int, pool_stride: int, grid: int):
        super().__init__()
        self.pool = nn.AvgPool2d(kernel_size=pool_kernel, stride=pool_stride)
        self.linear = nn.Linear(channels * grid * grid, NUM_CLASSES)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.linear(torch.flatten(self.pool(features), 1))


class BranchyCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.block1 = nn.Sequential(_conv(1, 8), _conv(8, 16), nn.MaxPool2d(2))
        self.block2 = nn.Sequential(_conv(16, 32), nn.MaxPool2d(2))
        self.block3 = nn.Sequential(_conv(32, 64), nn.MaxPool2d(2), nn.Flatten())
        self.classifier = nn.Sequential(nn.Linear(64 * 3 * 3, 64), nn.ReLU(), nn.Linear(64, NUM_CLASSES))
        # 14x14 -> 3x3 grid (kernel 4, stride 4) and 7x7 -> 2x2 grid (kernel 4, stride 3).
        self.exit1 = ExitHead(16, pool_kernel=4, pool_stride=4, grid=3)
        self.exit2 = ExitHead(32, pool_kernel=4, pool_stride=3, grid=2)

    def trunk(self, image: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Main branch: (block1 output, block2 output, final logits)."""
        b1 = self.block1(image)
        b2 = self.block2(b1)
        return b1, b2, self.classifier(self.block3(b2))

    def forward(self, image: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Logits of every exit, in order along the main branch: (exit1, exit2, final)."""
        b1, b2, logits = self.trunk(image)
        return self.exit1(b1), self.exit2(b2), logits

    @property
    def heads(self) -> Tuple[ExitHead, ExitHead]:
        return self.exit1, self.exit2


class MainBranchWithTaps(nn.Module):
    """The main branch for export; it also returns the block outputs so the exporter names them.

    ``export`` drops the two extra graph outputs afterwards, leaving the tensors inside the graph
    under their stable names ``block1_out`` and ``block2_out``.
    """

    def __init__(self, model: BranchyCNN):
        super().__init__()
        self.model = model

    def forward(self, image: torch.Tensor):
        b1, b2, logits = self.model.trunk(image)
        return logits, b1, b2
