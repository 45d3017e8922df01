"""The typed sections of a run configuration and :class:`RunConfig`, with the run's identity
(its hash over what changes a result, and the hashes older records were stored under)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import typing
from dataclasses import dataclass, field


@dataclass
class DataConfig:
    name: str = "synthetic"  # dataset plugin
    root: str = ""  # folder of a dataset on disk (unused by the synthetic one)
    modalities: tuple[str, ...] = ("visual", "audio", "text")  # the modalities the run uses
    # L, frames per window; 0: derived from the train split's sequence lengths (the largest power
    # of two ≤ their lower quartile, at most 64: fusion_bench.data.windows.window_rule)
    window: int = 0
    hop: int = 0  # H, frames between the starts of training windows; 0: window / 2
    # frames between the starts of validation/test windows (0: the same as hop where hop is set,
    # else window / 4); a frame covered by several windows is scored with the mean of their
    # predictions
    eval_hop: int = 0
    seed: int = 0  # draws the data (synthetic videos, fold split); `seed` draws the model
    fold: int = 0  # cross-validation fold of datasets that have them (Aff-Wild2: 0-5)

    def hop_for(self, split: str) -> int:
        """Hop of ``split``'s windows: ``hop`` for training, ``eval_hop`` (if set) otherwise.
        On a configuration whose windows are resolved (:meth:`derived` empty)."""
        return self.hop if split == "train" or self.eval_hop == 0 else self.eval_hop

    def derived(self) -> tuple[str, ...]:
        """The keys of ``window``, ``hop`` and ``eval_hop`` left to the data (value 0)."""
        return tuple(k for k in ("window", "hop", "eval_hop") if getattr(self, k) == 0)


@dataclass
class ModelConfig:
    encoder: str = "tcn"  # temporal encoder plugin, one per modality
    fusion: str = "concat"  # fusion plugin
    channels: dict[str, int] = field(default_factory=dict)  # per-modality encoder width override
    head_hidden: int = 0  # 0: Linear + tanh (the paper's head)
    head_dropout: float = 0.0  # dropout after the head's hidden layer (needs head_hidden > 0)
    per_target: bool = False  # one model per target (the paper's protocol) vs one joint model
    # sequence-level data (one label per sequence): how the head pools a window's fused frames
    # into one prediction: "mean" over its valid frames (some modality present) or "attention"
    # (learned weights over them); unused at frame level
    pooling: str = "mean"


@dataclass
class TrainConfig:
    # Training length. epochs > 0: that many passes over the training windows (the paper preset:
    # 100). epochs = 0 (the default): ``steps`` optimizer steps whatever the dataset's size, in
    # "epochs" of ``eval_every`` steps, or of one pass over the training windows where a pass is
    # shorter (``eval_each_pass``; the windows drawn as a stream of shuffled passes); each epoch
    # ends with a validation, and warm-up, plateau and early-stopping patience count these.
    # The quick schedule: 250 steps, validation every 50, a 50-step warm-up; on the default data
    # that is about as many steps as 4 passes at window 64, hop 64 were. On a small dataset (a
    # pass of 9 steps, say) the 250 steps are ~28 passes: validating after each pass lets early
    # stopping and the best-epoch choice act at the pass where validation peaks, not 5 passes on.
    epochs: int = 0
    steps: int = 250  # optimizer steps of the run (when epochs = 0)
    eval_every: int = 50  # steps per epoch, each ending with a validation (when epochs = 0)
    # when epochs = 0: an epoch ends after one pass over the training windows if that comes before
    # eval_every steps (false: exactly eval_every steps, as records made before 2026-12-02 did)
    eval_each_pass: bool = True
    batch_size: int = 32  # windows per optimizer step
    lr: float = 2e-3  # Adam's learning rate after warm-up
    weight_decay: float = 0.0  # Adam's weight decay (L2)
    warmup_epochs: int = 1  # linear warm-up of the learning rate, in epochs
    # after warm-up: "plateau" (lr × plateau_factor after plateau_patience epochs without val
    # improvement) or "cosine" (half a cosine from lr down to min_lr at the last step)
    schedule: str = "plateau"
    plateau_patience: int = 3  # epochs without val improvement before lr × plateau_factor
    plateau_factor: float = 0.1  # the factor of a plateau step
    min_lr: float = 1e-6  # the learning rate's floor (plateau) or end (cosine)
    early_stop_patience: int = 6  # epochs without val improvement before stopping (0: never)
    # "window": 1 − CCC per window (paper); "batch": 1 − CCC over the batch's frames (at sequence
    # level: its sequences); "mse": mean squared error over them, in label units
    loss: str = "batch"
    max_grad_norm: float = 0.0  # 0: no clipping
    # "fp32", or "bf16": the model's forward passes (training and prediction) under
    # torch.autocast to bfloat16, weights, optimizer and loss in float32. On CPUs with AMX and
    # on GPUs its matrix products run several times faster; numbers differ by its rounding.
    precision: str = "fp32"
    # missing modalities at training time: each training window drops (masks out) each modality
    # with this probability, never all of a window's modalities at once (seeded); 0: none
    modality_dropout: float = 0.0
    progress: bool = True  # a progress bar on stderr (`--quiet`: false)


@dataclass
class RobustnessConfig:
    """Test-time perturbations of a trained model (``fusion-bench run --robustness``).

    Each modality is dropped (masked for every frame) in turn, and Gaussian noise of each level
    is added to one modality at a time and to all of them; a level is the noise's standard
    deviation in units of each feature's standard deviation over the train split.
    """

    enabled: bool = False  # score the perturbed test split too (`--robustness`)
    # noise levels, in units of each feature's standard deviation over the train split
    levels: tuple[float, ...] = (0.0, 0.5, 1.0, 2.0, 4.0)


#: Version of the rule that derives window and hops from the data (fusion_bench.data.windows:
#: window_rule, resolve_windows): part of the identity of a run that leaves any of them to it,
#: so a changed rule is another run. Here, not beside the rule, so the identity needs no torch.
WINDOW_RULE_VERSION = 1

#: ``train.precision`` values: float32, or forward passes under autocast to bfloat16
PRECISIONS = ("fp32", "bf16")

PLUGIN_KINDS = ("dataset", "encoder", "fusion")  # kinds whose options are ``<kind>.<name>.<option>``


# The synthetic generator's knobs and defaults as every record made before plugin options had them
# (a full ``synthetic`` section): frozen here, for :meth:`RunConfig.legacy_hashes` only.
_LEGACY_SYNTHETIC = {
    "n_train": 192, "n_val": 16, "n_test": 48, "min_frames": 300, "max_frames": 900,
    "dim_visual": 32, "dim_audio": 16, "dim_text": 24, "interaction": 0.5, "noise": 1.0,
    "label_noise": 0.15, "sync_strength": 1.0, "offset": 0.5, "offset_leak": 0.1,
}


@dataclass
class RunConfig:
    seed: int = 0  # draws the model: initialisation and batch order (`data.seed` draws the data)
    device: str = "auto"  # cpu | cuda | cuda:N | auto (a GPU when there is one)
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    robustness: RobustnessConfig = field(default_factory=RobustnessConfig)
    # plugin name -> its options, for any number of plugins; a run uses those of its own plugins
    fusion: dict[str, dict[str, typing.Any]] = field(default_factory=dict)
    encoder: dict[str, dict[str, typing.Any]] = field(default_factory=dict)
    dataset: dict[str, dict[str, typing.Any]] = field(default_factory=dict)
    # kind -> options given in the short form (``fusion.<option>``): for messages only, no identity
    shorthand: dict[str, set[str]] = field(default_factory=dict, repr=False, compare=False)

    def used(self) -> dict[str, str]:
        """The plugin of each kind this run uses: dataset, encoder, and the fusion where there are
        two or more modalities (a single-modality run has none)."""
        out = {"dataset": self.data.name, "encoder": self.model.encoder}
        if len(self.data.modalities) > 1:
            out["fusion"] = self.model.fusion
        return out

    def options(self, kind: str) -> dict[str, typing.Any]:
        """The options of the ``kind`` plugin this run uses (empty if it uses none)."""
        name = self.used().get(kind)
        return dict(getattr(self, kind).get(name, {})) if name is not None else {}

    def to_dict(self) -> dict:
        """The run as a record stores it: the sections, and under ``fusion``/``encoder``/``dataset``
        the options of the plugins the run uses only (``{name: options}``)."""
        d = {"seed": self.seed, "device": self.device}
        for s in ("data", "model", "train", "robustness"):
            d[s] = dataclasses.asdict(getattr(self, s))
        used = self.used()
        for kind in PLUGIN_KINDS:
            opts = self.options(kind)
            d[kind] = {used[kind]: opts} if opts else {}
        return d

    @classmethod
    def from_dict(cls, d: dict) -> RunConfig:
        """A configuration from :meth:`to_dict`'s output, or from a record made before plugin
        options (``fusion``/``encoder``: the chosen plugin's options; a ``synthetic`` section)."""
        # a setting a record lacks was made before it existed: the value runs had then
        # (:data:`_LATER_DEFAULTS`; eval_each_pass false, not today's default)
        later = {s: {k: v for sec, k, v in _LATER_DEFAULTS if sec == s} for s in ("model", "train")}
        cfg = cls(seed=d["seed"], device=d["device"], data=_section(DataConfig, d["data"]),
                  model=_section(ModelConfig, {**later["model"], **d["model"]}),
                  train=_section(TrainConfig, {**later["train"], **d["train"]}),
                  robustness=_section(RobustnessConfig, d.get("robustness", {})))
        if "dataset" in d:
            for kind in PLUGIN_KINDS:
                setattr(cfg, kind, {n: dict(o) for n, o in d.get(kind, {}).items()})
            return cfg
        cfg.fusion = {cfg.model.fusion: dict(d["fusion"])} if d.get("fusion") else {}
        cfg.encoder = {cfg.model.encoder: dict(d["encoder"])} if d.get("encoder") else {}
        synthetic = {k: v for k, v in d.get("synthetic", {}).items() if _LEGACY_SYNTHETIC.get(k) != v}
        cfg.dataset = {"synthetic": synthetic} if synthetic else {}
        return cfg

    def hash(self, data_version: str | None) -> str:
        """Identity of a run: everything but where it runs (``device``) and whether it shows a
        progress bar (``train.progress``); of plugin options, only those of the plugins the run
        uses; no fusion for a single-modality run (it uses none: :meth:`identity`); the
        robustness settings only when robustness is evaluated (so a plain run hashes
        as it did before robustness existed). ``data_version``: the dataset plugin's version of
        data it makes from its options (:func:`fusion_bench.options.data_version`; None for
        data read from disk): a changed generator is another dataset, and a sweep must not skip
        to a run made on the old one."""
        return self._digest(self.identity(), data_version, with_robustness=self.robustness.enabled)

    def model_hash(self, data_version: str | None) -> str:
        """Identity of the trained model: :meth:`hash` without the test-time robustness
        settings. A stored run with robustness also stands for the same run without it."""
        return self._digest(self.identity(), data_version, with_robustness=False)

    def legacy_hashes(self, data_version: str | None) -> list[str]:
        """:meth:`hash` and :meth:`model_hash` as older records have them, in the layout before
        plugin options (the chosen fusion's and encoder's options flat, a full ``synthetic``
        section whatever the dataset): as records made from 2026-11-30 have them (with the data
        version), and as records made before (with ``train.progress``, either value, and without
        the data version). A store holding such a record of this configuration still has the
        run, if the record's data version is this one
        (:meth:`fusion_bench.results.ResultsStore.has` checks).

        Until 2026-12 a single-modality run's hashes covered ``model.fusion`` too (unused): for
        one, each scheme's hash with its own fusion and with the default one (``concat``, what
        ``sweep --fusion only:M`` rows and plain runs had) are included, so a stored run is found
        whatever ``--fusion`` says now."""
        out = []
        single = len(self.data.modalities) == 1
        fusions = dict.fromkeys((self.model.fusion, ModelConfig().fusion) if single else (self.model.fusion,))
        for with_robustness in dict.fromkeys((self.robustness.enabled, False)):
            for fusion in fusions:
                if single:  # the previous scheme: identity() with model.fusion in it
                    with_fusion = self.identity()
                    with_fusion["model"]["fusion"] = fusion
                    out.append(self._digest(with_fusion, data_version, with_robustness))
                old = self._legacy_layout(fusion)
                out.append(self._digest(old, data_version, with_robustness))
                for progress in (True, False):
                    out.append(self._digest(old, None, with_robustness, progress=progress))
        return list(dict.fromkeys(out))

    def identity(self) -> dict:
        """:meth:`to_dict` as the run's identity: plugin options canonical (1 and 1.0 are one
        value, as a CLI string parses to either) and, for a single-modality run, no
        ``model.fusion`` (no fusion is built; ``--fusion`` changes nothing). :meth:`hash` digests
        it; leaderboards group rows by it."""
        d = self.to_dict()
        for kind in PLUGIN_KINDS:
            d[kind] = {n: {k: _canonical(v) for k, v in o.items()} for n, o in d[kind].items()}
        if "fusion" not in self.used():
            d["model"].pop("fusion")
        _length_and_windows(d)
        return d

    def _legacy_layout(self, fusion: str | None = None) -> dict:
        """The layout before plugin options, with ``fusion`` as ``model.fusion`` (default: this
        configuration's)."""
        fusion = self.model.fusion if fusion is None else fusion
        d: dict[str, typing.Any] = {"seed": self.seed, "device": self.device}
        for s in ("data", "model", "train", "robustness"):
            d[s] = dataclasses.asdict(getattr(self, s))
        d["model"]["fusion"] = fusion
        d["fusion"] = dict(self.fusion.get(fusion, {}))
        d["encoder"] = dict(self.encoder.get(self.model.encoder, {}))
        synthetic = dict(_LEGACY_SYNTHETIC)
        for k, v in self.dataset.get("synthetic", {}).items():  # typed as the dataclass had them
            default = _LEGACY_SYNTHETIC.get(k)
            synthetic[k] = type(default)(v) if isinstance(default, (int, float)) and \
                isinstance(v, (int, float)) and not isinstance(v, bool) else v
        d["synthetic"] = synthetic
        return d

    @staticmethod
    def _digest(d: dict, data_version: str | None, with_robustness: bool,
                progress: bool | None = None) -> str:
        """``progress``: None for the current schemes; a value for the oldest one (above)."""
        d = json.loads(json.dumps(d, default=str))  # a copy
        d.pop("device")
        _length_and_windows(d)  # again for the legacy layouts (identity() has done it)
        if progress is None:
            d["train"].pop("progress")  # a progress bar changes no result
            if data_version is not None:
                d["data_version"] = data_version
        else:
            d["train"]["progress"] = progress
        if not with_robustness:
            d.pop("robustness")
        return hashlib.sha256(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _length_and_windows(d: dict) -> None:
    """The training length and windows as identity (and settings added later, left out at
    their default: :data:`_LATER_DEFAULTS`): the step-based schedule's keys, unused when
    ``train.epochs`` counts passes, are left out (such a run, the paper preset, keeps the
    identity it had before they existed); a window or hop left to the data (0) means what the
    rule makes of it, so the rule's version joins (records made before the rule set both, and
    ``eval_hop`` 0 with a hop set still means "the hop", as it did then)."""
    if d["train"].get("epochs", 0) > 0:
        d["train"].pop("steps", None)
        d["train"].pop("eval_every", None)
        d["train"].pop("eval_each_pass", None)
    if d["data"].get("window") == 0 or d["data"].get("hop") == 0:
        d["data"]["window_rule"] = WINDOW_RULE_VERSION
    # settings added after records existed: at the value runs had before them, not part of the
    # identity, so a run hashes as it did then (and a stored run is found)
    for section, key, default in _LATER_DEFAULTS:
        if d.get(section, {}).get(key, default) == default:
            d.get(section, {}).pop(key, None)


#: (section, key, value) of the settings added after records existed, with the value every run had
#: before: :func:`_length_and_windows` leaves them out at that value, and a record that lacks one
#: reads back with it (:meth:`RunConfig.from_dict`). Mostly today's default too; not for
#: eval_each_pass (true by default since 2026-12-02, false in what every run did before)
_LATER_DEFAULTS = (("model", "pooling", "mean"), ("train", "modality_dropout", 0.0),
                   ("train", "precision", "fp32"), ("train", "eval_each_pass", False))
#: the same, by dotted key (what a leaderboard label shows for a record that lacks one)
LATER_DEFAULTS = {f"{section}.{key}": default for section, key, default in _LATER_DEFAULTS}


def _section(cls, values: dict):
    """A section dataclass from a record's dict (lists back to tuples, as the fields are)."""
    hints = typing.get_type_hints(cls)
    return cls(**{k: tuple(v) if typing.get_origin(hints[k]) is tuple else v for k, v in values.items()})


def _canonical(v):
    return int(v) if isinstance(v, float) and v.is_integer() else v
