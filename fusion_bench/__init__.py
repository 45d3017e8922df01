"""fusion-bench: one harness to train, score and time multimodal fusion for valence/arousal.

Public API for plugin authors::

    import fusion_bench

    @fusion_bench.hookimpl
    def register_fusions(register):
        register("gated_concat", GatedConcat, description="...", reference="...")
"""

import pluggy

__version__ = "0.1.0"

#: Marker for plugin hook implementations (entry-point group ``fusion_bench``).
hookimpl = pluggy.HookimplMarker("fusion_bench")

__all__ = ["hookimpl", "__version__", "load_model"]


def __getattr__(name: str):
    """``fusion_bench.load_model(run_id, results="results")``: a stored run's trained models
    (:func:`fusion_bench.artifacts.load_model`), imported on first use so ``import
    fusion_bench`` stays light."""
    if name == "load_model":
        from .artifacts import load_model

        return load_model
    raise AttributeError(f"module 'fusion_bench' has no attribute {name!r}")
