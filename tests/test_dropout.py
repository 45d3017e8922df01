"""The CPU dropout: same distribution as F.dropout, a drop-in nn.Dropout."""

import pytest
import torch
from torch import nn

from fusion_bench.dropout import Dropout, add_dropout, dropout
from fusion_bench.encoders.tcn import TCN


def test_drops_p_and_rescales_the_rest():
    x = torch.ones(200, 100, 50)
    kept = dropout(x, 0.6, True)
    q = round(0.6 * 65536) / 65536  # p to 1/65536
    assert kept.unique().tolist() == [0.0, pytest.approx(1 / (1 - q))]
    assert abs((kept == 0).float().mean().item() - 0.6) < 0.005
    assert dropout(x, 0.6, False) is x and dropout(x, 0.0, True) is x


def test_add_dropout_is_x_plus_a_dropped_update():
    torch.manual_seed(0)
    x, u = torch.randn(100, 1000), torch.ones(100, 1000)
    d = add_dropout(x, u, 0.25, True) - x
    assert torch.allclose(d[d.abs() > 1e-3], torch.tensor(1 / 0.75))  # 0.25 is exact in 1/65536
    assert abs((d.abs() < 1e-3).float().mean().item() - 0.25) < 0.01
    assert torch.equal(add_dropout(x, u, 0.25, False), x + u)


def test_module_is_a_drop_in_nn_dropout():
    d = Dropout(0.3)
    assert isinstance(d, nn.Dropout) and d.p == 0.3 and repr(d) == repr(nn.Dropout(0.3))
    x = torch.randn(4, 5)
    assert torch.equal(d.eval()(x), x)
    tcn = TCN(7, channels=8, levels=2, dropout=0.2)
    assert all(m.p == 0.2 for m in tcn.modules() if isinstance(m, nn.Dropout))
    x = torch.randn(2, 20, 7)
    assert not torch.equal(tcn.train()(x), tcn(x))  # dropout is live in training
    assert torch.equal(tcn.eval()(x), tcn(x))


def test_p_one_drops_everything_and_inplace_keeps_its_contract():
    x = torch.randn(3, 4)
    assert not dropout(x, 1.0, True).any()
    y = x.clone()
    out = Dropout(0.5, inplace=True).train()(y)
    assert out.data_ptr() == y.data_ptr()  # modified in place, like nn.Dropout(inplace=True)


def test_keep_mask_rate_scale_and_lane_uniformity():
    from fusion_bench.dropout import keep_mask

    torch.manual_seed(0)
    x = torch.empty(1000, 999)  # not a multiple of 4 values: the last word is partly used
    for p in (0.1, 0.5, 0.6):
        m = keep_mask(x, p)
        q = round(p * 65536) / 65536
        assert m.shape == x.shape and m.dtype == x.dtype
        assert m.unique().tolist() == [0.0, pytest.approx(1 / (1 - q), rel=1e-6)]
        flat = (m == 0).float().flatten()
        # every 16-bit lane of the 64-bit words drops at rate p (a lane stuck at one sign would
        # drop at 0 or 2p); 250k draws per lane: 5 sigma < 0.005
        for lane in range(4):
            assert abs(flat[lane::4].mean().item() - p) < 0.005, (p, lane)
        assert abs(m.mean().item() - 1.0) < 0.01  # expectation kept
    torch.manual_seed(1)
    a = keep_mask(x, 0.3)
    torch.manual_seed(1)
    assert torch.equal(a, keep_mask(x, 0.3))  # seeded by torch's generator
    assert keep_mask(torch.empty(2, 3, dtype=torch.bfloat16), 0.2).dtype == torch.bfloat16


def test_keep_mask_edges():
    from fusion_bench.dropout import keep_mask

    x = torch.ones(64, 64)
    assert not keep_mask(x, 1 - 1e-6).any()  # rounds to p = 1: everything dropped, no 1/0
    assert torch.equal(keep_mask(x, 1e-6), x)  # rounds to p = 0: nothing dropped
    for bad in (-0.1, 1.5):
        with pytest.raises(ValueError, match="between 0 and 1"):
            keep_mask(x, bad)
