"""Contract checks for fusion plugins: call them from your own tests.

    from fusion_bench.testing import check_fusion

    def test_my_fusion():
        check_fusion(GatedConcat)                   # two- and three-modality configurations
        check_fusion(GatedConcat, hidden=8)         # options are passed to the constructor

Each ``check_*`` function is public, so a test can run one check, or one configuration, alone.
A failed check raises AssertionError naming the fusion, its configuration and what failed. The
contract (DESIGN §4): ``Fusion(dims, seq_len, **options)`` is an ``nn.Module`` with an int
``out_dim``, string class attributes ``description`` and ``reference``, and
``forward(feats, mask)`` mapping ``{m: (B, L, d_m)}`` and ``{m: bool (B, L)}`` (or ``None``) to
``(B, L, out_dim)``; where ``mask[m][b, t]`` is False the feature values must not matter.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable

import torch

#: the configurations :func:`check_fusion` runs when given no ``dims``: distinct widths so that
#: mixing up modalities shows, and a two-modality case (e.g. no text)
DEFAULT_DIMS: tuple[dict[str, int], ...] = (
    {"visual": 12, "audio": 6},
    {"visual": 12, "audio": 6, "text": 8},
)
BATCH = 4


def check_fusion(
    cls,
    dims: dict[str, int] | Iterable[dict[str, int]] | None = None,
    seq_len: int = 16,
    device: str = "cpu",
    compile: bool = False,
    **options,
) -> None:
    """Run every check on ``cls`` for each configuration in ``dims`` (default :data:`DEFAULT_DIMS`).

    Also runs the checks on CUDA when it is available (and ``device`` is not already CUDA).
    ``compile=True`` adds :func:`check_compiles` (slow on CPU: mark such a test ``slow``).
    """
    check_metadata(cls)
    configs = DEFAULT_DIMS if dims is None else [dims] if isinstance(dims, dict) else list(dims)
    for config in configs:
        for check in (
            check_output_shape,
            check_gradients,
            check_masks_respected,
            check_missing_modality,
            check_deterministic,
            check_batch_invariance,
        ):
            check(cls, config, seq_len, device, **options)
        if torch.cuda.is_available() and not str(device).startswith("cuda"):
            check_cuda(cls, config, seq_len, **options)
        if compile:
            check_compiles(cls, config, seq_len, device, **options)


def make_inputs(
    dims: dict[str, int],
    batch: int = BATCH,
    seq_len: int = 16,
    device: str = "cpu",
    seed: int = 0,
    missing: float = 0.3,
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Random ``feats`` ``{m: (batch, seq_len, d_m)}`` and masks with a ``missing`` share of
    frames False, drawn from ``seed`` without touching the global RNG."""
    gen = torch.Generator().manual_seed(seed)
    feats = {m: torch.randn(batch, seq_len, d, generator=gen).to(device) for m, d in dims.items()}
    mask = {m: (torch.rand(batch, seq_len, generator=gen) >= missing).to(device) for m in dims}
    return feats, mask


