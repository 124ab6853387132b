"""Issue 17 item 2: oracles return typed :class:`Answers`, so a label's noise travels with it."""

from __future__ import annotations

import numpy as np
import pytest

from labelsieve.autolabel.crowd_oracle import CrowdOracle
from labelsieve.autolabel.noisy import NoiseAwareCertifier
from labelsieve.autolabel.oracles import Answers, RecordingOracle, SimulatedOracle, as_answers
from labelsieve.autolabel.tbal import TBAL
from labelsieve.data import load_dataset
from labelsieve.data.dataset import Dataset
from labelsieve.errors import InputError
from labelsieve.models import make_model


# ----------------------------------------------------------------------------- (a) wrappers keep the noise
class Delegating:
    """A wrapper that knows nothing of noise: it only passes ``ask`` on."""

    def __init__(self, inner):
        self.inner = inner

    def ask(self, ids):
        return self.inner.ask(ids)


class Stripping(Delegating):
    """What a forgetful wrapper amounted to before: the labels without their noise."""

    def ask(self, ids):
        return Answers(self.inner.ask(ids).labels)


@pytest.fixture(scope="module")
def bc():
    return load_dataset("breast-cancer")


def _crowd(ds):
    return CrowdOracle(ds, accuracy_range=(0.8, 0.95), tau=0.9, kappa=3, gold_size=60, difficulty=0.0,
                       confusion="uniform", random_state=3)


def _run(ds, oracle, epsilon=0.1):
    seen: list[dict] = []

    def spy(pred, conf, given, **kw):
        seen.append(kw)
        return NoiseAwareCertifier()(pred, conf, given, **kw)

    res = TBAL(model=make_model("logreg", n_classes=2, random_state=0), epsilon=epsilon, delta=0.1, budget=300,
               rounds=2, certifier=spy, random_state=0).run(ds, oracle)
    return res, seen


def test_delegating_wrapper_keeps_the_noise(bc):
    plain, seen_plain = _run(bc, _crowd(bc), 0.2)
    wrapped, seen_wrapped = _run(bc, Delegating(_crowd(bc)), 0.2)
    stripped, seen_stripped = _run(bc, Stripping(_crowd(bc)), 0.2)
    # the certifier saw the crowd's posteriors through the wrapper, value for value
    assert len(seen_wrapped) == len(seen_plain) == 2
    for a, b in zip(seen_plain, seen_wrapped, strict=True):
        lc = a["label_confidence"]
        assert (lc < 1).mean() > 0.5  # the crowd is noisy: most labels are uncertain
        np.testing.assert_array_equal(lc, b["label_confidence"])
        np.testing.assert_array_equal(a["error_probability"], b["error_probability"])
    for cp, cw in zip(plain.certificates, wrapped.certificates, strict=True):
        np.testing.assert_array_equal(cp.thresholds, cw.thresholds)
        assert [s.upper for s in cp.scans] == [s.upper for s in cw.scans]
    assert plain.metrics["n_auto_labeled"] == wrapped.metrics["n_auto_labeled"]
    assert plain.labels.equals(wrapped.labels)
    # dropping the noise changes the outcome here (so the equalities above are not vacuous): taken
    # as true, the crowd's labels certify a threshold the noise-aware bound refuses
    assert all("label_confidence" not in kw for kw in seen_stripped)
    assert np.isfinite(stripped.certificates[-1].thresholds).any()
    assert not np.isfinite(plain.certificates[-1].thresholds).any()
    assert stripped.metrics["n_auto_labeled"] > plain.metrics["n_auto_labeled"]


def test_simulated_noise_reaches_the_certifier():
    rng = np.random.default_rng(0)
    n = 400
    y = rng.integers(0, 2, n)
    ds = Dataset(ids=[f"i{k}" for k in range(n)], X=rng.normal(size=(n, 2)) + 3.0 * y[:, None], classes=("a", "b"),
                 y=y)
    assert SimulatedOracle(ds).ask(ds.ids[:5]).p_correct is None
    got = SimulatedOracle(ds, noise=0.2, random_state=0).ask(ds.ids[:5])
    np.testing.assert_array_equal(got.p_correct, np.full(5, 0.8))
    seen: list[dict] = []

    def spy(pred, conf, given, **kw):
        seen.append(kw)
        return NoiseAwareCertifier()(pred, conf, given, **kw)

    TBAL(model=make_model("logreg", n_classes=2, random_state=0), budget=200, rounds=2, certifier=spy,
         random_state=0).run(ds, Delegating(SimulatedOracle(ds, noise=0.2, random_state=1)))
    assert seen and all(np.array_equal(kw["label_confidence"], np.full(len(kw["label_confidence"]), 0.8))
                        for kw in seen)
    assert all("error_probability" not in kw for kw in seen)  # no posterior: nothing to bound it with


