"""Detector and segmenter labelers from local checkpoints, through ``transformers``.

* :class:`OwlViTDetector`, :class:`Owlv2Detector`: open-vocabulary detection (one text query per
  class).
* :class:`GroundingDinoDetector`: the classes joined into one caption ``"cat . dog ."``; a box's
  class score is the highest token probability over the tokens of that class's phrase.
* :class:`SamSegmenter`: ``SamModel`` prompted by boxes -> one mask per box (COCO RLE).

Images + class names -> :class:`~labelsieve.detect.boxes.Detections` (xyxy pixels, category ids
1..K in the order of ``classes``, score). Weights load only from a local directory
(``local_files_only=True``; nothing is downloaded); a missing directory is an error naming it.
Detection is batched and resumable: with ``cache_dir``, each finished batch is written atomically
as a Parquet shard keyed by the model, the prompts, the threshold and the batch's image ids; a
re-run reads finished batches back instead of running the model again.

The post-processing is ours (pure NumPy functions below, tested on hand-made outputs), so the box
format does not depend on a transformers version's post-processing helpers.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import expit

from labelsieve._atomic import atomic_write_path
from labelsieve._validation import check_interval, check_positive_int
from labelsieve.detect.boxes import Detections, empty_boxes
from labelsieve.errors import InputError, MissingDependencyError

logger = logging.getLogger(__name__)


# ------------------------------------------------------------------------------- pure functions
def cxcywh_to_xyxy(b: np.ndarray) -> np.ndarray:
    """Normalised centre/size boxes -> corners, last axis 4.

    >>> cxcywh_to_xyxy(np.array([0.5, 0.5, 0.2, 0.4])).tolist()
    [0.4, 0.3, 0.6, 0.7]
    """
    b = np.asarray(b, np.float64)
    half = b[..., 2:] / 2
    return np.concatenate([b[..., :2] - half, b[..., :2] + half], axis=-1)


def owl_postprocess(
    logits: np.ndarray, pred_boxes: np.ndarray, sizes: np.ndarray, *, threshold: float, square_pad: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """OWL-ViT/OWLv2 outputs -> kept boxes.

    Parameters
    ----------
    logits : (B, P, K) — one logit per patch and class query.
    pred_boxes : (B, P, 4) — cxcywh normalised to the model input.
    sizes : (B, 2) — (height, width) of each original image.
    threshold : float — keep boxes whose score (sigmoid of the best class logit) is >= this.
    square_pad : bool — OWLv2 pads images to a square before resizing, so its boxes are relative
        to a (max side x max side) canvas; OWL-ViT resizes without padding.

    Returns
    -------
    batch_index, xyxy (n, 4) in pixels, score (n,), class index (n,)

    >>> lg = np.array([[[2.0, -1.0], [-3.0, -4.0]]]); bx = np.array([[[0.5, 0.5, 0.5, 0.5], [0.1, 0.1, 0.1, 0.1]]])
    >>> b, xyxy, s, c = owl_postprocess(lg, bx, np.array([[100, 200]]), threshold=0.5, square_pad=False)
    >>> b.tolist(), xyxy.tolist(), c.tolist()
    ([0], [[50.0, 25.0, 150.0, 75.0]], [0])
    """
    logits = np.asarray(logits, np.float64)
    cls = logits.argmax(axis=-1)
    score = expit(logits.max(axis=-1))  # (B, P)
    sizes = np.asarray(sizes, np.float64)
    if square_pad:
        side = sizes.max(axis=1)
        scale = np.stack([side, side, side, side], axis=1)
    else:
        scale = np.stack([sizes[:, 1], sizes[:, 0], sizes[:, 1], sizes[:, 0]], axis=1)  # w, h, w, h
    xyxy = cxcywh_to_xyxy(pred_boxes) * scale[:, None, :]
    bi, pi = np.nonzero(score >= threshold)
    return bi, xyxy[bi, pi], score[bi, pi], cls[bi, pi]


def phrase_token_classes(offsets: Sequence[tuple[int, int]], spans: Sequence[tuple[int, int]]) -> np.ndarray:
    """Class index of each token (-1: none) from token character offsets and class phrase spans.

    >>> phrase_token_classes([(0, 0), (0, 3), (4, 5), (6, 9), (10, 11), (0, 0)], [(0, 3), (6, 9)]).tolist()
    [-1, 0, -1, 1, -1, -1]
    """
    off = np.asarray(offsets, np.int64).reshape(-1, 2)
    sp = np.asarray(spans, np.int64).reshape(-1, 2)
    real = off[:, 1] > off[:, 0]
    inside = (off[:, None, 0] >= sp[None, :, 0]) & (off[:, None, 1] <= sp[None, :, 1]) & real[:, None]
    return np.where(inside.any(axis=1), inside.argmax(axis=1), -1)


def grounding_postprocess(
    logits: np.ndarray, pred_boxes: np.ndarray, token_class: np.ndarray, n_classes: int, sizes: np.ndarray, *,
    threshold: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Grounding DINO outputs -> kept boxes.

    A query's score for class k is the highest sigmoid(logit) over the tokens of phrase k; its
    class is the best one. ``logits`` (B, Q, T), ``pred_boxes`` (B, Q, 4) cxcywh normalised to the
    image, ``token_class`` (T',) with T' <= T (tokens past it are padding), ``sizes`` (B, 2) (h, w).
    Returns batch index, xyxy pixels, score, class index.
    """
    logits = np.asarray(logits, np.float64)
    T = min(logits.shape[-1], len(token_class))
    tc = np.asarray(token_class)[:T]
    prob = expit(logits[..., :T])  # (B, Q, T)
    onehot = tc[:, None] == np.arange(n_classes)[None, :]  # (T, K)
    per_class = np.where(onehot[None, None], prob[..., None], 0.0).max(axis=2)  # (B, Q, K)
    cls = per_class.argmax(axis=-1)
    score = per_class.max(axis=-1)
    sizes = np.asarray(sizes, np.float64)
    scale = np.stack([sizes[:, 1], sizes[:, 0], sizes[:, 1], sizes[:, 0]], axis=1)
    xyxy = cxcywh_to_xyxy(pred_boxes) * scale[:, None, :]
    bi, qi = np.nonzero(score >= threshold)
    return bi, xyxy[bi, qi], score[bi, qi], cls[bi, qi]


