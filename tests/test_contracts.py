"""Contract suites, one per family, iterating the registries: a member is tested by being registered.

* aggregators (``labelsieve.crowd.AGGREGATORS``): fit returns self, learned state ends in ``_``,
  reading it before ``fit`` raises NotFittedError, posteriors are distributions whose arg-max is the
  hard label, the engine path (declared block statistics) equals the in-process fit, and relabelling
  classes / workers / tasks permutes the output the same way (hypothesis);
* query strategies (``labelsieve.active.QUERY_STRATEGIES``): ``min(n, m)`` distinct valid pool
  positions; every strategy TBAL can run by name runs in a tiny TBAL, the others are refused;
* confidence functions (``labelsieve.confidence.CONFIDENCE_FUNCTIONS``): fit returns self, learned
  state ends in ``_``, unfitted use raises NotFittedError, confidences in [0, 1], the predicted class
  is the classifier's arg-max;
* labelers (``labelsieve.labelers.LABELERS``): fit returns self, learned state ends in ``_``,
  unfitted scoring raises NotFittedError;
* every constructor parameter of every registered class has a bad value in :data:`BAD_VALUES` that
  raises an error naming the parameter (a parameter without an entry fails the suite).

The end of the file adds a trivial aggregator and a trivial confidence function by registering
them (one class + one decorator line each) and shows the suites and the CLI pick them up.
"""

from __future__ import annotations

import inspect
import os
import sys
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from labelsieve.active import QUERY_STRATEGIES, QueryState
from labelsieve.autolabel.tbal import TBAL
from labelsieve.cli import main
from labelsieve.confidence import CONFIDENCE_FUNCTIONS
from labelsieve.confidence.base import max_softmax
from labelsieve.crowd import AGGREGATORS
from labelsieve.crowd._base import Aggregator
from labelsieve.crowd.distributed import TaskBlock
from labelsieve.data.dataset import Dataset
from labelsieve.errors import InputError, NotFittedError, ParameterError
from labelsieve.labelers import LABELERS, HashingTextEncoder
from labelsieve.models.base import Scores
from labelsieve.models.logreg import LogisticRegressionClassifier

sys.path.insert(0, os.path.dirname(__file__))
from test_labelers import tiny_clip  # noqa: F401  (the tiny local CLIP checkpoint fixture)

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


# ------------------------------------------------------------------------------- bad values
class _NotAnEncoder:
    model_id = "nothing"


#: parameter name -> (bad value, error type, regex the message must match). The regex names the
#: parameter; :class:`InputError` only where the parameter carries data (a validation set).
BAD_VALUES: dict[str, tuple[Any, type[Exception], str]] = {
    # aggregators
    "classes": (["c0", "c0", "c1"], ParameterError, "'classes' parameter"),
    "accuracies": ({"w0": 1.5}, ParameterError, "'accuracies' parameter"),
    "prior": ([0.9, 0.9, 0.9], ParameterError, "'prior' parameter"),
    "unknown_worker": ("ignore", ParameterError, "'unknown_worker' parameter"),
    "unknown_accuracy": (1.5, ParameterError, "'unknown_accuracy' parameter"),
    "max_iter": (0, ParameterError, "'max_iter' parameter"),
    "tol": (-1.0, ParameterError, "'tol' parameter"),
    "smoothing": (-0.5, ParameterError, "'smoothing' parameter"),
    # query strategies
    "oversample": (0, ParameterError, "'oversample' parameter"),
    "n_posterior": (1, ParameterError, "'n_posterior' parameter"),
    "n_configs": (1, ParameterError, "'n_configs' parameter"),
    "C": (-1.0, ParameterError, "'C' parameter"),
    "solver": ("qr", ParameterError, "'solver' parameter"),
    "order": (3, ParameterError, "'order' parameter"),
    "regressor": ("forest", ParameterError, "'regressor' parameter"),
    "X_val": (np.zeros((4, 2)), InputError, "X_val|validation"),
    "y_val": (np.array([0, 1, 9, 1]), InputError, "y_val|validation"),
    # confidence functions
    "lam": (-1.0, ParameterError, "'lam' parameter"),
    "alpha": (0.0, ParameterError, "'alpha' parameter"),
    "lr": (0.0, ParameterError, "'lr' parameter"),
    "weight_decay": (-1.0, ParameterError, "'weight_decay' parameter"),
    "epochs": (0, ParameterError, "'epochs' parameter"),
    "batch_size": (0, ParameterError, "'batch_size' parameter"),
    "epsilon": (1.5, ParameterError, "'epsilon' parameter"),
    "selection_fraction": (1.5, ParameterError, "'selection_fraction' parameter"),
    "use_embeddings": ("yes", ParameterError, "'use_embeddings' parameter"),
    "search": ({"nope": [1]}, ParameterError, "search"),
    "random_state": ("seed", ParameterError, "'random_state' parameter"),
    "reg_lambda": (-1.0, ParameterError, "'reg_lambda' parameter"),
    "reg_mu": (-1.0, ParameterError, "'reg_mu' parameter"),
    "parametrization": ("diagonal-ish", ParameterError, "'parametrization' parameter"),
    "n_bins": (0, ParameterError, "'n_bins' parameter"),
    "min_per_bin": (0, ParameterError, "'min_per_bin' parameter"),
    "scaling_fraction": (1.5, ParameterError, "'scaling_fraction' parameter"),
    "tie_break": ("yes", ParameterError, "'tie_break' parameter"),
    # labelers
    "encoder": (_NotAnEncoder(), ParameterError, "'encoder' parameter"),
    "prompts": ({"nope": ["x"]}, InputError, "prompts given for unknown classes"),
    "templates": (("no placeholder",), InputError, "every template must contain"),
    "pooling": ("median", ParameterError, "'pooling' parameter"),
    "temperature": (-1.0, ParameterError, "'temperature' parameter"),
    "cache_dir": (3, ParameterError, "'cache_dir' parameter"),
    "progress": ("yes", ParameterError, "'progress' parameter"),
    "path": ("/nonexistent/tiny-clip", InputError, "/nonexistent/tiny-clip"),
    "device": ("abacus", ParameterError, "'device' parameter"),
}
#: labelers take class *names*: a repeated one is bad data given through 'classes'
LABELER_BAD = {"classes": (["c0", "c0"], InputError, "'classes' parameter")}


