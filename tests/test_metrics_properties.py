"""Properties of CCC that hold for every input (hypothesis; issue 16 item 9): CCC(x, x) = 1,
symmetry, bounds, invariance to permuting frames jointly, a mask equals cutting the frames out,
and agreement with a float64 reference written here from Lin's formula; the training loss is
1 − CCC on the same frames.

Values are drawn on a 1/100 grid in [-10, 10] (labels live in [-1, 1]): real predictions and
labels, with none of the subnormal numbers whose squares underflow to zero."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from fusion_bench.metrics import ccc, ccc_loss

SETTINGS = settings(max_examples=50, deadline=None)
value = st.integers(-1000, 1000).map(lambda k: k / 100)


def seqs(min_size=1, max_size=60):
    return st.lists(value, min_size=min_size, max_size=max_size)


@st.composite
def pairs(draw, min_size=1):
    x = draw(seqs(min_size))
    y = draw(st.lists(value, min_size=len(x), max_size=len(x)))
    return np.array(x), np.array(y)


def reference(x, y) -> float:
    """Lin (1989): 2 s_xy / (s_x² + s_y² + (μ_x − μ_y)²), population moments, float64 with
    exactly rounded sums (math.fsum)."""
    x, y = [float(a) for a in x], [float(b) for b in y]
    n = len(x)
    mx, my = math.fsum(x) / n, math.fsum(y) / n
    vx = math.fsum((a - mx) ** 2 for a in x) / n
    vy = math.fsum((b - my) ** 2 for b in y) / n
    sxy = math.fsum((a - mx) * (b - my) for a, b in zip(x, y, strict=True)) / n
    denom = vx + vy + (mx - my) ** 2
    return 1.0 if denom == 0 else 2 * sxy / denom


def constant(x) -> bool:
    return bool(np.all(x == x[0]))


@SETTINGS
@given(seqs(min_size=2))
def test_a_sequence_agrees_perfectly_with_itself(x):
    x = np.array(x)
    assume(not constant(x))
    assert ccc(x, x) == pytest.approx(1.0, abs=1e-12)


@SETTINGS
@given(pairs())
def test_symmetric_and_bounded(xy):
    x, y = xy
    c = ccc(x, y)
    assert c == ccc(y, x)
    assert -1 - 1e-12 <= c <= 1 + 1e-12


@SETTINGS
@given(pairs(), st.randoms(use_true_random=False))
def test_permuting_frames_jointly_changes_nothing(xy, rnd):
    x, y = xy
    order = list(range(len(x)))
    rnd.shuffle(order)
    assert ccc(x[order], y[order]) == pytest.approx(ccc(x, y), abs=1e-9)


@SETTINGS
@given(pairs())
def test_agrees_with_the_float64_reference(xy):
    x, y = xy
    assert ccc(x, y) == pytest.approx(reference(x, y), abs=1e-9)


@SETTINGS
@given(pairs(min_size=1), st.data())
def test_a_mask_is_cutting_the_frames_out(xy, data):
    x, y = xy
    mask = np.array(data.draw(st.lists(st.booleans(), min_size=len(x), max_size=len(x))))
    assume(mask.any())
    garbage_x, garbage_y = x.copy(), y.copy()
    garbage_x[~mask], garbage_y[~mask] = 1e6, -5.0  # what masked frames hold must not matter
    assert ccc(garbage_x, garbage_y, mask) == ccc(x[mask], y[mask])
    assert ccc(x[mask], y[mask]) == pytest.approx(reference(x[mask], y[mask]), abs=1e-9)


@SETTINGS
@given(pairs(min_size=2), st.data())
def test_the_pooled_loss_is_one_minus_ccc_of_the_valid_frames(xy, data):
    x, y = xy
    x, y = x / 10, y / 10  # labels' range: float32 keeps ~1e-7 of it
    mask = np.array(data.draw(st.lists(st.booleans(), min_size=len(x), max_size=len(x))))
    assume(mask.sum() >= 2)
    xs, ys = x[mask], y[mask]
    denom = xs.var() + ys.var() + (xs.mean() - ys.mean()) ** 2
    assume(denom > 1e-2)  # the loss's epsilon (1e-8) and float32 negligible
    loss = ccc_loss(torch.tensor(x)[None], torch.tensor(y)[None], torch.tensor(mask)[None],
                    per_window=False)
    assert float(loss) == pytest.approx(1 - reference(xs, ys), abs=1e-4)
