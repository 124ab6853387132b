"""Bring your own scores: per-class scores or logits from any model, read from CSV or Parquet.

Format: one row per item, an ``id`` column and one numeric column per class, named by the class
(``"score_<class>"`` / ``"logit_<class>"`` / ``"prob_<class>"`` prefixes are accepted too).
``kind`` says what the numbers are:

* ``"logits"`` — used as they are;
* ``"probs"`` — probabilities (each in [0, 1], rows summing to 1 within 1e-3): logits = log p;
* ``"auto"`` — ``"probs"`` when every row looks like a distribution, else ``"logits"``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from labelsieve._validation import check_option
from labelsieve.errors import InputError
from labelsieve.models.base import Scores

_PREFIX = re.compile(r"^(score|logit|prob|p)_", re.IGNORECASE)
#: Smallest probability kept before the log (a 0 becomes log(1e-12) ~ -27.6, not -inf).
PROB_FLOOR = 1e-12


@dataclass(frozen=True)
class ScoreTable:
    """Scores read from a file: ``ids`` (n,), ``classes`` (K,), ``scores`` (logits (n, K)), ``kind``."""

    ids: np.ndarray
    classes: tuple[str, ...]
    scores: Scores
    kind: str
    source: str

    def align(self, ids: Sequence[str] | np.ndarray) -> Scores:
        """Scores in the order of ``ids``; an id missing from the file raises naming it."""
        import pandas as pd

        want = np.asarray(ids, dtype=object).astype(str)
        pos = pd.Index(self.ids).get_indexer(want)
        if (pos < 0).any():
            r = int(np.flatnonzero(pos < 0)[0])
            raise InputError(
                f"{self.source}: no scores for item {str(want[r])!r} (row {r} of the pool); "
                f"{int((pos < 0).sum())} pool items have no row in the scores file."
            )
        return self.scores.take(pos)


def probs_to_logits(p: np.ndarray) -> np.ndarray:
    """``log(max(p, PROB_FLOOR))``; softmax of the result gives back ``p`` for p > floor.

    >>> np.round(probs_to_logits(np.array([[0.25, 0.75]])), 4).tolist()
    [[-1.3863, -0.2877]]
    """
    return np.log(np.maximum(np.asarray(p, dtype=np.float64), PROB_FLOOR))


def load_scores(
    path: str | os.PathLike[str],
    *,
    classes: Sequence[str] | None = None,
    id_column: str = "id",
    kind: str = "auto",
) -> ScoreTable:
    """Read a scores file (see the module docstring).

    Parameters
    ----------
    path : .csv, .tsv, .parquet or .pq file
    classes : sequence of str, optional
        Expected class names in code order; every class must have a column (extra columns are
        an error). Default: the score columns in file order.
    id_column : str
    kind : {"auto", "logits", "probs"}

    Returns
    -------
    ScoreTable
    """
    import pandas as pd

    check_option("kind", kind, owner="load_scores", options=("auto", "logits", "probs"))
    path = Path(path)
    where = str(path)
    if not path.exists():
        raise InputError(f"{where}: scores file not found.")
    suffix = path.suffix.lower()
    try:
        if suffix in (".csv", ".tsv"):
            df = pd.read_csv(path, sep="\t" if suffix == ".tsv" else ",", dtype={id_column: str})
        elif suffix in (".parquet", ".pq"):
            df = pd.read_parquet(path)
        else:
            raise InputError(f"{where}: unsupported scores file type {suffix!r}; use .csv, .tsv, .parquet or .pq.")
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError, ValueError) as exc:
        if isinstance(exc, InputError):
            raise
        raise InputError(f"{where}: cannot read scores: {exc}".splitlines()[0]) from exc
    df.columns = [str(c) for c in df.columns]
    if id_column not in df.columns:
        raise InputError(f"{where}: no id column {id_column!r}; columns are {list(df.columns)}.")
    if len(df) == 0:
        raise InputError(f"{where}: no rows.")
    ids = df[id_column]
    if ids.isna().any():
        raise InputError(f"{where}: missing id at row {int(np.flatnonzero(ids.isna().to_numpy())[0])}.")
    ids = ids.astype(str).str.strip().to_numpy(dtype=object)
    u, c = np.unique(ids.astype(str), return_counts=True)
    if (c > 1).any():
        raise InputError(f"{where}: duplicate ids {u[c > 1][:5].tolist()} in column {id_column!r}.")
    score_cols = [col for col in df.columns if col != id_column]
    names = [_PREFIX.sub("", col) for col in score_cols]
    if len(set(names)) != len(names):
        raise InputError(f"{where}: score columns {score_cols} name the same class twice.")
    if classes is not None:
        cls = tuple(str(x) for x in classes)
        missing = [x for x in cls if x not in names]
        extra = [col for col, n in zip(score_cols, names) if n not in cls]
        if missing or extra:
            raise InputError(
                f"{where}: score columns do not match the classes {list(cls)}: "
                f"missing {missing}, unexpected {extra}."
            )
        order = [names.index(x) for x in cls]
        score_cols = [score_cols[i] for i in order]
    else:
        cls = tuple(names)
    if len(cls) < 2:
        raise InputError(f"{where}: need score columns for at least 2 classes; got {score_cols}.")
    for col in score_cols:
        s = df[col]
        if not pd.api.types.is_numeric_dtype(s):
            num = pd.to_numeric(s, errors="coerce")
            r = int(np.flatnonzero((num.isna() & s.notna()).to_numpy())[0]) if (num.isna() & s.notna()).any() else 0
            raise InputError(f"{where}: column {col!r} is not numeric (value {s.iloc[r]!r} at row {r}, id {ids[r]!r}).")
    S = df[score_cols].to_numpy(dtype=np.float64)
    bad = ~np.isfinite(S)
    if bad.any():
        r, k = np.argwhere(bad)[0]
        raise InputError(f"{where}: column {score_cols[k]!r} is {S[r, k]} (missing/NaN or inf) at row {r} (id {ids[r]!r}).")
    looks_prob = bool(((S >= 0) & (S <= 1)).all() and np.allclose(S.sum(1), 1.0, atol=1e-3))
    if kind == "probs" and not looks_prob:
        rows = np.flatnonzero(((S < 0) | (S > 1)).any(1) | ~np.isclose(S.sum(1), 1.0, atol=1e-3))
        r = int(rows[0])
        raise InputError(
            f"{where}: kind='probs' but row {r} (id {ids[r]!r}) is not a distribution "
            f"(values {S[r].round(4).tolist()}, sum {S[r].sum():.4f})."
        )
    resolved = "probs" if (kind == "probs" or (kind == "auto" and looks_prob)) else "logits"
    logits = probs_to_logits(S) if resolved == "probs" else S
    return ScoreTable(ids=ids, classes=cls, scores=Scores(logits), kind=resolved, source=where)


def write_scores(path: str | os.PathLike[str], ids: Sequence[str], logits: np.ndarray, classes: Sequence[str]) -> None:
    """Write a scores file readable by :func:`load_scores` (atomically)."""
    import pandas as pd

    from labelsieve._atomic import atomic_write_path, atomic_write_text

    df = pd.DataFrame(np.asarray(logits, dtype=np.float64), columns=[str(c) for c in classes])
    df.insert(0, "id", np.asarray(ids, dtype=str))
    path = Path(path)
    if path.suffix.lower() in (".parquet", ".pq"):
        atomic_write_path(path, lambda tmp: df.to_parquet(tmp, index=False))
    else:
        atomic_write_text(path, df.to_csv(index=False))
