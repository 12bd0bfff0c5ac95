"""The default-threshold rule of add-exits on hand-made outcomes: the executor's earliest-confident-exit
cascade, and the least compute whose calibration accuracy stays within the tolerance of the final exit's."""
import numpy as np
import pytest

from edgesplit.codegen.exits.calibration import CascadeCosts, ExitOutcomes, cascade, choose_thresholds, summary

pytestmark = pytest.mark.workstation


def _outcomes():
    # 10 images, 2 side exits, the final exit right on every image. Exit 0: entropy 0.05 on images 0-5 (wrong on
    # 5), 0.5 on 6-8 (wrong on all three), 0.9 on 9. Exit 1: entropy 0.1 on images 0-8 (wrong on 8), 0.9 on 9
    # (wrong).
    entropies = np.array([[0.05, 0.1]] * 6 + [[0.5, 0.1]] * 3 + [[0.9, 0.9]])
    correct = np.ones((10, 3), dtype=bool)
    correct[5, 0] = False
    correct[6:9, 0] = False
    correct[8, 1] = False
    correct[9, 1] = False
    return ExitOutcomes(entropies, correct)


def test_cascade_takes_the_first_exit_below_its_threshold():
    taken, right = cascade(_outcomes(), [0.06, 0.2])
    assert taken.tolist() == [0] * 6 + [1] * 3 + [2]
    assert right.tolist() == [True] * 5 + [False, True, True, False, True]


def test_thresholds_save_the_most_compute_within_the_tolerance():
    costs = CascadeCosts.build([30, 60], [5, 5], 100)  # exit 0: 35 MACs, exit 1: 70, final: 110
    assert costs.exit_macs == [35, 70, 110]
    # No tolerance: no wrong answer may be added, so neither exit may take image 5 or image 8.
    assert choose_thresholds(_outcomes(), costs, tolerance=0.0) == [0.0, 0.0]
    # 10 points: one wrong image allowed. Exit 0 for images 0-5 (one error, 6 x 35 + 4 x 110 MACs) beats exit 1
    # for images 0-8 (one error, 9 x 70 + 110); exit 1 after exit 0 would add image 8, a second error.
    chosen = choose_thresholds(_outcomes(), costs, tolerance=0.10)
    measured = summary(_outcomes(), chosen, costs)
    assert 0.05 < chosen[0] <= 0.5 and chosen[1] <= 0.1
    assert measured["exit_shares"] == [0.6, 0.0, 0.4] and measured["accuracy"] == pytest.approx(0.9)
    # 20 points: two errors allowed: exit 0 for images 0-5, exit 1 for 6-8, the final exit for image 9.
    wide = summary(_outcomes(), choose_thresholds(_outcomes(), costs, tolerance=0.20), costs)
    assert wide["exit_shares"] == [0.6, 0.3, 0.1]
    assert wide["compute_saved"] == pytest.approx(1 - (6 * 35 + 3 * 70 + 110) / 10 / 100)
