"""Auto-labeling boxes and masks: import, match, evaluate, threshold with a guarantee, export.

The internal form is :class:`Detections` (a box table + image table + category names). Import
predictions a detector produced elsewhere (COCO results JSON, YOLO txt) or run a local
transformers detector (:mod:`labelsieve.detect.models`), choose per-class score thresholds on a
verified set (:class:`BoxThresholds`: best F1, recall target, or precision >= 1 - epsilon with
probability >= 1 - delta), evaluate COCO AP (:func:`coco_evaluate`), export COCO JSON / YOLO txt.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd

from labelsieve.detect.boxes import Detections, validate_detections
from labelsieve.detect.io_coco import (
    decode_mask,
    encode_mask,
    encode_masks,
    read_coco,
    read_coco_gt,
    read_coco_results,
    write_coco_gt,
    write_coco_results,
)
from labelsieve.detect.io_yolo import image_table, read_yolo, write_yolo
from labelsieve.detect.match import (
    average_precision,
    coco_evaluate,
    confusion_at_iou,
    iou_matrix,
    match_boxes,
    match_detections,
)
from labelsieve.detect.synthetic import SimulatedDetector, make_scenes
from labelsieve.detect.thresholds import (
    BoxThresholds,
    best_f1_threshold,
    box_outcomes,
    plot_pr_curves,
    pr_table,
    threshold_for_recall,
    threshold_sweep,
)
from labelsieve.errors import InputError

__all__ = [
    "BoxThresholds", "Detections", "SimulatedDetector", "average_precision", "best_f1_threshold",
    "box_outcomes", "coco_evaluate", "confusion_at_iou", "decode_mask", "encode_mask", "encode_masks",
    "image_table", "iou_matrix", "load_detections", "make_scenes", "match_boxes", "match_detections",
    "plot_pr_curves", "pr_table", "read_coco", "read_coco_gt", "read_coco_results", "read_yolo",
    "threshold_for_recall", "threshold_sweep", "validate_detections", "write_coco_gt", "write_coco_results",
    "write_yolo",
]


def load_detections(
    path: str | os.PathLike[str],
    *,
    images: str | os.PathLike[str] | Detections | pd.DataFrame | None = None,
    classes: str | os.PathLike[str] | list[str] | None = None,
    outside: str = "error",
) -> Detections:
    """Load boxes from any supported form, by what ``path`` is.

    * a directory written by :meth:`Detections.save` (``boxes.parquet`` ...);
    * a COCO ground-truth JSON, or a COCO results JSON (``images``: the COCO ground truth or a
      saved Detections directory that lists the images and categories);
    * a folder of YOLO txt files (``images``: an image folder, a COCO JSON, a Detections directory
      or an image table; ``classes``: a ``classes.txt`` or a list; default ``path/classes.txt``).
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: not found.")
    if path.is_dir() and (path / "boxes.parquet").exists():
        return Detections.load(path)
    ref: Detections | None = None
    if isinstance(images, Detections):
        ref = images
    elif images is not None and not isinstance(images, pd.DataFrame):
        ip = Path(images)
        if ip.is_dir() and (ip / "boxes.parquet").exists():
            ref = Detections.load(ip)
        elif ip.is_file() and ip.suffix.lower() == ".json":
            ref = read_coco_gt(ip, outside=outside)
    if path.is_file() and path.suffix.lower() == ".json":
        return read_coco(path, reference=ref, outside=outside)
    if path.is_dir():
        if ref is not None:
            table: pd.DataFrame | str | os.PathLike[str] = ref.images
        elif isinstance(images, pd.DataFrame) or images is not None:
            table = images
        else:
            raise InputError(f"{path}: YOLO labels need image sizes: pass the image folder or a COCO/Detections "
                             "file listing the images (--images).")
        cats: Mapping[int, str] | Sequence[str] | None
        if isinstance(classes, (str, os.PathLike)):
            from labelsieve.detect.io_yolo import read_classes_file

            cats = read_classes_file(classes)
        elif classes is None and ref is not None and not (path / "classes.txt").exists():
            cats = ref.categories
        elif classes is None and ref is not None:
            from labelsieve.detect.io_yolo import read_classes_file

            names = read_classes_file(path / "classes.txt")
            ids = sorted(ref.categories)
            cats = dict(zip(ids, names, strict=False)) if len(ids) == len(names) else names
        else:
            cats = classes
        return read_yolo(path, images=table, categories=cats, outside=outside)
    raise InputError(f"{path}: not a COCO JSON, a YOLO labels folder or a labelsieve detections directory.")
