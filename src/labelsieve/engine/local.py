"""The local engine: run a block function over row blocks in process, memory flat in the pool size."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from labelsieve.models.base import Scores

DEFAULT_BLOCK_SIZE = 65_536


def score_in_blocks(
    score: Callable[[np.ndarray], Scores], X: np.ndarray, *, block_size: int = DEFAULT_BLOCK_SIZE
) -> Scores:
    """Apply ``score`` to ``X`` block by block and concatenate the :class:`Scores`."""
    if len(X) <= block_size:
        return score(X)
    parts = [score(X[i : i + block_size]) for i in range(0, len(X), block_size)]
    emb = None if parts[0].embeddings is None else np.concatenate([p.embeddings for p in parts])  # type: ignore[misc]
    return Scores(np.concatenate([p.logits for p in parts]), emb)
