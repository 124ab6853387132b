"""What an engine is: sources of row blocks, the block runner both engines share, and the protocol.

The math of labelsieve lives in pure functions over one *block* of rows, a ``dict`` of NumPy arrays
with equal first dimension (Ray Data's "numpy" batch format). A block always carries ``_row``, the
global position of each row in its source, so results can be put back in order and checked: every
row exactly once, none lost, none duplicated.

An engine only decides *where* the blocks run. It sees a **source** cut into **pieces** (a piece is
a small picklable description -- rows ``start:stop`` of in-memory arrays, or one slice of one
Parquet row group -- read where it runs, so data streams from disk on the workers) and a
:class:`BlockTask` (what to do with one block). The local engine runs the pieces one after the other
in process; the Ray engine maps them with Ray Data. Both call the same :meth:`BlockTask.run`.
"""

from __future__ import annotations

import functools
import itertools
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from labelsieve.errors import InputError, LabelsieveError, ParameterError
from labelsieve.models.base import Scores

DEFAULT_BLOCK_SIZE = 65_536
ROW = "_row"

Block = dict[str, np.ndarray]


# ------------------------------------------------------------------------------------------ sources
@dataclass
class ArraySource:
    """In-memory columns of equal length, cut into blocks of ``block_size`` rows.

    ``bounds`` (optional, increasing, starting at 0 and ending at ``n``) overrides the cut: the
    group-by path uses it so that no group straddles two blocks.

    >>> src = ArraySource({"X": np.arange(10.0).reshape(5, 2)})
    >>> [p for p in src.pieces(2)]
    [(0, 2), (2, 4), (4, 5)]
    >>> src.read((2, 4))["_row"].tolist()
    [2, 3]
    """

    columns: dict[str, np.ndarray]
    bounds: np.ndarray | None = None

    def __post_init__(self) -> None:
        lengths = {k: len(v) for k, v in self.columns.items()}
        if len(set(lengths.values())) > 1:
            raise InputError(f"source columns differ in length: {lengths}.")

    def __len__(self) -> int:
        return len(next(iter(self.columns.values()))) if self.columns else 0

    def pieces(self, block_size: int) -> list[tuple[int, int]]:
        if self.bounds is not None:
            b = np.asarray(self.bounds, dtype=np.int64)
            return [(int(s), int(e)) for s, e in itertools.pairwise(b) if e > s]
        n = len(self)
        return [(s, min(s + block_size, n)) for s in range(0, n, block_size)]

    def read(self, piece: tuple[int, int]) -> Block:
        s, e = piece
        out = {k: v[s:e] for k, v in self.columns.items()}
        out[ROW] = np.arange(s, e, dtype=np.int64)
        return out


