"""The whole-data-set guarantee of a TBAL run (``--guarantee dataset``): coverage over seeds, the
negative control, the accounting of human labels, noisy audit losses, and one delta spent once."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from scipy.stats import binom

from labelsieve.autolabel.oracles import SimulatedOracle
from labelsieve.autolabel.pac_run import finish_dataset_guarantee
from labelsieve.autolabel.tbal import TBAL
from labelsieve.data.dataset import Dataset
from labelsieve.errors import InputError, ParameterError
from labelsieve.guarantees import NoiseAwareCertifier, pac
from labelsieve.guarantees.pac import PACLabeler
from labelsieve.models import make_model

EPS, DELTA = 0.05, 0.05


def hard_pool(seed: int, n: int = 2000) -> Dataset:
    """Three overlapping Gaussian classes: a logistic model is ~80% right, so auto-labeling everything
    breaks eps = 0.05 and PAC must route the uncertain items to humans."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    centers = np.array([[0.0, 0.0], [1.6, 0.0], [0.8, 1.4]])
    X = centers[y] + rng.standard_normal((n, 2))
    return Dataset(ids=np.array([f"i{i}" for i in range(n)]), X=X, classes=("a", "b", "c"), y=y, name="hard")


def run(seed: int, *, audit: int = 600, prior: str = "uniform", noise: float = 0.0):
    ds = hard_pool(seed)
    tbal = TBAL(model=make_model("logreg", n_classes=3, random_state=seed), epsilon=EPS, delta=DELTA, budget=150,
                rounds=2, random_state=seed, certifier=NoiseAwareCertifier() if noise else None)
    oracle = SimulatedOracle(ds, noise=noise, random_state=seed + 1)
    res = tbal.run(ds, oracle)
    spec = SimpleNamespace(epsilon=EPS, delta=DELTA, seed=seed, audit=audit, audit_prior=prior, pac_bound="betting")
    return ds, res, finish_dataset_guarantee(res, ds, oracle, spec)


@pytest.mark.parametrize("prior", ["uniform", "uncertainty"])
def test_dataset_error_exceeds_eps_in_at_most_delta_of_seeds(prior):
    seeds = 40
    fails, naive_fails = 0, 0
    for s in range(seeds):
        ds, res, out = run(s, prior=prior)
        lab = out.labels
        assert len(lab) == len(ds) and (lab["id"].to_numpy() == ds.ids).all()  # every item, in dataset order
        err = float((lab["code"].to_numpy() != ds.y).mean())
        assert err == pytest.approx(out.metrics["dataset_error"])
        fails += err > EPS
        # negative control: the same final model's label for every non-human item (nothing routed)
        model, cf, _ = res.rules[-1]
        pred, _ = cf.confidence(model.scores(ds.X))
        human = (lab["source"] == "human").to_numpy() & (lab["role"] != "routed").to_numpy()
        naive = np.where(human, ds.y, pred)
        naive_fails += float((naive != ds.y).mean()) > EPS
    # P(Binomial(40, 0.05) >= 7) ~ 0.003: more failures would reject the guarantee
    assert fails <= binom.ppf(0.997, seeds, DELTA), fails
    assert naive_fails == seeds  # the control breaks eps every time, so the routing is what holds it


def test_human_labels_are_tbal_plus_audit_plus_routed_and_roles_add_up():
    ds, res, out = run(3)
    m, lab = out.metrics, out.labels
    roles = lab["role"].value_counts().to_dict()
    tbal_human = int((res.labels["source"] == "human").sum())
    assert m["tbal_human_labels"] == tbal_human == roles.get("validation", 0) + roles.get("train", 0)
    assert m["human_labels"] == tbal_human + roles["audit"] + roles.get("routed", 0)
    assert m["n_auto_labeled"] == roles["auto"] == int((lab["source"] == "auto").sum())
    assert m["coverage"] == pytest.approx(roles["auto"] / len(ds))
    assert m["pac"]["audited"] == roles["audit"] <= 600
    assert set(lab["guarantee"]) == {"dataset"} and m["guarantee"] == "dataset"
    # auto-labels are exactly the items at or below the certified uncertainty threshold
    t = m["pac"]["threshold"]
    auto = (lab["role"] == "auto").to_numpy()
    assert t is not None and (1 - lab["confidence"].to_numpy()[auto] <= t + 1e-12).all()
    routed = (lab["role"] == "routed").to_numpy()
    model, cf, _ = res.rules[-1]
    _, conf = cf.confidence(model.scores(ds.X))
    assert (1 - conf[routed] > t).all()
    # routed and audited items carry the (simulated, exact) human label
    humans = (lab["source"] == "human").to_numpy()
    assert (lab["code"].to_numpy()[humans] == ds.y[humans]).all()
    # the statement speaks of the whole data set and of the TBAL human labels
    assert f"all {len(ds)} items" in m["bound_statement"] and "finite-sample" in m["bound_statement"]


