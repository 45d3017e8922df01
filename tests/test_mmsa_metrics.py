"""MMSA's utterance-level regression metrics against values worked out by hand on one small
example (each planted bug named beside the number it breaks)."""

from __future__ import annotations

import numpy as np
import pytest

from fusion_bench.errors import DataError
from fusion_bench.evaluate import applies, metric_functions
from fusion_bench.mmsa_metrics import (
    has0_acc_2,
    has0_f1,
    mae,
    mult_acc_5,
    mult_acc_7,
    non0_acc_2,
    non0_f1,
    weighted_f1,
)
from fusion_bench.plugins import load_registry

# eight sequences: two zero labels, a zero prediction, halves that round to even, values past ±2
P = np.array([-1.4, 0.0, 0.3, -0.2, 2.5, 1.5, 3.6, 0.4])
Y = np.array([-2.0, -0.5, 0.0, 0.0, 2.6, 0.6, 2.9, -1.0])


def test_mae_by_hand():
    # |p − y| = 0.6 0.5 0.3 0.2 0.1 0.9 0.7 1.4, sum 4.7 over 8
    assert mae(P, Y) == pytest.approx(4.7 / 8, abs=1e-12)
    assert mae.higher_is_better is False


def test_has0_acc_2_counts_zero_labels_as_positive():
    # y ≥ 0: F F T T T T T F; p ≥ 0: F T T F T T T T; agree at 0,2,4,5,6: 5/8
    # (with > instead of ≥: y>0 F F F F T T T F, p>0 F F T F T T T T → 6/8)
    assert has0_acc_2(P, Y) == pytest.approx(5 / 8)


def test_has0_f1_is_support_weighted():
    # class "≥ 0" (support 5): TP 4 (2,4,5,6), FP 2 (1,7), FN 1 (3) → F1 8/11
    # class "< 0" (support 3): TP 1 (0), FP 1 (3), FN 2 (1,7) → F1 2/5
    # weighted: (5·8/11 + 3·2/5) / 8 = 266/440; unweighted (macro) would be 62/110
    assert has0_f1(P, Y) == pytest.approx(266 / 440, abs=1e-12)
    assert has0_f1(P, Y) != pytest.approx(62 / 110)


def test_non0_metrics_leave_zero_labels_out_and_a_zero_prediction_is_negative():
    # y ≠ 0 at 0,1,4,5,6,7: y>0 F F T T T F; p>0 F F(0.0) T T T T → agree 5 of 6
    # (p ≥ 0 would make the 0.0 prediction positive: 4 of 6)
    assert non0_acc_2(P, Y) == pytest.approx(5 / 6)
    # class "> 0" (support 3): TP 3, FP 1, FN 0 → 6/7; class "< 0" (3): TP 2, FP 0, FN 1 → 4/5
    assert non0_f1(P, Y) == pytest.approx((3 * 6 / 7 + 3 * 4 / 5) / 6, abs=1e-12)


def test_multiclass_accuracies_clip_then_round_half_to_even():
    # clip ±2 and round: p -1 0 0 -0 2 2 2 0; y -2 -0 0 0 2 1 2 -1 → agree 1,2,3,4,6: 5/8
    # (clip ±3 instead: 4/8; clip ±1: 7/8; -0.5 rounded away from zero to -1: 4/8)
    assert mult_acc_5(P, Y) == pytest.approx(5 / 8)
    # clip ±3 and round: p -1 0 0 -0 2(2.5: half to even) 2 3 0; y -2 -0 0 0 3 1 3 -1 → 1,2,3,6: 4/8
    # (clip ±2 instead: 5/8; clip ±4: 3/8)
    assert mult_acc_7(P, Y) == pytest.approx(4 / 8)


def test_weighted_f1_matches_its_definition_on_one_class_only():
    # every truth positive, every prediction positive: class True F1 1 (support 4), class False
    # has no support: weight 0 (and 0/0 → 0), so 1.0
    t = np.array([True] * 4)
    assert weighted_f1(t, t) == 1.0
    assert weighted_f1(t, ~t) == 0.0


def test_non0_without_a_non_zero_label_is_one_line():
    with pytest.raises(DataError, match="every label is 0"):
        non0_acc_2([0.1, -0.2], [0.0, 0.0])


def test_which_runs_score_them():
    reg = load_registry(entry_points=False)
    frame = metric_functions(reg, "frame", (-1.0, 1.0))
    assert {"ccc", "rmse", "pearson"} <= set(frame) and "mae" not in frame and "has0_acc_2" not in frame
    seq = metric_functions(reg, "sequence", (-1.0, 1.0))
    assert {"ccc", "mae", "has0_acc_2", "has0_f1", "non0_acc_2", "non0_f1"} <= set(seq)
    assert "mult_acc_7" not in seq and "mult_acc_5" not in seq  # classes of [-3, 3] only
    mosi = metric_functions(reg, "sequence", (-3.0, 3.0))
    assert {"mult_acc_5", "mult_acc_7", "ccc"} <= set(mosi)
    assert applies(lambda p, t: 0.0, "frame", None)  # a plugin's metric that names nothing
