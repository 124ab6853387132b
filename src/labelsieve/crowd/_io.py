"""CSV reading with file/line error messages and atomic writes, for the CLI and the benchmarks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from labelsieve._atomic import atomic_write
from labelsieve.errors import InputError

#: First data line of a CSV with a header (pandas position 0 is file line 2).
CSV_LINE_OFFSET = 2


def read_csv_table(path: str | Path, required: tuple[str, ...]) -> pd.DataFrame:
    """Read a CSV as strings (empty cells become missing values) and check the required columns."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: file not found.")
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""], skipinitialspace=True)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot parse as CSV ({str(exc).strip().splitlines()[0]}).") from exc
    df.columns = [str(c).strip() for c in df.columns]
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise InputError(f"{path}: missing required column(s) {', '.join(missing)}; "
                         f"found {', '.join(df.columns) or 'none'}.")
    return df


def read_accuracies_csv(path: str | Path) -> pd.Series:
    """Read ``worker,accuracy``; every accuracy must parse and lie in (0, 1)."""
    df = read_csv_table(path, ("worker", "accuracy"))
    values = pd.to_numeric(df["accuracy"], errors="coerce").to_numpy(dtype=float)
    bad = ~((values > 0.0) & (values < 1.0)) | df["worker"].isna().to_numpy()
    if bad.any():
        pos = int(np.flatnonzero(bad)[0])
        raise InputError(f"{path}, line {pos + CSV_LINE_OFFSET}: accuracy {df['accuracy'].iloc[pos]!r} of worker "
                         f"{df['worker'].iloc[pos]!r} must be a number in (0, 1).")
    dup = df["worker"].duplicated().to_numpy()
    if dup.any():
        pos = int(np.flatnonzero(dup)[0])
        raise InputError(f"{path}, line {pos + CSV_LINE_OFFSET}: worker {df['worker'].iloc[pos]!r} is listed twice.")
    return pd.Series(values, index=df["worker"].to_numpy(), name="accuracy")


def write_csv_atomic(df: pd.DataFrame, path: str | Path) -> Path:
    """Write ``df`` (no index) to ``path`` atomically."""
    return atomic_write(path, lambda fh: df.to_csv(fh, index=False))
