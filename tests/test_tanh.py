"""The CPU tanh through the sigmoid: torch.tanh's values within 2.5e-7; torch.tanh itself in training."""

import torch

from fusion_bench.tanh import tanh, tanh_


def _grid() -> torch.Tensor:
    tiny = torch.logspace(-30, 1, 20001, dtype=torch.float64)
    return torch.cat([torch.linspace(-20, 20, 400001, dtype=torch.float64), tiny, -tiny,
                      torch.tensor([0.0, -0.0, 30.0, -30.0, 1e4, -1e4], dtype=torch.float64)])


def test_values_are_tanh_to_within_a_few_float32_roundings():
    x = _grid()
    exact = torch.tanh(x)  # float64
    for f in (tanh, lambda v: tanh_(v.clone())):
        y = f(x.float())
        assert y.dtype == torch.float32
        err = (y.double() - exact).abs()
        assert err.max().item() < 2.5e-7  # torch.tanh's own: ~5e-8
    assert tanh(torch.zeros(3)).eq(0).all()  # 0 stays exactly 0 (a ReLU's zeros)
    assert tanh(torch.tensor([1e4, -1e4])).tolist() == [1.0, -1.0]  # saturates, no NaN


def test_training_keeps_torch_tanh_bit_for_bit():
    # with autograd recording, torch.tanh itself: a training step is what it was
    torch.manual_seed(0)
    x = (torch.randn(64, 33) * 3).requires_grad_()
    assert torch.equal(tanh(x), torch.tanh(x))
    y = tanh_(x * 1.0)
    assert torch.equal(y, torch.tanh(x)) and y.grad_fn.name() == "TanhBackward0"
    with torch.no_grad():  # prediction: through the sigmoid
        assert not torch.equal(tanh(x), torch.tanh(x))
        assert torch.allclose(tanh(x), torch.tanh(x), rtol=0, atol=2.5e-7)


def test_other_dtypes_are_torch_tanh_exactly():
    x = torch.randn(100, dtype=torch.float64)
    assert torch.equal(tanh(x), torch.tanh(x))
    b = torch.randn(100).bfloat16()
    assert torch.equal(tanh(b), torch.tanh(b))
    assert torch.equal(tanh_(b.clone()), torch.tanh(b))