def _params(cls: type) -> list[str]:
    return [p.name for p in inspect.signature(cls).parameters.values() if p.kind is not p.VAR_KEYWORD]


def _all_params() -> list[tuple[str, str, str]]:
    out = []
    for reg in (AGGREGATORS, QUERY_STRATEGIES, CONFIDENCE_FUNCTIONS, LABELERS):
        out += [(reg.family, n, p) for n in reg.names() for p in _params(reg[n])]
    return out


def test_every_constructor_parameter_has_a_bad_value():
    missing = sorted({p for _, _, p in _all_params() if p not in BAD_VALUES})
    assert not missing, f"add a bad value for these constructor parameters to BAD_VALUES: {missing}"


# ------------------------------------------------------------------------------- aggregators
def crowd_frame(seed: int, n_tasks: int = 40, n_workers: int = 6, k: int = 3) -> tuple[pd.DataFrame, dict]:
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, k, n_tasks)
    acc = rng.uniform(0.5, 0.95, n_workers)
    per = rng.integers(1, min(4, n_workers) + 1, n_tasks)
    task = np.repeat(np.arange(n_tasks), per)
    worker = np.concatenate([rng.choice(n_workers, m, replace=False) for m in per])
    right = rng.random(task.size) < acc[worker]
    label = np.where(right, truth[task], rng.integers(0, k, task.size))
    df = pd.DataFrame({"task": [f"t{t}" for t in task], "worker": [f"w{w}" for w in worker],
                       "label": [f"c{c}" for c in label]})
    return df, {f"w{w}": float(acc[w]) for w in range(n_workers)}


def make_aggregator(name: str, accs: dict | None, **params: Any) -> Any:
    cls = AGGREGATORS[name]
    if cls.uses_accuracies and "accuracies" not in params:
        params["accuracies"] = accs
    return cls(**params)


AGG_NAMES = AGGREGATORS.names()


@pytest.mark.parametrize("name", AGG_NAMES)
def test_aggregator_contract(name):
    df, accs = crowd_frame(0)
    agg = make_aggregator(name, accs)
    init = set(vars(agg))
    assert init == set(_params(type(agg))), "the constructor stores exactly its parameters"
    with pytest.raises(NotFittedError, match="not fitted"):
        agg.labels_  # noqa: B018
    assert not hasattr(agg, "probas_")  # NotFittedError is an AttributeError: hasattr works
    assert agg.fit(df) is agg
    learned = set(vars(agg)) - init
    assert learned >= {"probas_", "labels_", "confidence_", "n_labels_", "classes_"}
    assert all(a.endswith("_") for a in learned), sorted(learned)
    p = agg.probas_.to_numpy()
    assert p.shape == (df.task.nunique(), 3) and np.all((p >= 0) & (p <= 1))
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-12)
    assert (agg.labels_.to_numpy() == agg.classes_.to_numpy()[p.argmax(axis=1)]).all()
    np.testing.assert_array_equal(agg.confidence_.to_numpy(), p.max(axis=1))


