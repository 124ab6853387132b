"""Benchmark: import and evaluate ~100k predicted boxes over 10k images, then choose thresholds.

Ours (labelsieve.detect) beside pycocotools (COCO + COCOeval) on the same COCO JSON files, in one
run: wall time and peak traced memory (tracemalloc: Python and NumPy allocations; pycocotools'
C buffers are not traced) per stage, the ratio, and the AP both give.

    python benchmarks/bench_detect.py                # 10k images, ~100k predictions
    python benchmarks/bench_detect.py --images 2000  # quicker
"""

from __future__ import annotations

import argparse
import contextlib
import io
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np


def timed(fn, *, memory: bool):
    if memory:
        tracemalloc.start()
    t = time.perf_counter()
    out = fn()
    dt = time.perf_counter() - t
    peak = 0
    if memory:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return out, dt, peak / 2**20


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=10_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-memory", action="store_true", help="skip the (slower) tracemalloc pass")
    args = ap.parse_args()

    from labelsieve.detect import (
        BoxThresholds,
        SimulatedDetector,
        coco_evaluate,
        make_scenes,
        read_coco_gt,
        read_coco_results,
        threshold_sweep,
        write_coco_gt,
        write_coco_results,
    )

    gt, _ = make_scenes(args.images, render=False, objects_per_image=(6, 12), grid=(3, 4), random_state=args.seed)
    pred = SimulatedDetector(fp_per_image=1.5, jitter=0.08, random_state=args.seed + 1).predict(gt)
    tmp = Path(tempfile.mkdtemp(prefix="bench_detect_"))
    write_coco_gt(gt, tmp / "gt.json")
    write_coco_results(pred, tmp / "res.json")
    print(f"{len(gt.images)} images, {len(gt)} true boxes, {len(pred)} predicted boxes, "
          f"{len(gt.categories)} classes; files in {tmp}")

    def ours_import():
        g = read_coco_gt(tmp / "gt.json")
        return g, read_coco_results(tmp / "res.json", g)

    def ref_import():
        from pycocotools.coco import COCO

        with contextlib.redirect_stdout(io.StringIO()):
            c = COCO(str(tmp / "gt.json"))
            return c, c.loadRes(str(tmp / "res.json"))

    def ref_eval(cd):
        from pycocotools.cocoeval import COCOeval

        with contextlib.redirect_stdout(io.StringIO()):
            e = COCOeval(cd[0], cd[1], "bbox")
            e.evaluate()
            e.accumulate()
            e.summarize()
        return e

    rows = []
    for memory in ([False] if args.no_memory else [False, True]):
        (g, p), t_imp, m_imp = timed(ours_import, memory=memory)
        res, t_ev, m_ev = timed(lambda g=g, p=p: coco_evaluate(p, g), memory=memory)
        bt, t_thr, m_thr = timed(lambda g=g, p=p: BoxThresholds(epsilon=0.05, delta=0.05).fit(p, g), memory=memory)
        _sw, t_sw, m_sw = timed(lambda g=g, p=p: threshold_sweep(p, g), memory=memory)
        cd, r_imp, rm_imp = timed(ref_import, memory=memory)
        e, r_ev, rm_ev = timed(lambda cd=cd: ref_eval(cd), memory=memory)
        rows.append((memory, t_imp, m_imp, t_ev, m_ev, t_thr, m_thr, t_sw, m_sw, r_imp, rm_imp, r_ev, rm_ev))

    t = rows[0]
    print(f"\n{'stage':<34}{'ours s':>9}{'pycocotools s':>15}{'ratio':>8}")
    print(f"{'import GT + results JSON':<34}{t[1]:>9.2f}{t[9]:>15.2f}{t[9] / t[1]:>7.1f}x")
    print(f"{'evaluate (AP .50:.95, 10 IoUs)':<34}{t[3]:>9.2f}{t[11]:>15.2f}{t[11] / t[3]:>7.1f}x")
    print(f"{'thresholds (3 rules, per class)':<34}{t[5]:>9.2f}{'-':>15}")
    print(f"{'sweep 0.2..0.5':<34}{t[7]:>9.2f}{'-':>15}")
    if len(rows) > 1:
        m = rows[1]
        print(f"\n{'peak traced memory (MiB)':<34}{'ours':>9}{'pycocotools':>15}")
        print(f"{'import':<34}{m[2]:>9.0f}{m[10]:>15.0f}")
        print(f"{'evaluate':<34}{m[4]:>9.0f}{m[12]:>15.0f}")
        print(f"{'thresholds':<34}{m[6]:>9.0f}{'-':>15}")
    print(f"\nAP ours {res['AP']:.6f} vs pycocotools {e.stats[0]:.6f}; AP50 {res['AP50']:.6f} vs {e.stats[1]:.6f}")
    rep = bt.report_
    print(rep[["class", "n_pred", "threshold_guarantee", "precision_guarantee", "recall_guarantee",
               "threshold_best_f1", "recall_best_f1"]].to_string(index=False, float_format=lambda v: f"{v:.3f}"))


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
