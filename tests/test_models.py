"""Tests for labelsieve.models: logistic regression, the torch MLP and the train-time losses."""

from __future__ import annotations

import copy
import math
import sys

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.datasets import load_digits
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import train_test_split

from labelsieve.errors import InputError, MissingDependencyError, NotEnoughDataError, ParameterError
from labelsieve.models import (
    MISSING_CLASS_LOGIT_GAP,
    Classifier,
    LogisticRegressionClassifier,
    MLPClassifier,
    fill_missing_logits,
    make_model,
)
from labelsieve.models import losses as L

FAST_MLP = {"hidden": (64,), "epochs": 15, "batch_size": 64}


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    Xtr, Xte, ytr, yte = train_test_split(X, y, train_size=1000, random_state=0, stratify=y)
    return Xtr, Xte, ytr, yte


def _model(kind: str, seed=0, **kw):
    if kind == "logreg":
        return LogisticRegressionClassifier(n_classes=10, random_state=seed, **kw)
    return MLPClassifier(n_classes=10, random_state=seed, **{**FAST_MLP, **kw})


# --------------------------------------------------------------------------- accuracy and API
@pytest.mark.parametrize(
    "kind,kw",
    [("logreg", {}), ("mlp", {"loss": "ce"}), ("mlp", {"loss": "squentropy"}), ("mlp", {"loss": "crl"}),
     ("mlp", {"loss": "fmfp"})],
)
def test_digits_accuracy_above_90(digits, kind, kw):
    Xtr, Xte, ytr, yte = digits
    model = _model(kind, **kw).fit(Xtr, ytr)
    assert isinstance(model, Classifier)
    assert (model.predict(Xte) == yte).mean() > 0.90


@pytest.mark.parametrize("kind", ["logreg", "mlp"])
def test_proba_is_softmax_of_logits_and_predict_is_argmax(digits, kind):
    Xtr, Xte, ytr, _ = digits
    model = _model(kind).fit(Xtr, ytr)
    s = model.scores(Xte)
    p = model.predict_proba(Xte)
    assert s.logits.shape == (len(Xte), 10)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-10)
    z = s.logits.astype(np.float64)
    manual = np.exp(z - z.max(1, keepdims=True))
    manual /= manual.sum(1, keepdims=True)
    np.testing.assert_allclose(p, manual, rtol=1e-9, atol=1e-12)
    np.testing.assert_array_equal(model.predict(Xte), np.argmax(s.logits, axis=1))
    empty = model.scores(Xte[:0])  # an exhausted pool scores to empty arrays, not an error
    assert empty.logits.shape == (0, 10) and model.predict(Xte[:0]).shape == (0,)


def test_logreg_coef_reproduces_logits_and_matches_sklearn(digits):
    Xtr, Xte, ytr, _ = digits
    model = LogisticRegressionClassifier(n_classes=10, C=0.5).fit(Xtr, ytr)
    np.testing.assert_array_equal(model.classes_, np.arange(10))
    assert model.coef_.shape == (10, 64) and model.intercept_.shape == (10,)
    np.testing.assert_allclose(model.scores(Xte).logits, Xte @ model.coef_.T + model.intercept_, atol=1e-8)
    np.testing.assert_allclose(model.predict_proba(Xte), model.pipeline_.predict_proba(Xte), atol=1e-10)
    assert model.scores(Xte).embeddings is None


def test_logreg_binary_gives_zero_and_decision_logits(digits):
    Xtr, Xte, ytr, _ = digits
    keep = np.isin(ytr, [3, 8])
    model = LogisticRegressionClassifier(n_classes=2).fit(Xtr[keep], (ytr[keep] == 8).astype(int))
    z = model.scores(Xte).logits
    np.testing.assert_array_equal(z[:, 0], 0.0)
    np.testing.assert_allclose(z[:, 1], model.pipeline_.decision_function(Xte))
    np.testing.assert_allclose(model.predict_proba(Xte), model.pipeline_.predict_proba(Xte), atol=1e-12)


