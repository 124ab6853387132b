"""Aggregators: hand-computed cases, GTX = exact Bayes posterior, Dawid-Skene recovery, shared suite."""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.exceptions import ConvergenceWarning

from labelsieve.crowd import (
    GTX,
    DawidSkene,
    MajorityVote,
    OneCoinDawidSkene,
    SoftVote,
    WeightedMajorityVote,
    encode_table,
)
from labelsieve.errors import InputError, ParameterError


def table(rows):
    return pd.DataFrame(rows, columns=["task", "worker", "label"])


ACC = {"a": 0.9, "b": 0.6, "c": 0.2, "z": 0.8}

ALL = {
    "mv": lambda **kw: MajorityVote(**kw),
    "wmv": lambda **kw: WeightedMajorityVote(accuracies=ACC, **kw),
    "sv": lambda **kw: SoftVote(accuracies=ACC, **kw),
    "gtx": lambda **kw: GTX(accuracies=ACC, **kw),
    "ds": lambda **kw: DawidSkene(**kw),
    "onecoin": lambda **kw: OneCoinDawidSkene(**kw),
}


# ---------------------------------------------------------------- hand-computed cases
def test_majority_vote_hand_cases_with_tie_and_single_label():
    df = table([(1, "a", "x"), (1, "b", "y"), (1, "c", "y"),  # 2-1 for y
                (2, "a", "x"), (2, "b", "y"),                 # tie -> lowest class 'x'
                (3, "c", "y")])                               # single label
    mv = MajorityVote().fit(df)
    np.testing.assert_allclose(mv.probas_.to_numpy(), [[1 / 3, 2 / 3], [0.5, 0.5], [0, 1]])
    assert mv.labels_.tolist() == ["y", "x", "y"]
    np.testing.assert_allclose(mv.confidence_.to_numpy(), [2 / 3, 0.5, 1.0])
    assert mv.n_labels_.tolist() == [3, 2, 1]
    assert list(mv.probas_.index) == [1, 2, 3]


def test_wmv_hand_case_weights_beat_count():
    # a (0.9) says 1; b (0.6) and c (0.2) say 0 -> weights 0.9 vs 0.8
    df = table([(0, "a", 1), (0, "b", 0), (0, "c", 0), (1, "b", 1)])
    m = WeightedMajorityVote(accuracies=ACC).fit(df)
    np.testing.assert_allclose(m.probas_.to_numpy(), [[0.8 / 1.7, 0.9 / 1.7], [0, 1]])
    assert m.labels_.tolist() == [1, 1]
    assert MajorityVote().fit_predict(df).tolist() == [0, 1]


def test_wmv_tie_goes_to_lowest_class():
    df = table([(0, "a", 1), (0, "x", 0)])
    m = WeightedMajorityVote(accuracies={"a": 0.7, "x": 0.7}).fit(df)
    np.testing.assert_allclose(m.probas_.to_numpy(), [[0.5, 0.5]])
    assert m.labels_.tolist() == [0]


def test_soft_vote_hand_cases_binary_and_multiclass():
    df = table([(0, "a", 0), (0, "b", 1)])
    sv = SoftVote(accuracies={"a": 0.9, "b": 0.6}).fit(df)
    np.testing.assert_allclose(sv.probas_.to_numpy(), [[(0.9 + 0.4) / 2, (0.1 + 0.6) / 2]])
    # K = 3: a (0.7) says 0 -> (.7, .15, .15); b (0.8) says 2 -> (.1, .1, .8)
    df3 = table([(0, "a", 0), (0, "b", 2)])
    sv3 = SoftVote(accuracies={"a": 0.7, "b": 0.8}, classes=[0, 1, 2]).fit(df3)
    np.testing.assert_allclose(sv3.probas_.to_numpy(), [[0.4, 0.125, 0.475]])
    assert sv3.labels_.tolist() == [2]


