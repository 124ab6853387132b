"""Tests for labelsieve.data: waveform generator, embedded sets, file loaders, image folders, splits."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from labelsieve.data import (
    EMBEDDED,
    UNLABELED,
    Dataset,
    load_breast_cancer,
    load_dataset,
    load_digits,
    load_image_folder,
    make_waveform,
    split_indices,
    train_test_split_dataset,
)
from labelsieve.errors import InputError, ParameterError


# ------------------------------------------------------------------------------------------ waveform
def _h(i: np.ndarray, shift: int) -> np.ndarray:
    """Breiman's base wave h1(i - shift), written independently of the module."""
    return np.array([max(6 - abs(k - shift - 11), 0) for k in i], dtype=float)


I21 = np.arange(1, 22)
H1, H2, H3 = _h(I21, 0), _h(I21, 4), _h(I21, -4)
PAIRS = [(H1, H2), (H1, H3), (H2, H3)]


@pytest.fixture(scope="module")
def big_waveform() -> Dataset:
    return make_waveform(30000, random_state=123)


def test_waveform_base_waves_match_paper_definition():
    from labelsieve.data.waveform import base_waves

    np.testing.assert_array_equal(base_waves(), np.stack([H1, H2, H3]))
    # h2 peaks at i = 15, h3 at i = 7 (shifts of h1 by +-4)
    assert I21[np.argmax(H2)] == 15 and I21[np.argmax(H3)] == 7


def test_waveform_class_conditional_means_and_variances(big_waveform):
    ds = big_waveform
    for k, (a, b) in enumerate(PAIRS):
        Xk = ds.X[ds.y == k].astype(np.float64)
        # E[x | k] = (a + b) / 2 since E[u] = 1/2; Var = (a - b)^2 Var(u) + 1 = (a - b)^2 / 12 + 1
        np.testing.assert_allclose(Xk.mean(axis=0), 0.5 * (a + b), atol=0.1)
        np.testing.assert_allclose(Xk.var(axis=0), (a - b) ** 2 / 12 + 1, atol=0.3)


def test_waveform_classes_equiprobable(big_waveform):
    p = np.bincount(big_waveform.y, minlength=3) / len(big_waveform)
    se = np.sqrt((1 / 3) * (2 / 3) / len(big_waveform))
    assert np.all(np.abs(p - 1 / 3) < 5 * se)


def test_waveform_without_noise_lies_on_segment_between_base_waves():
    ds = make_waveform(600, noise=False, random_state=0)
    for k, (a, b) in enumerate(PAIRS):
        Xk = ds.X[ds.y == k].astype(np.float64)
        d = a - b
        u = (Xk - b) @ d / (d @ d)  # least-squares mixing weight
        assert np.all((u >= -1e-5) & (u <= 1 + 1e-5))
        np.testing.assert_allclose(u[:, None] * a + (1 - u[:, None]) * b, Xk, atol=1e-4)


def test_waveform_reproducible_and_seed_dependent():
    a, b, c = (make_waveform(200, random_state=s) for s in (7, 7, 8))
    np.testing.assert_array_equal(a.X, b.X)
    np.testing.assert_array_equal(a.y, b.y)
    assert not np.array_equal(a.X, c.X)


def test_waveform_dataset_fields():
    ds = make_waveform(12, random_state=0)
    assert ds.X.shape == (12, 21) and ds.X.dtype == np.float32
    assert ds.name == "waveform" and ds.n_classes == 3
    assert ds.ids[0] == "wf-00000" and ds.ids[11] == "wf-00011"
    assert set(np.unique(ds.y)) <= {0, 1, 2}


def test_waveform_logistic_regression_reaches_paper_level_accuracy():
    from sklearn.linear_model import LogisticRegression

    train, test = make_waveform(2000, random_state=1), make_waveform(3000, random_state=2)
    acc = LogisticRegression(max_iter=500).fit(train.X, train.y).score(test.X, test.y)
    # Bayes error is ~14% (Breiman et al. 1984); linear models land around 80-87% accuracy
    assert 0.80 <= acc <= 0.89