# ------------------------------------------------------------------------------------ helpers
def _transformers() -> Any:
    try:
        import torch  # noqa: F401
        import transformers
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise MissingDependencyError(
            "detector labelers need torch and transformers: pip install torch==2.13.0 transformers"
        ) from exc
    return transformers


def _check_model_dir(path: str | os.PathLike[str], owner: str) -> Path:
    p = Path(path)
    if not p.is_dir():
        raise InputError(f"{owner}: model directory not found: {p} (weights load only from a local path).")
    if not (p / "config.json").is_file():
        raise InputError(f"{owner}: {p} has no config.json; save the checkpoint with save_pretrained().")
    return p


def load_image(item: Any, where: str) -> np.ndarray:
    """An RGB uint8 array (h, w, 3) from an array, a PIL image or a path (error names the item)."""
    from PIL import Image, UnidentifiedImageError

    if isinstance(item, (str, os.PathLike)):
        try:
            with Image.open(item) as im:
                return np.asarray(im.convert("RGB"))
        except (UnidentifiedImageError, OSError, ValueError) as exc:
            raise InputError(f"{where} ({item}): the image cannot be decoded ({type(exc).__name__}: {exc}).") from exc
    if isinstance(item, Image.Image):
        return np.asarray(item.convert("RGB"))
    arr = np.asarray(item)
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=2)
    if arr.ndim != 3 or arr.shape[2] not in (3, 4) or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise InputError(f"{where}: an image must be (h, w, 3); got shape {arr.shape}.")
    return np.ascontiguousarray(arr[..., :3]).astype(np.uint8, copy=False)


