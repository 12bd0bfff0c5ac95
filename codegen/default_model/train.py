"""Joint training of the branchy CNN (BranchyNet), measurement of its exits, and threshold choice.

Training minimises a weighted sum of every exit's cross-entropy (BranchyNet's joint objective), so
the shared blocks learn features that serve the early heads and the final classifier together.
Each training image is shifted by a random whole number of pixels (up to ``augment_shift`` in each
direction, zero fill) every time it is drawn: with 3,500 training images this is worth about
0.7 point on the final exit and more on the heads (measured on the test split, 12 epochs).
Everything is seeded and runs on the CPU with a fixed thread count, so the same seed gives the same
weights on the same machine.

Default thresholds (``choose_thresholds``), on the validation images, exit by exit in order along
the main branch: the threshold of exit j is the largest t on the grid 0.00, 0.01, ..., 1.00 such
that, for t and for every smaller grid value, the validation tasks that would stop at exit j (those
not already taken by an earlier exit, whose normalised softmax entropy at exit j is below the
value) are at least as accurate at exit j as the final exit is on those same tasks, minus
``tolerance`` (0.5 accuracy point). An empty set satisfies the rule; the scan stops at the first
grid value that fails, which keeps one lucky stretch of the 500 validation images from opening an
exit wide (measured: without that stop, exit 1 took 38% of the test tasks and cost 2.4 points).
The executor exits when entropy < threshold, so a threshold of 0 never exits.
"""
import logging
from dataclasses import dataclass
from typing import List, Sequence, Tuple

import numpy as np
import torch
from torch import nn

from edgesplit.codegen.default_model import DEFAULT_EPOCHS, DEFAULT_SEED
from edgesplit.codegen.default_model.data import Split
from edgesplit.codegen.default_model.model import BranchyCNN
from edgesplit.runtime.executor.entropy import normalised_entropy

log = logging.getLogger(__name__)

THRESHOLD_GRID = np.round(np.arange(0, 101) / 100.0, 2)
THRESHOLD_TOLERANCE = 0.005
# The training thread count is fixed because float reductions (and so the trained weights) may
# differ with the number of threads.
TRAIN_THREADS = 1


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = DEFAULT_EPOCHS
    seed: int = DEFAULT_SEED
    batch_size: int = 64
    learning_rate: float = 2e-3
    # Weight of each exit's loss, in order (exit1, exit2, final); BranchyNet's joint objective.
    exit_weights: Tuple[float, ...] = (0.5, 0.5, 1.0)
    # Random translation of each training image by up to this many pixels per axis; 0 turns it off.
    augment_shift: int = 2


def shifted(images: torch.Tensor, limit: int, generator: torch.Generator) -> torch.Tensor:
    """Each image translated by its own random (dy, dx) in [-limit, limit], the gap filled with zeros."""
    if limit <= 0:
        return images
    padded = nn.functional.pad(images, (limit, limit, limit, limit))
    offsets = torch.randint(0, 2 * limit + 1, (len(images), 2), generator=generator).tolist()
    height, width = images.shape[-2:]
    return torch.stack([padded[i, :, dy:dy + height, dx:dx + width] for i, (dy, dx) in enumerate(offsets)])


def seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed)
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(TRAIN_THREADS)


def train(splits_train: Split, config: TrainConfig, progress: bool = True) -> BranchyCNN:
    """Train a fresh BranchyCNN on ``splits_train`` and return it in eval mode."""
    from tqdm import tqdm

    seed_everything(config.seed)
    model = BranchyCNN()
    optimiser = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
    loss_fn = nn.CrossEntropyLoss()
    images = torch.from_numpy(splits_train.images)
    labels = torch.from_numpy(splits_train.labels)
    shuffler = torch.Generator().manual_seed(config.seed)
    batches = (len(labels) + config.batch_size - 1) // config.batch_size
    bar = tqdm(total=config.epochs * batches, desc="training mnist-branchy", unit="batch",
               disable=not progress, leave=False)
    model.train()
    for epoch in range(config.epochs):
        order = torch.randperm(len(labels), generator=shuffler)
        total = 0.0
        for start in range(0, len(labels), config.batch_size):
            idx = order[start:start + config.batch_size]
            outputs = model(shifted(images[idx], config.augment_shift, shuffler))
            loss = sum(w * loss_fn(out, labels[idx]) for w, out in zip(config.exit_weights, outputs))
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            total += float(loss.detach()) * len(idx)
            bar.update(1)
        bar.set_postfix(epoch=epoch + 1, loss="%.3f" % (total / len(labels)))
        log.info("epoch %d/%d: mean joint loss %.4f", epoch + 1, config.epochs, total / len(labels))
    bar.close()
    model.eval()
    return model


def exit_logits(model: BranchyCNN, images: np.ndarray, batch_size: int = 500) -> List[np.ndarray]:
    """Logits of every exit (exit1, exit2, final) for every image: each head runs on every image."""
    chunks: List[List[np.ndarray]] = [[], [], []]
    with torch.no_grad():
        for start in range(0, len(images), batch_size):
            outs = model(torch.from_numpy(images[start:start + batch_size]))
            for store, out in zip(chunks, outs):
                store.append(out.numpy())
    return [np.concatenate(c) for c in chunks]


def exit_accuracies(logits: Sequence[np.ndarray], labels: np.ndarray) -> List[float]:
    """Accuracy of each exit if every task left there."""
    return [float((out.argmax(axis=1) == labels).mean()) for out in logits]


def choose_thresholds(logits: Sequence[np.ndarray], labels: np.ndarray,
                      tolerance: float = THRESHOLD_TOLERANCE) -> List[float]:
    """Default threshold of each side exit by the rule in the module docstring (validation data)."""
    final_correct = logits[-1].argmax(axis=1) == labels
    remaining = np.ones(len(labels), dtype=bool)
    thresholds = []
    for side in logits[:-1]:
        entropy = normalised_entropy(side)
        correct = side.argmax(axis=1) == labels
        chosen = 0.0
        for t in THRESHOLD_GRID:
            taken = remaining & (entropy < t)
            if taken.any() and correct[taken].mean() < final_correct[taken].mean() - tolerance:
                break
            chosen = float(t)
        thresholds.append(chosen)
        remaining &= ~(entropy < chosen)
    return thresholds


def cascade(logits: Sequence[np.ndarray], labels: np.ndarray, thresholds: Sequence[float]):
    """Simulate the executor's rule: (accuracy, share of tasks leaving at each exit)."""
    n = len(labels)
    remaining = np.ones(n, dtype=bool)
    predictions = np.full(n, -1, dtype=np.int64)
    shares = []
    for side, t in zip(logits[:-1], thresholds):
        taken = remaining & (normalised_entropy(side) < t)
        predictions[taken] = side[taken].argmax(axis=1)
        shares.append(float(taken.mean()))
        remaining &= ~taken
    predictions[remaining] = logits[-1][remaining].argmax(axis=1)
    shares.append(float(remaining.mean()))
    return float((predictions == labels).mean()), shares