def build(
    cls, dims: dict[str, int], seq_len: int = 16, device: str = "cpu", seed: int = 0, **options
):
    """``cls(dims, seq_len, **options)`` initialised from ``seed``, on ``device``."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        fusion = cls(dict(dims), seq_len, **options)
    return fusion.to(device)


def check_metadata(cls) -> None:
    """``description`` is a one-line non-empty string and ``reference`` a string."""
    name = getattr(cls, "__name__", repr(cls))
    description = getattr(cls, "description", None)
    if not isinstance(description, str) or not description.strip() or "\n" in description.strip():
        raise AssertionError(
            f"{name}: class attribute description must be a one-line string, got {description!r}"
        )
    reference = getattr(cls, "reference", None)
    if not isinstance(reference, str):
        raise AssertionError(
            f"{name}: class attribute reference must be a string ('' if none), got {reference!r}"
        )


def check_output_shape(cls, dims, seq_len=16, device="cpu", **options) -> None:
    """``out_dim`` is a positive int; the output is a finite float ``(B, L, out_dim)`` with and
    without masks; the inputs are not modified in place."""
    label = _label(cls, dims, seq_len, options)
    fusion = build(cls, dims, seq_len, device, **options).eval()
    out_dim = getattr(fusion, "out_dim", None)
    if isinstance(out_dim, bool) or not isinstance(out_dim, int) or out_dim < 1:
        raise AssertionError(f"{label}: out_dim must be a positive int attribute, got {out_dim!r}")
    feats, mask = make_inputs(dims, seq_len=seq_len, device=device)
    before = {m: x.clone() for m, x in feats.items()}
    for name, mask_arg in (("with masks", mask), ("with mask=None", None)):
        with torch.no_grad():
            out = fusion(feats, mask_arg)
        expected = (BATCH, seq_len, out_dim)
        if not isinstance(out, torch.Tensor) or tuple(out.shape) != expected:
            got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise AssertionError(
                f"{label}: output {name} is {got}, expected (B, L, out_dim) = {expected}"
            )
        if not out.is_floating_point() or not torch.isfinite(out).all():
            raise AssertionError(f"{label}: output {name} is not finite floating point")
    for m, x in feats.items():
        if not torch.equal(x, before[m]):
            raise AssertionError(f"{label}: forward modified feats[{m!r}] in place")


def check_gradients(cls, dims, seq_len=16, device="cpu", **options) -> None:
    """In train mode, a loss on the output gives every parameter a finite, not all-zero gradient,
    and every modality's input a non-zero gradient (each modality reaches the output)."""
    label = _label(cls, dims, seq_len, options)
    fusion = build(cls, dims, seq_len, device, **options).train()
    feats, _ = make_inputs(dims, seq_len=seq_len, device=device)
    feats = {m: x.requires_grad_() for m, x in feats.items()}
    mask = {m: torch.ones(BATCH, seq_len, dtype=torch.bool, device=device) for m in dims}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        out = fusion(feats, mask)
    if not out.requires_grad:  # backward() would raise a RuntimeError that names nothing
        raise AssertionError(f"{label}: the output carries no gradient (computed under no_grad, "
                             "detached, or from no parameter and no input); nothing can train it")
    # random weights, not a plain sum: a sum over a LayerNorm's output has zero gradient
    weights = torch.randn(out.shape, generator=torch.Generator().manual_seed(1)).to(out.device)
    (out * weights).sum().backward()
    problems = []
    for name, param in fusion.named_parameters():
        if not param.requires_grad:
            continue
        if param.grad is None:
            problems.append(f"{name}: no gradient (unused?)")
        elif not torch.isfinite(param.grad).all():
            problems.append(f"{name}: non-finite gradient")
        elif not param.grad.any():
            problems.append(f"{name}: gradient all zero")
    for m, x in feats.items():
        if x.grad is None or not x.grad.any():
            problems.append(f"input {m!r}: no gradient (this modality does not reach the output)")
    if problems:
        raise AssertionError(f"{label}: gradients do not reach everything: " + "; ".join(problems))


def check_masks_respected(cls, dims, seq_len=16, device="cpu", atol=1e-5, **options) -> None:
    """In eval mode, changing feature values at masked-out frames (mask False; including one
    sample with a modality missing for the whole window) leaves the output unchanged."""
    label = _label(cls, dims, seq_len, options)
    fusion = build(cls, dims, seq_len, device, **options).eval()
    feats, mask = make_inputs(dims, seq_len=seq_len, device=device)
    mask[list(dims)[-1]][1] = False
    gen = torch.Generator().manual_seed(2)
    changed = {
        m: torch.where(
            mask[m].unsqueeze(-1), x, 100.0 * torch.randn(x.shape, generator=gen).to(device)
        )
        for m, x in feats.items()
    }
    with torch.no_grad():
        out, out_changed = fusion(feats, mask), fusion(changed, mask)
    diff = (out - out_changed).abs()
    if not torch.isfinite(out_changed).all() or diff.max() > atol:
        b, t = divmod(int(diff.amax(-1).argmax()), seq_len)
        raise AssertionError(
            f"{label}: masks not respected: changing feature values at masked-out frames changed "
            f"the output by up to {diff.max().item():.3g} (sample {b}, frame {t}); zero the "
            f"masked frames first, e.g. x.masked_fill(~mask[m][..., None], 0)"
        )