@dataclass
class ParquetSource:
    """Parquet files (one row per item) read piece by piece where the piece runs.

    Parameters
    ----------
    paths : sequence of paths, in row order
    features : list of column names, optional
        Numeric columns stacked into the block's ``X`` (float32, shape (n, d)). Default: every
        numeric column except ``id_column`` and the ``keep`` columns. A single fixed-size-list
        column (an embedding) is also accepted as ``features=["embedding"]``.
    id_column : str, optional
        Passed through as the block's ``id`` when present.
    keep : list of str
        Other columns passed through unchanged (e.g. a ``text`` column for a zero-shot labeler).
    """

    paths: list[str]
    features: list[str] | None = None
    id_column: str | None = "id"
    keep: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        import pyarrow.parquet as pq

        self.paths = [str(p) for p in self.paths]
        if not self.paths:
            raise InputError("no Parquet files given.")
        self._groups: list[tuple[int, int, int]] = []  # (file, row group, rows)
        schema = None
        for i, p in enumerate(self.paths):
            if not os.path.exists(p):
                raise InputError(f"{p}: no such Parquet file.")
            try:
                meta = pq.ParquetFile(p).metadata
            except Exception as exc:  # pyarrow raises several types for a bad file
                raise InputError(f"{p}: cannot read as Parquet ({exc}).") from exc
            schema = schema or pq.read_schema(p)
            for g in range(meta.num_row_groups):
                self._groups.append((i, g, meta.row_group(g).num_rows))
        assert schema is not None
        names = schema.names
        for c in self.keep + ([self.id_column] if self.id_column and self.id_column in names else []):
            if c not in names:
                raise InputError(f"{self.paths[0]}: no column {c!r}; columns are {names}.")
        if self.features is None:
            import pyarrow.types as pat

            skip = set(self.keep) | {self.id_column, "label"}
            self.features = [
                f.name for f in schema if f.name not in skip and (pat.is_integer(f.type) or pat.is_floating(f.type))
            ]
        missing = [c for c in self.features if c not in names]
        if missing:
            raise InputError(f"{self.paths[0]}: no feature column(s) {missing}; columns are {names}.")
        self._has_id = bool(self.id_column and self.id_column in names)

    def __len__(self) -> int:
        return int(sum(g[2] for g in self._groups))

    def pieces(self, block_size: int) -> list[tuple[int, int, int, int, int]]:
        """(file, row group, start in group, stop in group, global offset) slices of <= block_size rows."""
        out, offset = [], 0
        for f, g, n in self._groups:
            for s in range(0, n, block_size):
                e = min(s + block_size, n)
                out.append((f, g, s, e, offset + s))
            offset += n
        return out

    def read(self, piece: tuple[int, int, int, int, int]) -> Block:
        import pyarrow.parquet as pq

        f, g, s, e, offset = piece
        cols = list(self.features or []) + list(self.keep) + ([self.id_column] if self._has_id else [])
        table = pq.ParquetFile(self.paths[f]).read_row_group(g, columns=cols).slice(s, e - s)
        out: Block = {ROW: np.arange(offset, offset + (e - s), dtype=np.int64)}
        if self.features:
            out["X"] = _stack_features(table, self.features, self.paths[f], offset)
        for c in self.keep:
            out[c] = table.column(c).to_numpy(zero_copy_only=False)
        if self._has_id:
            out["id"] = table.column(self.id_column).to_numpy(zero_copy_only=False)
        return out


def _stack_features(table: Any, features: list[str], path: str, offset: int) -> np.ndarray:
    import pyarrow as pa

    if len(features) == 1 and pa.types.is_fixed_size_list(table.schema.field(features[0]).type):
        col = table.column(features[0]).combine_chunks()
        X = col.flatten().to_numpy(zero_copy_only=False).reshape(len(col), -1).astype(np.float32, copy=False)
    else:
        X = np.empty((table.num_rows, len(features)), dtype=np.float32)
        for j, c in enumerate(features):
            X[:, j] = table.column(c).to_numpy(zero_copy_only=False)
    bad = ~np.isfinite(X)
    if bad.any():
        r, c = np.argwhere(bad)[0]
        raise InputError(f"{path}: feature {features[min(c, len(features) - 1)]!r} is {X[r, c]} "
                         f"(missing/NaN/inf) at row {offset + r}.")
    return X


Source = ArraySource | ParquetSource


def as_source(data: Any, **parquet_options: Any) -> Source:
    """An :class:`ArraySource` from an array (column ``X``) or a dict of arrays; a
    :class:`ParquetSource` from a path, a directory of ``*.parquet`` files, or a list of paths."""
    if isinstance(data, (ArraySource, ParquetSource)):
        return data
    if isinstance(data, np.ndarray):
        return ArraySource({"X": data})
    if isinstance(data, dict):
        return ArraySource({k: np.asarray(v) for k, v in data.items()})
    if isinstance(data, (str, os.PathLike)):
        data = [data]
    if isinstance(data, Sequence) and all(isinstance(p, (str, os.PathLike)) for p in data):
        paths: list[str] = []
        for p in data:
            if Path(p).is_dir():
                paths.extend(sorted(str(q) for q in Path(p).glob("*.parquet")))
            else:
                paths.append(str(p))
        return ParquetSource(paths, **parquet_options)
    raise ParameterError(
        f"The 'source' parameter must be an array, a dict of arrays or Parquet path(s). Got {type(data).__name__} instead."
    )


