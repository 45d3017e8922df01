"""Missing modalities at training time (``train.modality_dropout``): each training window drops
each of its modalities (masks it out for every frame) with a given rate, never all of them.

The test-time robustness scoring drops one modality of every test window
(:func:`fusion_bench.evaluate.perturbations`); a model that never saw a modality missing while
training tends to fall apart there. MMSA's users ask for this option; it is a data
augmentation on the masks only (a masked modality's features are zeroed by the model, and its
mask channel tells the encoder it is missing).

The draw, per window w and modality m (in the windows' modality order), from uniforms
u[w, m] ~ U(0, 1):

    drop[w, m] = u[w, m] < rate
    if every modality of window w drew a drop: the one with the largest u[w, m] is kept

so a window never loses all its modalities, and the kept one is uniform over the modalities (by
symmetry). The effective rate per modality is rate − rate^M / M for M modalities (M = 3,
rate = 0.3: 0.291). With one modality nothing is dropped. The uniforms come from a generator
seeded with (run seed, optimizer step): reproducible, independent of the batch order's generator,
and the same after a resume from a checkpoint (no state to save).
"""

from __future__ import annotations

import numpy as np
import torch


def drop_pattern(u: torch.Tensor, rate: float) -> torch.Tensor:
    """bool ``(B, M)``, True where window b drops modality m, from uniforms ``u`` ``(B, M)`` (see
    the module docstring: below ``rate`` drops; a row that would drop all keeps its largest)."""
    drop = u < rate
    every = drop.all(dim=1, keepdim=True)  # (B, 1)
    largest = torch.nn.functional.one_hot(u.argmax(dim=1), u.shape[1]).bool()  # (B, M)
    return drop & ~(every & largest)


def step_uniforms(n_windows: int, n_modalities: int, seed: int, step: int) -> torch.Tensor:
    """float32 ``(n_windows, n_modalities)`` uniforms of optimizer step ``step`` of a run seeded
    ``seed``: one generator per step, so a resumed fit draws what it would have drawn."""
    state = np.random.SeedSequence([int(seed), int(step), 0x6D64]).generate_state(1, np.uint64)[0]
    gen = torch.Generator().manual_seed(int(state) & (2**63 - 1))
    return torch.rand(n_windows, n_modalities, generator=gen)


def drop_modalities(masks: dict[str, torch.Tensor], rate: float, seed: int, step: int,
                    batch: int | None = None, rows=None) -> dict[str, torch.Tensor]:
    """``masks`` (modality → bool ``(B, L)``) with the modalities each window drops at this
    ``step`` masked False for all its frames; unchanged for ``rate`` 0 or one modality.
    ``masks`` may be a share of a global batch of ``batch`` windows (several DDP ranks): the
    pattern is drawn for the whole batch and ``rows`` (a function of the batch's row indices)
    picks the share's rows, so every window draws what it would in one process."""
    if rate <= 0 or len(masks) < 2:
        return masks
    first = next(iter(masks.values()))
    u = step_uniforms(first.shape[0] if batch is None else batch, len(masks), seed, step)
    if rows is not None:
        u = u[rows(torch.arange(u.shape[0]))]
    drop = drop_pattern(u, rate)
    keep = (~drop).to(first.device, non_blocking=True)
    return {m: k & keep[:, i, None] for i, (m, k) in enumerate(masks.items())}
