"""Synthetic scenes with exact boxes and masks, and a simulated detector.

:func:`make_scenes` places shapes of several classes (square, disk, triangle, diamond) in the
cells of a grid (one object per used cell, so objects never overlap) on textured backgrounds. A
box is the tight box of its object's pixels and the mask is those pixels: both exact.

:class:`SimulatedDetector` turns true boxes into scored predictions with controllable quality and
calibration. Each object yields a candidate with probability ``recall``; the candidate has a
latent quality ``q ~ Beta(a, b)`` (shifted per image by ``image_effect`` on the logit scale) and is
correct with probability ``q``: a correct candidate is the true box with small jitter and the true
class; a wrong one is mislocalised (shifted by half to one box size) or of another class. Extra
background boxes (Poisson(``fp_per_image``) per image) are always wrong, with latent
``q ~ Beta(a, b + 1)``. The reported score is ``expit(overconfidence * logit(q) + bias)``:
``overconfidence = 1, bias = 0`` reports ``q`` (calibrated for object candidates), ``> 1`` pushes
scores towards 0 and 1 (an over-confident detector).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.special import expit, logit

from labelsieve._validation import check_interval, check_positive_int
from labelsieve.detect.boxes import Detections
from labelsieve.errors import ParameterError

SHAPES = ("square", "disk", "triangle", "diamond")


def _rng(random_state: int | np.random.Generator | None) -> np.random.Generator:
    return random_state if isinstance(random_state, np.random.Generator) else np.random.default_rng(random_state)


def shape_masks(kind: np.ndarray, x0: np.ndarray, y0: np.ndarray, w: np.ndarray, h: np.ndarray,
                height: int, width: int) -> np.ndarray:
    """Pixel masks of shapes, shape (n, height, width), all at once.

    ``kind`` indexes :data:`SHAPES`; each shape fills its nominal box ``(x0, y0, w, h)``:
    square = the box, disk = the inscribed ellipse, triangle = apex at top centre, diamond = the
    inscribed rhombus. A pixel belongs to a shape when its centre does.
    """
    yy = np.arange(height)[None, :, None] + 0.5
    xx = np.arange(width)[None, None, :] + 0.5
    x0, y0 = x0[:, None, None], y0[:, None, None]
    w, h = w[:, None, None], h[:, None, None]
    u = (xx - x0) / w  # in [0, 1] inside the box
    v = (yy - y0) / h
    inside = (u >= 0) & (u <= 1) & (v >= 0) & (v <= 1)
    k = kind[:, None, None]
    disk = (2 * u - 1) ** 2 + (2 * v - 1) ** 2 <= 1
    tri = np.abs(2 * u - 1) <= v
    diamond = np.abs(2 * u - 1) + np.abs(2 * v - 1) <= 1
    m = np.where(k == 0, inside, np.where(k == 1, disk, np.where(k == 2, tri, diamond)))
    return m & inside


def masks_to_boxes(masks: np.ndarray) -> np.ndarray:
    """Tight xyxy boxes of binary masks (n, h, w) -> (n, 4); pixel i spans [i, i + 1).

    >>> m = np.zeros((1, 5, 6), bool); m[0, 1:3, 2:5] = True
    >>> masks_to_boxes(m).tolist()
    [[2.0, 1.0, 5.0, 3.0]]
    """
    cols = np.asarray(masks.any(axis=1))
    rows = np.asarray(masks.any(axis=2))
    w, h = masks.shape[2], masks.shape[1]
    x1 = cols.argmax(axis=1)
    x2 = w - cols[:, ::-1].argmax(axis=1)
    y1 = rows.argmax(axis=1)
    y2 = h - rows[:, ::-1].argmax(axis=1)
    return np.stack([x1, y1, x2, y2], axis=1).astype(np.float64)


def texture(height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """A textured RGB background (uint8, (h, w, 3)): random gratings plus pixel noise."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    f = rng.uniform(0.05, 0.4, size=(3, 1, 1))
    th = rng.uniform(0, np.pi, size=(3, 1, 1))
    ph = rng.uniform(0, 2 * np.pi, size=(3, 1, 1))
    g = np.sin(f * (np.cos(th) * xx + np.sin(th) * yy) + ph).sum(axis=0)  # (h, w)
    base = rng.uniform(60, 190, size=3)
    tint = rng.uniform(10, 35, size=3)
    img = base + g[..., None] * tint + rng.normal(0, 8, size=(height, width, 3))
    return np.clip(img, 0, 255).astype(np.uint8)


