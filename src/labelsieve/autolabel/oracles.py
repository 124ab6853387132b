"""Oracles: who gives human labels. ``ask(ids) -> Answers`` for a batch.

:class:`Answers` carries the label codes and, for noisy labelers, P(label is correct) and
optionally a posterior over the true classes. The noise travels *with* the labels, so a wrapper
that passes answers on cannot drop it (there are no side-channel methods to forget to forward).

* :class:`SimulatedOracle` answers from ground truth, optionally with symmetric noise.
* :class:`FileOracle` writes the items to label to a CSV and raises :class:`AwaitingAnswers`
  until the answers file appears; ``labelsieve run --resume`` then continues.
* :class:`RecordingOracle` remembers every answer (with its noise) on disk, atomically, so a killed
  or paused run replays deterministically up to where it stopped and never asks twice.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import pandas as pd

from labelsieve._atomic import atomic_write_text
from labelsieve._validation import check_interval
from labelsieve.data.dataset import UNLABELED, Dataset
from labelsieve.errors import InputError, LabelsieveError


class AwaitingAnswers(LabelsieveError):
    """Raised by an oracle whose answers are not there yet; the run can be resumed later."""

    def __init__(self, query_path: Path, answer_path: Path, n_items: int) -> None:
        self.query_path, self.answer_path, self.n_items = query_path, answer_path, n_items
        super().__init__(
            f"wrote {n_items} items to label to {query_path}; save the answers as {answer_path} "
            f"(columns id,label) and run again with --resume"
        )


@dataclass(frozen=True, eq=False)
class Answers:
    """What an oracle answered for a batch of ids (same order as the ids).

    Parameters
    ----------
    labels : int array (n,)
        Label codes.
    p_correct : float array (n,) in [0, 1], optional
        P(label is correct) per answer; None: every label is certain (an expert's).
    posterior : float array (n, K), optional
        Posterior over the true classes given the answers, or a per-class lower bound of it (a
        conservative posterior; rows then sum to less than 1). P(true label != c) <= 1 - posterior[i, c].

    ``np.asarray(answers)`` gives the labels (for callers written against the old protocol).

    >>> a = Answers(np.array([0, 2]), p_correct=np.array([1.0, 0.8]))
    >>> len(a), np.asarray(a).tolist()
    (2, [0, 2])
    """

    labels: np.ndarray
    p_correct: np.ndarray | None = None
    posterior: np.ndarray | None = None

    def __post_init__(self) -> None:
        raw = np.asarray(self.labels)
        if raw.ndim != 1:
            raise InputError(f"Answers.labels must be 1-dimensional; got shape {raw.shape}.")
        if raw.dtype.kind == "b" or (raw.dtype.kind not in "iu" and len(raw) and not _integral(raw)):
            raise InputError(f"Answers.labels must hold integer label codes; got dtype {raw.dtype}.")
        labels = raw.astype(np.int64)
        if (labels < 0).any():
            raise InputError(f"Answers.labels must be codes >= 0; got {int(labels.min())}.")
        n = len(labels)
        object.__setattr__(self, "labels", labels)
        if self.p_correct is not None:
            p = np.asarray(self.p_correct, dtype=np.float64)
            if p.shape != (n,):
                raise InputError(f"Answers.p_correct must have shape ({n},) (one value per label); got {p.shape}.")
            bad = ~((p >= 0.0) & (p <= 1.0))
            if bad.any():
                i = int(np.flatnonzero(bad)[0])
                raise InputError(f"Answers.p_correct must lie in [0, 1]; got {p[i]!r} at position {i}.")
            object.__setattr__(self, "p_correct", p)
        if self.posterior is not None:
            post = np.asarray(self.posterior, dtype=np.float64)
            if post.ndim != 2 or post.shape[0] != n:
                raise InputError(f"Answers.posterior must have shape ({n}, n_classes); got {post.shape}.")
            bad = ~((post >= 0.0) & (post <= 1.0))
            if bad.any():
                i, c = (int(v) for v in np.argwhere(bad)[0])
                raise InputError(f"Answers.posterior must lie in [0, 1]; got {post[i, c]!r} at row {i}, class {c}.")
            total = post.sum(axis=1)
            over = total > 1.0 + _SUM_TOL
            if over.any():
                i = int(np.flatnonzero(over)[0])
                raise InputError(f"Answers.posterior rows must sum to 1 (at most 1 for a lower bound); "
                                 f"row {i} sums to {total[i]!r}.")
            if n and labels.max() >= post.shape[1]:
                raise InputError(f"Answers.labels has code {int(labels.max())} but Answers.posterior has only "
                                 f"{post.shape[1]} classes.")
            object.__setattr__(self, "posterior", post)

    def __len__(self) -> int:
        return len(self.labels)

    def label_probability(self) -> np.ndarray | None:
        """P(label is correct) per answer: ``p_correct``, else the posterior of the given label; None
        when the answers say nothing of their noise (certain).

        >>> Answers(np.array([1]), posterior=np.array([[0.1, 0.9]])).label_probability().tolist()
        [0.9]
        """
        if self.p_correct is not None:
            return self.p_correct
        if self.posterior is not None:
            return self.posterior[np.arange(len(self.labels)), self.labels]
        return None

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        out = self.labels if dtype is None else self.labels.astype(dtype)
        return out.copy() if copy else out


_SUM_TOL = 1e-9


def _integral(a: np.ndarray) -> bool:
    try:
        f = a.astype(np.float64)
    except (TypeError, ValueError):
        return False
    return bool(np.all(np.isfinite(f)) and np.all(f == np.round(f)))


def as_answers(got: Any) -> Answers:
    """``got`` if it is :class:`Answers`, else its label codes as certain answers (oracles that
    return a bare array of codes, the protocol before :class:`Answers`)."""
    return got if isinstance(got, Answers) else Answers(np.asarray(got))


@runtime_checkable
class Oracle(Protocol):
    def ask(self, ids: np.ndarray) -> Answers:
        """Answers for ``ids`` (same order)."""
        ...


class SimulatedOracle:
    """Answers from the dataset's ground truth; with ``noise`` > 0, a uniformly random wrong class.

    With noise, ``p_correct`` is ``1 - noise`` for every answer (symmetric noise; exact for balanced
    classes); without, the answers are certain (``p_correct`` None).

    >>> import numpy as np
    >>> from labelsieve.data.dataset import Dataset
    >>> ds = Dataset(ids=["a", "b"], X=np.zeros((2, 1)), classes=("x", "y"), y=np.array([1, 0]))
    >>> SimulatedOracle(ds).ask(np.array(["b", "a"])).labels.tolist()
    [0, 1]
    """

    def __init__(self, dataset: Dataset, *, noise: float = 0.0, random_state: int | None = None) -> None:
        self.dataset = dataset
        self.noise = noise
        self.random_state = random_state
        self._rng = np.random.default_rng(random_state)
        self._pos = {i: p for p, i in enumerate(dataset.ids)}

    def ask(self, ids: np.ndarray) -> Answers:
        check_interval("noise", self.noise, owner="SimulatedOracle", low=0.0, high=1.0, closed="left")
        if self.dataset.y is None:
            raise InputError(
                f"dataset '{self.dataset.name}' has no ground truth; a simulated oracle cannot answer."
            )
        try:
            pos = np.array([self._pos[i] for i in ids], dtype=np.int64)
        except KeyError as exc:
            raise InputError(f"unknown item id {exc.args[0]!r}") from None
        y = self.dataset.y[pos].copy()
        missing = y == UNLABELED
        if missing.any():
            raise InputError(f"no ground truth for item {ids[int(np.flatnonzero(missing)[0])]!r}")
        if self.noise > 0:
            flip = self._rng.random(len(y)) < self.noise
            k = self.dataset.n_classes
            y[flip] = (y[flip] + self._rng.integers(1, k, flip.sum())) % k
            return Answers(y, p_correct=np.full(len(y), 1.0 - self.noise))
        return Answers(y)


def read_answers(path: Path, ids: Sequence[str], classes: Sequence[str]) -> np.ndarray:
    """Parse an answers CSV (columns ``id,label``) for exactly ``ids``; errors name file and row."""
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot be read as CSV ({exc})") from None
    missing_cols = {"id", "label"} - set(df.columns)
    if missing_cols:
        raise InputError(f"{path}: missing column(s) {sorted(missing_cols)}; found {list(df.columns)}")
    empty = df["label"].str.strip() == ""
    if empty.any():
        r = int(np.flatnonzero(empty)[0])
        raise InputError(f"{path}: row {r + 2} (id {df['id'].iloc[r]!r}) has an empty label")
    dup = df["id"].duplicated()
    if dup.any():
        r = int(np.flatnonzero(dup)[0])
        raise InputError(f"{path}: row {r + 2}: id {df['id'].iloc[r]!r} answered twice")
    wanted = set(ids)
    extra = ~df["id"].isin(wanted)
    if extra.any():
        r = int(np.flatnonzero(extra)[0])
        raise InputError(f"{path}: row {r + 2}: id {df['id'].iloc[r]!r} was not asked for")
    labels = df["label"].str.strip()
    lookup = {c: i for i, c in enumerate(classes)}
    unknown = ~labels.isin(lookup)
    if unknown.any():
        r = int(np.flatnonzero(unknown)[0])
        raise InputError(
            f"{path}: row {r + 2} (id {df['id'].iloc[r]!r}): unknown class {labels.iloc[r]!r}; "
            f"known classes: {list(classes)}"
        )
    absent = wanted - set(df["id"])
    if absent:
        raise InputError(f"{path}: {len(absent)} asked ids have no answer, e.g. {sorted(absent)[:3]}")
    codes = labels.map(lookup).to_numpy(dtype=np.int64)
    by_id = dict(zip(df["id"], codes, strict=True))
    return np.array([by_id[i] for i in ids], dtype=np.int64)


class FileOracle:
    """Asks humans through files in ``directory``.

    Request ``q`` writes ``queries/request-QQQ.csv`` (id and, for text items, the text) and waits for
    ``answers/request-QQQ.csv`` with columns ``id,label`` (label = class name).
    """

    def __init__(self, directory: str | Path, dataset: Dataset) -> None:
        self.directory = Path(directory)
        self.dataset = dataset
        self._pos = {i: p for p, i in enumerate(dataset.ids)}

    def _request_name(self, ids: Sequence[str]) -> str:
        """Reuse the name of an earlier request for the same ids (a resumed run), else the next number."""
        qdir = self.directory / "queries"
        existing = sorted(qdir.glob("request-*.csv")) if qdir.exists() else []
        wanted = set(ids)
        for q in existing:
            asked = pd.read_csv(q, dtype=str, keep_default_na=False, usecols=["id"])["id"]
            if set(asked) == wanted:
                return q.name
        return f"request-{len(existing) + 1:03d}.csv"

    def ask(self, ids: np.ndarray) -> Answers:
        ids_list = [str(i) for i in ids]
        name = self._request_name(ids_list)
        qpath, apath = self.directory / "queries" / name, self.directory / "answers" / name
        if apath.exists():
            return Answers(read_answers(apath, ids_list, self.dataset.classes))
        rows = [["id", "text"]]
        raw = self.dataset.raw
        for i in ids_list:
            item = raw[self._pos[i]] if raw is not None else ""
            rows.append([i, item if isinstance(item, str) else ""])
        atomic_write_text(qpath, _csv_text(rows))
        apath.parent.mkdir(parents=True, exist_ok=True)
        raise AwaitingAnswers(qpath, apath, len(ids_list))


def _csv_text(rows: list[list[str]]) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    return out.getvalue()


class RecordingOracle:
    """Wraps an oracle; every answer is persisted to ``path`` before use.

    On a resumed run the recorded answers are returned without asking again, so a deterministic run
    replays to where it stopped, noise included.

    The file is a CSV with columns ``id,label_code``, plus ``p_correct`` when some answer carried
    one and ``post_0, ..., post_{K-1}`` when some answer carried a posterior (empty cells: the
    answer had none). Floats are written with ``repr`` and so read back exactly. Files with only
    ``id,label_code`` (written before the noise was recorded) load unchanged.

    Parameters
    ----------
    inner : Oracle
    path : str or Path
    legacy_p_correct : float, optional
        P(label correct) of answers read from a file without a ``p_correct`` column, for a run
        recorded before the column existed whose noise rate is known (a simulated ``--noise``).
    """

    def __init__(self, inner: Oracle, path: str | Path, *, legacy_p_correct: float | None = None) -> None:
        self.inner = inner
        self.path = Path(path)
        self.legacy_p_correct = legacy_p_correct
        self._labels: dict[str, int] = {}
        self._p: dict[str, float] = {}
        self._post: dict[str, np.ndarray] = {}
        if self.path.exists():
            self._load()

    def _load(self) -> None:
        with self.path.open(newline="", encoding="utf-8") as f:
            rows = list(csv.reader(f))
        if not rows or rows[0][:2] != ["id", "label_code"]:
            raise InputError(f"{self.path}: not a recorded-answers file (header must start with id,label_code)")
        head = rows[0]
        p_col = head.index("p_correct") if "p_correct" in head else None
        post_cols = [j for j, h in enumerate(head) if h.startswith("post_")]
        for r, row in enumerate(rows[1:], start=2):
            try:
                i, code = row[0], int(row[1])
                if p_col is not None and row[p_col] != "":
                    self._p[i] = float(row[p_col])
                if post_cols and row[post_cols[0]] != "":
                    self._post[i] = np.array([float(row[j]) for j in post_cols])
            except (ValueError, IndexError):
                raise InputError(f"{self.path}, line {r}: cannot be read ({row!r})") from None
            self._labels[i] = code
        if p_col is None and self.legacy_p_correct is not None:
            self._p = dict.fromkeys(self._labels, float(self.legacy_p_correct))

    @property
    def n_recorded(self) -> int:
        return len(self._labels)

    def ask(self, ids: np.ndarray) -> Answers:
        todo = [i for i in ids if i not in self._labels]
        if todo:
            got = as_answers(self.inner.ask(np.asarray(todo, dtype=object)))
            if len(got) != len(todo):
                raise InputError(f"the oracle answered {len(got)} of {len(todo)} items")
            for j, i in enumerate(todo):
                self._labels[i] = int(got.labels[j])
                if got.p_correct is not None:
                    self._p[i] = float(got.p_correct[j])
                if got.posterior is not None:
                    self._post[i] = got.posterior[j].copy()
            atomic_write_text(self.path, self._csv())
        return self._answers(ids)

    def _answers(self, ids: Any) -> Answers:
        labels = np.array([self._labels[i] for i in ids], dtype=np.int64)
        p = None
        if any(i in self._p for i in ids):  # answers without one are certain
            p = np.array([self._p.get(i, 1.0) for i in ids], dtype=np.float64)
        post = None
        if any(i in self._post for i in ids):
            k = len(next(iter(self._post.values())))
            eye = np.eye(k)
            post = np.stack([self._post[i] if i in self._post else eye[self._labels[i]] for i in ids])
        return Answers(labels, p_correct=p, posterior=post)

    def _csv(self) -> str:
        k = len(next(iter(self._post.values()))) if self._post else 0
        head = ["id", "label_code"] + (["p_correct"] if self._p else []) + [f"post_{c}" for c in range(k)]
        rows = [head]
        for i, code in self._labels.items():
            row = [i, str(code)]
            if self._p:
                row.append(repr(self._p[i]) if i in self._p else "")
            if k:
                post = self._post.get(i)
                row += [repr(float(v)) for v in post] if post is not None else [""] * k
            rows.append(row)
        return _csv_text(rows)