@pytest.mark.parametrize("kind", ["logreg", "mlp"])
def test_missing_class_never_predicted_and_all_columns_returned(digits, kind):
    Xtr, Xte, ytr, _ = digits
    keep = ytr != 3
    model = _model(kind).fit(Xtr[keep], ytr[keep])
    s = model.scores(np.vstack([Xte, Xtr]))
    assert s.logits.shape[1] == 10
    assert not (s.predicted == 3).any()
    present = np.delete(s.logits, 3, axis=1)
    np.testing.assert_allclose(s.logits[:, 3], present.min(axis=1) - MISSING_CLASS_LOGIT_GAP, rtol=1e-6)
    assert (s.probs[:, 3] < 1e-40).all()
    np.testing.assert_array_equal(model.classes_, np.delete(np.arange(10), 3))


@pytest.mark.parametrize("kind", ["logreg", "mlp"])
def test_single_present_class_gives_constant_prediction(digits, kind):
    Xtr, Xte, _, _ = digits
    y = np.full(len(Xtr), 7)
    model = _model(kind, **({} if kind == "logreg" else {"epochs": 2})).fit(Xtr, y)
    assert (model.predict(Xte) == 7).all()
    assert model.scores(Xte).logits.shape == (len(Xte), 10)


@given(
    logits=st.lists(st.lists(st.floats(-1e3, 1e3), min_size=3, max_size=3), min_size=1, max_size=8),
    missing=st.sets(st.integers(0, 5), max_size=3),
)
@settings(max_examples=60, deadline=None)
def test_fill_missing_logits_property(logits, missing):
    present = np.array([c for c in range(6) if c not in missing][:3])
    z = np.array(logits)
    out = fill_missing_logits(z, present, 6)
    np.testing.assert_array_equal(out[:, present], z)
    absent = np.setdiff1d(np.arange(6), present)
    assert np.isin(out.argmax(axis=1), present).all()
    assert (out[:, absent] <= z.min(axis=1, keepdims=True) - MISSING_CLASS_LOGIT_GAP + 1e-9).all()


def test_mlp_embeddings_are_penultimate_activations(digits):
    Xtr, Xte, ytr, _ = digits
    model = _model("mlp", hidden=(32, 16), epochs=3).fit(Xtr, ytr)
    s = model.scores(Xte)
    assert s.embeddings.shape == (len(Xte), 16) and s.embeddings.dtype == np.float32
    assert (s.embeddings >= 0).all()  # after ReLU
    head = model.module_.head
    recon = s.embeddings @ head.weight.detach().numpy().T + head.bias.detach().numpy()
    np.testing.assert_allclose(s.logits, recon, rtol=1e-5, atol=1e-5)


# --------------------------------------------------------------------------- determinism and hygiene
def test_mlp_deterministic_given_seed_and_global_rng_untouched(digits):
    Xtr, Xte, ytr, _ = digits
    before = torch.get_rng_state().clone()
    threads = torch.get_num_threads()
    template = _model("mlp", seed=11, epochs=4, loss="crl")
    a = copy.deepcopy(template).fit(Xtr, ytr).scores(Xte)
    b = copy.deepcopy(template).fit(Xtr, ytr).scores(Xte)
    c = _model("mlp", seed=12, epochs=4, loss="crl").fit(Xtr, ytr).scores(Xte)
    np.testing.assert_array_equal(a.logits, b.logits)
    np.testing.assert_array_equal(a.embeddings, b.embeddings)
    assert not np.allclose(a.logits, c.logits)
    assert torch.equal(torch.get_rng_state(), before)
    assert torch.get_num_threads() == threads  # thread count only changed inside fit/scores
    assert not hasattr(template, "module_")  # the template stays unfitted


