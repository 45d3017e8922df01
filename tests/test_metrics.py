import math

import numpy as np
import pytest
import torch

from fusion_bench.errors import DataError
from fusion_bench.metrics import ccc, ccc_loss, pearson, rmse


def reference_ccc(x, y):
    """Lin (1989) with population moments, in exact-ish float arithmetic (math.fsum)."""
    n = len(x)
    mx, my = math.fsum(x) / n, math.fsum(y) / n
    vx = math.fsum((a - mx) ** 2 for a in x) / n
    vy = math.fsum((b - my) ** 2 for b in y) / n
    cov = math.fsum((a - mx) * (b - my) for a, b in zip(x, y, strict=True)) / n
    return 2 * cov / (vx + vy + (mx - my) ** 2)


@pytest.mark.parametrize("seed", range(5))
def test_matches_float64_reference(seed):
    rng = np.random.default_rng(seed)
    y = rng.uniform(-1, 1, 500)
    x = 0.7 * y + 0.3 + rng.normal(0, 0.3, 500)
    assert ccc(x, y) == pytest.approx(reference_ccc(x.tolist(), y.tolist()), abs=1e-12)


def test_torchmetrics_differs_only_by_bessel_correction():
    """torchmetrics' ConcordanceCorrCoef uses sample (n − 1) variances and covariance but the
    plain squared mean difference; Lin/ABAW use population moments. With s = n/(n−1) the two are
    2 s c / (s (vx + vy) + d²) vs 2 c / (vx + vy + d²): equal when the means agree, and the gap
    shrinks as 1/n otherwise."""
    tm = pytest.importorskip("torchmetrics")
    rng = np.random.default_rng(0)
    for n in (10, 100, 10_000):
        y = rng.uniform(-1, 1, n)
        x = 0.8 * y + 0.4 + rng.normal(0, 0.2, n)  # mean offset: the definitions differ
        ours = ccc(x, y)
        theirs = float(tm.ConcordanceCorrCoef()(torch.tensor(x), torch.tensor(y)))
        mx, my = x.mean(), y.mean()
        vx, vy, c = x.var(), y.var(), ((x - mx) * (y - my)).mean()
        s = n / (n - 1)
        assert theirs == pytest.approx(2 * s * c / (s * (vx + vy) + (mx - my) ** 2), abs=1e-6)  # it accumulates in float32
        assert abs(ours - theirs) < 2.0 / n  # O(1/n)
        assert ours != pytest.approx(theirs, abs=1e-12)
    # same means: identical
    y = rng.uniform(-1, 1, 50)
    x = y + rng.normal(0, 0.1, 50)
    x += y.mean() - x.mean()
    theirs = float(tm.ConcordanceCorrCoef()(torch.tensor(x), torch.tensor(y)))
    assert ccc(x, y) == pytest.approx(theirs, abs=1e-6)


def test_perfect_negative_and_scaled():
    y = np.linspace(-1, 1, 100)
    assert ccc(y, y) == pytest.approx(1.0)
    assert ccc(-y, y) == pytest.approx(-1.0)
    # correlation 1 but wrong scale/offset is penalised (unlike Pearson)
    assert ccc(0.5 * y + 0.2, y) < 0.9


def test_constant_sequences():
    y = np.linspace(-1, 1, 10)
    assert ccc(np.full(10, 0.3), y) == pytest.approx(0.0, abs=1e-12)  # constant prediction: no covariance
    assert ccc(np.full(10, 0.3), np.full(10, 0.3)) == 1.0  # identical constants
    assert ccc(np.full(10, 0.3), np.full(10, -0.2)) == 0.0


def test_single_frame():
    assert ccc([0.5], [0.5]) == 1.0
    assert ccc([0.5], [0.1]) == 0.0


def test_mask_excludes_frames():
    rng = np.random.default_rng(1)
    y = rng.uniform(-1, 1, 100)
    x = y + rng.normal(0, 0.1, 100)
    mask = np.ones(100, bool)
    mask[::3] = False
    x_bad = x.copy()
    x_bad[~mask] = 1e6  # garbage where masked must not matter
    assert ccc(x_bad, y, mask) == pytest.approx(reference_ccc(x[mask].tolist(), y[mask].tolist()))
    with pytest.raises(DataError, match="no valid frame"):
        ccc(x, y, np.zeros(100, bool))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nan_inf_is_a_clear_error(bad):
    x = np.zeros(5)
    x[2] = bad
    with pytest.raises(DataError, match="NaN or inf"):
        ccc(x, np.arange(5.0))
    with pytest.raises(DataError, match="target"):
        ccc(np.arange(5.0), x)


