"""Temporal encoders: one per modality, ``(B, L, in_dim) -> (B, L, out_dim)``."""