def test_logreg_deterministic(digits):
    Xtr, Xte, ytr, _ = digits
    a = _model("logreg", seed=3).fit(Xtr, ytr).scores(Xte).logits
    b = _model("logreg", seed=3).fit(Xtr, ytr).scores(Xte).logits
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("kind", ["logreg", "mlp"])
def test_fit_does_not_mutate_inputs(digits, kind):
    Xtr, _, ytr, _ = digits
    X, y = Xtr[:200].copy(), ytr[:200].copy()
    (_model(kind, epochs=1) if kind == "mlp" else _model(kind)).fit(X, y)
    np.testing.assert_array_equal(X, Xtr[:200])
    np.testing.assert_array_equal(y, ytr[:200])


def test_make_model_builds_each_name_and_rejects_others():
    assert isinstance(make_model("logreg", n_classes=4, random_state=0), LogisticRegressionClassifier)
    m = make_model("mlp", n_classes=4, random_state=0, loss="squentropy")
    assert isinstance(m, MLPClassifier) and m.loss == "squentropy" and m.n_classes == 4
    with pytest.raises(ParameterError, match=r"The 'name' parameter of make_model must be one of 'logreg', "
                                             r"'mlp'\. Got 'svm' instead\."):
        make_model("svm", n_classes=4, random_state=0)


def test_missing_torch_raises_missing_dependency(monkeypatch, digits):
    Xtr, _, ytr, _ = digits
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(MissingDependencyError, match=r"pip install torch==2\.13\.0"):
        MLPClassifier(n_classes=10).fit(Xtr, ytr)


# --------------------------------------------------------------------------- invalid parameters / inputs
_BAD_PARAMS = [
    ("logreg", {"n_classes": 1}, "n_classes", "an int >= 2"),
    ("logreg", {"C": 0.0}, "C", r"in \(0\.0, inf\)"),
    ("logreg", {"max_iter": 0}, "max_iter", "an int >= 1"),
    ("mlp", {"n_classes": 1}, "n_classes", "an int >= 2"),
    ("mlp", {"loss": "focal"}, "loss", "one of 'ce', 'crl', 'fmfp', 'squentropy'"),
    ("mlp", {"hidden": (0,)}, "hidden", "a positive int or a non-empty sequence"),
    ("mlp", {"hidden": ()}, "hidden", "a positive int or a non-empty sequence"),
    ("mlp", {"hidden": "128"}, "hidden", "a positive int or a non-empty sequence"),
    ("mlp", {"hidden": (64, 2.5)}, "hidden", "a positive int or a non-empty sequence"),
    ("mlp", {"lr": 0.0}, "lr", r"in \(0\.0, inf\)"),
    ("mlp", {"lr": -1e-3}, "lr", r"in \(0\.0, inf\)"),
    ("mlp", {"epochs": 0}, "epochs", "an int >= 1"),
    ("mlp", {"batch_size": 0}, "batch_size", "an int >= 1"),
    ("mlp", {"weight_decay": -1.0}, "weight_decay", r"in \[0\.0, inf\)"),
    ("mlp", {"device": 3}, "device", "a str"),
    ("mlp", {"n_threads": 0}, "n_threads", "an int >= 1"),
    ("mlp", {"device": "nonsense"}, "device", "name a torch device"),
    ("mlp", {"loss_params": [1]}, "loss_params", "a dict or None"),
    ("mlp", {"loss": "ce", "loss_params": {"rho": 0.1}}, "loss_params", "be empty or None for loss='ce'"),
    ("mlp", {"loss": "crl", "loss_params": {"lambda": 1.0}}, "loss_params", "only have keys 'weight' for loss='crl'"),
    ("mlp", {"loss": "crl", "loss_params": {"weight": -1.0}}, "loss_params", r"have 'weight' in \[0, inf\)"),
    ("mlp", {"loss": "fmfp", "loss_params": {"rho": 0.0}}, "loss_params", r"have 'rho' in \(0, inf\)"),
    ("mlp", {"loss": "fmfp", "loss_params": {"swa_start": 1.0}}, "loss_params", r"have 'swa_start' in \[0, 1\)"),
]


