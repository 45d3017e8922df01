"""What a fusion, encoder, dataset, backbone and metric plugin is, in one place.

Each component kind is a :class:`typing.Protocol` stating what the harness actually calls; a
plugin need not inherit from it (structural typing). Register the *class* (or factory) through
the matching hook of :mod:`fusion_bench.hookspecs`; the protocols below describe what building
it gives. They are ``runtime_checkable``, so ``isinstance(obj, Fusion)`` checks that the members
exist (not their signatures); ``tests/test_contracts.py`` runs the behavioural checks on every
registered component.

Shapes: ``B`` windows in a batch, ``L`` frames per window (``data.window``), ``d_m`` the feature
width of modality ``m`` (a modality is a string such as ``"visual"``, ``"audio"``, ``"text"``).

Metadata, read by ``fusion-bench list`` for every kind: class attributes ``description`` (one
line) and ``reference`` (a paper or ``""``). The registry treats them as optional (``register``
may pass them instead, else they show as empty); :func:`fusion_bench.testing.check_fusion`
requires them of fusions.

This module imports neither torch nor numpy: the annotations name them for type checkers only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, Protocol, runtime_checkable

if TYPE_CHECKING:
    import numpy as np
    from torch import Tensor

    from .backbones import Media
    from .config import RunConfig
    from .data import Video

__all__ = ["Backbone", "Dataset", "Described", "Encoder", "Fusion", "Metric"]


@runtime_checkable
class Described(Protocol):
    """Optional metadata of any registered component, shown by ``fusion-bench list``."""

    description: ClassVar[str]  # one line
    reference: ClassVar[str]  # a paper reference, or "" if none


@runtime_checkable
class Fusion(Protocol):
    """Fuses the encoded modalities frame by frame (hook ``register_fusions``).

    A ``torch.nn.Module`` subclass built as ``Fusion(dims, seq_len, **options)``:

    * ``dims``: ``{m: d_m}``, two or more modalities, in the order the model holds them (the
      encoders' ``out_dim``; a fusion is only built when a run has two or more modalities);
    * ``seq_len``: ``L``, the window length in frames (``data.window``); a fusion may size
      parameters by it (RCMA's time mixing does);
    * ``options``: keyword arguments with defaults, set by ``--set fusion.<name>.<option>=VALUE`` or the
      ``[fusion]`` table; an unknown option is an error before the fusion is built. Raise
      ``ValueError``/``TypeError`` on a bad value: the harness reports it as a configuration
      error naming the fusion.

    It must work for any set of two or more modalities, and when a modality is missing for
    every frame of a window (its mask all False): finite output and gradients.
    """

    #: width of the output's last axis
    out_dim: int

    def __init__(self, dims: dict[str, int], seq_len: int, **options: Any) -> None: ...

    def forward(
        self, feats: dict[str, Tensor], mask: dict[str, Tensor] | None = None
    ) -> Tensor:
        """``feats``: ``{m: float (B, L, d_m)}``; ``mask``: ``{m: bool (B, L)}``, True where
        modality ``m`` has a real frame, or None (every frame real). Returns float
        ``(B, L, out_dim)``.

        Where ``mask[m][b, t]`` is False the values of ``feats[m][b, t]`` must not change the
        output; samples of the batch must not interact (same output alone as in a batch); eval
        mode is deterministic; ``feats`` is not modified in place. The harness always passes
        masks; ``None`` is for direct callers.
        """
        ...


@runtime_checkable
class Encoder(Protocol):
    """A per-modality temporal encoder (hook ``register_encoders``).

    A ``torch.nn.Module`` subclass built as ``Encoder(in_dim, **options)``, once per modality.
    The harness passes ``in_dim = d_m + 1``: the modality's features (zeroed where masked) and
    the mask as one extra channel, so "missing" and "zero" differ. Options come from
    ``--set encoder.<name>.<option>=VALUE``; an encoder taking ``channels`` (or ``**options``) gets a width
    per modality from ``model.channels``. The output goes through a ``BatchNorm1d(out_dim)``
    and then to the fusion (or, with one modality, straight to the head).
    """

    #: width of the output's last axis
    out_dim: int

    def __init__(self, in_dim: int, **options: Any) -> None: ...

    def forward(self, x: Tensor) -> Tensor:
        """``x``: float ``(B, L, in_dim)`` → float ``(B, L, out_dim)``, same ``B`` and ``L``;
        gradients reach ``x`` and every parameter; eval mode is deterministic."""
        ...


@runtime_checkable
class Dataset(Protocol):
    """Per-video, per-frame features, masks and labels (hook ``register_datasets``).

    Built by the classmethod ``from_config(run_config)``, from ``data.*`` (``root``,
    ``modalities``, ``seed``, ``fold``) and its own options, ``dataset.<name>.*``: the fields of
    an ``Options`` dataclass on the class, read with :func:`fusion_bench.options.dataset_options`
    (see :mod:`fusion_bench.data`; the synthetic data's are its generator's knobs). A user
    error (no ``--root``, a modality it lacks) raises :class:`fusion_bench.errors.ConfigError`
    or :class:`fusion_bench.errors.DataError` with a message that says what to do. Building
    should be cheap; reading the videos waits for :meth:`splits`.

    Its ``targets`` attribute names the label columns in order (any names, at least one, none
    twice, none ``mean``; the synthetic data and Aff-Wild2: valence, arousal; optional, not a
    member here: a dataset without it has ``fusion_bench.data.TARGETS``, valence and arousal). Each target is trained and scored (CCC per target and their mean over the
    targets); the record keeps them as ``dataset.targets`` and the leaderboard has a column
    each. Likewise optional, ``folds``: how many cross-validation folds ``data.fold`` may
    choose from (Aff-Wild2: 6); without it, 1 (``data.fold`` must be 0). Also optional:
    ``label_level``, ``"frame"`` (the default) or ``"sequence"`` (one label per sequence: MOSI,
    IEMOCAP utterances), and ``label_range``, ``(lo, hi)`` (default (-1, 1); MOSI sentiment
    (-3, 3)), read by :func:`fusion_bench.data.dataset_label_level` and
    :func:`~fusion_bench.data.dataset_label_range`.
    """

    #: modality → feature width ``d_m``, the modalities chosen by ``data.modalities`` in order
    dims: dict[str, int]

    @classmethod
    def from_config(cls, cfg: RunConfig) -> Dataset: ...

    def splits(self) -> dict[str, list[Video]]:
        """``"train"``, ``"val"`` and ``"test"`` → videos, each non-empty; every
        :class:`~fusion_bench.data.Video` has features ``{m: float32 (n, d_m)}`` for each
        modality of ``dims``, masks ``{m: bool (n,)}`` and labels ``float32 (n, T)`` (at
        sequence level ``(1, T)``), a column per name of ``targets``, in the label range or -5
        (invalid); the harness checks them with ``Video.validate(dims, targets, level=...,
        label_range=...)``."""
        ...

    def info(self) -> dict[str, Any]:
        """A JSON-able description stored in each run record: at least ``name`` and
        ``version`` (the leaderboard keeps versions apart), plus whatever identifies the data
        (generator parameters, root, fold, manifest)."""
        ...


@runtime_checkable
class Backbone(Protocol):
    """A feature extractor for raw media (hook ``register_backbones``), used by
    ``fusion-bench extract`` to fill the feature cache.

    Built as ``Backbone(model=None, weights=None, random_init=False, device="cpu", **options)``:
    ``model`` picks a variant (``--backbone visual=timm:resnet18``), ``weights`` a local file or
    folder; weights never come from the network, and without weights on disk the constructor
    raises :class:`fusion_bench.backbones.WeightsError` naming the file to put where, unless
    ``random_init``. Import the heavy library inside the constructor and methods, never at
    module level, so listing plugins stays cheap.
    """

    #: the modality it extracts: "visual", "audio", "text" (a class attribute)
    modality: ClassVar[str]
    #: width of a frame's feature vector
    dim: int

    def describe(self) -> dict[str, Any]:
        """JSON-able: backbone, model, dim, weights path and SHA-256, ``random_init`` and the
        preprocessing; the feature cache is keyed by it."""
        ...

    def extract(self, media: Media) -> tuple[np.ndarray, np.ndarray]:
        """One video's :class:`~fusion_bench.backbones.Media` of ``n`` frames → features
        ``float32 (n, dim)`` and mask ``bool (n,)`` (False where the frame has no input, e.g. no
        face crop; those rows are zero)."""
        ...


@runtime_checkable
class Metric(Protocol):
    """A score of predictions against labels (hook ``register_metrics``).

    A function (or callable object) with a boolean attribute ``higher_is_better``; CCC, the
    primary score, is the model: ``fusion_bench.metrics.ccc``. Optional attributes restrict
    which runs score it: ``label_level`` ("sequence": only runs on sequence-level datasets) and
    ``label_range`` ((lo, hi): only datasets of that label range), as MMSA's metrics
    (:mod:`fusion_bench.mmsa_metrics`) do; without them every run scores it.
    """

    higher_is_better: bool

    def __call__(self, pred: np.ndarray, target: np.ndarray) -> float:
        """``pred``, ``target``: float ``(n,)``, the valid frames (at sequence level: sequences)
        of one target over a split →
        a finite float. Raise :class:`fusion_bench.errors.DataError` on mismatched lengths or
        no frames."""
        ...