def make_scenes(
    n_images: int,
    *,
    n_classes: int = 3,
    height: int = 96,
    width: int = 128,
    grid: tuple[int, int] = (3, 4),
    objects_per_image: tuple[int, int] = (1, 6),
    render: bool = True,
    masks: bool = True,
    random_state: int | np.random.Generator | None = None,
    first_image_id: int = 1,
) -> tuple[Detections, list[np.ndarray] | None]:
    """Synthetic images and their exact ground truth.

    Returns
    -------
    gt : Detections — boxes (and RLE masks when ``masks``) of every object; categories 1..K named
        after :data:`SHAPES`.
    images : list of uint8 arrays (height, width, 3), or None when ``render=False`` (then boxes
        are the nominal boxes, without pixel rounding, and no masks).
    """
    check_positive_int("n_images", n_images, owner="make_scenes")
    check_positive_int("n_classes", n_classes, owner="make_scenes", minimum=1)
    if n_classes > len(SHAPES):
        raise ParameterError(f"The 'n_classes' parameter of make_scenes must be <= {len(SHAPES)}. "
                             f"Got {n_classes} instead.")
    lo, hi = objects_per_image
    gr, gc = grid
    if not (1 <= lo <= hi <= gr * gc):
        raise ParameterError(f"The 'objects_per_image' parameter of make_scenes must satisfy "
                             f"1 <= min <= max <= {gr * gc} (grid cells). Got {objects_per_image!r} instead.")
    rng = _rng(random_state)
    counts = rng.integers(lo, hi + 1, size=n_images)
    n = int(counts.sum())
    img_idx = np.repeat(np.arange(n_images), counts)
    # Cells without replacement in each image: rank random keys within the image.
    keys = rng.random((n_images, gr * gc)).argsort(axis=1)
    first = np.repeat(np.cumsum(counts) - counts, counts)
    cell = keys[img_idx, np.arange(n) - first]
    ch, cw = height / gr, width / gc
    bw = rng.uniform(0.45, 0.95, n) * cw
    bh = np.clip(bw * rng.uniform(0.7, 1.4, n), 0.3 * ch, 0.95 * ch)
    x0 = (cell % gc) * cw + rng.uniform(0, 1, n) * (cw - bw)
    y0 = (cell // gc) * ch + rng.uniform(0, 1, n) * (ch - bh)
    kind = rng.integers(0, n_classes, n)
    image_ids = np.arange(first_image_id, first_image_id + n_images, dtype=np.int64)
    images_df = pd.DataFrame({"image_id": image_ids, "file_name": [f"scene_{i:06d}.png" for i in image_ids],
                              "width": width, "height": height})
    cats = {k + 1: SHAPES[k] for k in range(n_classes)}
    boxes = pd.DataFrame({"image_id": image_ids[img_idx], "x1": x0, "y1": y0, "x2": x0 + bw, "y2": y0 + bh,
                          "category_id": kind + 1, "score": np.nan})
    if not render:
        return Detections(boxes, images_df, cats, source="synthetic"), None
    from labelsieve.detect.io_coco import encode_masks

    pics: list[np.ndarray] = []
    rles: list[dict] = []
    xyxy = np.zeros((n, 4))
    starts = np.r_[0, np.cumsum(counts)]
    for i in range(n_images):  # one image at a time: all of its objects are drawn at once
        sl = slice(starts[i], starts[i + 1])
        m = shape_masks(kind[sl], x0[sl], y0[sl], bw[sl], bh[sl], height, width)
        img = texture(height, width, rng)
        color = rng.integers(0, 256, size=(m.shape[0], 3))
        shade = rng.normal(0, 6, size=(height, width, 1))
        fill = (m[..., None] * color[:, None, None, :]).sum(axis=0)
        any_m = np.asarray(m.any(axis=0))[..., None]
        img = np.where(any_m, np.clip(fill + shade, 0, 255), img).astype(np.uint8)
        pics.append(img)
        xyxy[sl] = masks_to_boxes(m)
        if masks:
            rles.extend(encode_masks(m))
    boxes[["x1", "y1", "x2", "y2"]] = xyxy
    if masks:
        boxes["mask"] = pd.Series(rles, dtype=object)
    return Detections(boxes, images_df, cats, source="synthetic"), pics


class SimulatedDetector:
    """A detector simulated from the true boxes (see the module docstring).

    Parameters
    ----------
    recall : float in (0, 1] — chance that an object yields a candidate box.
    quality : (a, b) — Beta parameters of the latent chance a candidate is correct.
    overconfidence : float > 0 — 1 reports the latent chance; > 1 over-confident, < 1 under-confident.
    bias : float — added on the logit scale (shifts every score up when > 0).
    fp_per_image : float >= 0 — mean number of background boxes per image.
    image_effect : float >= 0 — s.d. of a per-image shift of the latent logit (hard vs easy images).
    jitter : float >= 0 — s.d. of a correct box's corner noise, as a fraction of its size.

    >>> gt, _ = make_scenes(20, render=False, random_state=0)
    >>> pred = SimulatedDetector(random_state=0).predict(gt)
    >>> pred.is_prediction, bool((pred.scores > 0).all() and (pred.scores < 1).all())
    (True, True)
    """

    def __init__(self, *, recall: float = 0.9, quality: tuple[float, float] = (6.0, 1.0),
                 overconfidence: float = 1.0, bias: float = 0.0, fp_per_image: float = 0.5,
                 image_effect: float = 0.0, jitter: float = 0.03,
                 random_state: int | np.random.Generator | None = None) -> None:
        self.recall = recall
        self.quality = quality
        self.overconfidence = overconfidence
        self.bias = bias
        self.fp_per_image = fp_per_image
        self.image_effect = image_effect
        self.jitter = jitter
        self.random_state = random_state

    def _check(self) -> None:
        own = "SimulatedDetector"
        check_interval("recall", self.recall, owner=own, low=0.0, high=1.0, closed="right")
        a, b = self.quality
        check_interval("quality[0]", a, owner=own, low=0.0, high=np.inf, closed="neither")
        check_interval("quality[1]", b, owner=own, low=0.0, high=np.inf, closed="neither")
        check_interval("overconfidence", self.overconfidence, owner=own, low=0.0, high=np.inf, closed="neither")
        check_interval("bias", self.bias, owner=own, low=-np.inf, high=np.inf, closed="neither")
        check_interval("fp_per_image", self.fp_per_image, owner=own, low=0.0, high=np.inf, closed="left")
        check_interval("image_effect", self.image_effect, owner=own, low=0.0, high=np.inf, closed="left")
        check_interval("jitter", self.jitter, owner=own, low=0.0, high=1.0, closed="left")

    def predict(self, gt: Detections, random_state: int | np.random.Generator | None = None) -> Detections:
        """Scored predictions for the images of ``gt`` (a Detections with scores)."""
        self._check()
        rng = _rng(self.random_state if random_state is None else random_state)
        a, b = self.quality
        cats = gt.category_ids
        K = len(cats)
        img = gt.images
        n_img = len(img)
        W = img["width"].to_numpy(np.float64)
        H = img["height"].to_numpy(np.float64)
        shift = rng.normal(0, self.image_effect, n_img) if self.image_effect > 0 else np.zeros(n_img)
        # Object candidates.
        pos = pd.Index(img["image_id"].to_numpy()).get_indexer(gt.boxes["image_id"].to_numpy())
        det = rng.random(len(gt)) < self.recall
        box = gt.xyxy[det]
        pos_o = pos[det]
        cls = gt.boxes["category_id"].to_numpy()[det]
        no = len(box)
        q = expit(logit(rng.beta(a, b, no).clip(1e-9, 1 - 1e-9)) + shift[pos_o])
        correct = rng.random(no) < q
        size = np.concatenate([box[:, 2:] - box[:, :2]] * 2, axis=1)
        out = box + rng.normal(0, self.jitter, (no, 4)) * size
        wrong = ~correct
        misloc = wrong & (rng.random(no) < (0.5 if K > 1 else 1.0))
        ang = rng.uniform(0, 2 * np.pi, no)
        mag = rng.uniform(0.5, 1.0, no)
        d = np.stack([np.cos(ang) * mag * size[:, 0], np.sin(ang) * mag * size[:, 1]], axis=1)
        out[misloc] += np.concatenate([d, d], axis=1)[misloc]
        wrong_cls = wrong & ~misloc
        if K > 1:
            other = rng.integers(0, K - 1, no)
            ci = np.searchsorted(cats, cls)
            cls = np.where(wrong_cls, cats[other + (other >= ci)], cls)
        # Background boxes.
        nb = rng.poisson(self.fp_per_image, n_img)
        pos_b = np.repeat(np.arange(n_img), nb)
        m = len(pos_b)
        bw = rng.uniform(0.08, 0.3, m) * W[pos_b]
        bh = rng.uniform(0.08, 0.3, m) * H[pos_b]
        bx = rng.uniform(0, 1, m) * (W[pos_b] - bw)
        by = rng.uniform(0, 1, m) * (H[pos_b] - bh)
        qb = expit(logit(rng.beta(a, b + 1, m).clip(1e-9, 1 - 1e-9)) + shift[pos_b])
        allbox = np.concatenate([out, np.stack([bx, by, bx + bw, by + bh], axis=1)])
        allpos = np.concatenate([pos_o, pos_b])
        allq = np.concatenate([q, qb])
        allcls = np.concatenate([cls, cats[rng.integers(0, K, m)]])
        Wp, Hp = W[allpos], H[allpos]
        allbox = np.stack([allbox[:, 0].clip(0, Wp), allbox[:, 1].clip(0, Hp),
                           allbox[:, 2].clip(0, Wp), allbox[:, 3].clip(0, Hp)], axis=1)
        ok = (allbox[:, 2] - allbox[:, 0] > 1e-6) & (allbox[:, 3] - allbox[:, 1] > 1e-6)
        score = expit(self.overconfidence * logit(allq) + self.bias)
        boxes = pd.DataFrame({"image_id": img["image_id"].to_numpy()[allpos], "x1": allbox[:, 0],
                              "y1": allbox[:, 1], "x2": allbox[:, 2], "y2": allbox[:, 3],
                              "category_id": allcls, "score": score})[ok].reset_index(drop=True)
        return Detections(boxes, img, gt.categories, source="simulated detector")
