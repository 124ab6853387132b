"""The guarantees package: the bound registry's contract (every registered bound, iterated), coverage
over simulated binomials, the one scan fed by evidence, one Certificate statement per guarantee kind,
and the two certification bugs of issue 17 (each test here fails on commit f153bd5)."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import binom

from labelsieve.errors import ParameterError
from labelsieve.guarantees import (
    BOUNDS,
    GUARANTEED_BOUNDS,
    HEURISTIC_BOUNDS,
    SCANS,
    Bound,
    Certificate,
    CountEvidence,
    PoissonBinomialEvidence,
    certify_thresholds,
    certify_thresholds_noisy,
    get_bound,
    min_points_for_zero_errors,
    register_bound,
    scan_sorted,
    scan_threshold,
    unregister_bound,
)


# ---------------------------------------------------------------- a throw-away bound: one class + one line
@dataclass(frozen=True)
class PointEstimate(Bound):
    """The plain error rate k/n: what a new bound needs is ``name``, ``guaranteed`` and ``_upper``."""

    name: ClassVar[str] = "point-estimate"
    guaranteed: ClassVar[bool] = False

    def _upper(self, k, n, e_hat, delta):
        return e_hat


@pytest.fixture
def point_estimate() -> Iterator[Bound]:
    b = register_bound(PointEstimate())  # the registration line
    yield b
    unregister_bound("point-estimate")


REGISTERED = list(BOUNDS)  # every bound registered at import, iterated by the contract below


# ---------------------------------------------------------------- the registry contract
def test_registry_lists_the_four_bounds_and_derives_the_guaranteed_ones():
    assert REGISTERED[:4] == ["clopper-pearson", "hoeffding", "sigma", "tbal-hoeffding"]
    assert tuple(GUARANTEED_BOUNDS) == tuple(n for n, b in BOUNDS.items() if b.guaranteed)
    assert GUARANTEED_BOUNDS == ("clopper-pearson", "hoeffding")
    assert set(HEURISTIC_BOUNDS) | set(GUARANTEED_BOUNDS) == set(BOUNDS)
    for name in REGISTERED:
        assert get_bound(name).name == name


def test_unknown_bound_raises_listing_the_names():
    with pytest.raises(ParameterError, match=r"'bound' parameter .* 'clopper-pearson', 'hoeffding', 'sigma', "
                                             r"'tbal-hoeffding'\. Got 'wilson'"):
        get_bound("wilson")
    # f153bd5's min_points_for_zero_errors returned 1 for an unknown bound (a silent fallthrough)
    with pytest.raises(ParameterError, match="'wilson'"):
        min_points_for_zero_errors(0.05, 0.05, "wilson")
    with pytest.raises(ParameterError, match="'wilson'"):
        certify_thresholds(np.zeros(3, int), np.ones(3), np.zeros(3, int), n_classes=2, bound="wilson")


@pytest.mark.parametrize("name", REGISTERED)
def test_bound_is_in_unit_interval_above_the_rate_and_one_without_points(name):
    b = get_bound(name)
    n = np.arange(0, 120)
    for k_frac in (0.0, 0.1, 0.5, 1.0):
        k = np.floor(k_frac * n)
        u = b.upper(k, n, 0.05)
        assert ((u >= 0) & (u <= 1)).all()
        assert (u[n > 0] >= k[n > 0] / n[n > 0] - 1e-12).all()
    assert float(b.upper(0, 0, 0.05)) == 1.0


@pytest.mark.parametrize("name", REGISTERED)
def test_bound_is_monotone_in_k_and_n(name):
    b = get_bound(name)
    for n in (1, 7, 40, 300):
        u = b.upper(np.arange(n + 1), np.full(n + 1, n), 0.05)
        assert (np.diff(u) >= -1e-12).all(), f"{name}: not increasing in k at n={n}"
    for k in (0, 1, 5, 30):
        n = np.arange(max(k, 1), 1000)
        u = b.upper(np.full(len(n), k), n, 0.05)
        assert (np.diff(u) <= 1e-12).all(), f"{name}: not decreasing in n at k={k}"


@pytest.mark.parametrize("name", REGISTERED)
@settings(max_examples=150, deadline=None)
@given(
    n=st.integers(1, 3000),
    frac=st.floats(0.0, 1.0),
    eps=st.floats(0.005, 0.5),
    delta=st.floats(1e-4, 0.5),
)
def test_passes_agrees_with_upper_le_epsilon(name, n, frac, eps, delta):
    b = get_bound(name)
    k = np.arange(0, n + 1) if n <= 200 else np.unique(np.r_[np.arange(0, 60), int(frac * n)])
    nn = np.full(len(k), n)
    u = b.upper(k, nn, delta)
    clear = np.abs(u - eps) > 1e-9  # the fast Clopper-Pearson decision is exact away from floating ties
    np.testing.assert_array_equal(b.passes(k, nn, eps, delta)[clear], (u <= eps)[clear])


@pytest.mark.parametrize("name", REGISTERED)
@pytest.mark.parametrize(("eps", "delta"), [(0.05, 0.05), (0.1, 0.01), (0.02, 0.2)])
def test_min_n_is_the_first_n_that_certifies(name, eps, delta):
    b = get_bound(name)
    for errors in (0, 1, 3):
        m = b.min_n(errors, eps, delta)
        assert b.passes(np.array([errors]), np.array([m]), eps, delta)[0]
        if m - 1 > errors:
            assert not b.passes(np.array([errors]), np.array([m - 1]), eps, delta)[0]
    m0 = b.zero_error_n(eps, delta)  # the closed form used in messages equals the search
    assert m0 == b.min_n(0, eps, delta)


def coverage_miss(b: Bound, n: int, p: float, delta: float, reps: int, seed: int) -> float:
    """Share of simulated Binomial(n, p) counts whose bound falls below the true rate p."""
    k = np.random.default_rng(seed).binomial(n, p, size=reps)
    return float((b.upper(k, np.full(reps, n), delta) < p).mean())


@pytest.mark.parametrize("name", [n for n in REGISTERED if get_bound(n).guaranteed])
@pytest.mark.parametrize(("n", "p", "delta"), [(30, 0.1, 0.05), (100, 0.03, 0.1), (400, 0.2, 0.05), (59, 0.05, 0.05)])
def test_guaranteed_bounds_cover_at_level_delta(name, n, p, delta):
    reps = 40_000
    miss = coverage_miss(get_bound(name), n, p, delta, reps, seed=n)
    assert miss <= delta + 3 * math.sqrt(delta * (1 - delta) / reps)
    # and the exact miss probability, summed over the binomial pmf
    k = np.arange(n + 1)
    exact = binom.pmf(k, n, p)[get_bound(name).upper(k, np.full(n + 1, n), delta) < p].sum()
    assert exact <= delta + 1e-12


def test_coverage_check_catches_a_heuristic():
    """Negative control: the TBAL authors' k/n + 0.25/sqrt(n) misses far more often than delta."""
    miss = coverage_miss(get_bound("tbal-hoeffding"), 100, 0.5, 0.05, 40_000, seed=0)
    assert miss > 0.2