# ------------------------------------------------------------------------------------- block tasks
@dataclass
class BlockTask:
    """What to do with one block, identical on every engine.

    ``fn(block) -> result``. ``setup`` (optional) is called once per worker before the first block
    (e.g. loads a model's weights) and its return value is passed as ``fn(block, state)``.
    ``kind``: ``"map"`` (fn returns a dict of arrays with one row per input row, plus ``_row`` kept),
    ``"reduce"`` (fn returns any picklable partial result, combined by the engine's caller).
    """

    fn: Callable[..., Any]
    setup: Callable[[], Any] | None = None
    kind: str = "map"

    def start(self) -> Any:
        return None if self.setup is None else self.setup()

    def run(self, block: Block, state: Any = None) -> Any:
        out = self.fn(block) if self.setup is None else self.fn(block, state)
        if self.kind == "map":
            if not isinstance(out, dict):
                raise LabelsieveError(f"a map block function must return a dict of arrays; got {type(out).__name__}.")
            out = dict(out)
            out.setdefault(ROW, block[ROW])
        return out


def assemble(parts: list[tuple[int, Block]], n_rows: int | None) -> Block:
    """Concatenate per-piece map outputs in piece order and check every row came back exactly once."""
    parts = sorted(parts, key=lambda t: t[0])
    seen: set[int] = set()
    uniq = []
    for p, b in parts:  # a retried piece may (in principle) be reported twice: keep one copy
        if p not in seen:
            seen.add(p)
            uniq.append(b)
    if not uniq:
        return {ROW: np.zeros(0, dtype=np.int64)}
    out = {k: np.concatenate([b[k] for b in uniq]) for k in uniq[0]}
    rows = out[ROW]
    if n_rows is not None and (len(rows) != n_rows or not np.array_equal(rows, np.arange(n_rows))):
        raise LabelsieveError(
            f"engine returned {len(rows)} rows for {n_rows} input rows (lost or duplicated rows); nothing kept."
        )
    return out


def select_top(block: Block, score_key: str, k: int) -> Block:
    """The ``k`` rows of ``block`` with the largest ``score_key``, ties to the lowest ``_row``.

    Top-k of a union is the top-k of the blocks' top-k, so this is both the map and the reduce of
    the distributed top-k.

    >>> b = {"_row": np.arange(4), "g": np.array([0.1, 0.5, 0.5, 0.2])}
    >>> select_top(b, "g", 2)["_row"].tolist()
    [1, 2]
    """
    order = np.lexsort((block[ROW], -np.asarray(block[score_key], dtype=np.float64)))[:k]
    return {c: v[order] for c, v in block.items()}


# ---------------------------------------------------------------------------------------- protocol
@runtime_checkable
class Engine(Protocol):
    """Where blocks run. Every method returns the same result on every engine."""

    name: str

    def run_tasks(self, task: BlockTask, source: Source, *, block_size: int) -> list[tuple[int, Any]]:
        """Run ``task`` over every piece; returns ``(piece index, result)`` pairs (any order)."""
        ...

    def map_blocks(
        self, fn: Callable[..., Block], source: Any, *, block_size: int = DEFAULT_BLOCK_SIZE,
        setup: Callable[[], Any] | None = None, out: str | os.PathLike[str] | None = None,
    ) -> Block | Path:
        ...

    def score(
        self, model: Any, source: Any, *, block_size: int = DEFAULT_BLOCK_SIZE, column: str = "X",
        embeddings: bool = False, out: str | os.PathLike[str] | None = None,
    ) -> Scores | Path:
        ...

    def autolabel(
        self, model: Any, confidence: Any, certificate: Any, source: Any, *, block_size: int = DEFAULT_BLOCK_SIZE,
    ) -> tuple[Scores, np.ndarray, np.ndarray, np.ndarray]:
        ...

    def map_reduce(
        self, fn: Callable[[Block], Any], source: Any, reduce: Callable[[Any, Any], Any], *,
        block_size: int = DEFAULT_BLOCK_SIZE,
    ) -> Any:
        ...

    def group_map(self, fn: Callable[[Block], Block], source: ArraySource, *,
                  block_size: int = DEFAULT_BLOCK_SIZE) -> Block:
        ...

    def top_k(self, fn: Callable[[Block], Block], source: Any, k: int, score_key: str, *,
              block_size: int = DEFAULT_BLOCK_SIZE) -> Block:
        ...