@pytest.mark.parametrize("n", [0, -5, 2.5, True])
def test_waveform_invalid_n_samples(n):
    with pytest.raises(ParameterError, match="'n_samples' parameter of make_waveform"):
        make_waveform(n)


# ------------------------------------------------------------------------------------------ embedded
def test_load_digits_fields():
    from sklearn.datasets import load_digits as sk_digits

    ds, ref = load_digits(), sk_digits()
    assert ds.X.shape == (1797, 64) and ds.X.dtype == np.float32
    assert ds.classes == tuple(str(d) for d in range(10))
    assert ds.ids[0] == "digits-0000" and ds.ids[-1] == "digits-1796"
    np.testing.assert_array_equal(ds.y, ref.target)
    img = ds.raw[5]
    assert img.shape == (8, 8) and img.dtype == np.uint8
    # raw is the feature image rescaled from 0..16 to 0..255
    np.testing.assert_array_equal(img, np.rint(ds.X[5].reshape(8, 8) * 255 / 16).astype(np.uint8))


def test_load_breast_cancer_fields():
    ds = load_breast_cancer()
    assert ds.classes == ("malignant", "benign")
    assert ds.X.shape == (569, 30) and ds.raw is None
    # 212 malignant (code 0), 357 benign (code 1) in the WDBC data
    assert np.bincount(ds.y).tolist() == [212, 357]


def test_embedded_registry_and_load_dataset_dispatch():
    assert set(EMBEDDED) == {"digits", "breast-cancer", "waveform", "fashion-mnist"}
    wf = load_dataset("waveform", seed=3)
    np.testing.assert_array_equal(wf.X, make_waveform(5000, random_state=3).X)
    assert load_dataset("Breast_Cancer").classes == ("malignant", "benign")
    assert len(load_dataset("digits")) == 1797


# ------------------------------------------------------------------------------------------- tables
def _write(path, text: str):
    path.write_text(text)
    return path


def test_csv_roles_labels_and_ids(tmp_path):
    p = _write(tmp_path / "pool.csv", "id,a,b,label\nx1,1.5,2,cat\nx2,3,4,\nx3,5,6.25,dog\nx4,7,8,cat\n")
    ds = load_dataset(p)
    assert ds.ids.tolist() == ["x1", "x2", "x3", "x4"]
    np.testing.assert_array_equal(ds.X, np.array([[1.5, 2], [3, 4], [5, 6.25], [7, 8]], np.float32))
    assert ds.classes == ("cat", "dog")
    assert ds.y.tolist() == [0, UNLABELED, 1, 0]
    assert ds.name == "pool" and ds.meta["feature_names"] == ["a", "b"]


def test_csv_without_id_uses_row_numbers_and_numeric_class_order(tmp_path):
    p = _write(tmp_path / "t.csv", "f,label\n0.1,10\n0.2,2\n0.3,2\n")
    ds = load_dataset(p)
    assert ds.ids.tolist() == ["row-0", "row-1", "row-2"]
    assert ds.classes == ("2", "10")  # integers sort numerically, not as strings
    assert ds.y.tolist() == [1, 0, 0]


def test_csv_explicit_classes_and_custom_columns(tmp_path):
    p = _write(tmp_path / "t.csv", "key,f,truth\nk0,1,b\nk1,2,a\n")
    ds = load_dataset(p, id_column="key", label_column="truth", classes=["b", "a", "c"])
    assert ds.classes == ("b", "a", "c") and ds.y.tolist() == [0, 1]
    assert ds.ids.tolist() == ["k0", "k1"]


def test_csv_text_column_kept_as_raw(tmp_path):
    p = _write(tmp_path / "t.csv", 'f,text,label\n1,"hello, world",x\n2,bye,y\n')
    ds = load_dataset(p, text_column="text")
    assert ds.raw == ["hello, world", "bye"] and ds.X.shape == (2, 1)


def test_unlabeled_pool_needs_classes(tmp_path):
    p = _write(tmp_path / "t.csv", "f\n1\n2\n")
    with pytest.raises(InputError, match=r"t\.csv.*classes="):
        load_dataset(p)
    ds = load_dataset(p, classes=["neg", "pos"])
    assert ds.y is None and ds.classes == ("neg", "pos")