# ---------------------------------------------------------------- a new bound reaches the scan, the certifier, the CLI
def test_registered_bound_is_used_by_the_scan_and_certifier(point_estimate):
    assert "point-estimate" in BOUNDS and "point-estimate" in HEURISTIC_BOUNDS
    assert "point-estimate" not in GUARANTEED_BOUNDS
    # 10 points high -> low, errors at positions 5 and 8: rates 0 x5, 1/6, 1/7, 1/8, 2/9, 2/10
    conf = np.linspace(1.0, 0.1, 10)
    wrong = np.zeros(10, bool)
    wrong[[5, 8]] = True
    r = scan_threshold(conf, wrong, epsilon=0.2, delta=0.05, bound="point-estimate", min_n=1)
    # 1/8 <= 0.2 passes at position 7, 2/9 > 0.2 fails at 8 and ends the scan: t = conf[7]
    assert (r.n, r.errors, r.threshold, r.n_tested) == (8, 1, pytest.approx(conf[7]), 9)
    assert r.upper == pytest.approx(1 / 8)
    # the lowest passing candidate (2/10 at position 9) is what scan="any" takes
    assert scan_threshold(conf, wrong, epsilon=0.2, delta=0.05, bound="point-estimate", min_n=1, scan="any").n == 10
    assert scan_threshold(conf, wrong, epsilon=0.15, delta=0.05, bound="point-estimate", min_n=1).n == 5
    cert = certify_thresholds(np.zeros(10, int), conf, np.where(wrong, 1, 0), n_classes=2, epsilon=0.2,
                              bound="point-estimate", min_n=1)
    assert cert.bound == "point-estimate" and not cert.guaranteed
    assert cert.statement() == "HEURISTIC (point-estimate, fixed-sequence scan): no guarantee"


