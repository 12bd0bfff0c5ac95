"""The branchy CNN: three main blocks of roughly equal compute, an exit head after blocks 1 and 2.

Following BranchyNet / EdgeML, side exits sit at roughly equal steps of compute along the main
branch (about 0.96 M, 0.9 M and 0.94 M MACs per block). The heads are small next to the blocks
they skip: exit 1 (average pool to a 3x3 grid, a 32-unit hidden layer; 5 k MACs) is cheap and
clearly weaker than the final classifier; exit 2 (the whole 32x7x7 block output into a 64-unit
hidden layer; 0.1 M MACs) is nearly as accurate as the final exit, so a task that has to stay on
the device at low bandwidth loses little accuracy there. (With one linear layer per head, exit 2
reached only 93 % against the final 96.5 %, and the demo's adaptive policy paid for every task it
kept local.) The exits' accuracies are what is measured on the test split; the final exit is the
most accurate.

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
                "heads: avgpool(k4,s4) + linear 144->32 + linear 32->10 on block1_out, linear 1568->64 + "
                "linear 64->10 on block2_out")
HEAD_OUTPUT_NAMES = ("exit0_logits", "exit1_logits")  # numbered like the manifest's exits


def _conv(cin: int, cout: int) -> nn.Module:
    return nn.Sequential(nn.Conv2d(cin, cout, kernel_size=3, padding=1), nn.ReLU())


class ExitHead(nn.Module):
    """A side classifier: optionally average-pool the block output to a small grid, then a hidden
    layer (ReLU) and a linear layer to the classes."""

    def __init__(self, channels: int, grid: int, hidden: int, pool_kernel: int = 1, pool_stride: int = 1):
        super().__init__()
        self.pool = nn.AvgPool2d(kernel_size=pool_kernel, stride=pool_stride) if pool_kernel > 1 else nn.Identity()
        self.hidden = nn.Sequential(nn.Linear(channels * grid * grid, hidden), nn.ReLU())
        self.linear = nn.Linear(hidden, NUM_CLASSES)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.linear(self.hidden(torch.flatten(self.pool(features), 1)))


class BranchyCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.block1 = nn.Sequential(_conv(1, 8), _conv(8, 16), nn.MaxPool2d(2))
        self.block2 = nn.Sequential(_conv(16, 32), nn.MaxPool2d(2))
        self.block3 = nn.Sequential(_conv(32, 64), nn.MaxPool2d(2), nn.Flatten())
        self.classifier = nn.Sequential(nn.Linear(64 * 3 * 3, 64), nn.ReLU(), nn.Linear(64, NUM_CLASSES))
        # Exit 1: 16x14x14 pooled to a 3x3 grid (kernel 4, stride 4). Exit 2: the whole 32x7x7 output.
        self.exit1 = ExitHead(16, grid=3, hidden=32, pool_kernel=4, pool_stride=4)
        self.exit2 = ExitHead(32, grid=7, hidden=64)

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