def test_parquet_and_tsv_match_csv(tmp_path):
    df = pd.DataFrame(
        {"id": ["a", "b", "c"], "f1": [0.5, 1.5, 2.5], "f2": [1, 2, 3], "label": ["u", None, "v"]}
    )
    df.to_csv(tmp_path / "t.csv", index=False)
    df.to_csv(tmp_path / "t.tsv", index=False, sep="\t")
    df.to_parquet(tmp_path / "t.parquet")
    df.to_parquet(tmp_path / "t.pq")
    ref = load_dataset(tmp_path / "t.csv")
    for name in ("t.tsv", "t.parquet", "t.pq"):
        ds = load_dataset(tmp_path / name)
        np.testing.assert_array_equal(ds.X, ref.X)
        assert ds.y.tolist() == ref.y.tolist() == [0, -1, 1]
        assert ds.ids.tolist() == ref.ids.tolist()


def test_parquet_integer_labels_with_missing(tmp_path):
    df = pd.DataFrame({"f": [1.0, 2.0, 3.0], "label": [1.0, np.nan, 0.0]})  # ints stored as float
    df.to_parquet(tmp_path / "t.parquet")
    ds = load_dataset(tmp_path / "t.parquet")
    assert ds.classes == ("0", "1") and ds.y.tolist() == [1, -1, 0]