def test_registered_bound_is_accepted_by_tbal(point_estimate):
    from labelsieve.autolabel.tbal import TBAL
    from labelsieve.data.dataset import Dataset
    from labelsieve.models import LogisticRegressionClassifier

    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 400)
    X = 3.0 * y[:, None] + rng.standard_normal((400, 2))
    ds = Dataset(ids=[f"p{i}" for i in range(400)], X=X, classes=("a", "b"), y=y, name="toy")
    res = TBAL(model=LogisticRegressionClassifier(n_classes=2), bound="point-estimate", epsilon=0.1, budget=200,
               rounds=2, random_state=0).run(ds)
    assert res.metrics["bound"] == "point-estimate" and res.metrics["guaranteed"] is False


def test_registered_bound_is_a_cli_choice(point_estimate):
    from labelsieve.cli import build_parser

    parser = build_parser()
    for argv in (["run", "--dataset", "digits", "--out", "x"], ["project-run", "some/project"]):
        assert parser.parse_args([*argv, "--bound", "point-estimate"]).bound == "point-estimate"
    with pytest.raises(SystemExit):  # argparse refuses a name that is not registered
        parser.parse_args(["run", "--dataset", "digits", "--out", "x", "--bound", "wilson"])


# ---------------------------------------------------------------- the two bugs of issue 17
@pytest.mark.parametrize(
    "kw",
    [{"delta": 2.0}, {"delta": 0.0}, {"delta": -0.1}, {"delta": math.nan}, {"epsilon": 1.5}, {"epsilon": 0.0},
     {"epsilon": -0.2}],
)
def test_scan_threshold_validates_epsilon_and_delta(kw):
    """f153bd5: ``scan_threshold`` took delta=2.0 and certified all 300 points."""
    conf = np.linspace(1, 0, 300)
    wrong = np.zeros(300, bool)
    assert scan_threshold(conf, wrong, epsilon=0.05, delta=0.05).n == 300  # valid parameters: certified
    args = {"epsilon": 0.05, "delta": 0.05, **kw}
    name = next(iter(kw))
    with pytest.raises(ParameterError, match=f"'{name}' parameter of scan_threshold must be in \\(0, 1\\)"):
        scan_threshold(conf, wrong, **args)


@pytest.mark.parametrize("bound", REGISTERED)
@pytest.mark.parametrize("scan", SCANS)
def test_statement_names_the_scan_that_ran(bound, scan):
    """f153bd5: ``Certificate.describe()`` said "fixed-sequence scan" whatever the scan."""
    rng = np.random.default_rng(2)
    pred = rng.integers(0, 3, 400)
    cert = certify_thresholds(pred, rng.random(400), pred, n_classes=3, bound=bound, scan=scan)
    other = next(s for s in SCANS if s != scan)
    text = cert.describe()
    assert text == cert.statement()
    assert f"{scan} scan" in text and f"{other} scan" not in text
    assert text.startswith("HEURISTIC") == (not cert.guaranteed)
    assert cert.guaranteed == (bound in GUARANTEED_BOUNDS and scan == "fixed-sequence")


