"""The Ray engine against a real local Ray cluster (loopback, dashboard off, 2 worker CPUs).

Same inputs through both engines: the outputs must be the same. One cluster for the module.
"""

from __future__ import annotations

import os
import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

ray = pytest.importorskip("ray", reason="the Ray engine tests need the ray extra: pip install 'labelsieve[ray]'")

from labelsieve.active.influence import LogisticInfluence
from labelsieve.active.salutary import salutary_select
from labelsieve.cli import main
from labelsieve.engine import LocalEngine, as_source
from labelsieve.engine.ray_engine import RayEngine
from labelsieve.engine.shards import read_shards
from labelsieve.errors import InputError
from labelsieve.models.base import Scores

sys.path.insert(0, os.path.dirname(__file__))
from test_engine import AGGREGATORS, crowd_table, influence_files


@pytest.fixture(scope="module")
def engine():
    """A local Ray cluster for this module: 2 CPUs, loopback only, no dashboard; stopped at teardown."""
    import ray.cloudpickle

    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers cannot import this file
    if ray.is_initialized():
        ray.shutdown()
    ray.init(num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1", log_to_driver=False,
             logging_level="ERROR")
    try:
        yield RayEngine()
    finally:
        ray.shutdown()


class Linear:
    """A deterministic scorer; ``kill_flag``: the first call anywhere exits its process (once)."""

    def __init__(self, W, kill_flag=None, log=None):
        self.W, self.kill_flag, self.log = W, kill_flag, log

    def scores(self, X):
        if self.kill_flag is not None and not os.path.exists(self.kill_flag):
            open(self.kill_flag, "w").close()
            os._exit(1)  # the worker process dies mid-job
        return Scores(np.asarray(X, dtype=np.float64) @ self.W)


PROMPTS = {"space": ["nasa rocket orbit planet"], "medicine": ["doctor patient disease hospital"],
           "sport": ["football match goal team"]}


class LabelerFactory:
    """Builds a zero-shot text labeler and records the process that built it (once per worker)."""

    def __init__(self, log):
        self.log = log

    def __call__(self):
        from labelsieve.labelers import TextZeroShotLabeler

        with open(self.log, "a") as fh:
            fh.write(f"{os.getpid()}\n")
        return TextZeroShotLabeler(classes=list(PROMPTS), prompts=PROMPTS, encoder="hashing").fit()


def pool_file(tmp_path, n=3000, d=6, seed=0):
    X = np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32)
    cols = {"id": [f"p{i}" for i in range(n)], **{f"f{j}": X[:, j] for j in range(d)}}
    path = tmp_path / "pool.parquet"
    pq.write_table(pa.table(cols), path, row_group_size=700)
    return path, X


# ------------------------------------------------------------------------------------ aggregation
@pytest.mark.parametrize("name", ["mv", "gtx", "ds", "onecoin"])
def test_aggregation_on_ray_equals_in_process(engine, name):
    df, accs = crowd_table(600, seed=5)
    ref = AGGREGATORS[name](accs).fit(df)
    got = AGGREGATORS[name](accs).fit(df, engine=engine, block_size=500)
    assert (got.labels_ == ref.labels_).all()
    np.testing.assert_allclose(got.probas_.to_numpy(), ref.probas_.to_numpy(), rtol=0, atol=1e-9)
    if name in ("ds", "onecoin"):
        assert got.n_iter_ == ref.n_iter_
        np.testing.assert_allclose(got.params_[1], ref.params_[1], rtol=0, atol=1e-9)


# ------------------------------------------------------------------------------------ influence
def test_influence_on_ray_equals_in_process(engine, tmp_path):
    path, X = pool_file(tmp_path, n=2000, d=4, seed=1)
    rng = np.random.default_rng(2)
    Xt = rng.normal(size=(260, 4))
    yt = (Xt[:, 0] + 0.4 * rng.normal(size=260) > 0).astype(int)
    inf = LogisticInfluence().fit(Xt[:200], yt[:200], Xt[200:], yt[200:])
    ref = inf.loss_decrease(X)
    got = inf.loss_decrease(str(path), engine=engine, block_size=300)  # Parquet read on the workers
    np.testing.assert_allclose(got, ref, rtol=1e-12, atol=0)
    rows, labels, _ = inf.top_salutary(X, 15, engine=engine, block_size=300)
    pos, lab, _ = salutary_select(ref, 15)
    assert rows.tolist() == pos.tolist() and labels.tolist() == lab.tolist()