def test_length_mismatch():
    with pytest.raises(DataError, match="frames"):
        ccc(np.zeros(3), np.zeros(4))


def test_loss_is_one_minus_ccc_and_differentiable():
    rng = np.random.default_rng(2)
    y = torch.tensor(rng.uniform(-1, 1, (3, 40)), dtype=torch.float32)
    p = (0.5 * y + 0.1 * torch.randn(3, 40)).requires_grad_()
    valid = torch.ones(3, 40, dtype=torch.bool)
    valid[0, :10] = False
    per_w = ccc_loss(p, y, valid, per_window=True)
    expect = np.mean([1 - ccc(p[i].detach()[valid[i]], y[i][valid[i]]) for i in range(3)])
    assert float(per_w.detach()) == pytest.approx(expect, abs=1e-5)
    pooled = ccc_loss(p, y, valid, per_window=False)
    assert float(pooled.detach()) == pytest.approx(1 - ccc(p.detach()[valid], y[valid]), abs=1e-5)
    pooled.backward()
    assert p.grad is not None and torch.isfinite(p.grad).all()
    assert (p.grad[0, :10] == 0).all()  # masked frames get no gradient


# ------------------------------------------------------------------- the other built-in metrics


def test_rmse_hand_values():
    assert rmse([0, 1, 2], [0, 0, 0]) == pytest.approx(math.sqrt(5 / 3), abs=1e-15)
    assert rmse([1, 2, 3, 4], [2, 2, 2, 2]) == pytest.approx(math.sqrt(1.5), abs=1e-15)  # 1,0,1,4
    assert rmse([0.3, -0.2], [0.3, -0.2]) == 0.0
    # the mask drops the frame that is far off
    assert rmse([0, 100, 2], [0, 0, 0], mask=[True, False, True]) == pytest.approx(math.sqrt(2))


def test_pearson_hand_values():
    # dx = (-1, 0, 1), dy = (-1, 1, 0): Σdxdy = 1, Σdx² = Σdy² = 2, r = 1/2
    assert pearson([1, 2, 3], [1, 3, 2]) == pytest.approx(0.5, abs=1e-15)
    # dx = (-1.5, -.5, .5, 1.5), dy = (1, -1, -1, 1): Σdxdy = 0 (a symmetric, uncorrelated pair)
    assert pearson([1, 2, 3, 4], [1, -1, -1, 1]) == pytest.approx(0.0, abs=1e-15)
    y = np.linspace(-1, 1, 50)
    assert pearson(-y, y) == -1.0 and pearson(y, y) == 1.0
    # blind to scale and offset, unlike CCC
    assert pearson(0.5 * y + 0.2, y) == pytest.approx(1.0, abs=1e-12) and ccc(0.5 * y + 0.2, y) < 0.9
    assert pearson([1, 2, 3, 50], [1, 3, 2, -7], mask=[True, True, True, False]) == pytest.approx(0.5)


def test_pearson_of_a_constant_is_zero_not_nan():
    y = [1.0, 2.0, 3.0]
    assert pearson([0.3, 0.3, 0.3], y) == 0.0
    assert pearson(y, [0.3, 0.3, 0.3]) == 0.0
    assert pearson([0.3, 0.3, 0.3], [0.3, 0.3, 0.3]) == 0.0
    # the mean of three 0.1s is not 0.1 to the last bit, so their variance is not 0 either
    assert np.full(3, 0.1).mean() != 0.1
    assert pearson(np.full(3, 0.1), [0.1, 0.2, 0.7]) == 0.0  # by the moments: -7e-17


def test_metrics_carry_their_direction_and_description():
    assert ccc.higher_is_better and pearson.higher_is_better and not rmse.higher_is_better
    assert all(f.description for f in (ccc, rmse, pearson))


@pytest.mark.parametrize("fn, name", [(rmse, "RMSE"), (pearson, "Pearson")])
def test_other_metrics_refuse_bad_input_by_name(fn, name):
    with pytest.raises(DataError, match=f"{name}: no valid frame"):
        fn([1.0, 2.0], [1.0, 2.0], mask=[False, False])
    with pytest.raises(DataError, match=f"{name}: the prediction contains NaN"):
        fn([1.0, float("nan")], [1.0, 2.0])
    with pytest.raises(DataError, match=f"{name}: prediction has 2 frames but target has 3"):
        fn([1.0, 2.0], [1.0, 2.0, 3.0])