# ---------------------------------------------------------------- one scan, two kinds of evidence
@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**16), st.integers(1, 400))
def test_count_and_certain_poisson_binomial_evidence_give_the_same_scan(seed, n):
    rng = np.random.default_rng(seed)
    c = np.sort(rng.choice(np.linspace(0, 1, 50), n))[::-1]
    wrong = rng.random(n) < rng.random() * 0.2
    b = get_bound("clopper-pearson")
    kw = {"epsilon": 0.1, "delta": 0.05, "bound": b, "start": 30}
    a = scan_sorted(c, CountEvidence(wrong), **kw)
    p = scan_sorted(c, PoissonBinomialEvidence(wrong.astype(float), 0.0), **kw)
    assert (a.threshold, a.n, a.errors, a.n_tested) == (p.threshold, p.n, p.errors, p.n_tested)


def test_noisy_evidence_bounds_more_errors_than_it_expects():
    c = np.linspace(1, 0, 300)
    p = np.full(300, 0.02)
    ev = PoissonBinomialEvidence(p, 0.025)
    q = ev.errors(np.array([99, 299]))
    # Poisson-binomial of identical p is Binomial: the 0.975 quantiles, by scipy
    assert q.tolist() == [int(binom.ppf(0.975, 100, 0.02)), int(binom.ppf(0.975, 300, 0.02))]
    cert = certify_thresholds_noisy(np.zeros(300, int), c, np.zeros(300, int), n_classes=2,
                                    error_probability=p, epsilon=0.1)
    assert cert.noise_aware and "against the TRUE labels" in cert.statement()


# ---------------------------------------------------------------- one statement per guarantee kind
def test_statement_reads_right_for_subset_precision_and_dataset():
    base = {"thresholds": np.full(3, 0.9), "epsilon": 0.05, "delta": 0.1, "bound": "clopper-pearson",
            "scope": "per-class", "min_n": 93, "delta_per_test": 0.1 / 3, "n_validation": 500,
            "scan": "fixed-sequence", "scans": ()}
    sub = Certificate(**base)
    assert sub.statement() == (
        "with probability >= 0.9, the population error rate of the auto-labeling rule is <= 0.05 "
        "(clopper-pearson bound, fixed-sequence scan, delta 0.1 split over 3 classes: 0.0333 per test)"
    )
    # a run that spread delta over rounds says so (TBAL's run statement)
    assert sub.statement(spent="certified once, in the final round, with all of delta") == (
        "with probability >= 0.9, the population error rate of the auto-labeling rule is <= 0.05 "
        "(clopper-pearson bound, fixed-sequence scan, certified once, in the final round, with all of delta, "
        "and over classes)"
    )
    box = Certificate(**{**base, "guarantee": "precision", "classes": (3, 7, 9)})
    assert box.statement().startswith("with probability >= 0.9, the precision of the accepted boxes is >= 0.95 (")
    pac = Certificate(**{**base, "thresholds": np.array([0.37]), "scope": "global", "bound": "betting",
                         "bound_guaranteed": True, "guarantee": "dataset", "n_items": 10_000, "n_validation": 800})
    assert pac.guaranteed
    assert pac.statement() == (
        "with probability >= 0.9, the error of the whole labeled data set (all 10000 labels: the model's label "
        "below uncertainty 0.37, a human label above) is <= 0.05 (betting bound on an audit sample of 800 items, "
        "fixed-sequence scan)"
    )
    clt = Certificate(**{**base, "bound": "clt", "bound_guaranteed": False, "guarantee": "dataset"})
    assert clt.statement() == "HEURISTIC (clt, fixed-sequence scan): no guarantee"


def test_box_thresholds_hold_a_precision_certificate():
    from labelsieve.detect.synthetic import SimulatedDetector, make_scenes
    from labelsieve.detect.thresholds import BoxThresholds

    gt, _ = make_scenes(300, render=False, random_state=1)
    pred = SimulatedDetector(random_state=1).predict(gt)
    for scope in ("per-class", "global"):
        bt = BoxThresholds(epsilon=0.1, delta=0.1, scope=scope).fit(pred, gt)
        cert = bt.certificate_
        assert cert.guarantee == "precision" and cert.guaranteed == bt.guaranteed_
        assert dict(zip(cert.classes, cert.thresholds.tolist(), strict=True)) == bt.thresholds_
        assert cert.delta_per_test == pytest.approx(0.1 / 3 if scope == "per-class" else 0.1)
        assert "precision of the accepted boxes is >= 0.9" in cert.statement()