class BaseEngine:
    """The engine-independent half: everything is written once over :meth:`run_tasks`."""

    name = "base"

    def run_tasks(self, task: BlockTask, source: Source, *, block_size: int) -> list[tuple[int, Any]]:
        raise NotImplementedError  # pragma: no cover

    # -- map -----------------------------------------------------------------------------------------
    def map_blocks(
        self,
        fn: Callable[..., Block],
        source: Any,
        *,
        block_size: int = DEFAULT_BLOCK_SIZE,
        setup: Callable[[], Any] | None = None,
        out: str | os.PathLike[str] | None = None,
    ) -> Block | Path:
        """Apply ``fn`` to every block; returns the concatenated columns in row order (with ``_row``).

        With ``out`` (a directory) each block's output is written as one Parquet shard where it
        was computed, into a staging directory committed by one rename when every piece is done
        (:mod:`labelsieve.engine.shards`); returns ``out``. The driver then holds no pool-sized array.
        """
        from labelsieve.engine.shards import ShardedOutput, write_shard

        _check_block_size(block_size)
        src = as_source(source)
        if out is None:
            parts = self.run_tasks(BlockTask(fn, setup, "map"), src, block_size=block_size)
            return assemble(parts, len(src))
        sink = ShardedOutput(out)
        staging = str(sink.staging)

        def write(block: Block, *state: Any) -> dict[str, int]:
            res = BlockTask(fn, setup, "map").run(block, *state)
            write_shard(staging, int(block[ROW][0]) if len(block[ROW]) else 0, res)
            return {"n": len(res[ROW]), "first": int(block[ROW][0]) if len(block[ROW]) else 0}

        with sink:
            parts = self.run_tasks(BlockTask(write, setup, "reduce"), src, block_size=block_size)
            total = sum(r["n"] for _, r in {p: r for p, r in parts}.items())
            if total != len(src):
                raise LabelsieveError(f"wrote {total} rows for {len(src)} input rows; nothing committed.")
        return Path(out)

    # -- score ---------------------------------------------------------------------------------------
    def score(
        self,
        model: Any,
        source: Any,
        *,
        block_size: int = DEFAULT_BLOCK_SIZE,
        column: str = "X",
        embeddings: bool = False,
        out: str | os.PathLike[str] | None = None,
    ) -> Scores | Path:
        """:class:`Scores` of every row: ``model.scores(block[column])`` block by block.

        ``model`` is a fitted model/labeler (shipped to each worker once) or a zero-argument
        factory returning one (called once per worker: weights load once per worker).
        ``column="X"`` passes the feature matrix; any other column passes a list of items (e.g. texts
        for a zero-shot labeler, with the block's ``id`` as ids when the source has them).
        With ``out`` the logits (and ids) are written as committed Parquet shards instead
        (:meth:`map_blocks`), and ``out`` is returned: the driver never holds the pool's scores.
        """
        fn = functools.partial(score_block, column=column, embeddings=embeddings)
        res = self.map_blocks(fn, source, block_size=block_size, setup=model_setup(model), out=out)
        if not isinstance(res, dict):
            return res
        return Scores(res["logits"], res.get("embeddings"))

    # -- auto-labeling -------------------------------------------------------------------------------
    def autolabel(
        self,
        model: Any,
        confidence: Any,
        certificate: Any,
        source: Any,
        *,
        block_size: int = DEFAULT_BLOCK_SIZE,
    ) -> tuple[Scores, np.ndarray, np.ndarray, np.ndarray]:
        """Score every row with a fitted ``model``, take ``confidence`` and apply ``certificate``.

        Returns ``(scores, predicted codes, confidences, accepted mask)``, in row order -- what one
        TBAL round needs of its pool. The fitted objects travel with the block function.
        """
        fn = functools.partial(autolabel_block, model=model, confidence=confidence, certificate=certificate)
        res = self.map_blocks(fn, source, block_size=block_size)
        assert isinstance(res, dict)
        return Scores(res["logits"], res.get("embeddings")), res["pred"], res["conf"], res["accepted"]

    # -- map-reduce ----------------------------------------------------------------------------------
    def map_reduce(
        self,
        fn: Callable[[Block], Any],
        source: Any,
        reduce: Callable[[Any, Any], Any],
        *,
        block_size: int = DEFAULT_BLOCK_SIZE,
    ) -> Any:
        """``reduce`` over the per-block results of ``fn``, combined in piece order (deterministic)."""
        _check_block_size(block_size)
        src = as_source(source)
        parts = dict(self.run_tasks(BlockTask(fn, None, "reduce"), src, block_size=block_size))
        n_pieces = len(src.pieces(block_size))
        if sorted(parts) != list(range(n_pieces)):
            raise LabelsieveError(f"map-reduce got results for {len(parts)} of {n_pieces} blocks.")
        acc = parts[0]
        for p in range(1, n_pieces):
            acc = reduce(acc, parts[p])
        return acc

    # -- group-by --------------------------------------------------------------------------------------
    def group_map(
        self,
        fn: Callable[[Block], Block],
        source: ArraySource,
        *,
        block_size: int = DEFAULT_BLOCK_SIZE,
    ) -> Block:
        """Map ``fn`` over the blocks of a source partitioned by :func:`partition_by_key` (every
        group inside one block) and concatenate the outputs in block order.

        ``fn`` returns any number of rows per block (e.g. one per group): this is the group-by /
        aggregate path. Output rows are not checked against input rows.
        """
        _check_block_size(block_size)
        parts = self.run_tasks(BlockTask(fn, None, "reduce"), source, block_size=block_size)
        n_pieces = len(source.pieces(block_size))
        blocks = dict(parts)
        if sorted(blocks) != list(range(n_pieces)):
            raise LabelsieveError(f"group map got results for {len(blocks)} of {n_pieces} blocks.")
        ordered = [blocks[p] for p in range(n_pieces)]
        if not ordered:
            return {}
        return {c: np.concatenate([b[c] for b in ordered]) for c in ordered[0]}

    # -- top-k -----------------------------------------------------------------------------------------
    def top_k(
        self,
        fn: Callable[[Block], Block],
        source: Any,
        k: int,
        score_key: str,
        *,
        block_size: int = DEFAULT_BLOCK_SIZE,
    ) -> Block:
        """The ``k`` rows with the largest ``fn(block)[score_key]`` (ties: lowest row), best first.

        Each block keeps its own top ``k`` where it runs; only ``k`` rows per block reach the driver.
        """
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise ParameterError(f"The 'k' parameter of top_k must be an int >= 1. Got {k!r} instead.")

        def block_top(block: Block) -> Block:
            out = dict(fn(block))
            out.setdefault(ROW, block[ROW])
            return select_top(out, score_key, int(k))

        src = as_source(source)
        parts = self.run_tasks(BlockTask(block_top, None, "reduce"), src, block_size=block_size)
        if not parts:
            return {ROW: np.zeros(0, dtype=np.int64)}
        blocks = [b for _, b in sorted(parts, key=lambda t: t[0])]
        merged = {c: np.concatenate([b[c] for b in blocks]) for c in blocks[0]}
        return select_top(merged, score_key, int(k))