def test_gtx_hand_cases():
    df = table([("x", "a", 1), ("x", "b", 0), ("x", "c", 0)])
    p = GTX(accuracies={"a": 0.95, "b": 0.7, "c": 0.7}).fit_predict_proba(df)
    one = 0.95 * 0.3 * 0.3
    zero = 0.05 * 0.7 * 0.7
    np.testing.assert_allclose(p.to_numpy(), [[zero / (one + zero), one / (one + zero)]])
    # K = 3, errors spread: a (0.8) says 0, b (0.6) says 1
    df3 = table([(0, "a", 0), (0, "b", 1)])
    p3 = GTX(accuracies={"a": 0.8, "b": 0.6}, classes=[0, 1, 2]).fit_predict_proba(df3).to_numpy()
    raw = np.array([0.8 * 0.2, 0.1 * 0.6, 0.1 * 0.2])
    np.testing.assert_allclose(p3, [raw / raw.sum()])
    # non-uniform prior, one label
    pp = GTX(accuracies={"a": 0.9}, prior=[0.2, 0.8], classes=[0, 1]).fit_predict_proba(table([(0, "a", 0)]))
    np.testing.assert_allclose(pp.to_numpy(), [[0.18 / 0.26, 0.08 / 0.26]])
    # prior as a mapping gives the same
    pm = GTX(accuracies={"a": 0.9}, prior={1: 0.8, 0: 0.2}, classes=[0, 1]).fit_predict_proba(table([(0, "a", 0)]))
    np.testing.assert_allclose(pm.to_numpy(), pp.to_numpy())


def test_gtx_tie_and_extreme_log_space():
    # equal and opposite evidence -> 0.5/0.5 -> lowest class
    df = table([(0, "a", 1), (0, "b", 0)])
    g = GTX(accuracies={"a": 0.8, "b": 0.8}).fit(df)
    np.testing.assert_allclose(g.probas_.to_numpy(), [[0.5, 0.5]])
    assert g.labels_.tolist() == [0]
    # 2000 agreeing labels of accuracy 0.99: a product would underflow, log space does not
    n = 2000
    big = table([(0, f"w{j}", 1) for j in range(n)])
    pb = GTX(accuracies={f"w{j}": 0.99 for j in range(n)}).fit(big)
    assert np.all(np.isfinite(pb.probas_.to_numpy()))
    assert pb.labels_.tolist() == [1] and pb.confidence_.iloc[0] == pytest.approx(1.0)


def test_gtx_unknown_worker_rules():
    df = table([(0, "a", 1), (0, "stranger", 0)])
    only_a = GTX(accuracies={"a": 0.8}, classes=[0, 1]).fit_predict_proba(table([(0, "a", 1)]))
    with_stranger = GTX(accuracies={"a": 0.8}).fit_predict_proba(df)
    np.testing.assert_allclose(only_a.to_numpy(), [[0.2, 0.8]])
    # default: accuracy 0.5 (Beta(1, 1) mean) -> binary label carries no evidence
    np.testing.assert_allclose(with_stranger.to_numpy(), only_a.to_numpy())
    g = GTX(accuracies={"a": 0.8}, unknown_accuracy=0.9).fit(df)
    assert g.skills_["stranger"] == 0.9
    with pytest.raises(InputError, match="worker 'stranger' has no accuracy"):
        GTX(accuracies={"a": 0.8}, unknown_worker="error").fit(df)


# ---------------------------------------------------------------- GTX = exact Bayes by enumeration
def brute_force_posterior(labels: dict[str, int], acc: dict[str, float], prior: np.ndarray) -> np.ndarray:
    """Enumerate the full joint P(Y, answers of every labeler) and condition on the observed answers."""
    k = prior.size
    workers = sorted(labels)
    joint_obs = np.zeros(k)
    for y in range(k):
        for answers in itertools.product(range(k), repeat=len(workers)):
            p = prior[y]
            for w, ans in zip(workers, answers, strict=True):
                p *= acc[w] if ans == y else (1 - acc[w]) / (k - 1)
            if all(ans == labels[w] for w, ans in zip(workers, answers, strict=True)):
                joint_obs[y] += p
    return joint_obs / joint_obs.sum()


