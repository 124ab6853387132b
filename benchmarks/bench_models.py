"""Fit time and accuracy of labelsieve.models vs scikit-learn references on digits (1000 train points).

Run: ``python benchmarks/bench_models.py``. Prints one row per model: our fit time, the reference's,
their ratio, test accuracies, and for the MLP losses the AUROC of max-softmax confidence for telling
correct from wrong predictions (what TBAL thresholds on).
"""

from __future__ import annotations

import time

from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier as SkMLP
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from labelsieve.models import LogisticRegressionClassifier, MLPClassifier


def _timed(fn):
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def main() -> None:
    X, y = load_digits(return_X_y=True)
    Xtr, Xte, ytr, yte = train_test_split(X, y, train_size=1000, random_state=0, stratify=y)
    epochs = 50
    ref_lr = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    ref_mlp = make_pipeline(StandardScaler(), SkMLP(hidden_layer_sizes=(128,), batch_size=64, max_iter=epochs,
                                                    learning_rate_init=1e-3, alpha=1e-4, random_state=0))
    import warnings

    warnings.filterwarnings("ignore")  # sklearn MLP ConvergenceWarning at a fixed epoch budget
    rows = [("logreg", LogisticRegressionClassifier(n_classes=10, random_state=0), ref_lr, "sklearn LogReg")]
    for loss in ("ce", "squentropy", "crl", "fmfp"):
        ours = MLPClassifier(n_classes=10, loss=loss, epochs=epochs, random_state=0)
        rows.append((f"mlp[{loss}]", ours, ref_mlp, "sklearn MLP (adam)"))
    MLPClassifier(n_classes=10, epochs=1, random_state=0).fit(Xtr[:64], ytr[:64])  # warm up torch
    print(f"{'model':<16}{'ours s':>8}{'ref s':>8}{'ratio':>7}{'ours acc':>10}{'ref acc':>9}{'AUROC':>7}  reference")
    ref_cache: dict[int, tuple[float, float]] = {}
    for name, ours, ref, ref_name in rows:
        _, t_ours = _timed(lambda o=ours: o.fit(Xtr, ytr))
        if id(ref) not in ref_cache:
            _, t_ref = _timed(lambda r=ref: r.fit(Xtr, ytr))
            ref_cache[id(ref)] = (t_ref, float((ref.predict(Xte) == yte).mean()))
        t_ref, acc_ref = ref_cache[id(ref)]
        s = ours.scores(Xte)
        correct = s.predicted == yte
        conf = s.probs.max(axis=1)
        auroc = roc_auc_score(correct, conf) if 0 < correct.sum() < len(correct) else float("nan")
        print(f"{name:<16}{t_ours:>8.2f}{t_ref:>8.2f}{t_ours / t_ref:>7.2f}{correct.mean():>10.4f}"
              f"{acc_ref:>9.4f}{auroc:>7.3f}  {ref_name}")
    print(f"(MLP: hidden=(128,), {epochs} epochs, batch 64, Adam lr 1e-3, wd 1e-4; random_state=0)")


if __name__ == "__main__":
    main()
