"""Fusion strategies, one per file. Each maps ``{modality: (B, L, d_m)}`` + masks to ``(B, L, out_dim)``."""