@settings(max_examples=40, deadline=None)
@given(
    k=st.integers(2, 3),
    data=st.data(),
)
def test_gtx_equals_enumerated_bayes_posterior(k, data):
    n_workers = data.draw(st.integers(1, 4))
    workers = [f"w{j}" for j in range(n_workers)]
    acc = {w: data.draw(st.floats(0.05, 0.95)) for w in workers}
    prior = np.array(data.draw(st.lists(st.floats(0.1, 1.0), min_size=k, max_size=k)))
    prior = prior / prior.sum()
    rows = []
    for t in range(2):
        who = data.draw(st.lists(st.sampled_from(workers), min_size=1, max_size=n_workers, unique=True))
        rows += [(t, w, data.draw(st.integers(0, k - 1))) for w in who]
    df = table(rows)
    got = GTX(accuracies=acc, prior=prior, classes=list(range(k))).fit_predict_proba(df)
    for t in got.index:
        sub = df[df.task == t]
        expected = brute_force_posterior(dict(zip(sub.worker, sub.label, strict=True)), acc, prior)
        np.testing.assert_allclose(got.loc[t].to_numpy(), expected, rtol=1e-9, atol=1e-12)


# ---------------------------------------------------------------- Dawid-Skene
def simulate_confusions(rng, n_tasks, confusions, prior, per_task):
    n_workers, k, _ = confusions.shape
    truth = rng.choice(k, size=n_tasks, p=prior)
    rows = []
    for i in range(n_tasks):
        for w in rng.choice(n_workers, size=per_task, replace=False):
            rows.append((i, w, rng.choice(k, p=confusions[w, truth[i]])))
    return table(rows), truth


def test_dawid_skene_recovers_known_confusion_matrices():
    rng = np.random.default_rng(3)
    k, n_workers = 3, 8
    conf = np.empty((n_workers, k, k))
    for w in range(n_workers):
        m = rng.dirichlet(np.ones(k), size=k) * 0.4  # asymmetric errors
        conf[w] = m + np.eye(k) * 0.6
        conf[w] /= conf[w].sum(axis=1, keepdims=True)
    prior = np.array([0.5, 0.3, 0.2])
    df, truth = simulate_confusions(rng, 3000, conf, prior, per_task=5)
    ds = DawidSkene().fit(df)
    est = ds.errors_.to_numpy().reshape(n_workers, k, k)
    order = ds.errors_.index.get_level_values("worker").unique().to_numpy()
    # each worker labeled ~1900 tasks: rows of ~1900 * prior multinomial draws -> sd <= ~0.03
    np.testing.assert_allclose(est, conf[order], atol=0.06)
    np.testing.assert_allclose(ds.prior_.to_numpy(), prior, atol=0.03)
    # hard labels as good as those of the true model (Bayes-optimal) up to 1 point
    from scipy import sparse

    from labelsieve.crowd.dawid_skene import ds_e_step
    t = encode_table(df)
    task_by_wl = sparse.csr_matrix((np.ones(t.n_labels), (t.task, t.worker * k + t.label)),
                                   shape=(t.n_tasks, n_workers * k))
    oracle, _ = ds_e_step(task_by_wl, conf[t.workers.to_numpy()], prior)
    truth_t = truth[t.tasks.to_numpy()]
    oracle_acc = (oracle.argmax(axis=1) == truth_t).mean()
    assert (ds.labels_.loc[t.tasks].to_numpy() == truth_t).mean() >= oracle_acc - 0.01
    hist = np.array(ds.loss_history_)
    assert np.all(np.diff(hist) <= 1e-12), "EM must not increase the negative log-likelihood"
    assert ds.n_iter_ == len(hist)


def test_one_coin_recovers_accuracies_and_gtx_is_its_e_step():
    rng = np.random.default_rng(5)
    k, n_workers = 3, 10
    acc = rng.uniform(0.55, 0.95, n_workers)
    conf = np.stack([np.full((k, k), (1 - a) / (k - 1)) + np.eye(k) * (a - (1 - a) / (k - 1)) for a in acc])
    df, _ = simulate_confusions(rng, 2000, conf, np.ones(k) / k, per_task=4)
    oc = OneCoinDawidSkene().fit(df)
    np.testing.assert_allclose(oc.skills_.sort_index().to_numpy(), acc, atol=0.04)
    gtx = GTX(accuracies=oc.skills_, prior=oc.prior_.to_numpy(), classes=list(oc.classes_))
    np.testing.assert_allclose(gtx.fit_predict_proba(df).to_numpy(), oc.probas_.to_numpy(), atol=1e-12)


