"""Project store: derived current labels, idempotent events, migrations, import/export, bad input."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as hst

from labelsieve.data import Dataset, load_dataset
from labelsieve.errors import InputError
from labelsieve.store import PRECEDENCE, SCHEMA_VERSION, Store
from labelsieve.store import schema as S
from labelsieve.store.project import Project, export_labels, import_labels, init_project


def _store(n_items: int = 5, classes=("a", "b", "c")) -> Store:
    st = Store("sqlite://")
    st.set_classes(list(classes))
    st.add_items(pd.DataFrame({"id": [f"i{k}" for k in range(n_items)]}))
    return st


def test_precedence_review_over_human_over_auto_regardless_of_order() -> None:
    st = _store()
    st.append_events([
        {"item": 0, "code": 2, "source": "review", "who": "rev"},
        {"item": 0, "code": 1, "source": "aggregate", "who": "GTX"},  # later but weaker
        {"item": 0, "code": 0, "source": "auto", "who": "m"},
        {"item": 1, "code": 0, "source": "auto", "who": "m"},
        {"item": 1, "code": 1, "source": "auto", "who": "m2"},  # same precedence: latest wins
        {"item": 2, "code": 0, "source": "vote", "who": "ann"},  # a vote alone labels nothing
        {"item": 3, "code": 2, "source": "auto", "who": "m"},
        {"item": 3, "code": None, "source": "review", "action": "reject", "who": "rev"},
    ])
    cur = st.current_labels().set_index("id")
    assert cur.loc["i0", "label"] == "c" and cur.loc["i0", "source"] == "review"
    assert cur.loc["i1", "label"] == "b" and cur.loc["i1", "who"] == "m2"
    assert "i2" not in cur.index and "i3" not in cur.index  # vote only; rejected
    rej = st.current_labels(include_rejected=True).set_index("id")
    assert rej.loc["i3", "source"] == "review" and pd.isna(rej.loc["i3", "code"])
    assert st.n_events() == 8  # nothing overwritten


@settings(max_examples=40, deadline=None)
@given(hst.lists(hst.tuples(hst.integers(0, 5), hst.integers(0, 2), hst.sampled_from(sorted(PRECEDENCE))),
                 min_size=1, max_size=40),
       hst.integers(1, 7))
def test_materialised_current_equals_window_query_and_brute_force(events, batch) -> None:
    st = _store(6)
    rows = [{"item": i, "code": c, "source": s, "who": "w"} for i, c, s in events]
    for k in range(0, len(rows), batch):  # several transactions
        st.append_events(rows[k:k + batch])
    cur = st.current_labels()
    assert cur.equals(st.current_by_window())
    expect = {}
    for seq, (i, c, s) in enumerate(events):  # brute force: max (precedence, seq), votes excluded
        p = PRECEDENCE[s]
        if p > 0 and (i not in expect or (p, seq) >= expect[i][0]):
            expect[i] = ((p, seq), c)
    assert dict(zip(cur["pos"], cur["code"].astype(int), strict=True)) == {i: v[1] for i, v in expect.items()}


def test_idempotency_keys_make_replays_harmless() -> None:
    st = _store()
    ev = [{"item": k, "code": 0, "source": "auto", "who": "m", "key": f"run1:auto:{k}"} for k in range(3)]
    assert st.append_events(ev) == 3
    assert st.append_events(ev + [{"item": 4, "code": 1, "source": "auto", "who": "m", "key": "run1:auto:4"}]) == 1
    assert st.n_events() == 4


def test_bad_events_are_refused_and_nothing_is_written() -> None:
    st = _store()
    with pytest.raises(InputError, match="outside the 3 classes"):
        st.append_events([{"item": 0, "code": 0, "source": "auto", "who": "m"},
                          {"item": 1, "code": 3, "source": "auto", "who": "m"}])
    with pytest.raises(InputError, match="source 'oracle' is not one of"):
        st.append_events([{"item": 0, "code": 0, "source": "oracle", "who": "m"}])
    with pytest.raises(InputError, match="must be a review 'reject'"):
        st.append_events([{"item": 0, "code": None, "source": "auto", "who": "m"}])
    assert st.n_events() == 0


def test_migration_from_v1_backfills_current(tmp_path: Path) -> None:
    db = tmp_path / "old.db"
    eng = sa.create_engine(f"sqlite:///{db}")
    with eng.begin() as c:  # a store written by schema version 1 (no current_label table)
        S.migrate(c, target=1)
        c.execute(sa.insert(S.classes), [{"code": 0, "name": "x"}, {"code": 1, "name": "y"}])
        c.execute(sa.insert(S.items), [{"pos": k, "id": f"i{k}", "kind": "none", "source": "",
                                         "features_ref": f"features.npy#{k}"} for k in range(2)])
        c.execute(sa.insert(S.events), [
            {"item": 0, "code": 1, "source": "auto", "precedence": 1, "who": "m", "created": 0.0},
            {"item": 0, "code": 0, "source": "review", "precedence": 3, "who": "r", "created": 1.0},
            {"item": 1, "code": 1, "source": "import", "precedence": 2, "who": "i", "created": 2.0}])
    eng.dispose()
    st = Store(db)
    assert st.schema_version == SCHEMA_VERSION == len(S.MIGRATIONS)
    assert st.current_labels()[["id", "label"]].values.tolist() == [["i0", "x"], ["i1", "y"]]
    with st.read() as c:
        assert S.get_version(c) == SCHEMA_VERSION


@pytest.fixture(scope="module")
def digits_project(tmp_path_factory) -> Project:
    return init_project(tmp_path_factory.mktemp("proj") / "digits", load_dataset("digits"))


def test_init_stores_items_features_and_truth_separately(digits_project: Project) -> None:
    p = digits_project
    ds = load_dataset("digits")
    assert p.store.n_items() == 1797 and p.classes == ds.classes
    assert np.array_equal(p.features(), ds.X) and np.array_equal(p.truth(), ds.y)
    assert np.array_equal(p.raw_array(5), ds.raw[5])
    assert p.store.n_events() == 0  # truth is not a label unless imported
    with pytest.raises(InputError, match="already a labelsieve project"):
        init_project(p.path, ds)


def test_init_refuses_an_undecodable_image_and_leaves_nothing(tmp_path: Path) -> None:
    from PIL import Image

    img = tmp_path / "img"
    img.mkdir()
    Image.new("L", (4, 4), 7).save(img / "good.png")
    (img / "bad.png").write_bytes(b"\x89PNG not really")
    ds = Dataset(ids=["g", "b"], X=np.zeros((2, 1)), classes=("x", "y"), raw=[str(img / "good.png"), str(img / "bad.png")])
    with pytest.raises(InputError, match=r"bad\.png: image of item 'b' cannot be decoded"):
        init_project(tmp_path / "p", ds)
    assert not (tmp_path / "p").exists()


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.mark.parametrize(("text", "match"), [
    ("id,label\ndigits-0000,3\nnope,4\n", r"line 3, field 'id': unknown item id 'nope'"),
    ("id,label\ndigits-0000,3\ndigits-0001,eleven\n", r"line 3, field 'label': 'eleven' is not one of the classes"),
    ("id,lab\ndigits-0000,3\n", r"missing column\(s\) \['label'\]"),
    ("id,label\ndigits-0000,3\ndigits-0000,4\n", r"line 3, field 'id': item 'digits-0000' appears twice"),
    ("id,label,confidence\ndigits-0000,3,1.5\n", r"line 2, field 'confidence': '1.5' is not in \[0, 1\]"),
    ("id,label\n,3\n", r"line 2, field 'id': empty"),
])
def test_malformed_imports_name_row_and_field_and_change_nothing(digits_project, tmp_path, text, match) -> None:
    before = digits_project.store.n_events()
    with pytest.raises(InputError, match=match):
        import_labels(digits_project, _write(tmp_path / "labels.csv", text))
    assert digits_project.store.n_events() == before


def test_import_then_export_roundtrip_in_every_format(tmp_path: Path) -> None:
    p = init_project(tmp_path / "p", load_dataset("breast-cancer"))
    f = _write(tmp_path / "l.csv", "id,label,confidence\nbc-000,benign,0.9\nbc-001,malignant,\n")
    assert import_labels(p, f) == 2
    assert import_labels(p, f) == 0  # the same file again adds nothing
    p.store.append_events([{"item": 2, "code": 1, "source": "auto", "who": "logreg", "confidence": 0.97, "round": 1}])
    out = {}
    for fmt, suffix in (("csv", "csv"), ("parquet", "parquet"), ("jsonl", "jsonl")):
        path = tmp_path / f"out.{suffix}"
        assert export_labels(p, fmt, path) == 3
        out[fmt] = pd.read_csv(path) if fmt == "csv" else pd.read_parquet(path) if fmt == "parquet" else \
            pd.read_json(path, lines=True)
    for df in out.values():
        assert df["id"].tolist() == ["bc-000", "bc-001", "bc-002"]
        assert df["label"].tolist() == ["benign", "malignant", "benign"]
        assert df["source"].tolist() == ["import", "import", "auto"]
    export_labels(p, "manifest", tmp_path / "m.jsonl", include_unlabeled=True)
    lines = [json.loads(s) for s in (tmp_path / "m.jsonl").read_text().splitlines()]
    assert len(lines) == 569
    assert lines[0]["label"] == 1 and lines[0]["label-metadata"]["class-name"] == "benign"
    assert lines[0]["label-metadata"]["human-annotated"] == "yes" and lines[0]["label-metadata"]["confidence"] == 0.9
    assert lines[2]["label-metadata"]["human-annotated"] == "no"
    assert "label" not in lines[3]


def test_sqlite_store_is_in_wal_mode(digits_project: Project) -> None:
    con = sqlite3.connect(digits_project.path / "project.db")
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    con.close()


def test_store_oracle_reports_app_posteriors_and_project_runs_use_them(tmp_path: Path) -> None:
    """Labels the web app aggregated from votes carry their GTX posterior into the guarantee; expert
    labels count as certain. A project run hands exactly these posteriors to the noise-aware certifier
    (not ones: dropping them would certify against crowd labels as if they were true)."""
    from labelsieve.guarantees import noisy
    from labelsieve.runs.directory import RunConfig
    from labelsieve.runs.project import StoreOracle, run_project

    ds = load_dataset("breast-cancer")
    p = init_project(tmp_path / "bc", ds)
    st = p.store
    st.append_events(pd.DataFrame({
        "item": [0, 1, 2], "code": [int(ds.y[0]), int(ds.y[1]), int(ds.y[2])],
        "source": ["aggregate", "human", "aggregate"], "who": ["gtx", "ann", "gtx"],
        "confidence": [0.93, None, 0.71], "key": ["a0", "h1", "a2"],
    }))
    oracle = StoreOracle(p, run_id=1)
    got = oracle.label_confidence(np.array([ds.ids[0], ds.ids[1], ds.ids[2], ds.ids[3]]))
    assert np.allclose(got, [0.93, 1.0, 0.71, 1.0])

    # every other item gets an aggregated label with its own posterior (all distinct, all < 1)
    rest = np.arange(3, len(ds))
    post = 0.95 + 0.0499 * rest / len(ds)
    st.append_events(pd.DataFrame({"item": rest, "code": ds.y[rest].astype(int), "source": "aggregate", "who": "gtx",
                                   "confidence": post, "key": [f"a{i}" for i in rest]}))
    stored = {0.93, 0.71, 1.0, *post.tolist()}
    seen: list[np.ndarray] = []
    real = noisy.NoiseAwareCertifier.__call__

    def spy(self, *a, **kw):
        seen.append(np.asarray(kw.get("label_confidence"), dtype=np.float64))
        return real(self, *a, **kw)

    noisy.NoiseAwareCertifier.__call__ = spy
    try:
        cfg = RunConfig(dataset="project", oracle="app", budget=200, epsilon=0.1, delta=0.1, seed=0)
        run_project(p, cfg)
    finally:
        noisy.NoiseAwareCertifier.__call__ = real
    assert seen and all(s.ndim == 1 and s.shape[0] > 0 for s in seen)
    for s in seen:
        assert set(s.tolist()) <= stored  # each value is a stored posterior (or 1 for an expert label)
        assert (s < 1).mean() > 0.9  # and nearly all validation labels are aggregates: not ones
        assert len(np.unique(s)) > 0.9 * len(s)  # item by item, not one value for all
