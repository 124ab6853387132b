"""The labeler interface: items + class prompts -> :class:`~labelsieve.models.base.Scores`.

A labeler embeds items with a frozen *encoder* and turns the embeddings into per-class logits
(cosine similarity to class-prompt embeddings for zero-shot, a linear head for few-shot). Scoring
is batched and streaming (:meth:`EmbeddingLabeler.iter_scores` yields one batch at a time; no
whole-pool tensor is built), resumable (item embeddings are cached as Parquet shards under
``cache_dir/<model key>/``, keyed by the encoder's ``model_id`` and the item id; a re-run reads
them back and encodes only the items not cached), and shows a progress bar.

The cache trusts ids: an item whose content changes must get a new id (or a new ``cache_dir``).
Each shard holds the embeddings of one completed batch and is written atomically, so a run killed
mid-way keeps every finished batch and re-encodes nothing that was finished.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import os
import re
from collections.abc import Iterable, Iterator, Sequence, Sized
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from labelsieve._atomic import atomic_write_bytes, atomic_write_path
from labelsieve._registry import Registry
from labelsieve._validation import check_interval, check_option, check_positive_int
from labelsieve.errors import InputError, NotFittedError, ParameterError
from labelsieve.models.base import Scores

logger = logging.getLogger(__name__)

#: Temperature of cosine logits when none is fitted (CLIP's learned logit scale is ~100 = 1/0.01).
DEFAULT_TEMPERATURE = 0.05


# ---------------------------------------------------------------------------------- interfaces
@runtime_checkable
class Encoder(Protocol):
    """A frozen embedding model.

    ``model_id`` names the weights (it keys the cache); ``encode_items`` maps one batch of items
    (texts, images, paths) to L2-normalised float32 embeddings of shape (b, d); ``encode_prompts``
    maps class descriptions into the same space (for text models the two are the same).
    ``check_items(items, ids, offset)`` raises :class:`InputError` naming the first bad item.
    """

    @property
    def model_id(self) -> str: ...  # read-only: a plain attribute or a property both satisfy it

    def encode_items(self, items: Sequence[Any]) -> np.ndarray: ...

    def encode_prompts(self, prompts: Sequence[str]) -> np.ndarray: ...

    def check_items(self, items: Sequence[Any], ids: Sequence[str], offset: int = 0) -> None: ...


@runtime_checkable
class Labeler(Protocol):
    """What every labeler offers (classification here; detection shares ``iter_scores``)."""

    classes: Sequence[str]

    def scores(self, items: Sequence[Any], ids: Sequence[str] | None = None) -> Scores: ...

    def iter_scores(
        self, items: Iterable[Any], ids: Iterable[str] | None = None
    ) -> Iterator[tuple[np.ndarray, Scores]]: ...


# ------------------------------------------------------------------------------- pure functions
def _check_labeler(member: Any) -> None:
    if not (isinstance(member, type) and issubclass(member, EmbeddingLabeler)):
        raise TypeError(f"a labeler must be a subclass of labelsieve.labelers.EmbeddingLabeler. Got {member!r}.")


def _check_encoder(member: Any) -> None:
    if not (isinstance(member, type) and all(callable(getattr(member, m, None))
                                             for m in ("encode_items", "encode_prompts"))):
        raise TypeError(f"an encoder must be a class with encode_items and encode_prompts. Got {member!r}.")


#: Every labeler class by name (the contract suite; ``get_labeler``).
LABELERS: Registry[type] = Registry("labeler", parameter="labeler", check=_check_labeler)

#: Every encoder by the name a CLI ``--labeler SPEC`` gives it (``minilm``, ``clip:PATH`` ...). Flag
#: ``arg``: the metavar of the argument after ``NAME:`` (``None``: takes none).
ENCODERS: Registry[type] = Registry("encoder", parameter="labeler", flags={"arg": None}, check=_check_encoder)


def register_labeler(name: str) -> Any:
    """Class decorator: ``@register_labeler("zero-shot")``."""
    return LABELERS.register(name)


def register_encoder(name: str, *, arg: str | None = None) -> Any:
    """Class decorator: ``@register_encoder("clip", arg="PATH")`` makes ``--labeler clip:PATH`` work."""
    return ENCODERS.register(name, arg=arg)


def get_labeler(name: str) -> type:
    """The labeler class called ``name``; :class:`ParameterError` listing the names otherwise."""
    return LABELERS.resolve(name)


def encoder_specs() -> str:
    """The ``--labeler`` specs of the registered encoders, e.g. ``"hashing, minilm, clip:PATH"``."""
    return ", ".join(n if ENCODERS.flags(n)["arg"] is None else f"{n}:{ENCODERS.flags(n)['arg']}"
                     for n in ENCODERS.names())


def l2_normalize(E: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm (zero rows stay zero), float32.

    >>> l2_normalize(np.array([[3.0, 4.0], [0.0, 0.0]])).tolist()
    [[0.6000000238418579, 0.800000011920929], [0.0, 0.0]]
    """
    E = np.asarray(E, dtype=np.float32)
    norm = np.sqrt(np.einsum("ij,ij->i", E, E))[:, None]
    return E / np.where(norm > 0, norm, np.float32(1.0))


