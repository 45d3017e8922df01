"""The utterance-level sentiment metrics of the field, as MMSA defines them for regression on
CMU-MOSI / CMU-MOSEI (``metricsTop.py``, ``__eval_mosei_regression``), so numbers compare with
the literature. Each is a metric of the registry, ``(pred (n,), target (n,)) -> float`` over the
valid sequences of one target of a split (in raw label units: MOSI sentiment in [-3, 3]).

With p the predictions and y the labels of the n sequences:

* ``mae``: mean |p − y| (lower is better);
* MMSA's ``Corr`` is Pearson's r, the ``pearson`` metric every run already scores (0, not NaN,
  for a constant prediction: see :func:`fusion_bench.metrics.pearson`);
* ``has0_acc_2`` / ``has0_f1``: every sequence, classes y ≥ 0 against y < 0 (a label of 0 counts
  as positive), the same split of p; accuracy, and F1 averaged over the two classes weighted by
  their support in y (scikit-learn's ``average="weighted"``);
* ``non0_acc_2`` / ``non0_f1``: only the sequences with y ≠ 0, classes y > 0 against y < 0, and
  p > 0 against p ≤ 0 (a prediction of exactly 0 counts as negative, as in MMSA);
* ``mult_acc_5``: p and y clipped to [-2, 2] and rounded to integers (numpy's round: halves to
  even, as MMSA), the share of sequences whose classes agree (5 classes -2..2);
* ``mult_acc_7``: the same on [-3, 3] (7 classes -3..3).

Which runs score them (:func:`fusion_bench.evaluate.applies`): all of them runs on a
sequence-level dataset (``label_level = "sequence"``); the 5- and 7-class accuracies only where
the dataset's labels are in [-3, 3] (MOSI/MOSEI's scale: on other ranges their classes mean
nothing). CCC and the other registered metrics are scored at every level.
"""

from __future__ import annotations

import numpy as np

from .errors import DataError
from .metrics import _frames, metric

#: the label range the multi-class accuracies are defined on (MOSI / MOSEI sentiment)
SENTIMENT_RANGE = (-3.0, 3.0)


def weighted_f1(truth: np.ndarray, pred: np.ndarray) -> float:
    """F1 of each class of bool ``truth`` / ``pred`` (n,), averaged with weights its support in
    ``truth`` (scikit-learn's ``f1_score(average="weighted")``); a class's F1 is
    2 TP / (2 TP + FP + FN), 0 where that is 0 / 0."""
    total = 0.0
    for cls in (False, True):
        t, p = truth == cls, pred == cls
        tp, fp, fn = np.sum(t & p), np.sum(~t & p), np.sum(t & ~p)
        denom = 2 * tp + fp + fn
        f1 = 2 * tp / denom if denom else 0.0
        total += f1 * np.sum(t)
    return float(total / len(truth))


def _non_zero(name: str, pred, target) -> tuple[np.ndarray, np.ndarray]:
    """p > 0 and y > 0 over the sequences whose label y is not 0; DataError if there are none."""
    x, y = _frames(name, pred, target)
    keep = y != 0
    if not keep.any():
        raise DataError(f"{name}: every label is 0; no sequence to score without them")
    return x[keep] > 0, y[keep] > 0


@metric("mean absolute error, in label units (MMSA's MAE; lower is better)",
        higher_is_better=False, label_level="sequence")
def mae(pred, target) -> float:
    """mean |pred − target| over the valid sequences, float64."""
    x, y = _frames("MAE", pred, target)
    return float(np.mean(np.abs(x - y)))


@metric("binary accuracy, label ≥ 0 vs < 0, zero-labelled sequences included (MMSA's "
        "Has0_acc_2)", label_level="sequence")
def has0_acc_2(pred, target) -> float:
    x, y = _frames("Has0_acc_2", pred, target)
    return float(np.mean((x >= 0) == (y >= 0)))


@metric("weighted F1 of label ≥ 0 vs < 0, zero-labelled sequences included (MMSA's Has0_F1)",
        label_level="sequence")
def has0_f1(pred, target) -> float:
    x, y = _frames("Has0_F1", pred, target)
    return weighted_f1(y >= 0, x >= 0)


@metric("binary accuracy, label > 0 vs < 0, zero-labelled sequences left out (MMSA's "
        "Non0_acc_2)", label_level="sequence")
def non0_acc_2(pred, target) -> float:
    p, t = _non_zero("Non0_acc_2", pred, target)
    return float(np.mean(p == t))


@metric("weighted F1 of label > 0 vs < 0, zero-labelled sequences left out (MMSA's Non0_F1)",
        label_level="sequence")
def non0_f1(pred, target) -> float:
    p, t = _non_zero("Non0_F1", pred, target)
    return weighted_f1(t, p)


def _multiclass(name: str, pred, target, bound: float) -> float:
    x, y = _frames(name, pred, target)
    return float(np.mean(np.round(np.clip(x, -bound, bound)) == np.round(np.clip(y, -bound, bound))))


@metric("5-class accuracy: prediction and label clipped to [-2, 2] and rounded (MMSA's "
        "Mult_acc_5; labels in [-3, 3] only)", label_level="sequence", label_range=SENTIMENT_RANGE)
def mult_acc_5(pred, target) -> float:
    return _multiclass("Mult_acc_5", pred, target, 2.0)


@metric("7-class accuracy: prediction and label clipped to [-3, 3] and rounded (MMSA's "
        "Mult_acc_7; labels in [-3, 3] only)", label_level="sequence", label_range=SENTIMENT_RANGE)
def mult_acc_7(pred, target) -> float:
    return _multiclass("Mult_acc_7", pred, target, 3.0)
