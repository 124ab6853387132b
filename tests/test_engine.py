"""The engine abstraction without Ray: sources, the local engine, shard commits, group-by, top-k,
the crowd and influence engine paths against the in-process fits, and the CLI's engine errors."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from labelsieve.active.influence import LogisticInfluence
from labelsieve.active.salutary import salutary_select
from labelsieve.cli import main
from labelsieve.crowd import GTX, DawidSkene, MajorityVote, OneCoinDawidSkene, SoftVote, WeightedMajorityVote
from labelsieve.engine import (
    ArraySource,
    LocalEngine,
    as_source,
    get_engine,
    group_bounds,
    partition_by_key,
    select_top,
)
from labelsieve.engine.base import assemble
from labelsieve.engine.shards import ShardedOutput, read_shards, write_shard
from labelsieve.errors import InputError, LabelsieveError, MissingDependencyError, ParameterError


# ------------------------------------------------------------------------------------ fixtures
def crowd_table(n_tasks: int = 400, n_workers: int = 12, k: int = 3, seed: int = 0):
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, k, n_tasks)
    acc = rng.uniform(0.45, 0.95, n_workers)
    per = rng.integers(1, 6, n_tasks)
    task = np.repeat(np.arange(n_tasks), per)
    worker = np.concatenate([rng.choice(n_workers, m, replace=False) for m in per])
    right = rng.random(task.size) < acc[worker]
    label = np.where(right, truth[task], rng.integers(0, k, task.size))
    df = pd.DataFrame({"task": [f"t{t}" for t in task], "worker": [f"w{w}" for w in worker], "label": label})
    accs = {f"w{w}": float(acc[w]) for w in range(n_workers)}
    return df.sample(frac=1.0, random_state=seed).reset_index(drop=True), accs  # tasks interleaved


AGGREGATORS = {
    "mv": lambda a: MajorityVote(),
    "wmv": lambda a: WeightedMajorityVote(accuracies=a),
    "sv": lambda a: SoftVote(accuracies=a),
    "gtx": lambda a: GTX(accuracies=a, prior=[0.5, 0.3, 0.2], classes=[0, 1, 2]),
    "ds": lambda a: DawidSkene(smoothing=0.01),
    "onecoin": lambda a: OneCoinDawidSkene(),
}


def write_pool(path, X, *, row_group_size, ids=True):
    cols = {f"f{j}": X[:, j] for j in range(X.shape[1])}
    if ids:
        cols = {"id": [f"p{i}" for i in range(len(X))], **cols}
    pq.write_table(pa.table(cols), path, row_group_size=row_group_size)
    return path


# ------------------------------------------------------------------------------------- sources
@settings(max_examples=60, deadline=None)
@given(n=st.integers(0, 300), block=st.integers(1, 70))
def test_array_pieces_cover_every_row_once(n, block):
    src = ArraySource({"X": np.zeros((n, 2))})
    rows = np.concatenate([src.read(p)["_row"] for p in src.pieces(block)] or [np.zeros(0, int)])
    assert rows.tolist() == list(range(n))
    assert all(e - s <= block for s, e in src.pieces(block))


@settings(max_examples=80, deadline=None)
@given(sizes=st.lists(st.integers(1, 9), min_size=1, max_size=40), block=st.integers(1, 25))
def test_group_bounds_never_split_a_group(sizes, block):
    keys = np.repeat(np.arange(len(sizes)), sizes)
    b = group_bounds(keys, block)
    assert b[0] == 0 and b[-1] == len(keys) and np.all(np.diff(b) > 0)
    for cut in b[1:-1]:
        assert keys[cut - 1] != keys[cut]  # a boundary falls between two groups
    # a block passes block_size only by the group that crosses the size mark
    assert np.all(np.diff(b) < block + max(sizes))


@settings(max_examples=40, deadline=None)
@given(keys=st.lists(st.integers(0, 30), min_size=1, max_size=300), block=st.integers(1, 50))
def test_group_map_aggregates_each_group_once(keys, block):
    keys = np.asarray(keys)
    vals = np.arange(len(keys), dtype=float)
    src = partition_by_key(keys, {"v": vals}, block)

    def sums(b):  # a per-block group-by: one output row per key of the block
        k, inv = np.unique(b["_key"], return_inverse=True)
        return {"key": k, "sum": np.bincount(inv, weights=b["v"])}

    out = LocalEngine().group_map(sums, src, block_size=block)
    present = np.unique(keys)
    assert out["key"].tolist() == present.tolist()  # each group reported once, in key order
    np.testing.assert_allclose(out["sum"], np.bincount(keys, weights=vals)[present])


def test_parquet_source_streams_row_groups_in_order(tmp_path):
    X = np.random.default_rng(0).normal(size=(1000, 4)).astype(np.float32)
    write_pool(tmp_path / "a.parquet", X[:600], row_group_size=250)
    write_pool(tmp_path / "b.parquet", X[600:], row_group_size=300)
    src = as_source(tmp_path)  # a directory: its *.parquet files in name order
    pieces = src.pieces(100)
    assert max(p[3] - p[2] for p in pieces) == 100
    blocks = [src.read(p) for p in pieces]
    np.testing.assert_array_equal(np.concatenate([b["X"] for b in blocks]), X)
    assert np.concatenate([b["_row"] for b in blocks]).tolist() == list(range(1000))
    assert blocks[0]["id"][0] == "p0" and blocks[-1]["id"][-1] == "p399"  # ids are per file


def test_parquet_source_names_file_row_and_column(tmp_path):
    X = np.ones((50, 3))
    X[37, 2] = np.nan
    path = write_pool(tmp_path / "bad.parquet", X, row_group_size=20)
    src = as_source(str(path))
    with pytest.raises(InputError, match=r"bad\.parquet: feature 'f2' is nan .* at row 37"):
        LocalEngine().map_blocks(lambda b: {"s": b["X"].sum(1)}, src, block_size=16)
    with pytest.raises(InputError, match="no feature column"):
        as_source(str(path), features=["f0", "nope"])
    with pytest.raises(InputError, match="no such Parquet file"):
        as_source(str(tmp_path / "missing.parquet"))


# ------------------------------------------------------------------------------------ local engine
def test_local_map_blocks_equals_whole_array_and_checks_rows():
    X = np.random.default_rng(1).normal(size=(1003, 5))
    eng = LocalEngine()
    out = eng.map_blocks(lambda b: {"n": np.linalg.norm(b["X"], axis=1)}, X, block_size=100)
    np.testing.assert_array_equal(out["n"], np.linalg.norm(X, axis=1))
    # a block function that drops a row is caught: nothing is returned
    with pytest.raises(LabelsieveError, match="lost or duplicated"):
        eng.map_blocks(lambda b: {"n": b["X"][1:, 0], "_row": b["_row"][1:]}, X, block_size=100)


def test_assemble_keeps_one_copy_of_a_piece_reported_twice():
    a = {"_row": np.array([0, 1]), "v": np.array([5, 6])}
    b = {"_row": np.array([2]), "v": np.array([7])}
    out = assemble([(1, b), (0, a), (1, b)], 3)
    assert out["v"].tolist() == [5, 6, 7]


def test_map_reduce_sums_in_piece_order():
    X = np.arange(1, 101, dtype=float)[:, None]
    total = LocalEngine().map_reduce(lambda b: float(b["X"].sum()), X, lambda a, c: a + c, block_size=7)
    assert total == 5050.0


@settings(max_examples=50, deadline=None)
@given(vals=st.lists(st.integers(-3, 3), min_size=1, max_size=200), k=st.integers(1, 30),
       block=st.integers(1, 40))
def test_top_k_equals_a_full_sort(vals, k, block):
    g = np.asarray(vals, dtype=float)  # many ties: they go to the lowest row
    k = min(k, len(g))
    top = LocalEngine().top_k(lambda b: {"g": b["X"][:, 0]}, g[:, None], k, "g", block_size=block)
    ref = np.lexsort((np.arange(len(g)), -g))[:k]
    assert top["_row"].tolist() == ref.tolist()
    assert select_top({"_row": np.arange(len(g)), "g": g}, "g", k)["_row"].tolist() == ref.tolist()


def test_score_to_shards_equals_score_in_memory(tmp_path):
    X = np.random.default_rng(6).normal(size=(900, 3)).astype(np.float32)
    path = write_pool(tmp_path / "p.parquet", X, row_group_size=256)
    W = np.arange(6.0).reshape(3, 2)

    class Lin:
        def scores(self, Z):
            from labelsieve.models.base import Scores

            return Scores(Z @ W)

    eng = LocalEngine()
    mem = eng.score(Lin(), str(path), block_size=100)
    np.testing.assert_allclose(mem.logits, X @ W, rtol=1e-6)
    assert eng.score(Lin(), str(path), block_size=100, out=tmp_path / "s") == tmp_path / "s"
    disk = read_shards(tmp_path / "s")
    np.testing.assert_array_equal(disk["logits"], mem.logits)
    assert disk["id"].tolist() == [f"p{i}" for i in range(900)]


# ------------------------------------------------------------------------------------ shards
def test_failed_job_leaves_nothing_and_keeps_the_old_output(tmp_path):
    X = np.arange(40, dtype=float)[:, None]
    eng = LocalEngine()
    dest = tmp_path / "out"
    eng.map_blocks(lambda b: {"y": 2 * b["X"][:, 0]}, X, block_size=15, out=dest)
    first = read_shards(dest)
    assert first["y"].tolist() == (2 * X[:, 0]).tolist() and first["_row"].tolist() == list(range(40))

    def dies_late(b):
        if b["_row"][0] >= 30:
            raise InputError("row 30: bad value")
        return {"y": 3 * b["X"][:, 0]}

    with pytest.raises(InputError, match="row 30"):
        eng.map_blocks(dies_late, X, block_size=15, out=dest)
    assert sorted(os.listdir(tmp_path)) == ["out"]  # no staging directory left behind
    assert read_shards(dest)["y"].tolist() == first["y"].tolist()  # the old output is intact
    with pytest.raises(InputError):
        eng.map_blocks(dies_late, X, block_size=15, out=tmp_path / "new")
    assert not (tmp_path / "new").exists()


def test_a_retried_shard_overwrites_itself(tmp_path):
    with ShardedOutput(tmp_path / "o") as staging:
        write_shard(staging, 0, {"_row": np.arange(3), "v": np.zeros(3)})
        write_shard(staging, 0, {"_row": np.arange(3), "v": np.ones(3)})  # the same block again
        write_shard(staging, 3, {"_row": np.arange(3, 5), "v": np.full(2, 7.0)})
    out = read_shards(tmp_path / "o")
    assert out["_row"].tolist() == [0, 1, 2, 3, 4]
    assert out["v"][:3].tolist() == [1.0, 1.0, 1.0]


# ------------------------------------------------------------------------------------ crowd paths
@pytest.mark.parametrize("name", sorted(AGGREGATORS))
def test_aggregation_on_blocks_equals_in_process(name):
    df, accs = crowd_table()
    ref = AGGREGATORS[name](accs).fit(df)
    got = AGGREGATORS[name](accs).fit(df, engine="local", block_size=150)  # ~10 blocks of whole tasks
    assert got.labels_.index.equals(ref.labels_.index)
    assert (got.labels_ == ref.labels_).all()
    np.testing.assert_allclose(got.probas_.to_numpy(), ref.probas_.to_numpy(), rtol=0, atol=1e-9)
    if name in ("ds", "onecoin"):
        assert got.n_iter_ == ref.n_iter_
        np.testing.assert_allclose(got.prior_, ref.prior_, rtol=0, atol=1e-9)
        np.testing.assert_allclose(got.loss_history_, ref.loss_history_, rtol=1e-9)


@settings(max_examples=25, deadline=None)
@given(block=st.integers(1, 1500), seed=st.integers(0, 3))
def test_any_block_size_gives_the_in_process_posteriors(block, seed):
    df, accs = crowd_table(120, seed=seed)
    for name in ("mv", "gtx", "onecoin"):
        ref = AGGREGATORS[name](accs).fit(df)
        got = AGGREGATORS[name](accs).fit(df, engine="local", block_size=block)
        assert (got.labels_ == ref.labels_).all()
        np.testing.assert_allclose(got.probas_.to_numpy(), ref.probas_.to_numpy(), rtol=0, atol=1e-9)


@pytest.mark.parametrize("bad", [0, -5, 2.5, True])
@pytest.mark.parametrize("name", sorted(AGGREGATORS))
def test_aggregation_block_size_is_checked(name, bad):
    df, accs = crowd_table(50)
    with pytest.raises(ParameterError, match=r"'block_size' parameter .* must be an int >= 1"):
        AGGREGATORS[name](accs).fit(df, engine="local", block_size=bad)


# ------------------------------------------------------------------------------------ influence
def test_influence_scoring_on_blocks_equals_in_process():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(2600, 4))
    y = (X[:, 0] - X[:, 1] + 0.5 * rng.normal(size=len(X)) > 0).astype(int) + (X[:, 2] > 1)
    inf = LogisticInfluence(C=2.0).fit(X[:300], y[:300], X[300:400], y[300:400])
    pool = X[400:]
    ref = inf.loss_decrease(pool)
    np.testing.assert_array_equal(inf.loss_decrease(pool, engine="local", block_size=333), ref)
    rows, labels, gains = inf.top_salutary(pool, 25, engine="local", block_size=200)
    pos, lab, gain = salutary_select(ref, 25)
    assert rows.tolist() == pos.tolist() and labels.tolist() == lab.tolist()
    np.testing.assert_array_equal(gains, gain)


# ------------------------------------------------------------------------------------ labelers
def test_zero_shot_labeler_scores_texts_from_parquet_blocks(tmp_path):
    from labelsieve.labelers import TextZeroShotLabeler

    prompts = {"space": ["nasa rocket orbit"], "medicine": ["doctor patient disease"]}
    lab = TextZeroShotLabeler(classes=list(prompts), prompts=prompts, encoder="hashing").fit()
    texts = [["the rocket reached orbit", "the doctor saw the patient", "a patient in orbit"][i % 3] + f" {i}"
             for i in range(250)]
    path = tmp_path / "t.parquet"
    pq.write_table(pa.table({"id": [f"d{i}" for i in range(250)], "text": texts}), path, row_group_size=100)
    got = LocalEngine().score(lab, as_source(str(path), features=[], keep=["text"]), block_size=40, column="text")
    ref = lab.scores(texts)
    np.testing.assert_allclose(got.logits, ref.logits, rtol=1e-12)
    assert got.predicted[:2].tolist() == [0, 1]
    with pytest.raises(InputError, match="no column 'body'"):
        LocalEngine().score(lab, as_source(str(path), features=[], keep=["text"]), column="body")


# ------------------------------------------------------------------------------------ engine choice
@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: get_engine("spark"), r"'engine' parameter must be one of 'local', 'ray'. Got 'spark'"),
        (lambda: get_engine("local", address="auto"), r"'address' parameter is for the ray engine"),
        (lambda: LocalEngine().map_blocks(lambda b: b, np.ones((3, 1)), block_size=0), r"'block_size'"),
        (lambda: LocalEngine().top_k(lambda b: b, np.ones((3, 1)), 0, "X"), r"'k' parameter of top_k"),
        (lambda: as_source(42), r"'source' parameter"),
    ],
)
def test_engine_parameters_are_checked(call, match):
    with pytest.raises(ParameterError, match=match):
        call()


def test_ray_missing_gives_the_install_line(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    with pytest.raises(MissingDependencyError, match=r'pip install "labelsieve\[ray\]"'):
        get_engine("ray")
    df, _ = crowd_table(30)
    df.to_csv(tmp_path / "l.csv", index=False)
    rc = main(["aggregate", str(tmp_path / "l.csv"), "--method", "mv", "--out", str(tmp_path / "o.csv"),
               "--engine", "ray"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and 'pip install "labelsieve[ray]"' in err[0]
    assert not (tmp_path / "o.csv").exists()


def test_ray_address_without_ray_engine_is_an_error(tmp_path, capsys):
    df, _ = crowd_table(30)
    df.to_csv(tmp_path / "l.csv", index=False)
    rc = main(["aggregate", str(tmp_path / "l.csv"), "--out", str(tmp_path / "o.csv"), "--method", "mv",
               "--ray-address", "auto"])
    assert rc == 2 and "--ray-address needs --engine ray" in capsys.readouterr().err


def test_unreachable_cluster_fails_fast_and_writes_nothing(tmp_path):
    pytest.importorskip("ray", reason="needs the ray extra (pip install 'labelsieve[ray]')")
    df, _ = crowd_table(30)
    df.to_csv(tmp_path / "l.csv", index=False)
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "labelsieve", "aggregate", str(tmp_path / "l.csv"), "--method", "mv",
         "--out", str(tmp_path / "o.csv"), "--engine", "ray", "--ray-address", "127.0.0.1:9"],
        check=False, capture_output=True, text=True, timeout=60,
    )
    elapsed = time.perf_counter() - t0
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2, proc.stderr
    assert len(lines) == 1 and "cannot reach the Ray cluster at 127.0.0.1:9" in lines[0]
    assert elapsed < 30
    assert sorted(os.listdir(tmp_path)) == ["l.csv"]


# ------------------------------------------------------------------------------------ influence CLI
def influence_files(tmp_path, seed=0):
    rng = np.random.default_rng(seed)

    def table(n):
        X = rng.normal(size=(n, 3))
        y = np.where(X[:, 0] - X[:, 2] + 0.5 * rng.normal(size=n) > 0, "pos", "neg")
        return X, y

    Xt, yt = table(150)
    Xv, yv = table(80)
    Xp, _ = table(2500)
    for name, X, y in (("train.csv", Xt, yt), ("val.csv", Xv, yv)):
        pd.DataFrame({"f0": X[:, 0], "f1": X[:, 1], "f2": X[:, 2], "label": y}).to_csv(tmp_path / name, index=False)
    pq.write_table(pa.table({"id": [f"p{i}" for i in range(len(Xp))], "f0": Xp[:, 0], "f1": Xp[:, 1],
                             "f2": Xp[:, 2]}), tmp_path / "pool.parquet", row_group_size=900)
    inf = LogisticInfluence(n_classes=2).fit(Xt, (yt == "pos").astype(int), Xv, (yv == "pos").astype(int))
    return inf, Xp


def test_influence_command_writes_scores_and_top_rows(tmp_path, capsys):
    inf, Xp = influence_files(tmp_path)
    out = tmp_path / "inf"
    rc = main(["influence", "--train", str(tmp_path / "train.csv"), "--val", str(tmp_path / "val.csv"),
               "--pool", str(tmp_path / "pool.parquet"), "--top", "12", "--out", str(out), "--block-size", "400"])
    assert rc == 0
    ref = inf.loss_decrease(Xp.astype(np.float32))  # pool features are read as float32, as Dataset holds them
    scores = read_shards(out / "scores")
    assert scores["_row"].tolist() == list(range(len(Xp)))
    np.testing.assert_allclose(scores["decrease"], ref, rtol=1e-9, atol=1e-15)
    top = pd.read_csv(out / "top.csv")
    pos, lab, gain = salutary_select(ref, 12)
    assert top["row"].tolist() == pos.tolist()
    assert top["id"].tolist() == [f"p{i}" for i in pos]
    assert top["salutary_label"].tolist() == np.array(["neg", "pos"])[lab].tolist()
    np.testing.assert_allclose(top["gain"], gain, rtol=1e-9)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["inf", "pool.parquet", "train.csv", "val.csv"]


@pytest.mark.parametrize(
    ("extra", "match"),
    [(["--top", "0"], "--top must be a positive integer"), (["--top", "99999"], "exceeds the pool size"),
     (["--C", "-1"], "--C must be > 0"), (["--block-size", "0"], "--block-size must be a positive")],
)
def test_influence_command_checks_its_flags(tmp_path, capsys, extra, match):
    influence_files(tmp_path)
    rc = main(["influence", "--train", str(tmp_path / "train.csv"), "--val", str(tmp_path / "val.csv"),
               "--pool", str(tmp_path / "pool.parquet"), "--out", str(tmp_path / "inf"), *extra])
    assert rc == 2 and match in capsys.readouterr().err
    assert not (tmp_path / "inf").exists()


# ------------------------------------------------------------------------------------ TBAL
def test_tbal_on_the_local_engine_equals_in_process():
    from labelsieve.autolabel.tbal import TBAL
    from labelsieve.data.dataset import Dataset
    from labelsieve.models import LogisticRegressionClassifier

    rng = np.random.default_rng(2)
    means = np.array([[0.0, 3.0], [3.0, 0.0], [-3.0, -3.0]])
    y = rng.integers(0, 3, 3000)
    X = means[y] + rng.standard_normal((3000, 2))
    ds = Dataset(ids=[f"p{i}" for i in range(len(y))], X=X, classes=("a", "b", "c"), y=y, name="gauss")
    kw = {"model": LogisticRegressionClassifier(n_classes=3), "epsilon": 0.1, "delta": 0.1, "budget": 300,
          "rounds": 3, "random_state": 1, "block_size": 400}
    ref = TBAL(**kw).run(ds)
    got = TBAL(**kw, engine="local").run(ds)
    assert (ref.labels["source"] == "auto").sum() > 1000
    pd.testing.assert_frame_equal(got.labels, ref.labels)
    pd.testing.assert_frame_equal(got.history, ref.history)
    with pytest.raises(ParameterError, match="'engine' parameter"):
        TBAL(**kw, engine="spark").run(ds)