def partition_by_key(keys: np.ndarray, columns: dict[str, np.ndarray], block_size: int) -> ArraySource:
    """Rows sorted by ``keys`` (stable) and cut into blocks of about ``block_size`` rows of whole groups.

    The source's columns are ``columns`` plus ``_key``; ``_row`` is then the position after the sort.

    >>> src = partition_by_key(np.array([2, 0, 2, 1]), {"v": np.array([10, 11, 12, 13])}, 2)
    >>> [src.read(p)["v"].tolist() for p in src.pieces(2)]
    [[11, 13], [10, 12]]
    """
    order = np.argsort(keys, kind="stable")
    sk = np.asarray(keys)[order]
    cols = {k: np.asarray(v)[order] for k, v in columns.items()}
    cols["_key"] = sk
    return ArraySource(cols, bounds=group_bounds(sk, block_size))


def group_bounds(sorted_keys: np.ndarray, block_size: int) -> np.ndarray:
    """Block boundaries over rows sorted by key: about ``block_size`` rows each, never inside a group.

    >>> group_bounds(np.array([0, 0, 1, 1, 1, 2]), 2).tolist()
    [0, 2, 5, 6]
    """
    n = len(sorted_keys)
    starts = np.flatnonzero(np.r_[True, sorted_keys[1:] != sorted_keys[:-1]]) if n else np.zeros(0, np.int64)
    bounds = [0]
    # the first group start at or after each multiple of block_size past the last boundary
    while bounds[-1] < n:
        i = np.searchsorted(starts, bounds[-1] + block_size, side="left")
        bounds.append(int(starts[i]) if i < len(starts) else n)
    return np.asarray(bounds, dtype=np.int64)