def cosine_logits(E: np.ndarray, P: np.ndarray, temperature: float) -> np.ndarray:
    """Zero-shot logits ``z_ik = cos(e_i, p_k) / T`` (CLIP, Radford et al. 2021, Fig. 3).

    Parameters
    ----------
    E : array, shape (n, d) — item embeddings (normalised here).
    P : array, shape (K, d) — class embeddings (normalised here).
    temperature : float > 0

    Returns
    -------
    float64 array, shape (n, K)

    >>> cosine_logits(np.array([[1.0, 0.0]]), np.array([[1.0, 0.0], [0.0, 2.0]]), 0.5).tolist()
    [[2.0, 0.0]]
    """
    return (l2_normalize(E).astype(np.float64) @ l2_normalize(P).astype(np.float64).T) / float(temperature)


def pool_prompt_similarities(sim: np.ndarray, prompt_class: np.ndarray, n_classes: int, how: str) -> np.ndarray:
    """Per-class similarity from per-prompt similarities (prompts sorted by class).

    ``how="max"``: the best-matching prompt of each class; ``"mean"`` the average similarity.

    >>> s = np.array([[0.1, 0.5, 0.3]])
    >>> pool_prompt_similarities(s, np.array([0, 0, 1]), 2, "max").tolist()
    [[0.5, 0.3]]
    """
    starts = np.searchsorted(prompt_class, np.arange(n_classes))
    if how == "max":
        return np.maximum.reduceat(sim, starts, axis=1)
    counts = np.bincount(prompt_class, minlength=n_classes)
    return np.add.reduceat(sim, starts, axis=1) / counts


def check_classes(classes: Any, *, owner: str) -> tuple[str, ...]:
    """Class names as a tuple; empty names, duplicates and fewer than two classes raise InputError.

    >>> check_classes(["a", "b"], owner="x")
    ('a', 'b')
    """
    if isinstance(classes, str) or classes is None:
        raise InputError(f"{owner}: classes must be a list of names; got {classes!r}.")
    cls = tuple(str(c).strip() for c in classes)
    empty = [i for i, c in enumerate(cls) if not c]
    if empty:
        raise InputError(f"{owner}: class name at position {empty[0]} is empty (classes: {list(cls)}).")
    seen: dict[str, int] = {}
    for i, c in enumerate(cls):
        if c in seen:
            raise InputError(f"{owner}: class {c!r} is listed twice (positions {seen[c]} and {i}).")
        seen[c] = i
    if len(cls) < 2:
        raise InputError(f"{owner}: need at least 2 classes; got {list(cls)}.")
    return cls