def test_em_warns_when_not_converged_and_records_iterations():
    rng = np.random.default_rng(0)
    conf = np.stack([np.array([[0.8, 0.2], [0.3, 0.7]])] * 5)
    df, _ = simulate_confusions(rng, 300, conf, np.array([0.5, 0.5]), per_task=3)
    for cls in (DawidSkene, OneCoinDawidSkene):
        with pytest.warns(ConvergenceWarning, match="did not converge in max_iter=2"):
            m = cls(max_iter=2, tol=0.0).fit(df)
        assert m.n_iter_ == 2 and len(m.loss_history_) == 2
        with warnings.catch_warnings():
            warnings.simplefilter("error", ConvergenceWarning)
            m = cls(max_iter=500, tol=1e-6).fit(df)
        assert m.n_iter_ < 500


# ---------------------------------------------------------------- shared suite over all aggregators
@pytest.mark.parametrize("name", sorted(ALL))
def test_empty_table_raises(name):
    with pytest.raises(InputError, match="no rows"):
        ALL[name]().fit(table([]))


@pytest.mark.parametrize("name", sorted(ALL))
def test_missing_column_is_named(name):
    with pytest.raises(InputError, match="missing required column.*label"):
        ALL[name]().fit(pd.DataFrame({"task": [1], "worker": ["a"]}))


@pytest.mark.parametrize("name", sorted(ALL))
def test_single_class(name):
    df = table([(0, "a", "cat"), (0, "b", "cat"), (1, "c", "cat")])
    m = ALL[name]().fit(df)
    assert m.labels_.tolist() == ["cat", "cat"]
    np.testing.assert_allclose(m.probas_.to_numpy(), 1.0)


@pytest.mark.parametrize("name", sorted(ALL))
def test_worker_with_one_label_and_outputs_are_distributions(name):
    df = table([(0, "a", 0), (0, "b", 0), (0, "c", 1), (1, "a", 1), (1, "b", 1), (2, "z", 1)])
    m = ALL[name]().fit(df)
    p = m.probas_.to_numpy()
    np.testing.assert_allclose(p.sum(axis=1), 1.0)
    assert np.all((p >= 0) & (p <= 1))
    assert list(m.probas_.index) == [0, 1, 2] and list(m.probas_.columns) == [0, 1]
    assert m.n_labels_.tolist() == [3, 2, 1]
    # the task labeled once by the one-label worker 'z' gets z's label
    assert m.labels_.loc[2] == 1
    np.testing.assert_allclose(m.confidence_.to_numpy(), p.max(axis=1))


@pytest.mark.parametrize("name", sorted(ALL))
def test_row_order_and_input_untouched(name):
    rng = np.random.default_rng(1)
    df = table([(t, w, int(rng.integers(0, 3))) for t in range(30) for w in "abc"])
    before = df.copy()
    p1 = ALL[name](classes=[0, 1, 2]).fit_predict_proba(df)
    pd.testing.assert_frame_equal(df, before)
    p2 = ALL[name](classes=[0, 1, 2]).fit_predict_proba(df.sample(frac=1, random_state=0))
    np.testing.assert_allclose(p2.loc[p1.index].to_numpy(), p1.to_numpy(), atol=1e-8)


@pytest.mark.parametrize("name", sorted(ALL))
@pytest.mark.parametrize(
    ("rows", "match"),
    [
        ([(0, "a", 0), (0, "b", 5)], r"row 1: label 5 is not one of the declared classes"),
        ([(0, "a", 0), (1, "b", 1), (0, "a", 1)], r"row 2: task 0 was already labeled by worker 'a' \(.*row 0\)"),
        ([(0, "a", 0), (1, None, 1)], r"row 1: missing value in column 'worker'"),
        ([(0, "a", 0), (1, "b", np.nan)], r"row 1: missing value in column 'label'"),
        ([(np.nan, "a", 0)], r"row 0: missing value in column 'task'"),
    ],
    ids=["outside-classes", "duplicate", "nan-worker", "nan-label", "nan-task"],
)
def test_bad_rows_are_named(name, rows, match):
    with pytest.raises(InputError, match=match):
        ALL[name](classes=[0, 1]).fit(table(rows))