@pytest.mark.parametrize("kind,kw,name,domain", _BAD_PARAMS)
def test_invalid_parameters_raise_standard_message(digits, kind, kw, name, domain):
    Xtr, _, ytr, _ = digits
    cls = LogisticRegressionClassifier if kind == "logreg" else MLPClassifier
    params = {"n_classes": 10, **kw}
    model = cls(**params)
    assert all(getattr(model, k) is v for k, v in params.items())  # stored as given, checked in fit
    with pytest.raises(ParameterError, match=rf"^The '{name}' parameter of {cls.__name__} must .*{domain}.*Got "):
        model.fit(Xtr[:50], ytr[:50])


@pytest.mark.parametrize("cls", [LogisticRegressionClassifier, MLPClassifier])
def test_bad_inputs_name_row_and_value(cls, digits):
    Xtr, Xte, ytr, _ = digits
    X, y = Xtr[:40], ytr[:40].copy()
    y[5] = -1
    with pytest.raises(InputError, match=r"label -1 at row 5"):
        cls(n_classes=10).fit(X, y)
    with pytest.raises(InputError, match=r"non-integer label \(2\.5\) at row 1"):
        cls(n_classes=10).fit(X[:3], np.array([1.0, 2.5, 3.0]))
    Xn = X.copy()
    Xn[7, 4] = np.nan
    with pytest.raises(InputError, match=r"row 7, column 4"):
        cls(n_classes=10).fit(Xn, ytr[:40])
    with pytest.raises(InputError, match=r"40 rows in X but 39 labels"):
        cls(n_classes=10).fit(X, ytr[:39])
    with pytest.raises(NotEnoughDataError, match="at least one labeled point"):
        cls(n_classes=10).fit(X[:0], ytr[:0])
    with pytest.raises(NotFittedError):
        cls(n_classes=10).scores(Xte)
    kw = {"epochs": 1} if cls is MLPClassifier else {}
    model = cls(n_classes=10, **kw).fit(X, ytr[:40])
    with pytest.raises(InputError, match=r"has 63 features; the model was fitted on 64"):
        model.scores(Xte[:, :63])


# --------------------------------------------------------------------------- loss formulas
def test_squentropy_hand_case():
    z = torch.tensor([[2.0, 0.0, 1.0], [0.5, -1.0, 3.0]])
    y = torch.tensor([0, 2])
    ce0 = -2.0 + math.log(math.exp(2) + 1 + math.exp(1))
    ce1 = -3.0 + math.log(math.exp(0.5) + math.exp(-1) + math.exp(3))
    sq0 = (0.0**2 + 1.0**2) / 2
    sq1 = (0.5**2 + 1.0**2) / 2
    expected = (ce0 + ce1) / 2 + (sq0 + sq1) / 2
    assert float(L.squentropy(z, y)) == pytest.approx(expected, rel=1e-6)
    assert float(L.cross_entropy(z, y)) == pytest.approx((ce0 + ce1) / 2, rel=1e-6)


def test_crl_ranking_term_hand_cases():
    t = torch.tensor
    # confidence order agrees with history order, by at least the history gap -> zero
    assert float(L.crl_ranking_loss(t([0.9, 0.8]), t([0.3, 0.7]), t([1.0, 0.6]), t([0.5, 0.5]))) == 0.0
    # equal history costs nothing whatever the confidences
    assert float(L.crl_ranking_loss(t([0.1]), t([0.9]), t([0.4]), t([0.4]))) == 0.0
    # disagreement: relu(-(+1)(0.3 - 0.9) + 0.5) = 1.1; and mirrored pair gives the same value
    assert float(L.crl_ranking_loss(t([0.3]), t([0.9]), t([1.0]), t([0.5]))) == pytest.approx(1.1)
    assert float(L.crl_ranking_loss(t([0.9]), t([0.3]), t([0.5]), t([1.0]))) == pytest.approx(1.1)
    # agreeing order but smaller gap than the history margin: 0.5 - 0.2 = 0.3
    assert float(L.crl_ranking_loss(t([0.6]), t([0.4]), t([1.0]), t([0.5]))) == pytest.approx(0.3)