# ------------------------------------------------------------------------------------ scoring
def test_zero_shot_scoring_actors_load_the_labeler_once_per_worker(engine, tmp_path):
    words = np.array(["rocket", "orbit", "doctor", "patient", "goal", "team", "the", "a", "planet", "hospital"])
    rng = np.random.default_rng(4)
    texts = [" ".join(rng.choice(words, 5)) for _ in range(1200)]
    path = tmp_path / "texts.parquet"
    pq.write_table(pa.table({"id": [f"d{i}" for i in range(len(texts))], "text": texts}), path, row_group_size=400)
    log = tmp_path / "loads.txt"
    src = as_source(str(path), features=[], keep=["text"])
    got = engine.score(LabelerFactory(str(log)), src, block_size=100, column="text")  # 12 blocks on 2 actors
    ref = LabelerFactory(str(tmp_path / "ref.txt"))().scores(texts)
    np.testing.assert_allclose(got.logits, ref.logits, rtol=1e-12, atol=1e-12)
    loads = log.read_text().split()
    assert 1 <= len(loads) <= 2 and len(set(loads)) == len(loads)  # one build per actor, not per block


def test_killed_scoring_worker_same_output(engine, tmp_path):
    path, X = pool_file(tmp_path, seed=7)
    W = np.random.default_rng(5).normal(size=(6, 2))
    flag = tmp_path / "killed"
    got = engine.score(Linear(W, kill_flag=str(flag)), str(path), block_size=250)
    assert flag.exists()  # a worker really died mid-job
    ref = LocalEngine().score(Linear(W), str(path), block_size=250)
    assert got.logits.shape == (len(X), 2)
    np.testing.assert_array_equal(got.logits, ref.logits)


def test_killed_task_worker_writes_each_row_once(engine, tmp_path):
    X = np.random.default_rng(8).normal(size=(5000, 3))
    flag = tmp_path / "killed"

    def norm_dies_once(b):
        if b["_row"][0] == 2000 and not flag.exists():
            flag.touch()
            os._exit(1)
        return {"norm": np.linalg.norm(b["X"], axis=1)}

    out = engine.map_blocks(norm_dies_once, X, block_size=500, out=tmp_path / "norms")
    assert flag.exists()
    got = read_shards(out)
    assert got["_row"].tolist() == list(range(len(X)))  # no row lost, none duplicated
    np.testing.assert_array_equal(got["norm"], np.linalg.norm(X, axis=1))


def test_block_error_reaches_the_driver_and_nothing_is_written(engine, tmp_path):
    X = np.ones((900, 2))

    def bad(b):
        if b["_row"][0] >= 600:
            raise InputError(f"row {b['_row'][0]}: value out of range")
        return {"v": b["X"][:, 0]}

    with pytest.raises(InputError, match="row 600: value out of range"):
        engine.map_blocks(bad, X, block_size=300, out=tmp_path / "out")
    assert os.listdir(tmp_path) == []