def build_prompts(
    classes: Sequence[str],
    prompts: dict[str, Sequence[str]] | None,
    templates: Sequence[str],
    *,
    owner: str,
) -> tuple[list[str], np.ndarray]:
    """Flat prompt list and the class code of each prompt (sorted by class).

    A class with entries in ``prompts`` uses them as descriptions; otherwise its name. Every
    description is expanded through every template (``"{}"`` keeps it verbatim).

    >>> build_prompts(["cat", "dog"], {"dog": ["puppy"]}, ["a {}"], owner="x")
    (['a cat', 'a puppy'], array([0, 1]))
    """
    prompts = dict(prompts or {})
    unknown = sorted(set(prompts) - set(classes))
    if unknown:
        raise InputError(f"{owner}: prompts given for unknown classes {unknown}; classes are {list(classes)}.")
    if not templates or any("{}" not in t for t in templates):
        raise InputError(f"{owner}: every template must contain '{{}}'; got {list(templates)}.")
    texts: list[str] = []
    codes: list[int] = []
    for k, c in enumerate(classes):
        descs = prompts.get(c, [c])
        if isinstance(descs, str):
            descs = [descs]
        if len(descs) == 0 or any(not isinstance(d, str) or not d.strip() for d in descs):
            raise InputError(f"{owner}: class {c!r} has an empty prompt list or an empty prompt: {list(descs)}.")
        for d in descs:
            for t in templates:
                texts.append(t.format(d.strip()))
                codes.append(k)
    return texts, np.asarray(codes, dtype=np.int64)


def model_key(model_id: str) -> str:
    """File-system safe, collision-resistant folder name for a model id.

    >>> model_key("minilm:all-MiniLM-L6-v2")[:22]
    'minilm-all-minilm-l6-v'
    """
    slug = re.sub(r"[^a-z0-9]+", "-", model_id.lower()).strip("-")[:40]
    return f"{slug}-{hashlib.sha1(model_id.encode()).hexdigest()[:10]}"


# ------------------------------------------------------------------------------------- cache
def id_hashes(ids: Sequence[str] | np.ndarray) -> np.ndarray:
    """64-bit hashes of item ids (vectorised; pandas' SipHash), shape (n,) uint64.

    >>> h = id_hashes(["a", "b", "a"]); bool(h[0] == h[2] and h[0] != h[1])
    True
    """
    import pandas as pd

    return pd.util.hash_array(np.asarray(ids, dtype=object).astype(str).astype(object), categorize=False)


def sorted_positions(sorted_hashes: np.ndarray, h: np.ndarray) -> np.ndarray:
    """Position of each ``h`` in ``sorted_hashes``, -1 when absent.

    >>> sorted_positions(np.array([2, 5, 9], dtype=np.uint64), np.array([5, 3, 9], dtype=np.uint64)).tolist()
    [1, -1, 2]
    """
    pos = np.searchsorted(sorted_hashes, h)
    found = pos < len(sorted_hashes)
    found[found] = sorted_hashes[pos[found]] == h[found]
    return np.where(found, pos, -1).astype(np.int64)


