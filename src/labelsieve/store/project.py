"""A project directory: the store plus the arrays it references.

Layout of ``DIR``::

    project.json    {"format": 1, "db": "project.db" or a SQLAlchemy URL, "name": ...}; written last
    project.db      the SQLite store (WAL mode) unless project.json names another database
    features.npy    float32 features, row = item position ("features.npy#<row>")
    raw.npy         uint8 images for data sets whose raw items are arrays (digits), row = position
    truth.npy       ground-truth codes (-1 unknown), used only by simulated oracles and true-error columns
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from labelsieve._atomic import atomic_write_bytes
from labelsieve.data.dataset import UNLABELED, Dataset
from labelsieve.errors import InputError
from labelsieve.store.core import Store

PROJECT_FILE = "project.json"
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"})
EXPORT_FORMATS = ("csv", "parquet", "jsonl", "manifest")


def _atomic_npy(path: Path, arr: np.ndarray) -> None:
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=False)
    atomic_write_bytes(path, buf.getvalue())


class Project:
    """An initialised project directory (see the module docstring).

    >>> import tempfile
    >>> from labelsieve.data import load_breast_cancer
    >>> d = Path(tempfile.mkdtemp()) / "p"
    >>> p = init_project(d, load_breast_cancer())
    >>> p.store.n_items(), p.classes
    (569, ('malignant', 'benign'))
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        cfg_path = self.path / PROJECT_FILE
        if not cfg_path.exists():
            raise InputError(f"{self.path}: not a labelsieve project (no {PROJECT_FILE}); run `labelsieve init` first.")
        try:
            self.config = json.loads(cfg_path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise InputError(f"{cfg_path}: cannot be read ({exc})") from None
        db = self.config.get("db", "project.db")
        self.store = Store(db if "://" in db else self.path / db)
        self.classes = self.store.classes()
        self._features: np.ndarray | None = None
        self._raw: np.ndarray | None = None

    @property
    def name(self) -> str:
        return str(self.config.get("name", self.path.name))

    def features(self) -> np.ndarray:
        if self._features is None:
            self._features = np.load(self.path / "features.npy", mmap_mode="r")
        return self._features

    def truth(self) -> np.ndarray | None:
        p = self.path / "truth.npy"
        return np.load(p) if p.exists() else None

    def raw_array(self, pos: int) -> np.ndarray:
        if self._raw is None:
            self._raw = np.load(self.path / "raw.npy", mmap_mode="r")
        return np.asarray(self._raw[pos])

    def dataset(self, *, with_truth: bool = True) -> Dataset:
        """The pool as a :class:`Dataset` (features from features.npy, truth from truth.npy)."""
        items = self.store.items(("pos", "id"))
        return Dataset(
            ids=items["id"].to_numpy(),
            X=np.asarray(self.features()),
            classes=self.classes,
            y=self.truth() if with_truth else None,
            name=self.name,
            source=str(self.path),
        )

    def close(self) -> None:
        self.store.close()


def _item_rows(ds: Dataset) -> tuple[pd.DataFrame, np.ndarray | None]:
    n = len(ds)
    if ds.raw is None:
        return pd.DataFrame({"id": ds.ids, "kind": "none", "source": ""}), None
    first = ds.raw[0]
    if isinstance(first, np.ndarray):
        arr = np.stack([np.asarray(r) for r in ds.raw])
        if arr.dtype != np.uint8:
            arr = np.clip(arr, 0, 255).astype(np.uint8)
        return pd.DataFrame({"id": ds.ids, "kind": "image", "source": [f"raw.npy#{i}" for i in range(n)]}), arr
    raw = [str(r) for r in ds.raw]
    is_img = np.array([Path(r).suffix.lower() in IMAGE_SUFFIXES and Path(r).is_file() for r in raw])
    kind = np.where(is_img, "image", "text")
    src = [str(Path(r).resolve()) if m else r for r, m in zip(raw, is_img, strict=True)]
    return pd.DataFrame({"id": ds.ids, "kind": kind, "source": src}), None


def check_images(paths: Sequence[str], ids: Sequence[str]) -> None:
    """Raise :class:`InputError` naming the first image file that cannot be decoded."""
    from PIL import Image, UnidentifiedImageError

    for i, p in zip(ids, paths, strict=True):  # file I/O, one image at a time
        try:
            with Image.open(p) as im:
                im.verify()
        except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
            raise InputError(f"{p}: image of item {i!r} cannot be decoded ({type(exc).__name__}: {exc})") from None


def init_project(path: str | Path, dataset: Dataset, *, db: str | None = None, name: str | None = None,
                 import_truth: bool = False, embedder: Any = "minilm") -> Project:
    """Create a project in ``path`` from ``dataset``; nothing is left behind if anything fails.

    ``import_truth``: store the data set's labels as ``import`` events (existing labels); otherwise
    they go to truth.npy only (for simulated oracles and measuring true error).
    ``embedder``: a pool without feature columns whose items are texts (a CSV of ``id,text,label``)
    gets its features from this text encoder (``"minilm"``: all-MiniLM-L6-v2, offline; ``"hashing"``;
    or an encoder object); a pool with neither features nor texts is refused.
    """
    path = Path(path)
    if (path / PROJECT_FILE).exists():
        raise InputError(f"{path}: already a labelsieve project; choose another directory.")
    if dataset.X.shape[1] == 0:
        dataset = embed_texts(dataset, embedder)
    rows, raw_arr = _item_rows(dataset)
    img = rows["kind"].to_numpy() == "image"
    if img.any() and raw_arr is None:
        check_images(rows["source"][img].tolist(), rows["id"][img].tolist())
    path.mkdir(parents=True, exist_ok=True)
    _atomic_npy(path / "features.npy", np.ascontiguousarray(dataset.X, dtype=np.float32))
    if raw_arr is not None:
        _atomic_npy(path / "raw.npy", raw_arr)
    if dataset.y is not None:
        _atomic_npy(path / "truth.npy", dataset.y.astype(np.int64))
    if db is None:  # build the SQLite file aside, then move it in: a killed init leaves no half store
        tmp = path / ".project.db.init"
        for suffix in ("", "-wal", "-shm"):
            Path(f"{tmp}{suffix}").unlink(missing_ok=True)
        st = Store(tmp)
        _fill(st, dataset, rows, name or dataset.name, import_truth)
        st.close()
        os.replace(tmp, path / "project.db")
        db_ref = "project.db"
    else:
        st = Store(db)
        if st.n_items():
            raise InputError(f"database {db} already holds a project")
        _fill(st, dataset, rows, name or dataset.name, import_truth)
        st.close()
        db_ref = db
    cfg = {"format": 1, "db": db_ref, "name": name or dataset.name, "created": time.time(), "source": dataset.source}
    atomic_write_bytes(path / PROJECT_FILE, (json.dumps(cfg, indent=2) + "\n").encode())
    return Project(path)


def embed_texts(dataset: Dataset, embedder: Any = "minilm") -> Dataset:
    """``dataset`` (no feature columns, texts in ``raw``) with its texts' embeddings as features.

    Raises :class:`InputError` when there are no texts to embed (naming the data set) and
    :class:`~labelsieve.errors.MissingDependencyError` naming the package when the encoder is missing.

    >>> ds = Dataset(ids=["a", "b"], X=np.zeros((2, 0)), classes=("x", "y"), raw=["red", "blue sky"])
    >>> embed_texts(ds, "hashing").X.shape
    (2, 4096)
    >>> embed_texts(Dataset(ids=["a"], X=np.zeros((1, 0)), classes=("x", "y")))
    Traceback (most recent call last):
    ...
    labelsieve.errors.InputError: ...: the pool has no feature columns and no texts to embed; give it numeric feature columns, or name its text column (labelsieve init --text-column COLUMN)
    """
    from labelsieve.errors import MissingDependencyError

    where = dataset.source or dataset.name
    raw = dataset.raw
    if raw is None or len(raw) == 0 or not all(isinstance(r, str) for r in raw) or _item_rows(dataset)[0][
            "kind"].eq("image").any():
        raise InputError(f"{where}: the pool has no feature columns and no texts to embed; give it numeric feature "
                         "columns, or name its text column (labelsieve init --text-column COLUMN)")
    from labelsieve.labelers.fewshot import embed_dataset, encoder_from_spec

    enc = encoder_from_spec(embedder) if isinstance(embedder, str) else embedder
    try:
        return embed_dataset(dataset, enc)
    except MissingDependencyError as exc:
        raise MissingDependencyError(
            f"{where}: a text pool has no features until its texts are embedded, and the text encoder "
            f"{embedder!r} is not installed ({exc}); install it, or choose another with --embedder hashing") from None


def _fill(st: Store, ds: Dataset, rows: pd.DataFrame, name: str, import_truth: bool) -> None:
    with st.transaction() as conn:
        st.set_classes(ds.classes, conn=conn)
        st.add_items(rows, conn=conn)
        meta = {"name": name, "source": ds.source, "n_features": int(ds.X.shape[1])}
        if "embedding_model" in ds.meta:
            meta["embedding_model"] = ds.meta["embedding_model"]
        st.set_meta(meta, conn=conn)
        st.add_labeler("import", kind="human", name="imported labels", conn=conn)
    if import_truth and ds.y is not None:
        known = np.flatnonzero(ds.y != UNLABELED)
        st.append_events(pd.DataFrame({"item": known, "code": ds.y[known], "source": "import", "who": "import",
                                       "key": [f"init:{i}" for i in known]}))


# ---------------------------------------------------------------------------------------- import
def read_label_file(path: str | Path) -> pd.DataFrame:
    """Read a labels file (CSV, Parquet or JSONL) as strings; errors name the file."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    suffix = path.suffix.lower()
    try:
        if suffix in (".parquet", ".pq"):
            df = pd.read_parquet(path)
        elif suffix in (".jsonl", ".ndjson"):
            df = pd.read_json(path, lines=True, dtype=False)
        else:
            df = pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True)
    except (ValueError, OSError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        raise InputError(f"{path}: cannot be read ({type(exc).__name__}: {str(exc).splitlines()[0]})") from None
    return df


def import_labels(project: Project, path: str | Path, *, who: str = "import") -> int:
    """Import existing labels (columns ``id, label``; optional ``confidence``) as ``import`` events.

    Everything is checked before anything is written; the first bad row is named (file, line, field,
    value). Importing the same file twice adds nothing. Returns the number of new events.
    """
    path = Path(path)
    df = read_label_file(path)
    line = (lambda r: f"line {r + 2}") if path.suffix.lower() not in (".parquet", ".pq", ".jsonl", ".ndjson") \
        else (lambda r: f"row {r + 1}")
    missing = [c for c in ("id", "label") if c not in df.columns]
    if missing:
        raise InputError(f"{path}: missing column(s) {missing}; found {list(df.columns)}")
    ids = df["id"].astype(str).str.strip()
    labels = df["label"].astype(str).str.strip()
    lookup = project.store._id_lookup()
    codes = {c: i for i, c in enumerate(project.classes)}
    for r in range(len(df)):  # validation of a user file, reported row by row
        if ids.iloc[r] in ("", "nan", "None"):
            raise InputError(f"{path}, {line(r)}, field 'id': empty")
        if ids.iloc[r] not in lookup:
            raise InputError(f"{path}, {line(r)}, field 'id': unknown item id {ids.iloc[r]!r}")
        if labels.iloc[r] not in codes:
            raise InputError(f"{path}, {line(r)}, field 'label': {labels.iloc[r]!r} is not one of the classes "
                             f"{list(project.classes)}")
    dup = ids.duplicated()
    if dup.any():
        r = int(np.flatnonzero(dup)[0])
        raise InputError(f"{path}, {line(r)}, field 'id': item {ids.iloc[r]!r} appears twice")
    conf = None
    if "confidence" in df.columns:
        conf = pd.to_numeric(df["confidence"].replace("", np.nan), errors="coerce")
        bad = (conf.isna() & (df["confidence"].astype(str).str.strip() != "")) | (conf < 0) | (conf > 1)
        if bad.any():
            r = int(np.flatnonzero(bad)[0])
            raise InputError(f"{path}, {line(r)}, field 'confidence': {df['confidence'].iloc[r]!r} is not in [0, 1]")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    ev = pd.DataFrame({
        "item": ids.map(lookup).to_numpy(dtype=np.int64),
        "code": labels.map(codes).to_numpy(dtype=np.int64),
        "source": "import",
        "who": who,
        "version": path.name[:100],
        "key": [f"import:{digest}:{r}" for r in range(len(df))],
    })
    if conf is not None:
        ev["confidence"] = conf.to_numpy()
    project.store.add_labeler(who, kind="human", name="imported labels") if who != "import" else None
    return project.store.append_events(ev)


# ---------------------------------------------------------------------------------------- export
#: ``p_wrong_basis`` of exported labels (where each label's probability of being wrong comes from)
BASIS_AUTO = "epsilon: guaranteed bound on the auto-label error rate"
BASIS_AUTO_HEURISTIC = "epsilon: target of a heuristic bound (no guarantee)"
BASIS_POSTERIOR = "1 - aggregate posterior"
BASIS_STATED = "1 - stated confidence"
BASIS_NOISE = "simulated oracle's noise rate"
BASIS_EXPERT = "human label, assumed correct"
BASIS_NONE = "no estimate"


def _run_configs(project: Project, seqs: Sequence[int]) -> tuple[dict[int, int], dict[int, dict[str, Any]]]:
    """event seq -> run id, and run id -> its configuration (for the events ``seqs``)."""
    import sqlalchemy as sa

    from labelsieve.store import schema as S

    seqs = [int(q) for q in seqs]
    run_of: dict[int, int] = {}
    cfgs: dict[int, dict[str, Any]] = {}
    if not seqs:
        return run_of, cfgs
    with project.store.read() as c:
        for lo in range(0, len(seqs), 500):  # chunks keep the IN list small
            rows = c.execute(sa.select(S.events.c.seq, S.events.c.run_id).where(
                S.events.c.seq.in_(seqs[lo:lo + 500]), S.events.c.run_id.is_not(None))).fetchall()
            run_of.update({int(a): int(b) for a, b in rows})
        ids = sorted(set(run_of.values()))
        if ids:
            for rid, cfg in c.execute(sa.select(S.runs.c.id, S.runs.c.config).where(S.runs.c.id.in_(ids))):
                try:
                    cfgs[int(rid)] = json.loads(cfg)
                except json.JSONDecodeError:
                    cfgs[int(rid)] = {}
    return run_of, cfgs


def label_error_probabilities(project: Project, current: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Each current label's estimated probability of being wrong, and where it comes from.

    ``current`` is :meth:`Store.current_labels` (columns source, confidence, seq). Auto-labels of a
    TBAL run: its epsilon, the guaranteed upper bound of the auto-labeling rule's error *rate*
    (a heuristic target if the run's bound is not a guarantee). Aggregated crowd labels: 1 - the
    aggregate's posterior of the label. Other human labels: 1 - their stated confidence, the
    simulated oracle's noise rate in a simulated run, else 0 (assumed correct). Labels with no
    basis (e.g. salutary labels, auto-labels outside a run) get NaN.
    """
    from labelsieve.autolabel.certify import GUARANTEED_BOUNDS

    n = len(current)
    p = np.full(n, np.nan)
    basis = np.full(n, BASIS_NONE, dtype=object)
    if n == 0:
        return p, basis
    src = current["source"].to_numpy(dtype=object)
    conf = pd.to_numeric(current["confidence"], errors="coerce").to_numpy(dtype=np.float64)
    seq = current["seq"].to_numpy(dtype=np.int64)
    run_of, cfgs = _run_configs(project, seq[np.isin(src, ["auto", "human"])].tolist())
    cfg = [cfgs.get(run_of.get(int(q), -1), {}) for q in seq]
    eps = np.array([c.get("epsilon", np.nan) for c in cfg], dtype=np.float64)
    guaranteed = np.array([c.get("bound", "clopper-pearson") in GUARANTEED_BOUNDS for c in cfg])
    noise = np.array([c.get("noise", 0.0) if c.get("oracle") == "simulated" else 0.0 for c in cfg], dtype=np.float64)
    has_conf = np.isfinite(conf)
    auto = (src == "auto") & np.isfinite(eps)
    p[auto] = eps[auto]
    basis[auto] = np.where(guaranteed[auto], BASIS_AUTO, BASIS_AUTO_HEURISTIC)
    agg = (src == "aggregate") & has_conf
    p[agg], basis[agg] = 1.0 - conf[agg], BASIS_POSTERIOR
    human = np.isin(src, ["human", "import", "review", "aggregate"]) & ~agg
    stated = human & has_conf
    p[stated], basis[stated] = 1.0 - conf[stated], BASIS_STATED
    noisy = human & ~has_conf & (noise > 0)
    p[noisy], basis[noisy] = noise[noisy], BASIS_NOISE
    expert = human & ~has_conf & ~(noise > 0)
    p[expert], basis[expert] = 0.0, BASIS_EXPERT
    return np.clip(p, 0.0, 1.0), basis


def wrong_label_summary(project: Project, *, delta: float = 0.05) -> dict[str, Any]:
    """Expected number of wrong labels among the current labels and its 1 - delta upper bound.

    Labels without an estimate (``p_wrong`` NaN) are counted apart and left out of the bound.
    """
    from labelsieve.autolabel.noisy import expected_wrong_labels

    cur = project.store.current_labels()
    p, _ = label_error_probabilities(project, cur)
    known = np.isfinite(p)
    s = expected_wrong_labels(p[known], delta=delta)
    return {"n_labels": len(p), "n_without_estimate": int((~known).sum()), "expected": s.expected,
            "upper": s.upper, "delta": delta, "statement": s.describe()
            + (f" ({int((~known).sum())} labels without an estimate left out)" if (~known).any() else "")
            + "; auto-labels count at epsilon, their rule's guaranteed error-rate bound, which itself holds with "
            "probability >= 1 - the run's delta"}


def label_guarantees(project: Project, cur: pd.DataFrame) -> np.ndarray:
    """Which guarantee each current label was produced under: ``subset`` (TBAL: the auto-labels'
    error), ``dataset`` (PAC: the error of all the run's labels), or ``none`` (no completed run used it).

    A label belongs to the latest completed run that wrote its event (auto-labels, simulated
    answers) or used that very event as a human answer (``run_answers.event_seq``, e.g. web-app
    aggregates); a later event on the item (an import, a review) is outside the run's guarantee.
    """
    import json

    import sqlalchemy as sa

    from labelsieve.store import schema as S

    with project.store.read() as c:
        runs = {int(i): json.loads(cfg).get("guarantee", "subset") for i, cfg in c.execute(
            sa.select(S.runs.c.id, S.runs.c.config).where(S.runs.c.status == "complete"))}
        if not runs:
            return np.full(len(cur), "none", dtype=object)
        by_event = c.execute(sa.select(S.events.c.seq, S.events.c.run_id).where(
            S.events.c.run_id.in_(list(runs)))).fetchall()
        used = c.execute(sa.select(S.run_answers.c.event_seq, S.run_answers.c.run_id).where(
            S.run_answers.c.run_id.in_(list(runs)), S.run_answers.c.event_seq.is_not(None))).fetchall()
    ev = pd.DataFrame([*by_event, *used], columns=["seq", "run"]).astype("int64").groupby("seq")["run"].max()
    rid = pd.Series(cur["seq"].map(ev).fillna(-1).to_numpy().astype(np.int64))
    return rid.map(runs).fillna("none").to_numpy(dtype=object)


def export_labels(project: Project, fmt: str, out: str | Path, *, include_unlabeled: bool = False) -> int:
    """Write the current labels (with provenance) to ``out``; returns the number of rows.

    ``csv``/``parquet``/``jsonl``: columns id, label, source, who, confidence, round, event, p_wrong,
    p_wrong_basis (see :func:`label_error_probabilities`), guarantee (:func:`label_guarantees`).
    ``manifest``: one JSON object per line in the style of a SageMaker Ground Truth output manifest.
    """
    if fmt not in EXPORT_FORMATS:
        raise InputError(f"export format must be one of {list(EXPORT_FORMATS)}; got {fmt!r}")
    out = Path(out)
    cur = project.store.current_labels()
    p_wrong, basis = label_error_probabilities(project, cur)
    table = cur.rename(columns={"seq": "event"})[["id", "label", "source", "who", "confidence", "round", "event"]]
    table = table.assign(p_wrong=p_wrong, p_wrong_basis=basis, guarantee=label_guarantees(project, cur))
    if include_unlabeled:
        items = project.store.items(("pos", "id"))
        table = items[["id"]].merge(table, on="id", how="left")
        table["label"] = table["label"].fillna("")
    out.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    if fmt == "csv":
        table.to_csv(buf, index=False)
    elif fmt == "parquet":
        table.assign(round=table["round"].astype("Int64")).to_parquet(buf, index=False)
    elif fmt == "jsonl":
        table.to_json(buf, orient="records", lines=True)
    else:
        buf.write(_manifest(project, table).encode())
    atomic_write_bytes(out, buf.getvalue())
    return len(table)


def _manifest(project: Project, table: pd.DataFrame) -> str:
    items = project.store.items(("id", "kind", "source")).set_index("id")
    job = f"labelsieve-{project.name}"
    code = {c: i for i, c in enumerate(project.classes)}
    lines = []
    for r in table.itertuples(index=False):  # one JSON line per exported item
        kind, src = items.at[r.id, "kind"], items.at[r.id, "source"]
        obj: dict[str, Any] = {"id": r.id}
        if kind == "image":
            obj["source-ref"] = str(project.path / src) if src.startswith("raw.npy#") else src
        else:
            obj["source"] = src
        if r.label:
            conf = None if pd.isna(r.confidence) else float(r.confidence)
            obj["label"] = code[r.label]
            obj["label-metadata"] = {
                "class-name": r.label,
                "confidence": conf,
                "type": "groundtruth/image-classification" if kind == "image" else "groundtruth/text-classification",
                "job-name": job,
                "human-annotated": "no" if r.source in ("auto", "salutary") else "yes",
                "labelsieve-source": r.source,
                "labelsieve-who": r.who,
                "labelsieve-event": int(r.event),
                "labelsieve-p-wrong": None if pd.isna(r.p_wrong) else float(r.p_wrong),
                "labelsieve-p-wrong-basis": r.p_wrong_basis,
            }
        lines.append(json.dumps(obj))
    return "\n".join(lines) + ("\n" if lines else "")