@pytest.mark.parametrize("name", AGG_NAMES)
def test_aggregator_block_statistics_give_the_in_process_fit(name):
    df, accs = crowd_frame(1, n_tasks=60)
    ref = make_aggregator(name, accs).fit(df)
    got = make_aggregator(name, accs).fit(df, engine="local", block_size=13)  # ~10 blocks of whole tasks
    np.testing.assert_allclose(got.probas_.to_numpy(), ref.probas_.to_numpy(), rtol=0, atol=1e-9)
    assert set(vars(got)) == set(vars(ref))


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**16), k=st.integers(2, 4), n_tasks=st.integers(2, 12), n_workers=st.integers(1, 5))
@pytest.mark.parametrize("name", AGG_NAMES)
def test_aggregators_are_relabelling_invariant(name, seed, k, n_tasks, n_workers):
    """Renaming classes, workers and tasks and shuffling the rows permutes the posteriors the same way."""
    df, accs = crowd_frame(seed, n_tasks=n_tasks, n_workers=n_workers, k=k)
    rng = np.random.default_rng(seed + 1)
    cp, wp, tp = rng.permutation(k), rng.permutation(n_workers), rng.permutation(n_tasks)
    cmap = {f"c{c}": f"c{cp[c]}" for c in range(k)}
    wmap = {f"w{w}": f"w{wp[w]}" for w in range(n_workers)}
    tmap = {f"t{t}": f"t{tp[t]}" for t in range(n_tasks)}
    renamed = pd.DataFrame({"task": df.task.map(tmap), "worker": df.worker.map(wmap), "label": df.label.map(cmap)})
    renamed = renamed.sample(frac=1.0, random_state=seed).reset_index(drop=True)
    classes = [f"c{c}" for c in range(k)]  # declared, so a class nobody chose still has a column
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = make_aggregator(name, accs, classes=classes).fit(df).probas_
        got = make_aggregator(name, {wmap[w]: a for w, a in accs.items()}, classes=classes).fit(renamed).probas_
    expected = ref.rename(index=tmap, columns=cmap).reindex(index=got.index, columns=got.columns)
    np.testing.assert_allclose(got.to_numpy(), expected.to_numpy(), rtol=0, atol=1e-7)


@pytest.mark.parametrize(("name", "param"), [(n, p) for n in AGG_NAMES for p in _params(AGGREGATORS[n])])
def test_aggregator_bad_parameter_values(name, param):
    df, accs = crowd_frame(2, n_tasks=10)
    value, exc, match = BAD_VALUES[param]
    kw: dict[str, Any] = {param: value}
    if param == "prior":
        kw["classes"] = ["c0", "c1", "c2"]
    with pytest.raises(exc, match=match):
        make_aggregator(name, accs, **kw).fit(df)


