"""``labelsieve detect import|label|evaluate|thresholds|audit|export``: boxes and masks.

Inputs everywhere: a COCO JSON (ground truth, or results with ``--images GT.json``), a YOLO labels
folder (with ``--images`` for the sizes), or a directory written by ``detect import``.

Boxes in a project (reviewed in the web app's /boxes page): ``detect init`` (a project whose items
are the images of a folder), ``detect add`` (proposed boxes into it), ``detect accept``
(auto-accept by per-class thresholds), ``detect export-project`` (the reviewed boxes as COCO/YOLO).
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

logger = logging.getLogger(__name__)


def _inputs(p: argparse.ArgumentParser) -> None:
    p.add_argument("--images", metavar="IMAGES",
                   help="what lists the images and categories: a COCO ground-truth JSON, an image folder, "
                        "or a detections directory (needed for COCO results and YOLO folders)")
    p.add_argument("--classes", metavar="CLASSES.txt", help="YOLO class names, one per line")
    p.add_argument("--clip", action="store_true", help="clip boxes that leave the image instead of failing")


def register(sub: argparse._SubParsersAction, bench: argparse._SubParsersAction) -> None:
    p = sub.add_parser("detect", help="boxes and masks: import, label, evaluate, thresholds, audit, export",
                       description=__doc__)
    dsub = p.add_subparsers(dest="detect_command", metavar="ACTION")
    p.set_defaults(func=lambda a: p.print_help() or 2)

    q = dsub.add_parser("import", help="COCO JSON / YOLO txt -> a labelsieve detections directory",
                        description="Read boxes (and COCO RLE/polygon masks), validate them against their "
                                    "images and categories, and save them as OUT/ (boxes.parquet, "
                                    "images.parquet, categories.json).")
    q.add_argument("source", type=Path, metavar="SOURCE")
    _inputs(q)
    q.add_argument("--out", type=Path, required=True, metavar="OUT_DIR")
    q.set_defaults(func=_import)

    e = dsub.add_parser("evaluate", help="COCO AP/AR, per-class P/R/F1, confusion, PR curves",
                        description="Evaluate predictions against ground truth: COCO-style AP (IoU "
                                    ".50:.95), AP50, AP75, AR@100, per-class precision/recall/F1 at "
                                    "--score-threshold, a class confusion table at IoU 0.5, PR curves (PNG).")
    e.add_argument("--gt", type=Path, required=True)
    e.add_argument("--pred", type=Path, required=True)
    _inputs(e)
    e.add_argument("--score-threshold", type=float, default=0.0)
    e.add_argument("--out-dir", type=Path, help="write per_class.csv, confusion.csv, pr_curves.png here")
    e.set_defaults(func=_evaluate)

    t = dsub.add_parser("thresholds", help="per-class score thresholds on a verified set",
                        description="Choose per-class score thresholds on verified images (those in --gt): "
                                    "'guarantee' (precision of accepted boxes >= 1-epsilon with probability "
                                    ">= 1-delta), 'best-f1', or 'recall' (target recall). The report shows "
                                    "all three and the recall the guarantee costs.")
    t.add_argument("--gt", type=Path, required=True, help="ground truth of the verified images")
    t.add_argument("--pred", type=Path, required=True, help="predictions (on at least the verified images)")
    _inputs(t)
    t.add_argument("--method", choices=("guarantee", "best-f1", "recall"), default="guarantee")
    t.add_argument("--epsilon", type=float, default=0.05)
    t.add_argument("--delta", type=float, default=0.05)
    t.add_argument("--target-recall", type=float, default=0.9)
    t.add_argument("--iou", type=float, default=0.5)
    t.add_argument("--scope", choices=("per-class", "global"), default="per-class")
    t.add_argument("--bound", default="clopper-pearson")
    t.add_argument("--out", type=Path, required=True, metavar="REPORT.csv")
    t.add_argument("--sweep", type=Path, metavar="SWEEP.csv", help="precision/recall/box counts at 0.2..0.5")
    t.add_argument("--apply", type=Path, metavar="PRED", help="predictions to auto-label with the thresholds")
    t.add_argument("--accepted", type=Path, metavar="OUT_DIR", help="save the accepted boxes of --apply here")
    t.set_defaults(func=_thresholds)

    a = dsub.add_parser("audit", help="audit the box-precision guarantee over many seeds (synthetic)",
                        description="Synthetic scenes + a simulated over-confident detector: per seed, fit "
                                    "thresholds on a verified set and measure precision on a large pool.")
    a.add_argument("--seeds", type=int, default=100)
    a.add_argument("--epsilon", type=float, default=0.1)
    a.add_argument("--delta", type=float, default=0.1)
    a.add_argument("--verified-images", type=int, default=300)
    a.add_argument("--pool-images", type=int, default=20000)
    a.add_argument("--overconfidence", type=float, default=2.0)
    a.add_argument("--scope", choices=("per-class", "global"), default="per-class")
    a.add_argument("--seed", type=int, default=0)
    a.add_argument("--out", type=Path, metavar="AUDIT.csv")
    a.set_defaults(func=_audit)

    lb = dsub.add_parser("label", help="run a local detector (and SAM) over an image folder",
                         description="Detect CLASSES in every image of IMAGES_DIR with a local transformers "
                                     "checkpoint (OWL-ViT, OWLv2 or Grounding DINO); optionally add one SAM mask "
                                     "per box. Resumable with --cache. Saves a detections directory.")
    lb.add_argument("images_dir", type=Path, metavar="IMAGES_DIR")
    lb.add_argument("--model", type=Path, required=True, metavar="MODEL_DIR")
    lb.add_argument("--kind", choices=("owlvit", "owlv2", "grounding-dino"), required=True)
    lb.add_argument("--classes", required=True, help="comma-separated class names")
    lb.add_argument("--score-threshold", type=float, default=0.1)
    lb.add_argument("--batch-size", type=int, default=4)
    lb.add_argument("--sam", type=Path, metavar="SAM_DIR", help="a local SamModel checkpoint: add masks")
    lb.add_argument("--cache", type=Path, metavar="CACHE_DIR", help="finished batches are kept here (resume)")
    lb.add_argument("--device", default="cpu")
    lb.add_argument("--out", type=Path, required=True, metavar="OUT_DIR")
    lb.set_defaults(func=_label)

    x = dsub.add_parser("export", help="write COCO JSON (boxes + RLE masks) or YOLO txt",
                        description="Export boxes: --format coco (ground truth JSON, or a results list "
                                    "for predictions) or yolo (a folder of txt files + classes.txt).")
    x.add_argument("source", type=Path, metavar="SOURCE")
    _inputs(x)
    x.add_argument("--format", choices=("coco", "yolo"), required=True)
    x.add_argument("--out", type=Path, required=True)
    x.add_argument("--overwrite", action="store_true")
    x.set_defaults(func=_export)

    pi = dsub.add_parser("init", help="create a project whose items are the images of a folder (for box review)",
                         description="Create a labelsieve project from IMAGES_DIR (every image file, flat or in "
                                     "sub-folders) with the detection classes as the project's classes.")
    pi.add_argument("dir", type=Path, metavar="PROJECT")
    pi.add_argument("images_dir", type=Path, metavar="IMAGES_DIR")
    pi.add_argument("--classes", required=True, help="comma-separated class names, or a classes.txt file")
    pi.add_argument("--name", help="project name (default: the folder's)")
    pi.set_defaults(func=_project_init)

    ad = dsub.add_parser("add", help="put proposed boxes (a detector's, or a COCO/YOLO file) into a project",
                         description="Store the boxes of PREDICTIONS (COCO JSON, YOLO folder or detections "
                                     "directory) as proposals on the project's image items, matched by item id "
                                     "or file name; categories are matched to the project classes by name. "
                                     "Importing the same boxes twice adds nothing.")
    ad.add_argument("dir", type=Path, metavar="PROJECT")
    ad.add_argument("predictions", type=Path, metavar="PREDICTIONS")
    _inputs(ad)
    ad.add_argument("--format", choices=("auto", "coco", "yolo", "saved"), default="auto",
                    help="what PREDICTIONS is (default: from the path)")
    ad.add_argument("--who", help="the detector or file recorded on the boxes (default: the file name)")
    ad.add_argument("--source", choices=("model", "import", "human"), default="import")
    ad.set_defaults(func=_project_add)

    ac = dsub.add_parser("accept", help="auto-accept a project's boxes whose score passes their class threshold",
                         description="Write an automatic 'accept' event (with the box's score and the threshold) "
                                     "for every box whose score is >= its class's threshold. THRESHOLDS: the "
                                     "report of `detect thresholds --out` (column chosen by --method) or a JSON "
                                     "{class: threshold}. Review decisions keep precedence over these events.")
    ac.add_argument("dir", type=Path, metavar="PROJECT")
    ac.add_argument("--thresholds", type=Path, required=True, metavar="FILE")
    ac.add_argument("--method", choices=("guarantee", "best-f1", "recall"), default="guarantee")
    ac.add_argument("--who", help="recorded on the events (default: thresholds:<method>:<file name>)")
    ac.add_argument("--proposer", help="the detector (the `who` of `detect add`) whose boxes the thresholds were "
                    "fitted on; required when several detectors proposed boxes")
    ac.set_defaults(func=_project_accept)

    xp = dsub.add_parser("export-project", help="export a project's reviewed boxes as COCO JSON or YOLO txt",
                         description="Accepted and relabeled boxes (final class), rejected ones dropped; every "
                                     "image boxes were proposed on is listed. Missing boxes are drawn in an "
                                     "annotation tool (CVAT, Label Studio) on this export.")
    xp.add_argument("dir", type=Path, metavar="PROJECT")
    xp.add_argument("--format", choices=("coco", "yolo"), required=True)
    xp.add_argument("--out", type=Path, required=True)
    xp.add_argument("--include-pending", action="store_true", help="also the boxes nobody decided about")
    xp.add_argument("--overwrite", action="store_true")
    xp.set_defaults(func=_project_export)


def _load(path: Path, args: argparse.Namespace):
    from labelsieve.detect import load_detections

    return load_detections(path, images=args.images, classes=args.classes,
                           outside="clip" if args.clip else "error")


def _import(args: argparse.Namespace) -> int:
    d = _load(args.source, args)
    d.save(args.out)
    kind = "predictions" if d.is_prediction else "boxes"
    print(f"imported {len(d)} {kind} on {len(d.images)} images, {len(d.categories)} categories"
          f"{', with masks' if d.has_masks else ''} -> {args.out}")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from labelsieve.detect import coco_evaluate, confusion_at_iou, plot_pr_curves
    from labelsieve.detect.thresholds import prf_per_class

    gt = _load(args.gt, args)
    args.images = args.images or str(args.gt)
    pred = _load(args.pred, args)
    res = coco_evaluate(pred, gt)
    prf = prf_per_class(pred, gt, score_threshold=args.score_threshold)
    pc = res["per_class"].merge(prf[["category_id", "precision", "recall", "f1"]], on="category_id")
    print(f"AP {res['AP']:.4f}  AP50 {res['AP50']:.4f}  AP75 {res['AP75']:.4f}  AR@100 {res['AR']:.4f}")
    print(pc.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    if args.out_dir:
        from labelsieve._atomic import atomic_write_text

        args.out_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(args.out_dir / "per_class.csv", pc.to_csv(index=False))
        atomic_write_text(args.out_dir / "confusion.csv",
                          confusion_at_iou(pred, gt, score_threshold=args.score_threshold).to_csv())
        atomic_write_text(args.out_dir / "summary.json",
                          json.dumps({k: res[k] for k in ("AP", "AP50", "AP75", "AR")}, indent=1))
        plot_pr_curves(pred, gt, str(args.out_dir / "pr_curves.png"))
        print(f"wrote per_class.csv, confusion.csv, summary.json, pr_curves.png to {args.out_dir}")
    return 0


def _thresholds(args: argparse.Namespace) -> int:
    from labelsieve._atomic import atomic_write_text
    from labelsieve.detect import BoxThresholds, threshold_sweep

    gt = _load(args.gt, args)
    args.images = args.images or str(args.gt)
    pred = _load(args.pred, args)
    bt = BoxThresholds(method=args.method, epsilon=args.epsilon, delta=args.delta,
                       target_recall=args.target_recall, iou_threshold=args.iou, scope=args.scope,
                       bound=args.bound).fit(pred, gt)
    rep = bt.report_
    atomic_write_text(args.out, rep.to_csv(index=False))
    cols = ["class", "n_gt", "n_pred", "threshold_guarantee", "precision_guarantee", "recall_guarantee",
            "threshold_best_f1", "precision_best_f1", "recall_best_f1", "recall_cost"]
    print(f"every rule is reported; the *_guarantee columns: precision >= {1 - args.epsilon:g} with probability "
          f">= {1 - args.delta:g} ({args.bound}, {args.scope}, delta per class {bt.delta_per_class_:.3g}); "
          "recall_cost = recall at best F1 minus recall at the guarantee (negative: the guarantee keeps more)")
    print(rep[cols].to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    for _, r in rep[rep["reason"].notna()].iterrows():
        print(f"  {r['class']}: no guaranteed threshold: {r['reason']}")
    if args.sweep:
        atomic_write_text(args.sweep, threshold_sweep(pred, gt, iou_threshold=args.iou).to_csv(index=False))
    if args.apply:
        pool = _load(args.apply, args)
        keep = bt.accept(pool)
        print(f"auto-accepted {int(keep.sum())} of {len(pool)} boxes in {args.apply} ({args.method} thresholds)")
        if args.accepted:
            pool.select(keep).save(args.accepted)
    return 0


def _audit(args: argparse.Namespace) -> int:
    from labelsieve._atomic import atomic_write_text
    from labelsieve.experiments.detect_audit import OVERCONFIDENT, audit_box_guarantee

    det = dict(OVERCONFIDENT, overconfidence=args.overconfidence)
    res = audit_box_guarantee(n_seeds=args.seeds, epsilon=args.epsilon, delta=args.delta,
                              n_verified=args.verified_images, n_pool=args.pool_images, detector=det,
                              scope=args.scope, random_state=args.seed)
    s = res.summary
    print(f"{s['n_seeds']} seeds, epsilon={s['epsilon']:g}, delta={s['delta']:g}, "
          f"{s['n_verified_images']} verified images/seed, pool {s['n_pool_images']} images")
    print(f"seeds with a class below precision {1 - args.epsilon:g}: guarantee {s['violation_rate_guarantee']:.3f} "
          f"(allowed {args.delta:g}) | best-F1 {s['violation_rate_best_f1']:.3f} | "
          f"naive score>={1 - args.epsilon:g} {s['violation_rate_naive']:.3f}")
    print(f"mean recall: guarantee {s['mean_recall_guarantee']:.3f} | best-F1 {s['mean_recall_best_f1']:.3f} | "
          f"naive {s['mean_recall_naive']:.3f}; classes without a guaranteed threshold "
          f"{s['share_no_threshold']:.2f}")
    print("PASSED" if s["passed"] else "FAILED")
    if args.out:
        atomic_write_text(args.out, res.table.to_csv(index=False))
    return 0 if s["passed"] else 1


def _label(args: argparse.Namespace) -> int:
    from labelsieve.detect.io_yolo import image_table
    from labelsieve.detect.models import GroundingDinoDetector, Owlv2Detector, OwlViTDetector, SamSegmenter

    kinds = {"owlvit": OwlViTDetector, "owlv2": Owlv2Detector, "grounding-dino": GroundingDinoDetector}
    table = image_table(args.images_dir)
    paths = [args.images_dir / f for f in table["file_name"]]
    classes = [c.strip() for c in args.classes.split(",") if c.strip()]
    det = kinds[args.kind](args.model, classes=classes, score_threshold=args.score_threshold,
                           batch_size=args.batch_size, device=args.device, cache_dir=args.cache)
    dets = det.detect(paths, image_ids=table["image_id"].to_numpy(), file_names=table["file_name"].tolist())
    if args.sam:
        dets = SamSegmenter(args.sam, device=args.device).segment(paths, dets)
    dets.save(args.out)
    print(f"{len(dets)} boxes on {len(table)} images{' with masks' if args.sam else ''} -> {args.out}")
    return 0


def _export(args: argparse.Namespace) -> int:
    from labelsieve.detect import write_coco_gt, write_coco_results, write_yolo

    d = _load(args.source, args)
    if args.format == "yolo":
        write_yolo(d, args.out, overwrite=args.overwrite)
    else:
        if args.out.exists() and not args.overwrite:
            from labelsieve.errors import InputError

            raise InputError(f"{args.out}: already exists (pass --overwrite to replace it).")
        (write_coco_results if d.is_prediction else write_coco_gt)(d, args.out)
    print(f"wrote {len(d)} boxes on {len(d.images)} images as {args.format} -> {args.out}")
    return 0


def _project_init(args: argparse.Namespace) -> int:
    from labelsieve.data import load_image_folder
    from labelsieve.detect.io_yolo import read_classes_file
    from labelsieve.errors import InputError
    from labelsieve.store.project import init_project

    cp = Path(args.classes)
    names = read_classes_file(cp) if cp.is_file() else [c.strip() for c in args.classes.split(",") if c.strip()]
    if len(names) < 2 or len(set(names)) != len(names):
        raise InputError(f"--classes must name at least 2 distinct classes; got {names}")
    ds = load_image_folder(args.images_dir, classes=names)
    p = init_project(args.dir, ds, name=args.name)
    print(f"created project '{p.name}' in {args.dir}: {p.store.n_items()} images, classes {list(p.classes)}")
    return 0


def _project_add(args: argparse.Namespace) -> int:
    from labelsieve.errors import InputError
    from labelsieve.store.boxes import add_detections
    from labelsieve.store.project import Project

    project = Project(args.dir)
    src = args.predictions
    kind = args.format
    if kind != "auto":
        is_saved = src.is_dir() and (src / "boxes.parquet").exists()
        ok = {"coco": src.is_file() and src.suffix.lower() == ".json",
              "yolo": src.is_dir() and not is_saved, "saved": is_saved}[kind]
        if not ok:
            raise InputError(f"{src}: not a {kind} input")
    if src.is_dir() and not (src / "boxes.parquet").exists():  # YOLO: sizes from the project's image folder
        if args.images is None:
            src_dir = project.config.get("source")
            args.images = src_dir if src_dir and Path(src_dir).is_dir() else None
        if args.classes is None and not (src / "classes.txt").exists():
            args.classes = list(project.classes)
    dets = _load(src, args)
    who = args.who or src.name
    n = add_detections(project, dets, who=who, source=args.source)
    print(f"added {n} new boxes of {len(dets)} in {src} ({len(dets.images)} images) to {args.dir} as {who!r}")
    return 0


def _project_accept(args: argparse.Namespace) -> int:
    from labelsieve.store.boxes import auto_accept, thresholds_from_report
    from labelsieve.store.project import Project

    project = Project(args.dir)
    thr = thresholds_from_report(args.thresholds, args.method)
    who = args.who or f"thresholds:{args.method}:{args.thresholds.name}"
    r = auto_accept(project, thr, who=who[:200], proposer=args.proposer)
    shown = ", ".join(f"{k} {v:.3f}" for k, v in thr.items())
    print(f"{args.method} thresholds ({shown}): {r['accepted']} boxes newly auto-accepted, {r['withdrawn']} earlier "
          f"auto-accepts withdrawn (back to pending), {r['unchanged']} passing boxes unchanged (already accepted "
          "at these thresholds, or decided by a reviewer)")
    return 0


def _project_export(args: argparse.Namespace) -> int:
    from labelsieve.detect import write_coco_gt, write_yolo
    from labelsieve.errors import InputError
    from labelsieve.store.boxes import reviewed_detections
    from labelsieve.store.project import Project

    d = reviewed_detections(Project(args.dir), include_pending=args.include_pending)
    if args.format == "yolo":
        write_yolo(d, args.out, scores=False, overwrite=args.overwrite)
    else:
        if args.out.exists() and not args.overwrite:
            raise InputError(f"{args.out}: already exists (pass --overwrite to replace it).")
        write_coco_gt(d, args.out)
    print(f"wrote {len(d)} reviewed boxes on {len(d.images)} images as {args.format} -> {args.out}")
    return 0