def test_loader_does_not_touch_embedded_names_for_paths(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        load_dataset(tmp_path / "digits")


@pytest.mark.parametrize(
    ("content", "kwargs", "pattern"),
    [
        ("", {}, r"bad\.csv: file is empty"),
        ("id,f,label\n", {}, r"bad\.csv: empty pool \(0 rows"),
        ("id,f,g,label\na,1,2,x\nb,,3,y\n", {}, r"bad\.csv: feature 'f' is nan .*row 1 \(id 'b'\)"),
        ("id,f,label\na,1,x\nb,inf,y\n", {}, r"feature 'f' is inf .*row 1 \(id 'b'\)"),
        ("id,f,label\na,1,x\nb,2,y\na,3,x\n", {}, r"duplicate ids in column 'id': \['a'\]"),
        (
            "id,f,color,label\na,1,red,x\nb,2,blue,y\n",
            {},
            r"column 'color' is not numeric \(value 'red' at row 0",
        ),
        ("id,f,label\na,1,x\nb,2x,y\n", {}, r"column 'f' is not numeric \(value '2x' at row 1"),
        ("id,f,label\na,1,x\nb,2,z\n", {"classes": ["x", "y"]}, r"unknown class 'z' at row 1 \(id 'b'\)"),
        ("id,f,label\na,1,x\nb,2,x\n", {}, r"1 distinct label"),
        ("id,label\na,x\nb,y\n", {}, r"no numeric feature columns"),
        ("f,label\n1,x\n2,y\n", {"text_column": "txt"}, r"text column 'txt' not found"),
    ],
)
def test_table_errors_name_file_row_column(tmp_path, content, kwargs, pattern):
    p = _write(tmp_path / "bad.csv", content)
    with pytest.raises(InputError, match=pattern):
        load_dataset(p, **kwargs)


def test_missing_file_and_unsupported_suffix(tmp_path):
    with pytest.raises(InputError, match=r"nope\.csv: no such file"):
        load_dataset(tmp_path / "nope.csv")
    p = _write(tmp_path / "data.json", "{}")
    with pytest.raises(InputError, match=r"data\.json: unsupported file type '\.json'"):
        load_dataset(p)


# -------------------------------------------------------------------------------------------- numpy
def test_npz_with_codes_ids_and_classes(tmp_path):
    X = np.arange(12, dtype=float).reshape(4, 3)
    np.savez(tmp_path / "d.npz", X=X, y=np.array([0, -1, 2, 1]), ids=np.array(["a", "b", "c", "d"]))
    ds = load_dataset(tmp_path / "d.npz")
    np.testing.assert_array_equal(ds.X, X.astype(np.float32))
    assert ds.classes == ("0", "1", "2") and ds.y.tolist() == [0, -1, 2, 1]
    assert ds.ids.tolist() == ["a", "b", "c", "d"]
    np.savez(tmp_path / "e.npz", X=X, y=np.array(["dog", "", "cat", "dog"]), classes=np.array(["dog", "cat"]))
    ds = load_dataset(tmp_path / "e.npz")
    assert ds.classes == ("dog", "cat") and ds.y.tolist() == [0, -1, 1, 0]


def test_npy_with_and_without_companion(tmp_path):
    X = np.random.default_rng(0).normal(size=(5, 2))
    np.save(tmp_path / "feat.npy", X)
    with pytest.raises(InputError, match=r"feat\.npy: no labels 'y' and no classes"):
        load_dataset(tmp_path / "feat.npy")
    ds = load_dataset(tmp_path / "feat.npy", classes=["a", "b"])
    assert ds.y is None and ds.ids[4] == "row-4"
    np.savez(tmp_path / "feat.labels.npz", y=np.array([1, 0, -1, 1, 0]), classes=np.array(["no", "yes"]))
    ds = load_dataset(tmp_path / "feat.npy")
    assert ds.classes == ("no", "yes") and ds.y.tolist() == [1, 0, -1, 1, 0]


@pytest.mark.parametrize(
    ("arrays", "pattern"),
    [
        ({"X": np.zeros((2, 2, 2))}, r"2-D array"),
        ({"Z": np.zeros((2, 2))}, r"missing key 'X'"),
        ({"X": np.zeros((0, 3)), "y": np.zeros(0, int)}, r"empty pool"),
        (
            {"X": np.array([[1.0], [np.nan]]), "y": np.array([0, 1])},
            r"column 0 is nan \(NaN or inf\) at row 1 \(id 'row-1'\)",
        ),
        ({"X": np.zeros((2, 1)), "y": np.array([0, 5]), "classes": np.array(["a", "b"])}, r"code 5 at row 1"),
        (
            {"X": np.zeros((2, 1)), "y": np.array([0, 1]), "ids": np.array(["q", "q"])},
            r"duplicate ids \['q'\]",
        ),
    ],
)
def test_npz_errors(tmp_path, arrays, pattern):
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(InputError, match=pattern):
        load_dataset(tmp_path / "bad.npz")


def test_npy_with_pickled_objects_is_refused(tmp_path):
    np.save(tmp_path / "obj.npy", np.array([[{"a": 1}]], dtype=object), allow_pickle=True)
    with pytest.raises(InputError, match=r"obj\.npy: cannot read as \.npy"):
        load_dataset(tmp_path / "obj.npy", classes=["a", "b"])


# ------------------------------------------------------------------------------------------- images
def _png(path, value, mode="L", size=(5, 7)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, value).save(path)


def test_image_folder_with_class_subfolders(tmp_path):
    _png(tmp_path / "dog" / "d1.png", 255)
    _png(tmp_path / "cat" / "c1.png", 0)
    _png(tmp_path / "cat" / "c2.png", 51)
    (tmp_path / "cat" / "notes.txt").write_text("ignored")
    ds = load_image_folder(tmp_path, size=(4, 3))
    assert ds.classes == ("cat", "dog")
    assert ds.ids.tolist() == ["cat/c1.png", "cat/c2.png", "dog/d1.png"]
    assert ds.y.tolist() == [0, 0, 1]
    assert ds.X.shape == (3, 12)
    np.testing.assert_allclose(ds.X[:, 0], [0.0, 51 / 255, 1.0], atol=1e-6)
    assert np.ptp(ds.X, axis=1).max() < 1e-6  # constant images stay constant after resizing
    assert ds.raw[2] == str(tmp_path / "dog" / "d1.png")


def test_image_folder_rgb_and_histogram(tmp_path):
    _png(tmp_path / "a" / "red.png", (255, 0, 0), mode="RGB")
    _png(tmp_path / "b" / "gray.png", (128, 128, 128), mode="RGB")
    ds = load_image_folder(tmp_path, size=(2, 2), color="rgb")
    assert ds.X.shape == (2, 12)
    np.testing.assert_allclose(ds.X[0].reshape(4, 3), np.tile([1.0, 0.0, 0.0], (4, 1)))
    g = load_image_folder(tmp_path, size=(2, 2), color="gray", histogram=True, hist_bins=4)
    assert g.X.shape == (2, 4 + 4)
    hist = g.X[:, 4:]
    np.testing.assert_allclose(hist.sum(axis=1), 1.0)
    level = g.X[1, 0]  # gray 128 -> intensity 128/255 -> bin 2 of 4
    assert abs(level - 128 / 255) < 1e-6 and hist[1, 2] == 1.0
    h = load_image_folder(tmp_path, size=(2, 2), color="rgb", histogram=True, hist_bins=4)
    assert h.X.shape == (2, 12 + 3 * 4)
    np.testing.assert_allclose(h.X[:, 12:].reshape(2, 3, 4).sum(axis=2), 1.0)


def test_flat_and_mixed_image_folders(tmp_path):
    _png(tmp_path / "x.png", 10)
    _png(tmp_path / "y.png", 20)
    with pytest.raises(InputError, match="pass classes="):
        load_image_folder(tmp_path)
    flat = load_image_folder(tmp_path, classes=["a", "b"])
    assert flat.y is None and flat.ids.tolist() == ["x.png", "y.png"]
    _png(tmp_path / "a" / "p.png", 30)
    _png(tmp_path / "b" / "q.png", 40)
    mixed = load_dataset(tmp_path)  # directory -> image folder
    assert mixed.y.tolist() == [UNLABELED, UNLABELED, 0, 1]


def test_image_folder_errors(tmp_path):
    _png(tmp_path / "a" / "ok.png", 10)
    _png(tmp_path / "b" / "ok.png", 10)
    (tmp_path / "b" / "broken.png").write_bytes(b"definitely not a png")
    with pytest.raises(InputError, match=r"broken\.png: cannot read image"):
        load_image_folder(tmp_path)
    (tmp_path / "b" / "broken.png").unlink()
    with pytest.raises(InputError, match=r"sub-folder\(s\) \['b'\] are not among classes"):
        load_image_folder(tmp_path, classes=["a", "z"])
    with pytest.raises(ParameterError, match="'color' parameter of load_image_folder"):
        load_image_folder(tmp_path, color="cmyk")
    empty = tmp_path / "a" / "nested_empty"
    empty.mkdir()
    with pytest.raises(InputError, match=r"nested_empty: no images found"):
        load_image_folder(empty, classes=["a", "b"])


# ------------------------------------------------------------------------------------------- splits
fractions_st = st.lists(st.integers(1, 20), min_size=1, max_size=4).map(lambda w: [x / sum(w) for x in w])


@settings(max_examples=60, deadline=None)
@given(n=st.integers(0, 300), fractions=fractions_st, seed=st.integers(0, 2**31))
def test_split_partition_properties(n, fractions, seed):
    parts = split_indices(n, fractions, random_state=seed)
    allidx = np.concatenate(parts)
    assert len(parts) == len(fractions)
    assert np.array_equal(np.sort(allidx), np.arange(n))  # disjoint and complete
    for p, f in zip(parts, fractions, strict=True):
        assert np.floor(n * f - 1e-9) <= p.size <= np.ceil(n * f + 1e-9)
    again = split_indices(n, fractions, random_state=seed)
    assert all(np.array_equal(a, b) for a, b in zip(parts, again, strict=True))


@settings(max_examples=60, deadline=None)
@given(
    labels=st.lists(st.integers(-1, 4), min_size=1, max_size=300),
    fractions=fractions_st,
    seed=st.integers(0, 2**31),
)
def test_stratified_split_keeps_class_proportions(labels, fractions, seed):
    y = np.array(labels)
    parts = split_indices(len(y), fractions, stratify=y, random_state=seed)
    assert np.array_equal(np.sort(np.concatenate(parts)), np.arange(len(y)))
    for c in np.unique(y):
        n_c = int((y == c).sum())
        for p, f in zip(parts, fractions, strict=True):
            got = int((y[p] == c).sum())
            assert abs(got - n_c * f) < 1 + 1e-9  # within one item per class
    for p, f in zip(parts, fractions, strict=True):  # part totals stay near n * f
        assert abs(p.size - len(y) * f) <= len(np.unique(y))


def test_split_is_uniformly_random_over_seeds():
    hits = sum(int(0 in split_indices(20, [0.25, 0.75], random_state=s)[0]) for s in range(800))
    # item 0 lands in the first part with probability 5/20 = 0.25
    assert abs(hits / 800 - 0.25) < 4 * np.sqrt(0.25 * 0.75 / 800)


@pytest.mark.parametrize("fractions", [[], [0.5, 0.6], [1.2, -0.2], [0.0, 1.0], [float("nan"), 1.0]])
def test_split_invalid_fractions(fractions):
    with pytest.raises(ParameterError, match="'fractions' parameter of split_indices"):
        split_indices(10, fractions)


def test_split_bad_stratify_shape():
    with pytest.raises(InputError, match=r"'stratify' has shape \(3,\); expected \(4,\)"):
        split_indices(4, [0.5, 0.5], stratify=[0, 1, 0])


def test_train_test_split_dataset():
    ds = make_waveform(301, random_state=5)
    train, test = train_test_split_dataset(ds, 0.2, random_state=0)
    assert len(train) + len(test) == 301 and abs(len(test) - 0.2 * 301) <= 3
    assert not set(train.ids) & set(test.ids)
    for c in range(3):
        assert abs((test.y == c).sum() - 0.2 * (ds.y == c).sum()) < 1
    with pytest.raises(ParameterError, match="'test_size' parameter of train_test_split_dataset"):
        train_test_split_dataset(ds, 1.5)


def test_image_folder_invalid_size(tmp_path):
    _png(tmp_path / "a" / "p.png", 1)
    _png(tmp_path / "b" / "q.png", 2)
    with pytest.raises(
        InputError, match=r"'size' parameter of load_image_folder must be a \(width, height\)"
    ):
        load_image_folder(tmp_path, size=16)
    with pytest.raises(ParameterError, match=r"'size\[1\]' parameter of load_image_folder"):
        load_image_folder(tmp_path, size=(4, 0))


def test_string_paths_and_embedded_classes_check(tmp_path):
    p = _write(tmp_path / "t.csv", "f,label\n1,a\n2,b\n")
    assert load_dataset(str(p)).classes == ("a", "b")
    with pytest.raises(InputError, match=r"classes= \['b', 'a'\] differ"):
        load_dataset("breast-cancer", classes=["b", "a"])


def _write_idx(path, arr):
    import gzip
    import struct

    arr = np.asarray(arr, dtype=np.uint8)
    head = b"\x00\x00\x08" + bytes([arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape)
    with gzip.open(path, "wb") as fh:
        fh.write(head + arr.tobytes())


def test_fashion_mnist_reads_idx_files_exactly(tmp_path):
    from labelsieve.data.embedded import load_fashion_mnist

    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, (7, 28, 28))
    labs = np.array([0, 9, 3, 3, 1, 2, 8])
    _write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", imgs)
    _write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", labs)
    ds = load_fashion_mnist("test", directory=tmp_path)
    assert ds.y.tolist() == labs.tolist() and ds.classes[9] == "ankle boot"
    assert np.array_equal(ds.raw[4], imgs[4]) and np.allclose(ds.X[4], imgs[4].ravel() / 255.0)
    sub = load_fashion_mnist("test", directory=tmp_path, n=3, random_state=1)
    assert len(sub) == 3 and set(sub.ids) <= set(ds.ids)


def test_fashion_mnist_bad_files_are_named(tmp_path):
    from labelsieve.data.embedded import load_fashion_mnist
    from labelsieve.errors import MissingDependencyError

    with pytest.raises(MissingDependencyError, match="apt-get install dataset-fashion-mnist"):
        load_fashion_mnist("test", directory=tmp_path)
    _write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", np.zeros((3, 28, 28)))
    _write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", np.zeros(2))
    with pytest.raises(InputError, match="3 images but .* 2 labels"):
        load_fashion_mnist("test", directory=tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").write_bytes(b"garbage")
    with pytest.raises(InputError, match="t10k-labels-idx1-ubyte.gz"):
        load_fashion_mnist("test", directory=tmp_path)
