"""Load a pool from an embedded name, a table (CSV/TSV/Parquet), a NumPy file or an image folder.

File formats
------------
``.csv`` / ``.tsv`` / ``.parquet`` / ``.pq``
    One row per item. Every numeric column is a feature, except:

    * ``id_column`` (default ``"id"``, optional): item ids; without it ids are ``"row-0"``, ...
    * ``label_column`` (default ``"label"``, optional): ground truth; an empty cell / NA means
      unlabeled (code -1).
    * ``text_column`` (optional): kept verbatim as ``Dataset.raw`` (what a human is shown).

    Any other non-numeric column is an error naming the column, the first bad row and value.
``.npz``
    Keys ``X`` (2-D numeric, required), ``y`` (optional: int codes with -1 = unlabeled, or
    label strings with ``""`` = unlabeled), ``ids`` (optional) and ``classes`` (optional).
``.npy``
    A 2-D numeric array of features. Labels can come from a companion ``<stem>.labels.npz``
    next to it holding any of ``y``, ``ids``, ``classes`` (same meaning as above).
directory
    An image folder, see :func:`labelsieve.data.images.load_image_folder`.

Class names: ``classes=`` when given (a label outside it is an error naming the row); otherwise
the sorted unique label strings (numerically sorted when all labels are integers), or for
integer codes in ``.npz`` files ``"0"``..``str(max code)``. Files are read without pickle.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from labelsieve.data.dataset import UNLABELED, Dataset, row_ids
from labelsieve.data.embedded import EMBEDDED, embedded_key
from labelsieve.errors import InputError

logger = logging.getLogger(__name__)

_TABLE_SUFFIXES = {".csv", ".tsv", ".parquet", ".pq"}


def load_dataset(
    name_or_path: str | os.PathLike[str],
    *,
    label_column: str = "label",
    id_column: str = "id",
    text_column: str | None = None,
    classes: Sequence[str] | None = None,
    seed: int = 0,
) -> Dataset:
    """Load a pool by embedded name (``"digits"``, ``"breast-cancer"``, ``"waveform"``) or path.

    A plain string equal to an embedded name loads the embedded set even if a file of that name
    exists in the working directory; write ``./digits`` (or pass a ``Path``) for the file.

    Parameters
    ----------
    name_or_path : str or path
        Embedded name or a ``.csv``/``.tsv``/``.parquet``/``.pq``/``.npy``/``.npz`` file or a
        directory of images (see module docstring for the formats).
    label_column, id_column, text_column : str
        Column roles for tables.
    classes : sequence of str, optional
        Class names in code order. Required when the data carries no (or a single) label.
    seed : int
        Seed for generated embedded sets (waveform).

    Returns
    -------
    Dataset

    >>> load_dataset("breast-cancer").classes
    ('malignant', 'benign')
    """
    if isinstance(name_or_path, str):
        key = embedded_key(name_or_path)
        if key is not None:
            ds = EMBEDDED[key](random_state=seed) if key == "waveform" else EMBEDDED[key]()
            return _with_classes(ds, classes) if classes is not None else ds
    path = Path(name_or_path)
    if not path.exists():
        raise InputError(
            f"{path}: no such file or directory, and not an embedded data set "
            f"(embedded: {', '.join(sorted(EMBEDDED))})."
        )
    if path.is_dir():
        from labelsieve.data.images import load_image_folder

        return load_image_folder(path, classes=classes)
    suffix = path.suffix.lower()
    if suffix in _TABLE_SUFFIXES:
        return load_table(
            path, label_column=label_column, id_column=id_column, text_column=text_column, classes=classes
        )
    if suffix in (".npy", ".npz"):
        return load_numpy(path, classes=classes)
    raise InputError(
        f"{path}: unsupported file type {suffix!r}; use .csv, .tsv, .parquet, .pq, .npy, .npz "
        "or a directory of images."
    )


def _with_classes(ds: Dataset, classes: Sequence[str]) -> Dataset:
    if tuple(str(c) for c in classes) != ds.classes:
        raise InputError(
            f"{ds.source}: classes= {list(classes)} differ from the data set's {list(ds.classes)}."
        )
    return ds


# ----------------------------------------------------------------------------------------- labels
def _label_strings(values: Any) -> np.ndarray:
    """Labels as an object array of stripped strings, ``""`` for NA / empty cells."""
    import pandas as pd

    s = pd.Series(values)
    if s.dtype.kind == "f":
        finite = s.dropna()
        if len(finite) and np.all(np.mod(finite.to_numpy(), 1) == 0):
            s = s.astype("Int64")  # 1.0 -> "1" for integer labels stored as float (NaN = missing)
    na = s.isna().to_numpy()
    out = s.astype(str).str.strip().to_numpy(dtype=object)
    out[na] = ""
    return out


def _sorted_class_names(names: np.ndarray) -> tuple[str, ...]:
    uniq = sorted(set(names.tolist()))
    try:
        return tuple(sorted(uniq, key=int))
    except ValueError:
        return tuple(uniq)


def encode_label_strings(
    labels: np.ndarray, classes: Sequence[str] | None, *, where: str, ids: np.ndarray | None = None
) -> tuple[np.ndarray, tuple[str, ...]]:
    """Codes for label strings (``""`` -> -1) and the class tuple; unknown labels name their row.

    >>> codes, cls = encode_label_strings(np.array(["b", "", "a"], dtype=object), None, where="t")
    >>> codes.tolist(), cls
    ([1, -1, 0], ('a', 'b'))
    """
    labeled = labels != ""
    if classes is None:
        cls = _sorted_class_names(labels[labeled])
        if len(cls) < 2:
            raise InputError(
                f"{where}: found {len(cls)} distinct label(s) {list(cls)}; pass classes= to name all classes."
            )
    else:
        cls = tuple(str(c) for c in classes)
    lookup = {c: i for i, c in enumerate(cls)}
    uniq, inv = np.unique(labels.astype(str), return_inverse=True)
    ucodes = np.array([lookup.get(u, -2) if u != "" else UNLABELED for u in uniq], dtype=np.int64)
    codes = ucodes[inv.ravel()]
    bad = codes == -2
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        who = f" (id {ids[row]!r})" if ids is not None else ""
        raise InputError(
            f"{where}: unknown class {labels[row]!r} at row {row}{who}; known classes: {list(cls)}."
        )
    return codes, cls


# ------------------------------------------------------------------------------------------ tables
def _read_table(path: Path, id_column: str, label_column: str, text_column: str | None):
    import pandas as pd

    if path.stat().st_size == 0:
        raise InputError(f"{path}: file is empty.")
    suffix = path.suffix.lower()
    try:
        if suffix in (".csv", ".tsv"):
            keep_str = {c: str for c in (id_column, label_column, text_column) if c}
            return pd.read_csv(
                path, sep="\t" if suffix == ".tsv" else ",", dtype=keep_str, keep_default_na=True
            )
        return pd.read_parquet(path)
    except pd.errors.EmptyDataError as exc:
        raise InputError(f"{path}: file is empty (no header).") from exc
    except (pd.errors.ParserError, UnicodeDecodeError, OSError, ValueError) as exc:
        raise InputError(f"{path}: cannot read as {suffix[1:]} table: {exc}".splitlines()[0]) from exc


def load_table(
    path: str | os.PathLike[str],
    *,
    label_column: str = "label",
    id_column: str = "id",
    text_column: str | None = None,
    classes: Sequence[str] | None = None,
) -> Dataset:
    """Load a CSV/TSV/Parquet table (see the module docstring for the column roles)."""
    import pandas as pd

    path = Path(path)
    df = _read_table(path, id_column, label_column, text_column)
    df.columns = [str(c) for c in df.columns]
    where = str(path)
    if len(df) == 0:
        raise InputError(f"{where}: empty pool (0 rows; columns {list(df.columns)}).")
    if text_column is not None and text_column not in df.columns:
        raise InputError(f"{where}: text column {text_column!r} not found; columns are {list(df.columns)}.")

    if id_column in df.columns:
        id_series = df[id_column]
        if id_series.isna().any():
            row = int(np.flatnonzero(id_series.isna().to_numpy())[0])
            raise InputError(f"{where}: missing id in column {id_column!r} at row {row}.")
        ids = id_series.astype(str).str.strip().to_numpy(dtype=object)
        uniq, counts = np.unique(ids.astype(str), return_counts=True)
        if (counts > 1).any():
            dup = uniq[counts > 1]
            raise InputError(
                f"{where}: duplicate ids in column {id_column!r}: {dup[:10].tolist()}"
                f"{' ...' if len(dup) > 10 else ''} ({len(dup)} ids repeated)."
            )
    else:
        ids = row_ids(len(df))

    roles = {id_column, label_column} | ({text_column} if text_column else set())
    feature_cols = [c for c in df.columns if c not in roles]
    for col in feature_cols:
        s = df[col]
        if pd.api.types.is_bool_dtype(s) or pd.api.types.is_numeric_dtype(s):
            continue
        coerced = pd.to_numeric(s, errors="coerce")
        bad = (coerced.isna() & s.notna()).to_numpy()
        row = int(np.flatnonzero(bad)[0]) if bad.any() else 0
        raise InputError(
            f"{where}: column {col!r} is not numeric (value {s.iloc[row]!r} at row {row}, id {ids[row]!r}); "
            f"drop it, or name it as id_column/label_column/text_column."
        )
    if not feature_cols and text_column is None:
        raise InputError(f"{where}: no numeric feature columns (columns: {list(df.columns)}).")
    X = df[feature_cols].to_numpy(dtype=np.float64) if feature_cols else np.zeros((len(df), 0))
    # pools are float32: a finite value beyond its range would silently become inf
    bad = ~np.isfinite(X) | (np.abs(X) > np.finfo(np.float32).max)
    if bad.any():
        r, c = np.argwhere(bad)[0]
        what = "NaN/missing or inf" if not np.isfinite(X[r, c]) else "beyond the float32 range"
        raise InputError(
            f"{where}: feature {feature_cols[c]!r} is {X[r, c]} ({what}) at row {r} (id {ids[r]!r})."
        )

    y = None
    if label_column in df.columns:
        labels = _label_strings(df[label_column])
        y, cls = encode_label_strings(labels, classes, where=f"{where}: column {label_column!r}", ids=ids)
    elif classes is not None:
        cls = tuple(str(c) for c in classes)
    else:
        raise InputError(
            f"{where}: no label column {label_column!r} (columns: {list(df.columns)}); "
            "pass classes= to name the classes of an unlabeled pool."
        )
    raw = df[text_column].fillna("").astype(str).tolist() if text_column else None
    logger.debug("loaded %s: %d rows, %d features", where, len(df), len(feature_cols))
    return Dataset(
        ids=ids,
        X=X.astype(np.float32),
        classes=cls,
        y=y,
        raw=raw,
        name=path.stem,
        source=where,
        meta={"feature_names": feature_cols},
    )


# ------------------------------------------------------------------------------------------- numpy
def _npz(path: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as f:
            return {k: f[k] for k in f.files}
    except (ValueError, OSError, EOFError) as exc:
        raise InputError(f"{path}: cannot read as .npz (pickled objects are not accepted): {exc}") from exc


def load_numpy(path: str | os.PathLike[str], *, classes: Sequence[str] | None = None) -> Dataset:
    """Load ``.npz`` (keys X, y, ids, classes) or ``.npy`` (+ optional ``<stem>.labels.npz``)."""
    path = Path(path)
    where = str(path)
    if path.stat().st_size == 0:
        raise InputError(f"{where}: file is empty.")
    if path.suffix.lower() == ".npz":
        arrays = _npz(path)
        if "X" not in arrays:
            raise InputError(f"{where}: missing key 'X' (keys: {sorted(arrays)}).")
    else:
        try:
            X = np.load(path, allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:
            raise InputError(
                f"{where}: cannot read as .npy (pickled objects are not accepted): {exc}"
            ) from exc
        companion = path.with_name(path.stem + ".labels.npz")
        arrays = _npz(companion) if companion.exists() else {}
        arrays["X"] = X
    X = np.asarray(arrays["X"])
    if X.ndim != 2:
        raise InputError(f"{where}: X must be a 2-D array (n_items, n_features); got shape {X.shape}.")
    if not (np.issubdtype(X.dtype, np.number) or X.dtype == bool):
        raise InputError(f"{where}: X must be numeric; got dtype {X.dtype}.")
    n = X.shape[0]
    if n == 0:
        raise InputError(f"{where}: empty pool (0 rows).")
    ids = arrays.get("ids")
    ids = row_ids(n) if ids is None else np.asarray(ids).astype(str)
    if ids.shape != (n,):
        raise InputError(f"{where}: 'ids' has shape {ids.shape}; expected ({n},).")
    uniq, counts = np.unique(ids, return_counts=True)
    if (counts > 1).any():
        raise InputError(f"{where}: duplicate ids {uniq[counts > 1][:10].tolist()}.")
    bad = ~np.isfinite(X.astype(np.float64))
    if bad.any():
        r, c = np.argwhere(bad)[0]
        raise InputError(f"{where}: feature column {c} is {X[r, c]} (NaN or inf) at row {r} (id {ids[r]!r}).")
    if classes is None and "classes" in arrays:
        classes = [str(c) for c in np.asarray(arrays["classes"]).ravel()]
    y = arrays.get("y")
    if y is None:
        if classes is None:
            raise InputError(f"{where}: no labels 'y' and no classes; pass classes= for an unlabeled pool.")
        cls = tuple(str(c) for c in classes)
    else:
        y = np.asarray(y)
        if y.shape != (n,):
            raise InputError(f"{where}: 'y' has shape {y.shape}; expected ({n},).")
        if np.issubdtype(y.dtype, np.integer):
            k = int(y.max()) + 1 if (y >= 0).any() else 0
            cls = tuple(str(c) for c in classes) if classes is not None else tuple(str(i) for i in range(k))
            out = (y < UNLABELED) | (y >= len(cls))
            if out.any():
                r = int(np.flatnonzero(out)[0])
                raise InputError(
                    f"{where}: label code {int(y[r])} at row {r} (id {ids[r]!r}) "
                    f"is not in -1..{len(cls) - 1}."
                )
            y = y.astype(np.int64)
        else:
            y, cls = encode_label_strings(_label_strings(y), classes, where=f"{where}: 'y'", ids=ids)
    if len(cls) < 2:
        raise InputError(f"{where}: need at least 2 classes; got {list(cls)} (pass classes=).")
    return Dataset(ids=ids, X=X.astype(np.float32), classes=cls, y=y, name=path.stem, source=where)
