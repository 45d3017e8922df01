"""fusion-bench: one harness to train, score and time multimodal fusion for valence/arousal.

Public API for plugin authors::

    import fusion_bench

    @fusion_bench.hookimpl
    def register_fusions(register):
        register("gated_concat", GatedConcat, description="...", reference="...")

and for notebooks (:mod:`fusion_bench.api`)::

    record = fusion_bench.run(fusion="rcma", seed=0, overrides={"train.steps": 20}, out="results")
    fusion_bench.sweep(["rcma", "concat"], seeds=3, out="results")
    df = fusion_bench.results("results")            # pandas DataFrame, a row per run
    model = fusion_bench.load_model(record["run_id"], "results")
"""

import importlib

import pluggy

__version__ = "0.1.0"

#: Marker for plugin hook implementations (entry-point group ``fusion_bench``).
hookimpl = pluggy.HookimplMarker("fusion_bench")

__all__ = ["hookimpl", "__version__", "run", "sweep", "results", "load_model"]


def __getattr__(name: str):
    """The notebook API (:mod:`fusion_bench.api`), imported on first use so ``import
    fusion_bench`` stays light: ``run`` and ``load_model`` are its functions; ``sweep`` and
    ``results`` are the modules of those names, which are callable (calling them calls
    :func:`fusion_bench.api.sweep` and :func:`fusion_bench.api.results`)."""
    if name in ("run", "load_model"):
        from . import api

        return getattr(api, name)
    if name in ("sweep", "results", "api"):
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module 'fusion_bench' has no attribute {name!r}")