@pytest.mark.parametrize("name", sorted(ALL))
@pytest.mark.parametrize(("classes", "match"), [([0, 0], "must not repeat a class"), ([], "at least one class")])
def test_invalid_classes_for_every_aggregator(name, classes, match):
    with pytest.raises(ParameterError, match=match):
        ALL[name](classes=classes).fit(table([(0, "a", 0), (0, "b", 1)]))


INVALID = [
    (lambda: GTX(unknown_worker="guess"), ParameterError, "'unknown_worker' parameter of GTX must be one of"),
    (lambda: GTX(unknown_accuracy=1.0), ParameterError, "'unknown_accuracy' parameter of GTX must be in"),
    (lambda: SoftVote(unknown_worker=None), ParameterError, "'unknown_worker' parameter of SoftVote"),
    (lambda: WeightedMajorityVote(accuracies=[0.9]), ParameterError, "must be a mapping worker"),
    (lambda: GTX(accuracies={"a": 0.9}, prior=[0.3, 0.3], classes=[0, 1]), ParameterError, "sum to 1"),
    (lambda: GTX(accuracies={"a": 0.9}, prior=[1.0], classes=[0, 1]), ParameterError, "one entry per class"),
    (lambda: GTX(accuracies={"a": 0.9}, prior={0: 0.5, 2: 0.5}, classes=[0, 1]), ParameterError, "each class"),
    (lambda: DawidSkene(max_iter=0), ParameterError, "'max_iter' parameter of DawidSkene must be an int >= 1"),
    (lambda: DawidSkene(tol=-1.0), ParameterError, "'tol' parameter of DawidSkene must be in"),
    (lambda: DawidSkene(smoothing=float("nan")), ParameterError, "'smoothing' parameter of DawidSkene"),
    (lambda: OneCoinDawidSkene(max_iter=1.5), ParameterError, "'max_iter' parameter of OneCoinDawidSkene"),
]


@pytest.mark.parametrize(("make", "exc", "match"), INVALID)
def test_invalid_parameters(make, exc, match):
    with pytest.raises(exc, match=match):
        make().fit(table([(0, "a", 0), (0, "b", 1)]))


@pytest.mark.parametrize("cls", [WeightedMajorityVote, SoftVote, GTX])
@pytest.mark.parametrize("bad", [0.0, 1.0, 1.5, -0.1, float("nan"), "high"])
def test_accuracies_outside_open_unit_interval(cls, bad):
    with pytest.raises(ParameterError, match=r"must hold accuracies in \(0, 1\).*worker 'b'"):
        cls(accuracies={"a": 0.9, "b": bad}).fit(table([(0, "a", 0), (0, "b", 1)]))


def test_accuracies_accepted_as_series_and_dataframe():
    df = table([(0, "a", 1), (0, "b", 0), (0, "c", 0)])
    ref = GTX(accuracies=ACC).fit_predict_proba(df)
    s = GTX(accuracies=pd.Series(ACC)).fit_predict_proba(df)
    d = GTX(accuracies=pd.DataFrame({"worker": list(ACC), "accuracy": list(ACC.values())})).fit_predict_proba(df)
    pd.testing.assert_frame_equal(ref, s)
    pd.testing.assert_frame_equal(ref, d)


def test_encode_table_codes_and_declared_class_order():
    t = encode_table(table([("t2", "w", "b"), ("t1", "w", "a"), ("t2", "v", "a")]), classes=["b", "a"])
    assert list(t.tasks) == ["t2", "t1"] and list(t.classes) == ["b", "a"]
    assert t.label.tolist() == [0, 1, 1] and t.labels_per_task().tolist() == [2, 1]
    with pytest.raises(InputError, match="expected a pandas DataFrame"):
        encode_table([("t", "w", "a")])