def test_crl_loss_pairs_neighbours_in_batch():
    # logits chosen so max-softmax confidences are known: [p, 1-p] with p = sigmoid(a)
    a = torch.tensor([2.0, 0.0, -1.0])
    logits = torch.stack([a, torch.zeros(3)], dim=1)
    y = torch.tensor([0, 0, 1])
    hist = torch.tensor([0.0, 1.0, 0.5])
    p = torch.sigmoid(a)
    conf = torch.maximum(p, 1 - p).tolist()
    pairs = [(0, 1), (1, 2), (2, 0)]
    terms = []
    for i, j in pairs:
        s = float(np.sign(hist[i] - hist[j]))
        terms.append(max(0.0, -s * (conf[i] - conf[j]) + abs(float(hist[i] - hist[j]))))
    ce = float(torch.nn.functional.cross_entropy(logits, y))
    got = float(L.crl_loss(logits, y, hist, weight=0.7))
    assert got == pytest.approx(ce + 0.7 * sum(terms) / 3, rel=1e-6)


def test_correctness_history_counts_completed_epochs_only():
    h = L.CorrectnessHistory(4)
    h.record(torch.tensor([0, 1]), torch.tensor([True, False]))
    assert h.fraction(torch.arange(4)).tolist() == [0.0, 0.0, 0.0, 0.0]  # epoch not finished
    h.record(torch.tensor([2, 3]), torch.tensor([True, True]))
    h.end_epoch()
    h.record(torch.tensor([0, 1, 2, 3]), torch.tensor([True, True, False, False]))
    h.end_epoch()
    assert h.fraction(torch.arange(4)).tolist() == [1.0, 0.5, 0.5, 0.5]


def test_crl_objective_history_tracks_training_correctness(digits):
    Xtr, _, ytr, _ = digits
    obj = L.make_objective("crl", 1000, 3, {"weight": 1.0})
    model = torch.nn.Linear(64, 10)
    opt = torch.optim.SGD(model.parameters(), lr=0.0)  # lr 0: predictions are fixed, history is exact
    X = torch.tensor((Xtr - Xtr.mean(0)) / (Xtr.std(0) + 1), dtype=torch.float32)
    y = torch.tensor(ytr)
    for epoch in range(3):
        for start in range(0, 1000, 100):
            idx = torch.arange(start, start + 100)
            obj.step(model, list(model.parameters()), opt, X[idx], y[idx], idx)
        obj.end_epoch(model, epoch)
    correct = (model(X).argmax(1) == y).float()
    assert torch.equal(obj.history.counts, 3 * correct)
    assert torch.equal(obj.history.fraction(torch.arange(1000)), correct)


def test_sam_perturbation_on_tiny_linear_model():
    lin = torch.nn.Linear(2, 1)
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[0.5, -1.0]]))
        lin.bias.fill_(0.25)
    x = torch.tensor([[1.0, 2.0], [3.0, -1.0]])
    t = torch.tensor([[1.0], [0.0]])
    loss = ((lin(x) - t) ** 2).mean()
    loss.backward()
    # hand gradient of mean squared error: r = w.x + b - t; dL/dw = 2/n sum r x; dL/db = 2/n sum r
    r = np.array([0.5 - 2.0 + 0.25 - 1.0, 1.5 + 1.0 + 0.25 - 0.0])
    gw = 2 / 2 * (r[:, None] * x.numpy()).sum(0)
    gb = 2 / 2 * r.sum()
    np.testing.assert_allclose(lin.weight.grad.numpy()[0], gw, rtol=1e-6)
    norm = math.sqrt((gw**2).sum() + gb**2)
    e = L.sam_perturbation([lin.weight.grad, lin.bias.grad], rho=0.05)
    np.testing.assert_allclose(e[0].numpy()[0], 0.05 * gw / norm, rtol=1e-5)
    np.testing.assert_allclose(e[1].numpy(), [0.05 * gb / norm], rtol=1e-5)
    total = math.sqrt(float((e[0] ** 2).sum() + (e[1] ** 2).sum()))
    assert total == pytest.approx(0.05, rel=1e-6)
    assert L.sam_perturbation([None, lin.bias.grad], 0.1)[0] is None


