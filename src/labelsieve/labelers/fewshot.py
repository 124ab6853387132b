"""Few-shot labels: a logistic-regression head on frozen embeddings from K labels per class.

* :class:`FewShotHead` — a :class:`~labelsieve.models.base.Classifier` on embedding features
  (``fit(X, y)``, ``scores(X)``): drop it into the TBAL loop as its model.
* :class:`FewShotLabeler` — encoder + head: ``fit(items, y, ids)`` embeds (cached) and fits,
  ``iter_scores`` streams logits for a pool.
* :func:`sample_per_class` — K random positions per class (the handful of human labels).
* :func:`embed_dataset` — a text/image :class:`~labelsieve.data.Dataset` with its embeddings as
  ``X`` (``raw`` kept for display), so ``TBAL(model=FewShotHead(...)).run(...)`` runs unchanged.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from labelsieve._validation import check_interval, check_positive_int
from labelsieve.data.dataset import UNLABELED, Dataset
from labelsieve.errors import InputError, NotEnoughDataError, NotFittedError
from labelsieve.labelers.base import (
    ENCODERS,
    EmbeddingLabeler,
    Encoder,
    check_classes,
    encoder_specs,
    register_labeler,
)
from labelsieve.models.base import Scores
from labelsieve.models.logreg import (
    check_fit_data,
    check_n_classes,
    check_predict_data,
    fill_missing_logits,
    require_fitted,
)


def sample_per_class(y: np.ndarray, k: int, *, random_state: int | np.random.Generator | None = None) -> np.ndarray:
    """Sorted positions of ``k`` random items of each class present in ``y`` (all of a smaller class).

    Unlabeled entries (-1) are never picked.

    >>> sample_per_class(np.array([0, 0, 0, 1, 1, -1]), 2, random_state=0).shape
    (4,)
    """
    k = check_positive_int("k", k, owner="sample_per_class")
    y = np.asarray(y)
    rng = np.random.default_rng(random_state)
    keys = rng.random(len(y))
    order = np.lexsort((keys, y))  # by class, random inside each class
    ys = y[order]
    starts = np.searchsorted(ys, ys, side="left")
    rank = np.arange(len(ys)) - starts
    pick = order[(rank < k) & (ys != UNLABELED)]
    return np.sort(pick)


class FewShotHead:
    """Multinomial logistic regression on (L2-normalised) embeddings, as a ``Classifier``.

    No feature scaling (embeddings share one scale); ``C`` is the inverse L2 strength. Classes
    absent from ``y`` get logits far below the others (see :mod:`labelsieve.models.logreg`).

    Parameters
    ----------
    n_classes : int
    C : float
    max_iter : int

    >>> rng = np.random.default_rng(0)
    >>> X = np.r_[rng.normal(1, .3, (5, 4)), rng.normal(-1, .3, (5, 4))]
    >>> FewShotHead(n_classes=3).fit(X, np.r_[[0] * 5, [2] * 5]).predict(X).tolist()
    [0, 0, 0, 0, 0, 2, 2, 2, 2, 2]
    """

    def __init__(self, *, n_classes: int, C: float = 10.0, max_iter: int = 2000) -> None:
        self.n_classes = n_classes
        self.C = C
        self.max_iter = max_iter

    def fit(self, X: np.ndarray, y: np.ndarray) -> FewShotHead:
        from sklearn.linear_model import LogisticRegression

        owner = type(self).__name__
        check_n_classes(self.n_classes, owner=owner)
        check_interval("C", self.C, owner=owner, low=0.0, high=np.inf, closed="neither")
        check_positive_int("max_iter", self.max_iter, owner=owner)
        X, y = check_fit_data(X, y, self.n_classes, owner=owner)
        self.classes_ = np.unique(y)
        self.n_features_in_ = X.shape[1]
        if len(self.classes_) == 1:
            self.coef_, self.intercept_ = np.zeros((1, X.shape[1])), np.zeros(1)
            return self
        lr = LogisticRegression(C=float(self.C), max_iter=int(self.max_iter)).fit(X, y)
        w, b = lr.coef_, lr.intercept_
        if len(self.classes_) == 2:  # one column = logit of classes_[1] vs classes_[0]
            w, b = np.vstack([np.zeros_like(w), w]), np.concatenate([[0.0], b])
        self.coef_, self.intercept_ = w, b
        return self

    def scores(self, X: np.ndarray) -> Scores:
        """Logits (n, n_classes): ``X @ coef_.T + intercept_`` on the present classes."""
        require_fitted(self, "classes_")
        X = check_predict_data(X, self.n_features_in_, owner=type(self).__name__)
        present = X.astype(np.float64) @ self.coef_.T + self.intercept_
        return Scores(fill_missing_logits(present, self.classes_, self.n_classes), embeddings=X)

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        return self.scores(X).probs

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.scores(X).predicted


@register_labeler("few-shot")
class FewShotLabeler(EmbeddingLabeler):
    """Encoder + :class:`FewShotHead` fitted on a handful of labeled items.

    Parameters
    ----------
    encoder : Encoder (or a name for text: "minilm", "hashing")
    classes : sequence of str
    C : float — the head's inverse regularisation.
    batch_size, cache_dir, progress : see :class:`~labelsieve.labelers.base.EmbeddingLabeler`.

    >>> from labelsieve.labelers.text import HashingTextEncoder
    >>> lab = FewShotLabeler(HashingTextEncoder(), classes=["pos", "neg"])
    >>> lab = lab.fit(["great fun", "great film", "awful plot", "awful acting"], np.array([0, 0, 1, 1]))
    >>> lab.predict(["a great story", "awful and dull"]).tolist()
    [0, 1]
    """

    def __init__(
        self,
        encoder: Encoder | str,
        *,
        classes: Sequence[str],
        C: float = 10.0,
        batch_size: int = 64,
        cache_dir: str | os.PathLike[str] | None = None,
        progress: bool = False,
    ) -> None:
        super().__init__(encoder, batch_size=batch_size, cache_dir=cache_dir, progress=progress)  # type: ignore[arg-type]
        self.classes = classes
        self.C = C

    def _resolve_encoder(self) -> Any:
        if isinstance(self.encoder, str):
            from labelsieve.labelers.text import make_text_encoder

            if getattr(self, "_encoder_spec", None) != self.encoder:
                self._encoder_obj, self._encoder_spec = make_text_encoder(self.encoder), self.encoder
            return self._encoder_obj
        return self.encoder

    @property
    def n_classes(self) -> int:
        return len(self.classes_)

    def fit(self, items: Sequence[Any], y: np.ndarray, ids: Iterable[str] | None = None) -> FewShotLabeler:
        """Embed the labeled ``items`` and fit the head on their class codes ``y`` (n,)."""
        self.classes_ = check_classes(self.classes, owner=f"The 'classes' parameter of {type(self).__name__}")
        if len(items) == 0:
            raise NotEnoughDataError("FewShotLabeler.fit: no labeled items.")
        self.head_ = FewShotHead(n_classes=len(self.classes_), C=self.C).fit(self.embed(items, ids), y)
        return self

    def _logits(self, E: np.ndarray) -> np.ndarray:
        NotFittedError.check(self, "head_")
        return self.head_.scores(E).logits


def embed_dataset(
    dataset: Dataset,
    encoder: Encoder | EmbeddingLabeler,
    *,
    batch_size: int = 64,
    cache_dir: str | os.PathLike[str] | None = None,
    progress: bool = False,
) -> Dataset:
    """``dataset`` with ``X`` replaced by its items' embeddings (from ``dataset.raw``), ``raw`` kept.

    ``encoder`` may be an encoder or a labeler (its encoder, cache and batch size are used).
    The result feeds :class:`~labelsieve.autolabel.tbal.TBAL` with ``model=FewShotHead(...)``.
    """
    if dataset.raw is None:
        raise InputError(f"dataset '{dataset.name}' ({dataset.source}) has no raw items (texts/images) to embed.")
    if isinstance(encoder, EmbeddingLabeler):
        lab = encoder
    else:
        lab = EmbeddingLabeler(encoder, batch_size=batch_size, cache_dir=cache_dir, progress=progress)
    X = lab.embed(list(dataset.raw), list(dataset.ids))
    meta = dict(dataset.meta)
    meta["embedding_model"] = lab.model_id
    return Dataset(
        ids=dataset.ids, X=X, classes=dataset.classes, y=dataset.y, raw=dataset.raw,
        name=dataset.name, source=dataset.source, meta=meta,
    )


def encoder_from_spec(spec: str, *, max_seq_length: int | None = None) -> Any:
    """An encoder from a CLI spec ``NAME`` or ``NAME:ARG`` of a registered encoder
    (:data:`~labelsieve.labelers.base.ENCODERS`: ``minilm``, ``hashing``, ``clip:PATH``).

    (``scores:FILE`` has no encoder: see :func:`labelsieve.labelers.load_scores`.)
    ``max_seq_length`` goes to encoders that take it (MiniLM).
    """
    import inspect

    s = str(spec).strip()
    name, sep, arg = s.partition(":")
    name = name.strip().lower()
    if name not in ENCODERS:
        raise InputError(f"unknown labeler {spec!r}; use {encoder_specs()} or scores:FILE.")
    cls, metavar = ENCODERS[name], ENCODERS.flags(name)["arg"]
    if metavar is None:
        if sep:
            raise InputError(f"labeler {name!r} takes no argument; got {spec!r}.")
        takes = inspect.signature(cls).parameters
        enc = cls(**({"max_seq_length": max_seq_length} if "max_seq_length" in takes else {}))
    else:
        enc = cls(arg)
    check_path = getattr(enc, "_check_path", None)
    if callable(check_path):
        check_path()  # a missing checkpoint fails here, before anything is read
    return enc


def tbal_inputs(
    dataset: Dataset,
    labeler: str,
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    C: float = 10.0,
    batch_size: int = 64,
    progress: bool = False,
) -> tuple[Dataset, FewShotHead]:
    """What ``labelsieve run --labeler SPEC`` needs: the pool embedded by the labeler's encoder and a
    :class:`FewShotHead` template, so :class:`~labelsieve.autolabel.tbal.TBAL` runs unchanged.

    >>> from labelsieve.data.dataset import Dataset
    >>> ds = Dataset(ids=["a", "b"], X=np.zeros((2, 0)), classes=("x", "y"), raw=["red", "blue"])
    >>> X_ds, head = tbal_inputs(ds, "hashing")
    >>> X_ds.X.shape[0], X_ds.raw, head.n_classes
    (2, ['red', 'blue'], 2)
    """
    enc = encoder_from_spec(labeler)
    ds = embed_dataset(dataset, enc, batch_size=batch_size, cache_dir=cache_dir, progress=progress)
    return ds, FewShotHead(n_classes=ds.n_classes, C=C)
