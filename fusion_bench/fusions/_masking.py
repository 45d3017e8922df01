"""Input handling shared by the built-in fusions: option checks, input checks and masking.

A fusion's output must not depend on feature values at frames where the modality is missing
(``mask[m][b, t]`` False). The built-ins guarantee it the simplest way: they zero those frames
before doing anything else (:func:`apply_mask`). The encoders end in a BatchNorm1d, so zero is
also the mean feature value: a missing frame reads as "average", not as an outlier.
"""

from __future__ import annotations

from torch import Tensor, nn


def apply_mask(feats: dict[str, Tensor], mask: dict[str, Tensor] | None) -> dict[str, Tensor]:
    """Zero the frames where a modality is missing.

    ``feats[m]`` is ``(B, L, d_m)``, ``mask[m]`` a bool ``(B, L)``, True where the frame is real.
    ``masked_fill`` rather than a product, so that inf/NaN in a missing frame cannot leak through.
    ``mask=None`` (or a modality absent from it) means every frame is real.
    """
    if mask is None:
        return dict(feats)
    out = {}
    for name, x in feats.items():
        m = mask.get(name)
        out[name] = x if m is None else x.masked_fill(~m.unsqueeze(-1), 0.0)
    return out


def check_dims(fusion: str, dims: dict[str, int]) -> dict[str, int]:
    """Validate the ``dims`` a fusion is built with; return it as a plain dict (order kept).

    Modality names become ``nn.ModuleDict`` keys, so they must not contain a dot nor shadow a
    ``ModuleDict`` attribute (``keys``, ``values``, ...).
    """
    if not isinstance(dims, dict) or len(dims) < 2:
        raise ValueError(
            f"{fusion} needs dims for two or more modalities, e.g. {{'visual': 512, 'audio': 128}}; "
            f"got {dims!r}"
        )
    for name, dim in dims.items():
        if not isinstance(name, str) or not name or "." in name or hasattr(nn.ModuleDict, name):
            raise ValueError(
                f"{fusion}: modality name {name!r} is not usable; use a non-empty name without "
                f"'.' that is not a ModuleDict attribute (e.g. 'visual', 'audio', 'text')"
            )
        if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
            raise ValueError(f"{fusion}: dims[{name!r}] must be a positive int, got {dim!r}")
    return dict(dims)


def check_feats(fusion: str, dims: dict[str, int], feats: dict[str, Tensor]) -> tuple[int, int]:
    """Check ``feats`` against the ``dims`` the fusion was built with; return ``(B, L)``.

    Only shapes are inspected, so this costs nothing and traces cleanly under ``torch.compile``.
    """
    if feats.keys() != dims.keys():
        missing = [m for m in dims if m not in feats]
        extra = [m for m in feats if m not in dims]
        raise ValueError(
            f"{fusion} was built for modalities {list(dims)}; feats is missing {missing} and has "
            f"unexpected {extra}. Pass every modality (mark a missing one with an all-False mask)."
        )
    first = next(iter(dims))
    batch, length = feats[first].shape[:2]
    for name, dim in dims.items():
        shape = tuple(feats[name].shape)
        if len(shape) != 3 or shape[0] != batch or shape[1] != length or shape[2] != dim:
            raise ValueError(
                f"{fusion}: feats[{name!r}] has shape {shape}, expected (B={batch}, L={length}, "
                f"{dim}) (batch and window length shared by all modalities)"
            )
    return batch, length
