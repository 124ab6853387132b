"""CLIP-style zero-shot image labels from a local checkpoint (Hugging Face ``transformers`` layout).

The checkpoint folder must hold what ``CLIPModel.save_pretrained`` and
``CLIPProcessor.save_pretrained`` write (``config.json``, the weights, the tokenizer and the
image-processor files). Nothing is ever downloaded: loading uses ``local_files_only=True`` and a
missing folder or file raises :class:`~labelsieve.errors.InputError` naming the path.

Items may be image file paths, PIL images, or uint8 arrays of shape (H, W) or (H, W, 3);
an unreadable image raises :class:`InputError` naming its id and path. The zero-shot temperature
defaults to the checkpoint's own ``1 / exp(logit_scale)``.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from labelsieve.errors import InputError, MissingDependencyError, ParameterError
from labelsieve.labelers.base import ZeroShotLabeler, l2_normalize, register_encoder, register_labeler

#: Prompt templates of CLIP-style image labeling.
IMAGE_TEMPLATES = ("a photo of a {}.", "a picture of a {}.")


def _torch_transformers() -> tuple[Any, Any, Any]:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    try:
        import torch
        from transformers import CLIPModel, CLIPProcessor
    except ImportError as exc:
        raise MissingDependencyError(
            "The CLIP labeler needs torch and transformers: pip install torch==2.13.0 transformers"
        ) from exc
    return torch, CLIPModel, CLIPProcessor


def _to_rgb(item: Any, id_: str) -> Any:
    from PIL import Image, UnidentifiedImageError

    if isinstance(item, Image.Image):
        return item.convert("RGB")
    if isinstance(item, (str, os.PathLike)):
        p = Path(item)
        if not p.exists():
            raise InputError(f"image {id_!r}: file {p} not found.")
        try:
            with Image.open(p) as im:
                return im.convert("RGB")
        except (UnidentifiedImageError, OSError, ValueError) as exc:
            raise InputError(f"image {id_!r}: cannot decode {p}: {exc}".splitlines()[0]) from exc
    arr = np.asarray(item)
    if arr.dtype != np.uint8 or arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (1, 3, 4)):
        raise InputError(
            f"image {id_!r}: expected a path, a PIL image or a uint8 array (H, W[, 1|3|4]); "
            f"got {type(item).__name__} dtype={getattr(arr, 'dtype', None)} shape={getattr(arr, 'shape', None)}."
        )
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    return Image.fromarray(arr).convert("RGB")


@register_encoder("clip", arg="PATH")
class CLIPEncoder:
    """Image and text towers of a local CLIP checkpoint (loaded lazily, CPU by default).

    Parameters
    ----------
    path : str or path — the checkpoint folder.
    device : str
    """

    _decoded: list[Any]
    _decoded_for: list[int] | None

    def __init__(self, path: str | os.PathLike[str], *, device: str = "cpu") -> None:
        self.path = path
        self.device = device

    def _check_path(self) -> Path:
        p = Path(self.path)
        if not p.is_dir():
            raise InputError(f"CLIP model path {p} does not exist or is not a folder (nothing is downloaded).")
        if not (p / "config.json").exists():
            raise InputError(f"CLIP model path {p} has no config.json; save the model with CLIPModel.save_pretrained.")
        if not any((p / f).exists() for f in ("model.safetensors", "pytorch_model.bin", "model.safetensors.index.json")):
            raise InputError(f"CLIP model path {p} has no weights (model.safetensors or pytorch_model.bin).")
        return p

    @property
    def model_id(self) -> str:
        p = self._check_path().resolve()
        sig = hashlib.sha1((p / "config.json").read_bytes()).hexdigest()[:10]
        w = next(f for f in (p / "model.safetensors", p / "pytorch_model.bin", p / "model.safetensors.index.json")
                 if f.exists())
        return f"clip:{p}:{sig}:{w.stat().st_size}"

    def _load(self) -> tuple[Any, Any]:
        if not hasattr(self, "model_"):
            p = self._check_path()
            torch, CLIPModel, CLIPProcessor = _torch_transformers()
            try:
                model = CLIPModel.from_pretrained(str(p), local_files_only=True)
                proc = CLIPProcessor.from_pretrained(str(p), local_files_only=True)
            except (OSError, ValueError) as exc:
                raise InputError(f"CLIP model path {p}: cannot load the model or its processor: {exc}".splitlines()[0]) from exc
            self.model_ = model.to(self.device).eval()
            self.processor_ = proc
            self.default_temperature = float(1.0 / torch.exp(model.logit_scale.detach()).item())
        return self.model_, self.processor_

    @staticmethod
    def _features(out: Any) -> np.ndarray:
        t = out if hasattr(out, "detach") else out.pooler_output  # transformers < 5 returned the tensor
        return l2_normalize(t.detach().cpu().numpy())

    def check_items(self, items: Sequence[Any], ids: Sequence[str], offset: int = 0) -> None:
        self._decoded = [_to_rgb(it, i) for it, i in zip(items, ids)]
        self._decoded_for = [id(it) for it in items]

    def encode_items(self, items: Sequence[Any]) -> np.ndarray:
        import torch

        model, proc = self._load()
        if getattr(self, "_decoded_for", None) == [id(it) for it in items]:
            images = self._decoded  # decoded (and checked) by check_items just before
        else:
            images = [_to_rgb(it, str(i)) for i, it in enumerate(items)]
        self._decoded, self._decoded_for = [], None
        with torch.no_grad():
            pix = proc.image_processor(images=images, return_tensors="pt")["pixel_values"].to(self.device)
            return self._features(model.get_image_features(pixel_values=pix))

    def encode_prompts(self, prompts: Sequence[str]) -> np.ndarray:
        import torch

        model, proc = self._load()
        with torch.no_grad():
            tok = proc.tokenizer(list(prompts), padding=True, truncation=True, return_tensors="pt")
            tok = {k: v.to(self.device) for k, v in tok.items()}
            return self._features(model.get_text_features(**tok))


@register_labeler("clip")
class CLIPLabeler(ZeroShotLabeler):
    """Zero-shot image labels from a local CLIP checkpoint.

    Parameters
    ----------
    path : str or path — checkpoint folder (see the module docstring).
    classes : sequence of str
    prompts : dict class -> descriptions, optional
    templates : default :data:`IMAGE_TEMPLATES`
    pooling, temperature, batch_size, cache_dir, progress : see :class:`ZeroShotLabeler`;
        ``temperature="auto"`` without a verified set uses the checkpoint's logit scale.
    device : str
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        classes: Sequence[str],
        prompts: dict[str, Sequence[str]] | None = None,
        templates: Sequence[str] = IMAGE_TEMPLATES,
        pooling: str = "mean",
        temperature: float | str = "auto",
        batch_size: int = 32,
        cache_dir: str | os.PathLike[str] | None = None,
        progress: bool = False,
        device: str = "cpu",
    ) -> None:
        super().__init__(
            None, classes=classes, prompts=prompts, templates=templates, pooling=pooling,  # type: ignore[arg-type]
            temperature=temperature, batch_size=batch_size, cache_dir=cache_dir, progress=progress,
        )
        self.path = path
        self.device = device

    def _resolve_encoder(self) -> Any:
        key = (str(self.path), self.device)
        if getattr(self, "_encoder_key", None) != key:
            self._encoder_obj, self._encoder_key = CLIPEncoder(self.path, device=self.device), key
        return self._encoder_obj

    def fit(self, items: Sequence[Any] | None = None, y: np.ndarray | None = None,
            ids: Sequence[str] | None = None) -> CLIPLabeler:
        if not isinstance(self.device, str) or not re.fullmatch(r"cpu|mps|cuda(:\d+)?", self.device):
            raise ParameterError(f"The 'device' parameter of {type(self).__name__} must be 'cpu', 'cuda', 'cuda:N' "
                                 f"or 'mps'. Got {self.device!r} instead.")
        self._resolve_encoder()._load()  # a missing path fails here, before anything else
        super().fit(items, y, ids)
        return self