# ----------------------------------------------------------------------------- (b) RecordingOracle persists the noise
class Scripted:
    """Answers from fixed tables; refuses to be asked for an id twice (a resume must not ask again)."""

    def __init__(self, labels, p=None, post=None):
        self.labels, self.p, self.post = labels, p, post
        self.asked: list[str] = []

    def ask(self, ids):
        ids = [str(i) for i in ids]
        assert not set(ids) & set(self.asked), "asked again for a recorded answer"
        self.asked += ids
        return Answers(np.array([self.labels[i] for i in ids]),
                       p_correct=None if self.p is None else np.array([self.p[i] for i in ids]),
                       posterior=None if self.post is None else np.array([self.post[i] for i in ids]))


def _same(a: Answers, b: Answers) -> None:
    np.testing.assert_array_equal(a.labels, b.labels)
    for f in ("p_correct", "posterior"):
        x, y = getattr(a, f), getattr(b, f)
        assert (x is None) == (y is None), f
        if x is not None:
            assert x.dtype == y.dtype == np.float64
            np.testing.assert_array_equal(x, y)  # exact: floats round-trip through the file


def test_recording_round_trip_across_a_restart(tmp_path):
    third = 1.0 / 3.0
    labels = {"a": 0, "b": 2, "c": 1, "d": 1}
    p = {"a": 0.1 + 0.2, "b": third, "c": 0.9999999999999998, "d": 0.5}
    post = {"a": [0.1 + 0.2, 0.35, 0.35], "b": [third, third, third], "c": [0.0, 0.9999999999999998, 0.0],
            "d": [0.25, 0.5, 0.25]}
    path = tmp_path / "state" / "answers.csv"
    rec = RecordingOracle(Scripted(labels, p, post), path)
    first = rec.ask(np.array(["b", "a", "c"], dtype=object))
    header = path.read_text().splitlines()[0]
    assert header == "id,label_code,p_correct,post_0,post_1,post_2"
    # a new process on the same file: answers from disk, the inner oracle is not asked again
    inner2 = Scripted(labels, p, post)
    again = RecordingOracle(inner2, path)
    assert again.n_recorded == 3
    replay = again.ask(np.array(["b", "a", "c"], dtype=object))
    assert inner2.asked == []
    _same(first, replay)
    np.testing.assert_array_equal(replay.p_correct, [third, 0.1 + 0.2, 0.9999999999999998])
    # new items go to the inner oracle and are appended; the older rows stay
    both = again.ask(np.array(["d", "a"], dtype=object))
    assert inner2.asked == ["d"]
    np.testing.assert_array_equal(both.posterior, [post["d"], post["a"]])
    _same(RecordingOracle(Scripted(labels), path).ask(np.array(["a", "b", "c", "d"], dtype=object)),
          Answers(np.array([0, 2, 1, 1]), p_correct=np.array([p[k] for k in "abcd"]),
                  posterior=np.array([post[k] for k in "abcd"])))


def test_recording_mixes_certain_and_noisy_answers(tmp_path):
    path = tmp_path / "answers.csv"
    RecordingOracle(Scripted({"x": 1}), path).ask(np.array(["x"], dtype=object))
    assert path.read_text() == "id,label_code\nx,1\n"  # certain answers: the old format, byte for byte
    noisy = Scripted({"y": 0}, {"y": 0.7}, {"y": [0.7, 0.3]})
    got = RecordingOracle(noisy, path).ask(np.array(["x", "y"], dtype=object))
    np.testing.assert_array_equal(got.p_correct, [1.0, 0.7])  # the certain one counts as certain
    np.testing.assert_array_equal(got.posterior, [[0.0, 1.0], [0.7, 0.3]])
    assert path.read_text() == "id,label_code,p_correct,post_0,post_1\nx,1,,,\ny,0,0.7,0.7,0.3\n"
    _same(RecordingOracle(Scripted({}), path).ask(np.array(["x", "y"], dtype=object)), got)


