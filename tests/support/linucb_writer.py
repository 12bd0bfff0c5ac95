"""A LinUCB learner that saves its state after every feedback, forever: the victim of the SIGKILL test.

Part of tests/support. ``python linucb_writer.py STATE_PATH SEED`` replays ``feedback_sequence(SEED)``,
saves after each update and prints the number of feedbacks saved so far (one line, flushed) once the save
has returned. The test kills it at an arbitrary point and checks the file against a replay.
"""
import sys
from typing import Iterator, Tuple

import numpy as np

DIM = 4


def feedback_sequence(seed: int, count: int = 10 ** 6) -> Iterator[Tuple[np.ndarray, float, int]]:
    """(context, reward, delay) triples, the same for the same seed."""
    rng = np.random.default_rng(seed)
    theta = np.array([-0.5, 0.37, -0.36, 0.69])
    for _ in range(count):
        x = rng.random(DIM)
        delay = int(rng.integers(1, 41))
        yield x, float(x @ theta + rng.normal(0.0, np.sqrt(0.4 + 5.0 / delay ** 2))), delay


def main(path: str, seed: int) -> None:
    from edgesplit.policies_lite.linucb import LinUCB, LinUCBConfig
    from edgesplit.policies_lite.linucb_state import save_state

    learner = LinUCB(LinUCBConfig(dim=DIM, features=("a", "b", "c", "d")))
    for x, reward, delay in feedback_sequence(seed):
        learner.update(x, reward, delay, label="arm%d" % (delay % 3))
        save_state(path, learner.state)
        sys.stdout.write("%d\n" % learner.n_feedback)
        sys.stdout.flush()


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
