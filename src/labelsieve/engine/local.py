"""The local engine: run a block function over row blocks in process, memory flat in the pool size."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from labelsieve.engine.base import DEFAULT_BLOCK_SIZE, BaseEngine, Block, BlockTask, Source
from labelsieve.models.base import Scores

__all__ = ["DEFAULT_BLOCK_SIZE", "LocalEngine", "score_in_blocks"]


def score_in_blocks(
    score: Callable[[np.ndarray], Scores], X: np.ndarray, *, block_size: int = DEFAULT_BLOCK_SIZE
) -> Scores:
    """Apply ``score`` to ``X`` block by block and concatenate the :class:`Scores`."""
    if len(X) <= block_size:
        return score(X)
    parts = [score(X[i : i + block_size]) for i in range(0, len(X), block_size)]
    emb = None if parts[0].embeddings is None else np.concatenate([p.embeddings for p in parts])
    return Scores(np.concatenate([p.logits for p in parts]), emb)


class LocalEngine(BaseEngine):
    """Blocks run one after the other in this process (the default engine).

    >>> eng = LocalEngine()
    >>> out = eng.map_blocks(lambda b: {"s": b["X"].sum(axis=1)}, np.ones((5, 2)), block_size=2)
    >>> out["s"].tolist(), out["_row"].tolist()
    ([2.0, 2.0, 2.0, 2.0, 2.0], [0, 1, 2, 3, 4])
    """

    name = "local"

    def run_tasks(self, task: BlockTask, source: Source, *, block_size: int) -> list[tuple[int, Any]]:
        pieces = source.pieces(block_size)
        if not pieces:
            return []
        state = task.start()
        read: Callable[[Any], Block] = source.read  # each source reads the pieces it cut itself
        return [(i, task.run(read(p), state)) for i, p in enumerate(pieces)]

    def close(self) -> None:
        """Nothing to release."""