def test_audit_uses_its_own_stream_and_is_reproducible():
    _, _, a = run(5)
    _, _, b = run(5)
    assert a.labels.equals(b.labels) and a.metrics["pac"] == b.metrics["pac"]


def test_audit_larger_than_the_rest_is_refused():
    with pytest.raises(InputError, match="--audit 5000 is more than the"):
        run(0, audit=5000)


def test_noisy_audit_losses_are_upper_bounds_of_posterior_error(monkeypatch):
    """agree with the prediction -> loss 1 - p; disagree -> 1 (hand-computed on 4 items)."""
    seen = {}
    real = pac.pac_threshold

    def spy(u, idx, losses, pi, **kw):
        seen["idx"], seen["losses"] = np.asarray(idx), np.asarray(losses)
        return real(u, idx, losses, pi, **kw)

    monkeypatch.setattr(pac, "pac_threshold", spy)
    pred = np.array([0, 1, 1, 0])
    u = np.array([0.1, 0.2, 0.3, 0.4])
    lab = PACLabeler(epsilon=0.5, audit=4, random_state=0)
    first = lab.split(u)
    y = np.array([0, 1, 1, 0])[first]
    y[-1] = 1 - pred[first[-1]]  # the last audited item disagrees with the prediction
    p = np.linspace(0.6, 0.9, len(first))
    lab.fit_from_labels(pred, u, first, y, audit_p_correct=p)
    pos = np.searchsorted(first, seen["idx"])
    expect = np.where(y[pos] == pred[seen["idx"]], 1 - p[pos], 1.0)
    np.testing.assert_allclose(seen["losses"], expect)
    assert lab.certificate_.noisy_audit and "expected share of wrong labels" in lab.certificate_.statement()
    with pytest.raises(InputError, match="audit_p_correct must be"):
        other = PACLabeler(epsilon=0.5, audit=4, random_state=0)
        other.fit_from_labels(pred, u, other.split(u), y, audit_p_correct=p[:1])
    with pytest.raises(ParameterError, match="zero-one"):
        sq = PACLabeler(epsilon=0.5, audit=4, loss="squared", loss_bound=1.0, random_state=0)
        sq.fit_from_labels(pred, u, sq.split(u), y, audit_p_correct=p)


def test_noisy_oracle_bound_covers_the_auto_labels_expected_error():
    """With a 10% noisy oracle, the auto-labels' true wrong count over the non-TBAL items stays under
    eps (the noisy audit only makes the losses larger), in at least 1 - delta of seeds."""
    seeds, fails = 25, 0
    for s in range(seeds):
        ds, _, out = run(s, noise=0.1)
        lab = out.labels
        auto = (lab["source"] == "auto").to_numpy()
        rest = len(ds) - out.metrics["tbal_human_labels"]
        fails += (lab["code"].to_numpy()[auto] != ds.y[auto]).sum() / rest > EPS
        assert out.metrics["pac"]["statement"].count("noisy") == 1
    assert fails <= binom.ppf(0.997, seeds, DELTA)


@pytest.mark.parametrize(("bound", "guaranteed"), [("betting", True), ("clt", False)])
def test_pac_certificate_is_the_one_certificate(bound, guaranteed):
    from labelsieve.guarantees import Certificate

    rng = np.random.default_rng(1)
    n = 800
    conf = rng.uniform(0.6, 1.0, n)
    y = rng.integers(0, 2, n)
    pred = np.where(rng.random(n) < conf, y, 1 - y)
    lab = PACLabeler(epsilon=0.1, audit=300, bound=bound, random_state=0).fit(pred, 1 - conf, lambda i: y[i])
    c = lab.certificate_
    assert isinstance(c, Certificate) and c.guarantee == "dataset" and c.scan == "fixed-sequence"
    assert c.guaranteed is guaranteed and c.n_items == n and c.n_validation == 300
    assert c.threshold == lab.threshold_ and c.accept is not None
    assert ("NOT a finite-sample guarantee" in c.statement()) is (not guaranteed)
