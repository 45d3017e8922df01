"""The hooks a fusion-bench plugin may implement.

Every ``register_*`` hook receives a ``register(name, obj, description=None, reference=None)``
callable; ``description``/``reference`` default to ``obj.description`` / ``obj.reference``.
Built-in components are registered through these very hooks (see :mod:`fusion_bench.builtins`).
"""

import pluggy

hookspec = pluggy.HookspecMarker("fusion_bench")


@hookspec
def register_fusions(register):
    """Register fusion modules: ``register(name, cls)`` with ``cls(dims, seq_len, **options)``
    an ``nn.Module`` mapping ``{modality: (B, L, d_m)}`` and masks to ``(B, L, cls.out_dim)``;
    the options (keyword parameters with defaults) are set with ``--set fusion.<name>.<option>``."""


@hookspec
def register_encoders(register):
    """Register temporal encoders: ``register(name, cls)`` with ``cls(in_dim, **options)`` an
    ``nn.Module`` mapping ``(B, L, in_dim)`` to ``(B, L, out_dim)`` and an ``out_dim`` attribute;
    options as a fusion's (``--set encoder.<name>.<option>``)."""


@hookspec
def register_backbones(register):
    """Register feature extractors for raw media: ``register(name, factory)``; the factory builds
    an object turning one video's media into a ``(frames, dim)`` array."""


@hookspec
def register_datasets(register):
    """Register datasets: ``register(name, cls)``; ``cls.from_config(run_config)`` builds one with
    ``dims``, ``splits()`` (train/val/test → list of :class:`fusion_bench.data.Video`) and ``info()``.
    Options: an ``Options`` dataclass on ``cls`` (``--set dataset.<name>.<field>=...``), read in
    ``from_config`` with :func:`fusion_bench.options.dataset_options`; a ``data_version`` attribute
    for data generated from them (see :mod:`fusion_bench.data`)."""


@hookspec
def register_metrics(register):
    """Register evaluation metrics: ``register(name, fn)`` with ``fn(pred, target) -> float`` over
    the valid frames of one target of a split (float64 ``(n,)`` arrays), ``fn.higher_is_better``
    (default True) and ``fn.description``; every run records every registered metric."""


@hookspec
def register_commands(cli):
    """Add CLI verbs to the ``fusion-bench`` click group ``cli``."""


# -- run events (fusion_bench.events): progress displays and experiment trackers --------------

@hookspec
def run_start(run):
    """A run begins: ``run`` is a :class:`fusion_bench.events.RunInfo` (name, resolved config,
    config hash, labels of the models it will train)."""


@hookspec
def data_summary(run, summary):
    """The data of ``run`` is read and windowed, training is about to start: ``summary`` is the
    record's ``data_summary`` (per split sequences, frames, windows, padding share; window and
    hops used; steps per epoch and in all)."""


@hookspec
def step_end(run, step):
    """A model of ``run`` finished a training batch: ``step`` is a
    :class:`fusion_bench.events.StepEnd` (model label, epoch, step and steps in the epoch, the
    batch's loss). Called once per optimizer step: keep it cheap."""


@hookspec
def epoch_end(run, epoch):
    """A model of ``run`` finished a training epoch: ``epoch`` is a
    :class:`fusion_bench.events.EpochEnd` (model label, epoch, loss, validation CCC, lr, best)."""


@hookspec
def run_end(run, record):
    """``run`` finished: ``record`` is its result record (a dict, as stored; not yet written)."""