# ------------------------------------------------------------------------------- query strategies
def _gauss(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    means = np.array([[0.0, 0.0], [2.5, 0.0], [1.2, 2.2]])
    y = rng.integers(0, 3, n)
    return means[y] + rng.standard_normal((n, 2)), y


def query_setup(seed: int = 0, m: int = 30) -> tuple[QueryState, dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    X_lab, y_lab = _gauss(40, rng)
    X_pool, _ = _gauss(m, rng)
    X_val, y_val = _gauss(30, rng)
    model = LogisticRegressionClassifier(n_classes=3).fit(X_lab, y_lab)
    state = QueryState(model=model, X_pool=X_pool, pool_scores=model.scores(X_pool), X_labeled=X_lab,
                       y_labeled=y_lab)
    return state, {"X_val": X_val, "y_val": y_val}


def make_strategy(name: str, val: dict[str, np.ndarray], **params: Any) -> Any:
    cls = QUERY_STRATEGIES[name]
    takes = _params(cls)
    kw = {k: v for k, v in val.items() if k in takes}
    if "n_posterior" in takes:  # keep BatchBALD small
        kw |= {"n_posterior": 8, "n_configs": 16}
    if "regressor" in takes:
        from sklearn.tree import DecisionTreeRegressor

        kw["regressor"] = DecisionTreeRegressor(random_state=0)
    return cls(**(kw | params))


STRATEGY_NAMES = QUERY_STRATEGIES.names()


@pytest.mark.parametrize("name", STRATEGY_NAMES)
@pytest.mark.parametrize("n", [0, 1, 7, 30, 45])
def test_query_strategy_returns_distinct_valid_positions(name, n):
    state, val = query_setup(m=30)
    pos = make_strategy(name, val).query(state, n, np.random.default_rng(3))
    assert pos.dtype.kind == "i" and pos.shape == (min(n, 30),)
    assert len(np.unique(pos)) == len(pos) and np.all((pos >= 0) & (pos < 30))


@pytest.mark.parametrize(("name", "param"), [(n, p) for n in STRATEGY_NAMES for p in _params(QUERY_STRATEGIES[n])])
def test_query_strategy_bad_parameter_values(name, param):
    state, val = query_setup(m=20)
    value, exc, match = BAD_VALUES[param]
    with pytest.raises(exc, match=match):
        make_strategy(name, val, **{param: value}).query(state, 3, np.random.default_rng(0))


def _tiny_pool(seed: int = 0, n: int = 240) -> Dataset:
    X, y = _gauss(n, np.random.default_rng(seed))
    return Dataset(ids=[f"p{i}" for i in range(n)], X=3 * X, classes=("a", "b", "c"), y=y, name="gauss")


@pytest.mark.parametrize("name", QUERY_STRATEGIES.names(tbal=True))
def test_every_tbal_strategy_runs_in_tbal_by_name(name, monkeypatch):
    cls = QUERY_STRATEGIES[name]
    calls: list[int] = []
    real = cls.query

    def spy(self: Any, state: QueryState, n: int, rng: np.random.Generator) -> np.ndarray:
        pos = real(self, state, n, rng)
        calls.append(len(pos))
        return pos

    monkeypatch.setattr(cls, "query", spy)
    res = TBAL(model=LogisticRegressionClassifier(n_classes=3), epsilon=0.1, budget=120, rounds=3,
               strategy=name, random_state=0).run(_tiny_pool())
    assert len(calls) == 2 and sum(calls) == res.history.n_queried.sum() > 0  # rounds 1 and 2 query
    assert res.metrics["human_labels"] == 120 and res.labels.id.is_unique


@pytest.mark.parametrize("name", QUERY_STRATEGIES.names(tbal=False))
def test_strategies_that_need_their_own_validation_set_are_refused_by_tbal(name):
    with pytest.raises(ParameterError, match=rf"cannot be '{name}': .* validation set of its own"):
        TBAL(model=LogisticRegressionClassifier(n_classes=3), epsilon=0.1, budget=120, rounds=3,
             strategy=name).run(_tiny_pool())


def test_unknown_strategy_lists_the_usable_ones():
    with pytest.raises(ParameterError, match=r"'strategy' parameter of TBAL must be one of 'badge', 'batchbald'"):
        TBAL(model=LogisticRegressionClassifier(n_classes=3), strategy="kmeans").run(_tiny_pool())


# ------------------------------------------------------------------------------- confidence functions
def calibration_scores(seed: int, n: int = 300, k: int = 3) -> tuple[Scores, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    logits = rng.normal(size=(n, k)) + 2.0 * np.eye(k)[y]
    return Scores(logits, embeddings=rng.normal(size=(n, 4)) + y[:, None]), y


FAST = {"epochs": 3}  # Colander's training loop, shortened


def make_confidence_fn(name: str, **params: Any) -> Any:
    cls = CONFIDENCE_FUNCTIONS[name]
    takes = _params(cls)
    return cls(**({k: v for k, v in FAST.items() if k in takes} | params))


CONF_NAMES = CONFIDENCE_FUNCTIONS.names()


@pytest.mark.parametrize("name", CONF_NAMES)
def test_confidence_function_contract(name):
    pytest.importorskip("torch") if name == "colander" else None
    scores, y = calibration_scores(0)
    test_scores, _ = calibration_scores(1, n=200)
    cf = make_confidence_fn(name, **({"random_state": 0} if "random_state" in _params(CONFIDENCE_FUNCTIONS[name]) else {}))
    init = set(vars(cf))
    assert init == set(_params(type(cf)))
    if cf.requires_fit:
        with pytest.raises(NotFittedError, match="not fitted"):
            cf.confidence(test_scores)
    assert cf.fit(scores, y) is cf
    assert all(a.endswith("_") for a in set(vars(cf)) - init), sorted(set(vars(cf)) - init)
    pred, conf = cf.confidence(test_scores)
    assert pred.shape == conf.shape == (200,)
    assert np.all((conf >= 0) & (conf <= 1))
    np.testing.assert_array_equal(pred, test_scores.logits.argmax(axis=1))  # the family's promise


@pytest.mark.parametrize(("name", "param"), [(n, p) for n in CONF_NAMES for p in _params(CONFIDENCE_FUNCTIONS[n])])
def test_confidence_bad_parameter_values(name, param):
    scores, y = calibration_scores(0, n=120)
    value, exc, match = BAD_VALUES[param]
    with pytest.raises(exc, match=match):
        make_confidence_fn(name, **{param: value}).fit(scores, y)


# ------------------------------------------------------------------------------- labelers
TEXTS = ["goal match football", "football team goal", "stock market shares", "shares fell market"]
Y_TEXTS = np.array([0, 0, 1, 1])


def make_labeler(name: str, clip_path: Any = None, **params: Any) -> tuple[Any, list]:
    """A labeler of the registry and items it can score (images for CLIP, texts otherwise)."""
    cls = LABELERS[name]
    takes = _params(cls)
    kw: dict[str, Any] = {"classes": ["sports", "finance"]}
    items: list = TEXTS
    if "encoder" in takes:
        kw["encoder"] = HashingTextEncoder(n_features=64)
    if "path" in takes:
        kw["path"] = clip_path
        rng = np.random.default_rng(0)
        items = [rng.integers(0, 255, (32, 32, 3), dtype=np.uint8) for _ in range(4)]
    return cls(**(kw | params)), items


LABELER_NAMES = LABELERS.names()


def _needs_clip(name: str) -> bool:
    return "path" in _params(LABELERS[name])


@pytest.mark.parametrize("name", LABELER_NAMES)
def test_labeler_contract(name, request):
    cp = request.getfixturevalue("tiny_clip") if _needs_clip(name) else None
    lab, items = make_labeler(name, cp)
    init = set(vars(lab))
    assert set(_params(type(lab))) <= init
    with pytest.raises(NotFittedError, match="not fitted"):
        lab.scores(items)
    assert lab.fit(items, Y_TEXTS) is lab
    learned = {a for a in set(vars(lab)) - init if not a.startswith("_")}  # _encoder_obj: a private cache
    assert learned and all(a.endswith("_") for a in learned), sorted(learned)
    s = lab.scores(items)
    assert s.logits.shape == (4, 2) and np.all(np.isfinite(s.logits))


@pytest.mark.parametrize(("name", "param"), [(n, p) for n in LABELER_NAMES for p in _params(LABELERS[n])])
def test_labeler_bad_parameter_values(name, param, request):
    cp = request.getfixturevalue("tiny_clip") if _needs_clip(name) else None
    value, exc, match = LABELER_BAD.get(param, BAD_VALUES[param])
    lab, items = make_labeler(name, cp, **{param: value})
    with pytest.raises(exc, match=match):
        lab.fit(items, Y_TEXTS)
        lab.scores(items, [f"i{i}" for i in range(len(items))])


# ------------------------------------------------------------------------------- adding members
@pytest.fixture
def registered() -> Callable[..., Any]:
    """Register throw-away members for one test, removed afterwards."""
    added: list[tuple[Any, str]] = []

    def add(registry: Any, name: str, member: Any) -> Any:
        registry.register(name)(member)
        added.append((registry, name))
        return member

    yield add
    for registry, name in added:
        registry.unregister(name)


class KnowNothing(Aggregator):
    """A trivial aggregator: every task gets the uniform posterior, whatever its labels.
    (Not "always class 0": that is not relabelling invariant, and the suite would say so.)"""

    _owner = "KnowNothing"

    def _fit_table(self, table: Any) -> np.ndarray:
        return self.block_posterior(TaskBlock.whole(table), self.block_setup(table))

    # block statistics: nothing to sum, nothing to set up; a block's posterior needs its size only
    def block_setup(self, table: Any) -> None:
        return None

    def block_posterior(self, block: TaskBlock, params: None) -> np.ndarray:
        return np.full((block.n_tasks, block.n_classes), 1.0 / block.n_classes)


class Constant:
    """A trivial confidence function: the arg-max with confidence 0.5, whatever the scores."""

    requires_fit = False

    def fit(self, scores: Scores, y: np.ndarray) -> Constant:
        return self

    def confidence(self, scores: Scores) -> tuple[np.ndarray, np.ndarray]:
        pred, _ = max_softmax(scores.logits)
        return pred, np.full(len(pred), 0.5)


def test_a_registered_aggregator_gets_the_contract_suite_and_the_cli(registered, tmp_path, capsys):
    registered(AGGREGATORS, "know-nothing", KnowNothing)
    assert "know-nothing" in AGGREGATORS.names()
    test_aggregator_contract("know-nothing")
    test_aggregator_block_statistics_give_the_in_process_fit("know-nothing")
    test_aggregators_are_relabelling_invariant(name="know-nothing")
    assert not [p for p in _params(KnowNothing) if p not in BAD_VALUES]
    test_aggregator_bad_parameter_values("know-nothing", "classes")
    df, _ = crowd_frame(4, n_tasks=8)
    df.to_csv(tmp_path / "labels.csv", index=False)
    assert main(["aggregate", str(tmp_path / "labels.csv"), "--method", "know-nothing", "--out",
                 str(tmp_path / "out.csv")]) == 0
    out = pd.read_csv(tmp_path / "out.csv")
    assert len(out) == 8 and np.allclose(out.confidence, 1 / 3, atol=1e-6) and (out.label == "c0").all()
    assert main(["aggregate", str(tmp_path / "labels.csv"), "--method", "know-nothing", "--engine", "local",
                 "--block-size", "5", "--out", str(tmp_path / "out2.csv")]) == 0
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "out2.csv"), out)


def test_an_unregistered_aggregator_is_not_a_cli_method(tmp_path, capsys):
    df, _ = crowd_frame(4, n_tasks=8)
    df.to_csv(tmp_path / "labels.csv", index=False)
    with pytest.raises(SystemExit):
        main(["aggregate", str(tmp_path / "labels.csv"), "--method", "know-nothing", "--out", str(tmp_path / "o.csv")])
    assert "invalid choice: 'know-nothing'" in capsys.readouterr().err


def test_a_registered_confidence_function_gets_the_contract_suite(registered):
    registered(CONFIDENCE_FUNCTIONS, "constant", Constant)
    test_confidence_function_contract("constant")
    from labelsieve.confidence import make_confidence

    assert isinstance(make_confidence("constant"), Constant)


def test_registries_refuse_non_members_and_duplicates():
    with pytest.raises(TypeError, match="subclass of labelsieve.crowd.Aggregator"):
        AGGREGATORS.register("not-one")(Constant)
    with pytest.raises(TypeError, match="already registered"):
        AGGREGATORS.register("mv")(KnowNothing)
    with pytest.raises(TypeError, match="requires_fit"):
        CONFIDENCE_FUNCTIONS.register("no-flag")(type("NoFlag", (), {"fit": lambda s: s, "confidence": lambda s: s}))
    assert "not-one" not in AGGREGATORS and "no-flag" not in CONFIDENCE_FUNCTIONS


def test_an_aggregator_without_block_statistics_has_no_engine_path():
    class Bare(Aggregator):
        def _fit_table(self, table: Any) -> np.ndarray:
            return np.full((table.n_tasks, table.n_classes), 1.0 / table.n_classes)

    df, _ = crowd_frame(0, n_tasks=5)
    assert Bare().fit(df).probas_.shape == (5, 3)
    with pytest.raises(ParameterError, match="declares no block statistics"):
        Bare().fit(df, engine="local")


class FirstClass(KnowNothing):
    """Negative control: all mass on the first class code -- depends on how classes are named."""

    _owner = "FirstClass"

    def block_posterior(self, block: TaskBlock, params: None) -> np.ndarray:
        out = np.zeros((block.n_tasks, block.n_classes))
        out[:, 0] = 1.0
        return out


def test_the_relabelling_suite_catches_an_aggregator_that_depends_on_class_names(registered):
    registered(AGGREGATORS, "first-class", FirstClass)
    test_aggregator_contract("first-class")  # a valid aggregator otherwise
    with pytest.raises(AssertionError):
        test_aggregators_are_relabelling_invariant(name="first-class")


def test_the_bad_value_check_catches_a_parameter_without_an_entry(registered):
    class Wobbly(KnowNothing):
        def __init__(self, *, classes: Any = None, wobble: float = 0.5) -> None:
            super().__init__(classes=classes)
            self.wobble = wobble

    registered(AGGREGATORS, "wobbly", Wobbly)
    with pytest.raises(AssertionError, match=r"\['wobble'\]"):
        test_every_constructor_parameter_has_a_bad_value()