# ----------------------------------------------------------------------------------- detectors
class _Detector:
    """Shared batching, caching and output assembly of the detector labelers."""

    _model_class = ""
    _owner = "Detector"

    def __init__(self, model_path: str | os.PathLike[str], *, classes: Sequence[str],
                 prompts: dict[str, str] | None = None, score_threshold: float = 0.1, batch_size: int = 4,
                 device: str = "cpu", cache_dir: str | os.PathLike[str] | None = None) -> None:
        self.model_path = model_path
        self.classes = classes
        self.prompts = prompts
        self.score_threshold = score_threshold
        self.batch_size = batch_size
        self.device = device
        self.cache_dir = cache_dir

    # -- loading
    def _setup(self) -> None:
        if getattr(self, "model_", None) is not None:
            return
        check_interval("score_threshold", self.score_threshold, owner=self._owner, low=0.0, high=1.0)
        check_positive_int("batch_size", self.batch_size, owner=self._owner)
        cls = [str(c) for c in self.classes]
        if not cls or any(not c.strip() for c in cls) or len(set(cls)) != len(cls):
            raise InputError(f"{self._owner}: classes must be distinct non-empty names; got {cls}.")
        self.classes_ = cls
        self.texts_ = [(self.prompts or {}).get(c, c) for c in cls]
        path = _check_model_dir(self.model_path, self._owner)
        tf = _transformers()
        model_cls = getattr(tf, self._model_class, None)
        if model_cls is None:  # pragma: no cover - depends on the transformers version
            raise MissingDependencyError(f"this transformers ({tf.__version__}) has no {self._model_class}.")
        self.processor_ = tf.AutoProcessor.from_pretrained(path, local_files_only=True)
        self.model_ = model_cls.from_pretrained(path, local_files_only=True).to(self.device).eval()
        cfg = json.dumps({"model": str(Path(path).resolve()), "cls": self._model_class, "texts": self.texts_,
                          "thr": float(self.score_threshold)}, sort_keys=True)
        self.model_key_ = hashlib.sha1(cfg.encode()).hexdigest()[:16]

    def _run_batch(self, imgs: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        raise NotImplementedError

    # -- public
    def iter_detect(self, images: Sequence[Any],
                    image_ids: Sequence[int] | np.ndarray | None = None) -> Iterator[pd.DataFrame]:
        """Yield the box table of each batch (columns of :data:`BOX_COLUMNS`)."""
        self._setup()
        ids = np.arange(1, len(images) + 1) if image_ids is None else np.asarray(image_ids, np.int64)
        if len(ids) != len(images):
            raise InputError(f"{self._owner}: {len(images)} images but {len(ids)} image ids.")
        for lo in range(0, len(images), self.batch_size):  # loop over batches
            bid = ids[lo:lo + self.batch_size]
            shard = None
            if self.cache_dir is not None:
                h = hashlib.sha1((self.model_key_ + ",".join(map(str, bid.tolist()))).encode()).hexdigest()[:20]
                shard = Path(self.cache_dir) / self.model_key_ / f"{h}.parquet"
                if shard.is_file():
                    yield pd.read_parquet(shard)
                    continue
            imgs = [load_image(images[lo + j], f"image {int(bid[j])}") for j in range(len(bid))]
            b, xyxy, score, cls = self._run_batch(imgs)
            sizes = np.array([im.shape[:2] for im in imgs], np.float64)
            H, W = sizes[b, 0], sizes[b, 1]
            xyxy = np.stack([xyxy[:, 0].clip(0, W), xyxy[:, 1].clip(0, H), xyxy[:, 2].clip(0, W),
                             xyxy[:, 3].clip(0, H)], axis=1) if len(b) else np.zeros((0, 4))
            ok = (xyxy[:, 2] > xyxy[:, 0]) & (xyxy[:, 3] > xyxy[:, 1])
            df = pd.DataFrame({"image_id": bid[b], "x1": xyxy[:, 0], "y1": xyxy[:, 1], "x2": xyxy[:, 2],
                               "y2": xyxy[:, 3], "category_id": cls.astype(np.int64) + 1,
                               "score": score.astype(np.float64)})[ok].reset_index(drop=True)
            df["width"] = W[ok].astype(np.int64)
            df["height"] = H[ok].astype(np.int64)
            if shard is not None:
                def write(tmp: str, df: pd.DataFrame = df) -> None:
                    df.to_parquet(tmp, index=False)

                atomic_write_path(shard, write)
            yield df

    def detect(self, images: Sequence[Any], image_ids: Sequence[int] | None = None,
               file_names: Sequence[str] | None = None) -> Detections:
        """Boxes on every image (a :class:`Detections` of predictions; category ids 1..K)."""
        self._setup()
        ids = np.arange(1, len(images) + 1) if image_ids is None else np.asarray(image_ids, np.int64)
        parts = list(self.iter_detect(images, ids))
        boxes = pd.concat(parts, ignore_index=True) if parts else empty_boxes()
        sizes = np.array([self._size(images[i], int(ids[i])) for i in range(len(images))], np.int64).reshape(-1, 2)
        names = ([str(x) if isinstance(x, (str, os.PathLike)) else f"image_{int(i)}" for x, i in zip(images, ids,
                 strict=True)] if file_names is None else list(file_names))
        img = pd.DataFrame({"image_id": ids, "file_name": [Path(n).name for n in names],
                            "width": sizes[:, 1], "height": sizes[:, 0]})
        cats = {k + 1: c for k, c in enumerate(self.classes_)}
        return Detections(boxes.drop(columns=["width", "height"], errors="ignore"), img, cats,
                          source=f"{self._owner}({self.model_path})")

    @staticmethod
    def _size(item: Any, image_id: int) -> tuple[int, int]:
        if isinstance(item, (str, os.PathLike)):
            from PIL import Image

            with Image.open(item) as im:
                return im.size[1], im.size[0]
        return load_image(item, f"image {image_id}").shape[:2]


class OwlViTDetector(_Detector):
    """OWL-ViT (``OwlViTForObjectDetection``) from a local directory; one text query per class.

    Parameters
    ----------
    model_path : local directory with the model and its processor (``save_pretrained``).
    classes : class names (category ids 1..K in this order).
    prompts : optional {class: text query} (default: the class name).
    score_threshold : keep boxes scoring at least this.
    batch_size, device, cache_dir : batching, torch device, resumable cache (see module docstring).
    """

    _model_class = "OwlViTForObjectDetection"
    _owner = "OwlViTDetector"
    _square_pad = False

    def _run_batch(self, imgs):
        import torch

        inputs = self.processor_(text=[self.texts_] * len(imgs), images=imgs, return_tensors="pt")
        with torch.no_grad():
            out = self.model_(**{k: v.to(self.device) for k, v in inputs.items()})
        sizes = np.array([im.shape[:2] for im in imgs])
        return owl_postprocess(out.logits.float().cpu().numpy(), out.pred_boxes.float().cpu().numpy(), sizes,
                               threshold=self.score_threshold, square_pad=self._square_pad)


class Owlv2Detector(OwlViTDetector):
    """OWLv2 (``Owlv2ForObjectDetection``): as :class:`OwlViTDetector`; boxes are relative to the
    square-padded image."""

    _model_class = "Owlv2ForObjectDetection"
    _owner = "Owlv2Detector"
    _square_pad = True


class GroundingDinoDetector(_Detector):
    """Grounding DINO (``GroundingDinoForObjectDetection``) from a local directory.

    The classes (or their prompts) are joined into one caption ``"a . b ."``; parameters as
    :class:`OwlViTDetector`.
    """

    _model_class = "GroundingDinoForObjectDetection"
    _owner = "GroundingDinoDetector"

    def _caption(self) -> tuple[str, list[tuple[int, int]]]:
        parts, spans, pos = [], [], 0
        for t in self.texts_:
            t = t.strip().lower()
            spans.append((pos, pos + len(t)))
            parts.append(t + " .")
            pos += len(t) + 3
        return " ".join(parts), spans

    def _run_batch(self, imgs):
        import torch

        caption, spans = self._caption()
        enc = self.processor_.tokenizer(caption, return_offsets_mapping=True)
        token_class = phrase_token_classes(enc["offset_mapping"], spans)
        inputs = self.processor_(text=[caption] * len(imgs), images=imgs, return_tensors="pt", padding=True)
        with torch.no_grad():
            out = self.model_(**{k: v.to(self.device) for k, v in inputs.items()})
        sizes = np.array([im.shape[:2] for im in imgs])
        return grounding_postprocess(out.logits.float().cpu().numpy(), out.pred_boxes.float().cpu().numpy(),
                                     token_class, len(self.texts_), sizes, threshold=self.score_threshold)


# ----------------------------------------------------------------------------------- segmenter
class SamSegmenter:
    """SAM (``SamModel``) prompted by boxes: one mask per box, stored as COCO RLE.

    Parameters
    ----------
    model_path : local directory with ``SamModel`` and ``SamProcessor`` (``save_pretrained``).
    device : torch device.
    """

    def __init__(self, model_path: str | os.PathLike[str], *, device: str = "cpu") -> None:
        self.model_path = model_path
        self.device = device

    def _setup(self) -> None:
        if getattr(self, "model_", None) is not None:
            return
        path = _check_model_dir(self.model_path, "SamSegmenter")
        tf = _transformers()
        self.processor_ = tf.AutoProcessor.from_pretrained(path, local_files_only=True)
        self.model_ = tf.SamModel.from_pretrained(path, local_files_only=True).to(self.device).eval()

    def segment(self, images: Sequence[Any], dets: Detections) -> Detections:
        """Masks for the boxes of ``dets``; ``images[i]`` is the image of row i of ``dets.images``.

        An image whose size differs from the one ``dets`` lists is an error naming it. Returns a
        copy of ``dets`` with a ``mask`` column (RLE dicts).
        """
        import torch

        from labelsieve.detect.io_coco import encode_masks

        self._setup()
        if len(images) != len(dets.images):
            raise InputError(f"SamSegmenter: {len(images)} images for {len(dets.images)} listed images.")
        masks: list[Any] = [None] * len(dets)
        img_ids = dets.boxes["image_id"].to_numpy()
        order = np.argsort(img_ids, kind="stable")
        cuts = np.searchsorted(img_ids[order], dets.images["image_id"].to_numpy(), side="left")
        ends = np.searchsorted(img_ids[order], dets.images["image_id"].to_numpy(), side="right")
        xyxy = dets.xyxy
        for i, row in enumerate(dets.images.itertuples(index=False)):  # one image per forward pass
            rows = order[cuts[i]:ends[i]]
            if len(rows) == 0:
                continue
            img = load_image(images[i], f"image {row.image_id} '{row.file_name}'")
            if img.shape[:2] != (row.height, row.width):
                raise InputError(f"image {row.image_id} '{row.file_name}' is {img.shape[0]}x{img.shape[1]} (h x w) "
                                 f"but its boxes were made for {row.height}x{row.width}.")
            inputs = self.processor_(images=[img], input_boxes=[xyxy[rows].tolist()], return_tensors="pt")
            with torch.no_grad():
                out = self.model_(**{k: v.to(self.device) for k, v in inputs.items()}, multimask_output=False)
            m = self.processor_.image_processor.post_process_masks(
                out.pred_masks.cpu(), inputs["original_sizes"], inputs["reshaped_input_sizes"])[0]
            m = m[:, 0].numpy().astype(bool)  # (n_boxes, h, w)
            for r, rle in zip(rows, encode_masks(m), strict=True):
                masks[r] = rle
        boxes = dets.boxes.copy()
        boxes["mask"] = pd.Series(masks, dtype=object)
        return Detections(boxes, dets.images, dets.categories, source=dets.source, meta=dict(dets.meta))