def test_sam_step_uses_gradient_at_perturbed_weights():
    torch.manual_seed(0)
    lin = torch.nn.Linear(3, 2)
    x, y = torch.randn(5, 3), torch.tensor([0, 1, 1, 0, 1])
    w0 = [p.detach().clone() for p in lin.parameters()]
    # reference: gradient at w0 -> e -> gradient at w0 + e, done by hand on a copy
    ref = copy.deepcopy(lin)
    g0 = torch.autograd.grad(L.cross_entropy(ref(x), y), list(ref.parameters()))
    e = L.sam_perturbation(list(g0), 0.05)
    with torch.no_grad():
        for p, ep in zip(ref.parameters(), e, strict=True):
            p.add_(ep)
    g1 = torch.autograd.grad(L.cross_entropy(ref(x), y), list(ref.parameters()))
    opt = torch.optim.SGD(lin.parameters(), lr=0.1)
    L.sam_step(list(lin.parameters()), lambda: L.cross_entropy(lin(x), y), opt, rho=0.05)
    for p, p0, g in zip(lin.parameters(), w0, g1, strict=True):
        torch.testing.assert_close(p.detach(), p0 - 0.1 * g)


def test_swa_weights_are_mean_of_snapshots_from_start():
    lin = torch.nn.Linear(2, 2)
    swa = L.SWA(lin, start=2)
    snaps = []
    for epoch in range(5):
        with torch.no_grad():
            lin.weight.fill_(float(epoch + 1) ** 2)
            lin.bias.fill_(-float(epoch))
        if epoch >= 2:
            snaps.append((lin.weight.detach().clone(), lin.bias.detach().clone()))
        swa.end_epoch(lin, epoch)
    avg = swa.result(lin)
    assert avg is not lin and swa.n_snapshots == 3
    torch.testing.assert_close(avg.weight, torch.stack([s[0] for s in snaps]).mean(0))  # (9+16+25)/3
    torch.testing.assert_close(avg.bias, torch.stack([s[1] for s in snaps]).mean(0))
    assert float(avg.weight[0, 0].detach()) == pytest.approx(50 / 3)


def test_fmfp_objective_averages_last_quarter_of_epochs():
    lin = torch.nn.Linear(2, 2)
    obj = L.make_objective("fmfp", 10, 8, {"rho": 0.05, "swa_start": 0.75})
    for epoch in range(8):
        with torch.no_grad():
            lin.weight.fill_(float(epoch))
        obj.end_epoch(lin, epoch)
    final = obj.finalize(lin)
    assert float(final.weight[0, 0].detach()) == pytest.approx((6 + 7) / 2)


def test_fmfp_mlp_module_is_swa_average(digits, monkeypatch):
    Xtr, _, ytr, _ = digits
    snaps: list[list[torch.Tensor]] = []
    original = L.SWA.end_epoch

    def spy(self, model, epoch):
        if epoch >= self.start:
            snaps.append([p.detach().clone() for p in model.parameters()])
        original(self, model, epoch)

    monkeypatch.setattr(L.SWA, "end_epoch", spy)
    model = MLPClassifier(n_classes=10, hidden=(16,), epochs=4, random_state=0, loss="fmfp",
                          loss_params={"swa_start": 0.5}).fit(Xtr[:300], ytr[:300])
    assert len(snaps) == 2  # epochs 2 and 3 of 4
    for p, *ws in zip(model.module_.parameters(), *snaps, strict=True):
        torch.testing.assert_close(p.detach(), torch.stack(ws).mean(0))
    assert not torch.equal(snaps[0][0], snaps[1][0])
    assert len(model.loss_curve_) == 4 and all(np.isfinite(model.loss_curve_))
