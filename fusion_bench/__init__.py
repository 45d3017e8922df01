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

__all__ = ["hookimpl", "__version__"]