def check_missing_modality(cls, dims, seq_len=16, device="cpu", **options) -> None:
    """With each modality in turn missing for the whole batch (mask all False), the output and,
    in train mode, the gradients are finite."""
    label = _label(cls, dims, seq_len, options)
    fusion = build(cls, dims, seq_len, device, **options)
    for missing in dims:
        feats, mask = make_inputs(dims, seq_len=seq_len, device=device)
        mask[missing] = torch.zeros_like(mask[missing])
        fusion.eval()
        with torch.no_grad():
            out = fusion(feats, mask)
        if not torch.isfinite(out).all():
            raise AssertionError(f"{label}: non-finite output when {missing!r} is missing")
        fusion.train()
        fusion.zero_grad()
        feats = {m: x.requires_grad_() for m, x in feats.items()}
        fusion(feats, mask).sum().backward()
        grads = [(n, p.grad) for n, p in fusion.named_parameters()]
        grads += [(f"input {m!r}", x.grad) for m, x in feats.items()]
        for name, grad in grads:
            if grad is not None and not torch.isfinite(grad).all():
                raise AssertionError(
                    f"{label}: non-finite gradient of {name} when {missing!r} is missing"
                )


def check_deterministic(cls, dims, seq_len=16, device="cpu", atol=1e-6, **options) -> None:
    """In eval mode, two forward passes on the same input give the same output."""
    label = _label(cls, dims, seq_len, options)
    fusion = build(cls, dims, seq_len, device, **options).eval()
    feats, mask = make_inputs(dims, seq_len=seq_len, device=device)
    with torch.no_grad():
        first, second = fusion(feats, mask), fusion(feats, mask)
    if not torch.allclose(first, second, rtol=0, atol=atol):
        raise AssertionError(
            f"{label}: not deterministic in eval mode (outputs differ by up to "
            f"{(first - second).abs().max().item():.3g}); is dropout applied with training=True?"
        )


def check_batch_invariance(cls, dims, seq_len=16, device="cpu", atol=1e-5, **options) -> None:
    """In eval mode, each sample's output is the same alone as within the batch."""
    label = _label(cls, dims, seq_len, options)
    fusion = build(cls, dims, seq_len, device, **options).eval()
    feats, mask = make_inputs(dims, seq_len=seq_len, device=device)
    with torch.no_grad():
        together = fusion(feats, mask)
        for b in range(BATCH):
            alone = fusion(
                {m: x[b : b + 1] for m, x in feats.items()},
                {m: x[b : b + 1] for m, x in mask.items()},
            )
            diff = (alone[0] - together[b]).abs().max().item()
            if diff > atol:
                raise AssertionError(
                    f"{label}: not batch-size invariant: sample {b} alone differs from the same "
                    f"sample in a batch of {BATCH} by {diff:.3g}; samples must not interact "
                    f"(no statistics over the batch dimension)"
                )