class EmbeddingCache:
    """Parquet shards of item embeddings for one model: ``root/<model_key>/shard-*.parquet``.

    Each shard has columns ``id`` (string) and ``embedding`` (fixed-size list of float32). When the
    cache is opened, the ids of its shards are indexed by their 64-bit hashes (16 bytes per item;
    a collision between two ids is ~n^2 / 2^65 unlikely); embeddings are read shard by shard on demand.
    """

    def __init__(self, root: str | os.PathLike[str], model_id: str) -> None:
        import pyarrow.parquet as pq

        self.dir = Path(root) / model_key(model_id)
        self.dir.mkdir(parents=True, exist_ok=True)
        meta = self.dir / "model.json"
        if meta.exists():
            stored = json.loads(meta.read_text()).get("model_id")
            if stored != model_id:
                raise InputError(f"{self.dir}: cache holds model {stored!r}, not {model_id!r}.")
        else:
            atomic_write_bytes(meta, json.dumps({"model_id": model_id}).encode())
        self.shards = sorted(self.dir.glob("shard-*.parquet"))
        hashes, shard_of, row_of = [], [], []
        for s, path in enumerate(self.shards):
            col = pq.read_table(path, columns=["id"]).column("id").to_numpy(zero_copy_only=False)
            hashes.append(id_hashes(col))
            shard_of.append(np.full(len(col), s, dtype=np.int32))
            row_of.append(np.arange(len(col), dtype=np.int32))
        h = np.concatenate(hashes) if hashes else np.empty(0, np.uint64)
        # sorted 64-bit id hashes (16 bytes per cached item); a repeated id keeps its first copy
        self._hash, first = np.unique(h, return_index=True)
        self._shard = np.concatenate(shard_of)[first] if shard_of else np.empty(0, np.int32)
        self._row = np.concatenate(row_of)[first] if row_of else np.empty(0, np.int32)
        self._loaded: tuple[int, np.ndarray] | None = None
        self._next = len(self.shards)

    def __len__(self) -> int:
        return len(self._hash)

    def lookup(self, ids: np.ndarray) -> np.ndarray:
        """Position in the index of each id, -1 when not cached."""
        return sorted_positions(self._hash, id_hashes(ids))

    def read(self, pos: np.ndarray) -> np.ndarray:
        """Embeddings at index positions ``pos`` (all >= 0), shape (len(pos), d)."""
        shard, row = self._shard[pos], self._row[pos]
        out: np.ndarray | None = None
        for s in np.unique(shard):  # loop over shards, not items
            E = self._shard_array(int(s))
            if out is None:
                out = np.empty((len(pos), E.shape[1]), dtype=np.float32)
            m = shard == s
            out[m] = E[row[m]]
        assert out is not None
        return out

    def _shard_array(self, s: int) -> np.ndarray:
        import pyarrow.parquet as pq

        if self._loaded is None or self._loaded[0] != s:
            col = pq.read_table(self.shards[s], columns=["embedding"]).column("embedding").combine_chunks()
            d = col.type.list_size
            self._loaded = (s, col.values.to_numpy(zero_copy_only=False).reshape(-1, d))
        return self._loaded[1]

    def write(self, ids: np.ndarray, E: np.ndarray) -> Path:
        """Append one shard (atomically: temp file + ``os.replace``)."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        E = np.ascontiguousarray(E, dtype=np.float32)
        emb = pa.FixedSizeListArray.from_arrays(pa.array(E.reshape(-1)), E.shape[1])
        table = pa.table({"id": pa.array(np.asarray(ids, dtype=object).astype(str)), "embedding": emb})
        while True:
            path = self.dir / f"shard-{self._next:06d}-{os.getpid()}.parquet"
            self._next += 1
            if not path.exists():
                break
        atomic_write_path(path, lambda tmp: pq.write_table(table, tmp))
        return path


# --------------------------------------------------------------------------------- streaming
def _chunks(items: Iterable[Any], ids: Iterable[str], size: int) -> Iterator[tuple[list[Any], list[str]]]:
    it_items, it_ids = iter(items), iter(ids)
    while True:
        b_items = list(itertools.islice(it_items, size))
        b_ids = [str(i) for i in itertools.islice(it_ids, len(b_items))]
        if not b_items:
            return
        if len(b_ids) != len(b_items):
            raise InputError(f"fewer ids than items: ids ran out after {len(b_ids)} items of this batch.")
        yield b_items, b_ids


def _progress(total: int | None, show: bool, desc: str) -> Any:
    if not show:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="item", leave=False)


class EmbeddingLabeler:
    """Base class: batched, cached, streaming embedding of items; subclasses map embeddings to logits.

    Parameters
    ----------
    encoder : Encoder
    batch_size : int
        Items encoded per call (and per cache shard).
    cache_dir : path, optional
        Root of the Parquet embedding cache; ``None`` disables caching.
    progress : bool
        Show a tqdm progress bar while scoring.
    """

    def __init__(
        self, encoder: Encoder, *, batch_size: int = 64, cache_dir: str | os.PathLike[str] | None = None,
        progress: bool = False,
    ) -> None:
        self.encoder = encoder
        self.batch_size = batch_size
        self.cache_dir = cache_dir
        self.progress = progress

    def _resolve_encoder(self) -> Encoder:
        """The encoder object (subclasses may build it from a name, once)."""
        return self.encoder

    @property
    def model_id(self) -> str:
        return str(self._resolve_encoder().model_id)

    def _check_base_params(self) -> None:
        owner = type(self).__name__
        check_positive_int("batch_size", self.batch_size, owner=owner)
        check_option("progress", self.progress, owner=owner, options=(True, False))
        if self.cache_dir is not None and not isinstance(self.cache_dir, (str, os.PathLike)):
            raise ParameterError(f"The 'cache_dir' parameter of {owner} must be a path or None. "
                                 f"Got {self.cache_dir!r} instead.")
        enc = self._resolve_encoder()
        for name in ("encode_items", "encode_prompts", "model_id"):
            if not hasattr(enc, name):
                raise ParameterError(
                    f"The 'encoder' parameter of {type(self).__name__} must have '{name}'. "
                    f"Got {type(self.encoder).__name__} instead."
                )

    def iter_embeddings(
        self, items: Iterable[Any], ids: Iterable[str] | None = None
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yield ``(ids, embeddings)`` per batch: cached rows are read back, the rest encoded once.

        ``ids`` are required with a cache (they key it); without one, positions ``"0", "1", ...``.
        Duplicate ids raise :class:`InputError`.
        """
        self._check_base_params()
        encoder = self._resolve_encoder()
        if ids is None:
            if self.cache_dir is not None:
                raise InputError("item ids are required to use the embedding cache (they key it).")
            ids = (str(i) for i in itertools.count())
        total = len(items) if isinstance(items, Sized) else None
        cache = EmbeddingCache(self.cache_dir, self.model_id) if self.cache_dir is not None else None
        bar = _progress(total, bool(self.progress), f"embedding ({self.model_id})")
        seen = np.empty(0, dtype=np.uint64)  # sorted id hashes of this run: 8 bytes per item
        offset = 0
        n_encoded = 0
        try:
            for b_items, b_ids in _chunks(items, ids, self.batch_size):
                id_arr = np.asarray(b_ids, dtype=object)
                h = id_hashes(id_arr)
                hs = np.sort(h)
                again = sorted_positions(seen, h) >= 0
                if again.any() or (hs[1:] == hs[:-1]).any():
                    u, c = np.unique(h, return_counts=True)
                    bad = again | np.isin(h, u[c > 1])
                    raise InputError(
                        f"duplicate item id {b_ids[int(np.flatnonzero(bad)[0])]!r} near row {offset} (ids must be unique)."
                    )
                seen = np.insert(seen, np.searchsorted(seen, hs), hs)
                pos = cache.lookup(id_arr) if cache is not None else np.full(len(b_ids), -1)
                hit = pos >= 0
                miss = np.flatnonzero(~hit)
                E: np.ndarray | None = None
                if len(miss):
                    todo = [b_items[i] for i in miss]
                    todo_ids = [b_ids[i] for i in miss]
                    check = getattr(encoder, "check_items", None)
                    if check is not None:
                        check(todo, todo_ids, offset)
                    new = np.asarray(encoder.encode_items(todo), dtype=np.float32)
                    if new.ndim != 2 or new.shape[0] != len(miss):
                        raise InputError(
                            f"encoder {self.model_id!r} returned shape {new.shape} for {len(miss)} items."
                        )
                    n_encoded += len(miss)
                    if cache is not None:
                        cache.write(id_arr[miss], new)
                    E = np.empty((len(b_ids), new.shape[1]), dtype=np.float32)
                    E[miss] = new
                if hit.any():
                    old = cache.read(pos[hit])  # type: ignore[union-attr]
                    if E is None:
                        E = np.empty((len(b_ids), old.shape[1]), dtype=np.float32)
                    E[hit] = old
                offset += len(b_ids)
                if bar is not None:
                    bar.update(len(b_ids))
                yield id_arr, E  # type: ignore[misc]
        finally:
            if bar is not None:
                bar.close()
            self.n_encoded_ = n_encoded
            logger.debug("%s: %d items, %d encoded, %d from cache", self.model_id, offset, n_encoded,
                         offset - n_encoded)

    def embed(self, items: Sequence[Any], ids: Iterable[str] | None = None) -> np.ndarray:
        """All embeddings at once, shape (n, d) (for small pools; use :meth:`iter_embeddings` for large)."""
        blocks = [E for _, E in self.iter_embeddings(items, ids)]
        if not blocks:
            raise InputError("no items to embed (empty pool).")
        return np.concatenate(blocks)

    # -- subclasses implement _logits(E) -> (b, K)
    def _logits(self, E: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def iter_scores(
        self, items: Iterable[Any], ids: Iterable[str] | None = None, *, return_embeddings: bool = False
    ) -> Iterator[tuple[np.ndarray, Scores]]:
        """Yield ``(ids, Scores)`` per batch (streaming: memory does not grow with the pool)."""
        for b_ids, E in self.iter_embeddings(items, ids):
            yield b_ids, Scores(self._logits(E), E if return_embeddings else None)

    def scores(
        self, items: Sequence[Any], ids: Sequence[str] | None = None, *, return_embeddings: bool = False
    ) -> Scores:
        """Scores of all items, logits shape (n, K) (embeddings (n, d) when asked)."""
        parts = list(self.iter_scores(items, ids, return_embeddings=return_embeddings))
        if not parts:
            raise InputError("no items to score (empty pool).")
        logits = np.concatenate([s.logits for _, s in parts])
        emb = np.concatenate([s.embeddings for _, s in parts]) if return_embeddings else None
        return Scores(logits, emb)

    def predict_proba(self, items: Sequence[Any], ids: Sequence[str] | None = None) -> np.ndarray:
        return self.scores(items, ids).probs

    def predict(self, items: Sequence[Any], ids: Sequence[str] | None = None) -> np.ndarray:
        return self.scores(items, ids).predicted


# ------------------------------------------------------------------------------------ zero-shot
@register_labeler("zero-shot")
class ZeroShotLabeler(EmbeddingLabeler):
    """Zero-shot labels: cosine similarity of item and class-prompt embeddings over a temperature.

    Parameters
    ----------
    encoder : Encoder
    classes : sequence of str
        Class names (unique, non-empty), in code order.
    prompts : dict class -> list of str, optional
        Descriptions per class (several allowed); a class without an entry uses its name.
    templates : sequence of str
        Each description is expanded through every template (``"{}"`` = verbatim).
    pooling : {"mean", "max"}
        ``"mean"``: the class embedding is the normalised mean of its prompt embeddings (CLIP's
        prompt ensembling); ``"max"``: the class similarity is that of its closest prompt.
    temperature : float or "auto"
        ``"auto"``: fitted by NLL on labeled items passed to :meth:`fit`, else the encoder's
        ``default_temperature`` (or :data:`DEFAULT_TEMPERATURE`). A float fixes it.
    batch_size, cache_dir, progress : see :class:`EmbeddingLabeler`.

    Attributes
    ----------
    class_embeddings_ : array (K, d) (mean pooling) ; prompt_embeddings_ : array (P, d)
    temperature_ : float

    Examples
    --------
    >>> from labelsieve.labelers.text import HashingTextEncoder
    >>> lab = ZeroShotLabeler(HashingTextEncoder(), classes=["sports", "finance"],
    ...                       prompts={"sports": ["football match goal"], "finance": ["stock market shares"]})
    >>> lab.fit().predict(["a late goal won the football match", "shares fell on the stock market"]).tolist()
    [0, 1]
    """

    def __init__(
        self,
        encoder: Encoder,
        *,
        classes: Sequence[str],
        prompts: dict[str, Sequence[str]] | None = None,
        templates: Sequence[str] = ("{}",),
        pooling: str = "mean",
        temperature: float | str = "auto",
        batch_size: int = 64,
        cache_dir: str | os.PathLike[str] | None = None,
        progress: bool = False,
    ) -> None:
        super().__init__(encoder, batch_size=batch_size, cache_dir=cache_dir, progress=progress)
        self.classes = classes
        self.prompts = prompts
        self.templates = templates
        self.pooling = pooling
        self.temperature = temperature

    @property
    def n_classes(self) -> int:
        return len(self.classes_)

    def fit(
        self, items: Sequence[Any] | None = None, y: np.ndarray | None = None, ids: Sequence[str] | None = None
    ) -> ZeroShotLabeler:
        """Embed the class prompts; with labeled ``items``/``y``, fit the temperature (NLL).

        Parameters
        ----------
        items : sequence, optional — a small verified set.
        y : int array, shape (n,), optional — their class codes.
        ids : their ids (for the cache), optional.
        """
        owner = type(self).__name__
        self._check_base_params()
        check_option("pooling", self.pooling, owner=owner, options=("mean", "max"))
        if not (isinstance(self.temperature, str) and self.temperature == "auto"):
            check_interval("temperature", self.temperature, owner=owner, low=0.0, high=np.inf, closed="neither")  # type: ignore[arg-type]
        self.classes_ = check_classes(self.classes, owner=f"The 'classes' parameter of {owner}")
        texts, codes = build_prompts(self.classes_, self.prompts, tuple(self.templates), owner=owner)
        encoder = self._resolve_encoder()
        P = l2_normalize(np.asarray(encoder.encode_prompts(texts), dtype=np.float32))
        self.prompt_texts_, self.prompt_class_, self.prompt_embeddings_ = texts, codes, P
        K = len(self.classes_)
        self.class_embeddings_ = l2_normalize(np.add.reduceat(P, np.searchsorted(codes, np.arange(K)), axis=0))
        self.temperature_ = (
            float(self.temperature) if not isinstance(self.temperature, str)
            else float(getattr(encoder, "default_temperature", DEFAULT_TEMPERATURE))
        )
        if (items is None) != (y is None):
            raise InputError(f"{owner}.fit: pass both items and y (a verified set), or neither.")
        if items is not None and self.temperature == "auto":
            from labelsieve.confidence.temperature import fit_temperature

            y_arr = np.asarray(y)
            if y_arr.shape != (len(items),) or not np.issubdtype(y_arr.dtype, np.integer):
                raise InputError(f"{owner}.fit: y must be {len(items)} integer class codes; got shape {y_arr.shape}.")
            if len(y_arr) and (y_arr.min() < 0 or y_arr.max() >= K):
                r = int(np.flatnonzero((y_arr < 0) | (y_arr >= K))[0])
                raise InputError(f"{owner}.fit: y[{r}] = {y_arr[r]} is not a class code in [0, {K}).")
            cos = self._similarity(self.embed(items, ids))
            self.temperature_ = fit_temperature(cos, y_arr)  # Guo et al. 2017, Sec. 4.2, on cos
        return self

    def _similarity(self, E: np.ndarray) -> np.ndarray:
        # cosine_logits at T = 1, with the (already unit) class/prompt embeddings not renormalised
        P = self.class_embeddings_ if self.pooling == "mean" else self.prompt_embeddings_
        sim = (l2_normalize(E) @ P.T).astype(np.float64)
        if self.pooling == "mean":
            return sim
        return pool_prompt_similarities(sim, self.prompt_class_, len(self.classes_), "max")

    def _logits(self, E: np.ndarray) -> np.ndarray:
        NotFittedError.check(self, "class_embeddings_")
        return self._similarity(E) / self.temperature_