def _check_block_size(block_size: int) -> None:
    if isinstance(block_size, bool) or not isinstance(block_size, (int, np.integer)) or block_size < 1:
        raise ParameterError(f"The 'block_size' parameter of the engine must be an int >= 1. Got {block_size!r} instead.")


# ------------------------------------------------------------------------------------ scoring blocks
def model_setup(model: Any) -> Callable[[], Any]:
    """Per-worker setup for :func:`score_block`: the model itself, or what a factory builds."""
    if hasattr(model, "scores"):
        return lambda: model
    if callable(model):
        return model
    raise ParameterError(
        f"The 'model' parameter of score must have a scores() method or be a factory. Got {type(model).__name__} instead."
    )


def score_block(block: Block, model: Any, *, column: str = "X", embeddings: bool = False) -> Block:
    """``model.scores`` of one block: ``logits`` (and ``embeddings`` when asked and returned).

    ``column="X"`` passes the feature matrix; another column is passed as a list of items, with the
    block's ``id`` column as ids when present (a labeler's embedding cache is keyed by them).
    """
    if column not in block:
        raise InputError(f"the source has no column {column!r}; columns are {sorted(block)}.")
    if column == "X":
        s = model.scores(block["X"])
    else:
        items = list(block[column])
        s = model.scores(items, [str(i) for i in block["id"]]) if "id" in block else model.scores(items)
    out = {"logits": np.asarray(s.logits)}
    if "id" in block:
        out["id"] = block["id"]
    if embeddings and s.embeddings is not None:
        out["embeddings"] = np.asarray(s.embeddings)
    return out


def autolabel_block(block: Block, *, model: Any, confidence: Any, certificate: Any) -> Block:
    """One TBAL auto-labeling step on a block: scores, ``confidence(scores)``, ``certificate.accept``."""
    s = model.scores(block["X"])
    pred, conf = confidence.confidence(s)
    out = {"logits": np.asarray(s.logits), "pred": np.asarray(pred), "conf": np.asarray(conf),
           "accepted": np.asarray(certificate.accept(pred, conf), dtype=bool)}
    if s.embeddings is not None:
        out["embeddings"] = np.asarray(s.embeddings)
    return out
