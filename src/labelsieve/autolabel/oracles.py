"""Oracles: who gives human labels. ``ask(ids) -> label codes`` for a batch.

* :class:`SimulatedOracle` answers from ground truth, optionally with symmetric noise.
* :class:`FileOracle` writes the items to label to a CSV and raises :class:`AwaitingAnswers`
  until the answers file appears; ``labelsieve run --resume`` then continues.
* :class:`RecordingOracle` remembers every answer on disk (atomically), so a killed or paused run
  replays deterministically up to where it stopped and never asks for the same label twice.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

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


@runtime_checkable
class Oracle(Protocol):
    def ask(self, ids: np.ndarray) -> np.ndarray:
        """Label codes for ``ids`` (same order)."""
        ...


class SimulatedOracle:
    """Answers from the dataset's ground truth; with ``noise`` > 0, a uniformly random wrong class.

    >>> import numpy as np
    >>> from labelsieve.data.dataset import Dataset
    >>> ds = Dataset(ids=["a", "b"], X=np.zeros((2, 1)), classes=("x", "y"), y=np.array([1, 0]))
    >>> SimulatedOracle(ds).ask(np.array(["b", "a"])).tolist()
    [0, 1]
    """

    def __init__(self, dataset: Dataset, *, noise: float = 0.0, random_state: int | None = None) -> None:
        self.dataset = dataset
        self.noise = noise
        self.random_state = random_state
        self._rng = np.random.default_rng(random_state)
        self._pos = {i: p for p, i in enumerate(dataset.ids)}

    def ask(self, ids: np.ndarray) -> np.ndarray:
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
        return y

    def label_confidence(self, ids: np.ndarray) -> np.ndarray:
        """P(true label == given label) = 1 - noise (symmetric noise; exact for balanced classes)."""
        return _label_confidence_of_noise(self.noise, len(ids))


def _label_confidence_of_noise(noise: float, n: int) -> np.ndarray:
    return np.full(n, 1.0 - noise)


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

    def ask(self, ids: np.ndarray) -> np.ndarray:
        ids_list = [str(i) for i in ids]
        name = self._request_name(ids_list)
        qpath, apath = self.directory / "queries" / name, self.directory / "answers" / name
        if apath.exists():
            return read_answers(apath, ids_list, self.dataset.classes)
        rows = [["id", "text"]]
        raw = self.dataset.raw
        for i in ids_list:
            item = raw[self._pos[i]] if raw is not None else ""
            rows.append([i, item if isinstance(item, str) else ""])
        atomic_write_text(qpath, _csv_text(rows))
        apath.parent.mkdir(parents=True, exist_ok=True)
        raise AwaitingAnswers(qpath, apath, len(ids_list))


def _csv_text(rows: list[list[str]]) -> str:
    import io

    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    return out.getvalue()


class RecordingOracle:
    """Wraps an oracle; every answer is persisted to ``path`` (CSV id,label_code) before use.

    On a resumed run the recorded answers are returned without asking again, so a deterministic run
    replays to where it stopped.
    """

    def __init__(self, inner: Oracle, path: str | Path) -> None:
        self.inner = inner
        self.path = Path(path)
        self._answers: dict[str, int] = {}
        if self.path.exists():
            df = pd.read_csv(self.path, dtype={"id": str, "label_code": np.int64}, keep_default_na=False)
            self._answers = dict(zip(df["id"], df["label_code"].astype(int), strict=True))

    def __getattr__(self, name: str) -> object:
        # what the loop may ask of the labels' quality is the inner oracle's to answer
        if name in ("label_confidence", "prediction_error_probability"):
            return getattr(self.inner, name)
        raise AttributeError(name)

    @property
    def n_recorded(self) -> int:
        return len(self._answers)

    def ask(self, ids: np.ndarray) -> np.ndarray:
        todo = [i for i in ids if i not in self._answers]
        if todo:
            got = self.inner.ask(np.asarray(todo, dtype=object))
            self._answers.update(zip(todo, (int(g) for g in got), strict=True))
            rows = [["id", "label_code"]] + [[k, str(v)] for k, v in self._answers.items()]
            atomic_write_text(self.path, _csv_text(rows))
        return np.array([self._answers[i] for i in ids], dtype=np.int64)