@contextlib.contextmanager
def _strict_fp32():
    """No TF32 in cuBLAS or cuDNN inside the block; the previous settings are restored after.
    Uses torch's ``fp32_precision`` switches where they exist (torch ≥ 2.9; reading the legacy
    ``allow_tf32`` flags raises there once a caller has used the new ones), else ``allow_tf32``."""
    b = torch.backends
    switches: list[tuple[object, str, object]]  # (owner, attribute, value inside the block)
    if hasattr(b.cuda.matmul, "fp32_precision"):
        # cudnn.conv lives on torch's sys.modules replacement (CudnnModule), unseen by mypy
        conv = b.cudnn.conv  # type: ignore[attr-defined]
        switches = [(o, "fp32_precision", "ieee") for o in (b.cuda.matmul, conv, b.cudnn.rnn)]
    else:
        switches = [(b.cuda.matmul, "allow_tf32", False), (b.cudnn, "allow_tf32", False)]
    saved = [(o, name, getattr(o, name)) for o, name, _ in switches]
    for o, name, value in switches:
        setattr(o, name, value)
    try:
        yield
    finally:
        for o, name, value in saved:
            setattr(o, name, value)


def check_cuda(cls, dims, seq_len=16, **options) -> bool:
    """On CUDA, if available: shape, gradients and masks checks pass and the output matches the
    CPU output (atol 1e-4). Returns False (skipped) when CUDA is not available.

    The comparison runs in true float32: cuDNN's LSTM and convolutions use TF32 on Ampere and
    later by default (``torch.backends.cudnn.allow_tf32``), whose 10-bit mantissa alone moves an
    LSTM's output by ~5e-4 and would hide or fake a real difference."""
    if not torch.cuda.is_available():
        return False
    for check in (check_output_shape, check_gradients, check_masks_respected):
        check(cls, dims, seq_len, "cuda", **options)
    label = _label(cls, dims, seq_len, options)
    feats, mask = make_inputs(dims, seq_len=seq_len)
    outs = []
    for device in ("cpu", "cuda"):
        fusion = build(cls, dims, seq_len, device, **options).eval()
        with torch.no_grad(), _strict_fp32():
            outs.append(
                fusion(
                    {m: x.to(device) for m, x in feats.items()},
                    {m: x.to(device) for m, x in mask.items()},
                ).cpu()
            )
    diff = (outs[0] - outs[1]).abs().max().item()
    if diff > 1e-4:
        raise AssertionError(f"{label}: CUDA output differs from CPU output by {diff:.3g}")
    return True


def check_compiles(
    cls, dims, seq_len=16, device="cpu", fullgraph=False, atol=1e-4, **options
) -> None:
    """``torch.compile`` of the fusion runs, matches eager in eval mode, and trains (finite
    gradients). Slow on CPU (tens of seconds): keep it out of quick test runs."""
    label = _label(cls, dims, seq_len, options)
    fusion = build(cls, dims, seq_len, device, **options).eval()
    feats, mask = make_inputs(dims, seq_len=seq_len, device=device)
    compiled = torch.compile(fusion, fullgraph=fullgraph)
    try:
        with torch.no_grad():
            eager, out = fusion(feats, mask), compiled(feats, mask)
        fusion.train()
        trainable = {m: x.clone().requires_grad_() for m, x in feats.items()}
        compiled(trainable, mask).sum().backward()
    except Exception as error:  # any failure inside dynamo/inductor is the finding
        raise AssertionError(
            f"{label}: torch.compile failed: {type(error).__name__}: {error}"
        ) from error
    diff = (eager - out).abs().max().item()
    if diff > atol:
        raise AssertionError(f"{label}: compiled output differs from eager by {diff:.3g}")
    grads = [(n, p.grad) for n, p in fusion.named_parameters() if p.requires_grad]
    grads += [(f"input {m!r}", x.grad) for m, x in trainable.items()]
    for name, grad in grads:
        if grad is None or not torch.isfinite(grad).all():
            raise AssertionError(f"{label}: no finite gradient of {name} through torch.compile")


def _label(cls, dims, seq_len, options) -> str:
    name = getattr(cls, "__name__", repr(cls))
    extra = "".join(f", {k}={v!r}" for k, v in options.items())
    return f"{name}(dims={dict(dims)}, seq_len={seq_len}{extra})"