def test_old_answer_files_still_load(tmp_path):
    path = tmp_path / "answers.csv"
    path.write_text("id,label_code\n007,1\nb,0\n")  # ids stay strings
    rec = RecordingOracle(Scripted({}), path)
    got = rec.ask(np.array(["b", "007"], dtype=object))
    np.testing.assert_array_equal(got.labels, [0, 1])
    assert got.p_correct is None and got.posterior is None
    # a simulated run with known noise, recorded before p_correct was stored
    legacy = RecordingOracle(Scripted({}), path, legacy_p_correct=0.9).ask(np.array(["007"], dtype=object))
    np.testing.assert_array_equal(legacy.p_correct, [0.9])
    bad = tmp_path / "bad.csv"
    bad.write_text("id,label_code\na,x\n")
    with pytest.raises(InputError, match="line 2"):
        RecordingOracle(Scripted({}), bad)


# ----------------------------------------------------------------------------- (c) validation
@pytest.mark.parametrize(
    ("kw", "field"),
    [
        ({"labels": np.zeros((2, 2), dtype=int)}, "labels"),
        ({"labels": np.array([0.5, 1.0])}, "labels"),
        ({"labels": np.array([0, -1])}, "labels"),
        ({"p_correct": np.array([0.9])}, "p_correct"),
        ({"p_correct": np.array([0.9, 1.2])}, "p_correct"),
        ({"p_correct": np.array([np.nan, 0.5])}, "p_correct"),
        ({"posterior": np.array([0.5, 0.5])}, "posterior"),
        ({"posterior": np.array([[0.9, 0.9], [0.5, 0.5]])}, "posterior"),
        ({"posterior": np.array([[1.5, -0.5], [0.5, 0.5]])}, "posterior"),
        ({"posterior": np.array([[1.0], [1.0]])}, "posterior"),
    ],
)
def test_answers_validation_names_the_field(kw, field):
    args = {"labels": np.array([0, 1]), **kw}
    with pytest.raises(InputError, match=rf"Answers\.{field}"):
        Answers(**args)


def test_answers_behave_like_their_labels_for_old_callers():
    a = Answers([1, 0, 1], p_correct=[0.9, 1.0, 0.6], posterior=[[0.1, 0.9], [1.0, 0.0], [0.3, 0.6]])
    assert len(a) == 3 and a.labels.dtype == np.int64
    assert np.asarray(a).tolist() == [1, 0, 1] and np.asarray(a, dtype=float).dtype == np.float64
    assert a.p_correct.dtype == np.float64 and a.posterior.shape == (3, 2)
    with pytest.raises(AttributeError):
        a.labels = np.array([0, 0, 0])  # frozen
    assert as_answers(a) is a
    legacy = as_answers(np.array([2, 0]))
    assert legacy.labels.tolist() == [2, 0] and legacy.p_correct is None and legacy.posterior is None


def test_project_runs_carry_simulated_noise_like_the_export(tmp_path):
    """A project run's simulated answers with --noise reach the certifier with P(correct) = 1 - noise, the
    same number the export's p_wrong states (before, the store oracle certified them as expert labels)."""
    from labelsieve.runs.directory import RunConfig
    from labelsieve.runs.project import StoreOracle, find_or_create_run
    from labelsieve.store.project import init_project

    ds = load_dataset("breast-cancer")
    p = init_project(tmp_path / "p", ds)
    ids = np.asarray(ds.ids)[:40]
    r1, _ = find_or_create_run(p, RunConfig(dataset="project", noise=0.1))
    noisy = StoreOracle(p, run_id=r1, inner=SimulatedOracle(ds, noise=0.1, random_state=0)).ask(ids)
    assert noisy.p_correct is not None and np.allclose(noisy.p_correct, 0.9)
    r2, _ = find_or_create_run(p, RunConfig(dataset="project"), new=True)
    exact = StoreOracle(p, run_id=r2, inner=SimulatedOracle(ds, random_state=0)).ask(ids)
    assert exact.p_correct is not None and np.all(exact.p_correct == 1.0)
    p.close()
