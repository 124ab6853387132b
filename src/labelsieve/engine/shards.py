"""Parquet shard output committed once: a failed job leaves nothing half-written.

Workers write one shard per block into a staging directory next to the destination
(``.NAME.staging-XXXX``), each shard itself written to a temporary name and renamed, and named by
the block's first row -- so a retried block overwrites its own shard instead of adding a duplicate.
When every block is done the staging directory is renamed to the destination in one step; on
failure it is removed. 2-D columns (logits, embeddings) are stored as fixed-size lists.
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path
from typing import Any

import numpy as np

from labelsieve._atomic import atomic_write_path, replace_directory
from labelsieve.errors import InputError

SHARD_GLOB = "part-*.parquet"


def block_to_table(block: dict[str, np.ndarray]) -> Any:
    """A pyarrow Table from a block; 2-D arrays become fixed-size-list columns."""
    import pyarrow as pa

    cols = {}
    for k, v in block.items():
        v = np.asarray(v)
        if v.ndim == 2:
            flat = pa.array(np.ascontiguousarray(v).ravel())
            cols[k] = pa.FixedSizeListArray.from_arrays(flat, v.shape[1])
        elif v.dtype == object:
            cols[k] = pa.array(v.tolist())
        else:
            cols[k] = pa.array(v)
    return pa.table(cols)


def table_to_block(table: Any) -> dict[str, np.ndarray]:
    """Inverse of :func:`block_to_table`."""
    import pyarrow as pa

    out = {}
    for name in table.column_names:
        col = table.column(name).combine_chunks()
        if pa.types.is_fixed_size_list(col.type):
            out[name] = col.flatten().to_numpy(zero_copy_only=False).reshape(len(col), col.type.list_size)
        else:
            out[name] = col.to_numpy(zero_copy_only=False)
    return out


def write_shard(directory: str | os.PathLike[str], first_row: int, block: dict[str, np.ndarray]) -> Path:
    """Write ``block`` as ``part-<first_row>.parquet`` atomically (temp file + rename)."""
    import pyarrow.parquet as pq

    directory = Path(directory)
    dest = directory / f"part-{first_row:012d}.parquet"
    atomic_write_path(dest, lambda tmp: pq.write_table(block_to_table(block), tmp), suffix=".parquet")
    return dest


def shard_paths(directory: str | os.PathLike[str]) -> list[Path]:
    """The committed shards of ``directory`` in row order."""
    return sorted(Path(directory).glob(SHARD_GLOB))


def read_shards(directory: str | os.PathLike[str], columns: list[str] | None = None) -> dict[str, np.ndarray]:
    """All shards of ``directory`` concatenated in row order (for tests and small outputs)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    paths = shard_paths(directory)
    if not paths:
        raise InputError(f"{directory}: no {SHARD_GLOB} shards.")
    return table_to_block(pa.concat_tables([pq.read_table(p, columns=columns) for p in paths]))


class ShardedOutput:
    """Context manager: a staging directory for shards, renamed to ``dest`` on success only.

    An existing ``dest`` is replaced only after the new output is complete.

    >>> import tempfile, pathlib
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> with ShardedOutput(root / "out") as staging:
    ...     _ = write_shard(staging, 0, {"a": np.arange(3)})
    >>> [p.name for p in (root / "out").iterdir()]
    ['part-000000000000.parquet']
    >>> try:
    ...     with ShardedOutput(root / "bad") as staging:
    ...         raise RuntimeError("worker died")
    ... except RuntimeError:
    ...     pass
    >>> sorted(p.name for p in root.iterdir())
    ['out']
    """

    def __init__(self, dest: str | os.PathLike[str]) -> None:
        self.dest = Path(dest)
        if self.dest.exists() and not self.dest.is_dir():
            raise InputError(f"{self.dest}: exists and is not a directory.")
        self.dest.parent.mkdir(parents=True, exist_ok=True)
        self.staging = self.dest.parent / f".{self.dest.name}.staging-{uuid.uuid4().hex[:8]}"
        self.staging.mkdir()

    def __enter__(self) -> Path:
        return self.staging

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is not None:
            shutil.rmtree(self.staging, ignore_errors=True)
            return
        for stray in self.staging.glob(".*"):  # temp files of an attempt that died mid-write
            stray.unlink()
        replace_directory(self.staging, self.dest)