# ------------------------------------------------------------------------------------ CLI
def test_cli_commands_give_the_same_files_on_ray(engine, tmp_path):
    influence_files(tmp_path)
    common = ["influence", "--train", str(tmp_path / "train.csv"), "--val", str(tmp_path / "val.csv"),
              "--pool", str(tmp_path / "pool.parquet"), "--top", "20", "--block-size", "500"]
    assert main([*common, "--out", str(tmp_path / "local")]) == 0
    assert main([*common, "--out", str(tmp_path / "ray"), "--engine", "ray"]) == 0
    a, b = read_shards(tmp_path / "local" / "scores"), read_shards(tmp_path / "ray" / "scores")
    assert b["_row"].tolist() == a["_row"].tolist()
    np.testing.assert_allclose(b["decrease"], a["decrease"], rtol=1e-12, atol=0)
    assert (tmp_path / "ray" / "top.csv").read_text() == (tmp_path / "local" / "top.csv").read_text()

    df, _ = crowd_table(300, seed=9)
    df.to_csv(tmp_path / "labels.csv", index=False)
    for eng in ("local", "ray"):
        rc = main(["aggregate", str(tmp_path / "labels.csv"), "--method", "ds", "--engine", eng,
                   "--block-size", "300", "--out", str(tmp_path / f"agg-{eng}.csv")])
        assert rc == 0
    import pandas as pd

    a, b = pd.read_csv(tmp_path / "agg-local.csv"), pd.read_csv(tmp_path / "agg-ray.csv")
    assert a["task"].tolist() == b["task"].tolist() and a["label"].tolist() == b["label"].tolist()
    np.testing.assert_allclose(b["confidence"], a["confidence"], rtol=0, atol=1e-9)


# ------------------------------------------------------------------------------------ TBAL
def test_tbal_run_on_ray_equals_local(engine):
    import pandas as pd

    from labelsieve.autolabel.tbal import TBAL
    from labelsieve.data.dataset import Dataset
    from labelsieve.models import LogisticRegressionClassifier

    rng = np.random.default_rng(11)
    means = np.array([[0.0, 3.0], [3.0, 0.0], [-3.0, -3.0]])
    y = rng.integers(0, 3, 4000)
    X = means[y] + rng.standard_normal((4000, 2))
    ds = Dataset(ids=[f"p{i}" for i in range(len(y))], X=X, classes=("a", "b", "c"), y=y, name="gauss")
    kw = {"model": LogisticRegressionClassifier(n_classes=3), "epsilon": 0.1, "delta": 0.1, "budget": 300,
          "rounds": 3, "random_state": 0, "block_size": 700}
    ref = TBAL(**kw).run(ds)
    got = TBAL(**kw, engine=engine).run(ds)
    assert (ref.labels["source"] == "auto").sum() > 1000  # the comparison covers many auto-labels
    cols = ["id", "label", "code", "source", "threshold", "round"]
    pd.testing.assert_frame_equal(got.labels[cols], ref.labels[cols])
    np.testing.assert_allclose(got.labels["confidence"], ref.labels["confidence"], rtol=1e-12, atol=0)
    assert got.history["n_auto_round"].tolist() == ref.history["n_auto_round"].tolist()
    # the run's rule applied to new items: same on both engines
    X_new = means[rng.integers(0, 3, 1500)] + rng.standard_normal((1500, 2))
    for a, b in zip(ref.apply(X_new), got.apply(X_new, engine=engine), strict=True):
        np.testing.assert_array_equal(a, b)


def test_label_command_scores_on_ray_like_in_process(engine, tmp_path):
    """`labelsieve label --engine ray`: the zero-shot labeler scores blocks on the workers; the
    labels and confidences equal the in-process command's."""
    import pandas as pd

    words = np.array(["rocket", "orbit", "planet", "doctor", "patient", "hospital", "the", "a"])
    rng = np.random.default_rng(11)
    texts = [" ".join(rng.choice(words, 5)) for _ in range(300)]
    csv = tmp_path / "texts.csv"
    pd.DataFrame({"id": [f"t{i}" for i in range(300)], "text": texts}).to_csv(csv, index=False)
    for eng in ("local", "ray"):
        rc = main(["label", "--dataset", str(csv), "--labeler", "hashing", "--classes", "space,medicine",
                   "--engine", eng, "--block-size", "64", "--no-progress", "--out", str(tmp_path / eng)])
        assert rc == 0
    a, b = pd.read_csv(tmp_path / "local" / "labels.csv"), pd.read_csv(tmp_path / "ray" / "labels.csv")
    assert a["id"].tolist() == b["id"].tolist() and a["label"].tolist() == b["label"].tolist()
    np.testing.assert_allclose(b["confidence"], a["confidence"], rtol=0, atol=1e-6)
