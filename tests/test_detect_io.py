"""COCO JSON / YOLO txt round trips, the saved form, and bad input named clearly (nothing half-written)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from labelsieve.cli import main
from labelsieve.detect import (
    Detections,
    SimulatedDetector,
    decode_mask,
    encode_mask,
    image_table,
    load_detections,
    make_scenes,
    read_coco_gt,
    read_coco_results,
    read_yolo,
    write_coco_gt,
    write_coco_results,
    write_yolo,
)
from labelsieve.errors import InputError

pytest.importorskip("pycocotools", reason="COCO RLE masks need pycocotools")


@pytest.fixture(scope="module")
def scenes():
    gt, pics = make_scenes(8, random_state=2)
    pred = SimulatedDetector(random_state=3).predict(gt)
    return gt, pred, pics


def _coco(tmp_path: Path, anns, images=None, cats=None) -> Path:
    data = {"images": images or [{"id": 1, "file_name": "a.jpg", "width": 100, "height": 50}],
            "categories": cats or [{"id": 1, "name": "cat"}, {"id": 3, "name": "dog"}],
            "annotations": anns}
    p = tmp_path / "gt.json"
    p.write_text(json.dumps(data))
    return p


# ------------------------------------------------------------------------------ round trips
def test_coco_ground_truth_round_trip_with_masks(tmp_path, scenes):
    gt, _, _ = scenes
    write_coco_gt(gt, tmp_path / "gt.json")
    back = read_coco_gt(tmp_path / "gt.json")
    np.testing.assert_allclose(back.xyxy, gt.xyxy)
    assert back.boxes.category_id.tolist() == gt.boxes.category_id.tolist()
    assert back.categories == gt.categories
    pd.testing.assert_frame_equal(back.images, gt.images)
    for a, b in zip(back.boxes["mask"], gt.boxes["mask"], strict=True):
        np.testing.assert_array_equal(decode_mask(a), decode_mask(b))
    raw = json.loads((tmp_path / "gt.json").read_text())
    ann = raw["annotations"][0]
    assert ann["bbox"] == pytest.approx([gt.xyxy[0, 0], gt.xyxy[0, 1], gt.xyxy[0, 2] - gt.xyxy[0, 0],
                                         gt.xyxy[0, 3] - gt.xyxy[0, 1]])
    assert ann["area"] == decode_mask(gt.boxes["mask"][0]).sum()  # area of the mask, not the box


def test_coco_results_round_trip(tmp_path, scenes):
    gt, pred, _ = scenes
    write_coco_results(pred, tmp_path / "res.json")
    back = read_coco_results(tmp_path / "res.json", gt)
    np.testing.assert_allclose(back.xyxy, pred.xyxy)
    np.testing.assert_allclose(back.scores, pred.scores)
    assert back.boxes.image_id.tolist() == pred.boxes.image_id.tolist()
    assert back.is_prediction and not gt.is_prediction


def test_polygon_and_uncompressed_rle_segmentations_become_rle(tmp_path):
    m = np.zeros((50, 100), bool)
    m[10:20, 30:60] = True
    flat = m.T.ravel().astype(int)  # uncompressed RLE runs go down the columns, starting with zeros
    runs = np.diff(np.r_[0, np.flatnonzero(np.diff(flat)) + 1, flat.size]).tolist()
    counts = runs if flat[0] == 0 else [0, *runs]
    assert sum(counts) == m.size
    p = _coco(tmp_path, [
        {"id": 1, "image_id": 1, "category_id": 1, "bbox": [30, 10, 30, 10],
         "segmentation": [[30, 10, 60, 10, 60, 20, 30, 20]]},
        {"id": 2, "image_id": 1, "category_id": 3, "bbox": [30, 10, 30, 10],
         "segmentation": {"size": [50, 100], "counts": counts}},
    ])
    d = read_coco_gt(p)
    poly = decode_mask(d.boxes["mask"][0])
    assert abs(int(poly.sum()) - 300) <= 45  # the 30 x 10 rectangle, up to rasterising its border
    np.testing.assert_array_equal(decode_mask(d.boxes["mask"][1]), m)


def test_yolo_round_trip_ground_truth_and_predictions(tmp_path, scenes):
    gt, pred, _ = scenes
    write_yolo(gt, tmp_path / "gt")
    assert (tmp_path / "gt" / "classes.txt").read_text().split() == ["square", "disk", "triangle"]
    back = read_yolo(tmp_path / "gt", images=gt.images, categories=gt.categories)
    np.testing.assert_allclose(back.xyxy, gt.xyxy, atol=1e-4)
    assert back.boxes.category_id.tolist() == gt.boxes.category_id.tolist()
    assert not back.is_prediction
    write_yolo(pred, tmp_path / "pred")
    line = (tmp_path / "pred" / "scene_000001.txt").read_text().splitlines()[0].split()
    assert len(line) == 6  # class cx cy w h score
    back = read_yolo(tmp_path / "pred", images=gt.images, categories=gt.categories)
    order = np.lexsort((pred.boxes.index, pred.boxes.image_id))  # written grouped by image
    np.testing.assert_allclose(back.xyxy, pred.xyxy[order], atol=1e-4)
    np.testing.assert_allclose(back.scores, pred.scores[order], rtol=1e-7)
    # every image gets a file, even without boxes
    assert len(list((tmp_path / "pred").glob("scene_*.txt"))) == len(gt.images)


def test_yolo_hand_written_line(tmp_path):
    (tmp_path / "lab").mkdir()
    (tmp_path / "lab" / "a.txt").write_text("1 0.5 0.5 0.2 0.4\n\n")
    img = pd.DataFrame({"image_id": [7], "file_name": ["a.jpg"], "width": [200], "height": [100]})
    d = read_yolo(tmp_path / "lab", images=img, categories=["cat", "dog"])
    assert d.xyxy.tolist() == [[80.0, 30.0, 120.0, 70.0]] and d.boxes.category_id.tolist() == [1]
    assert d.boxes.image_id.tolist() == [7]


def test_saved_directory_round_trip_and_load_dispatch(tmp_path, scenes):
    gt, pred, pics = scenes
    gt.save(tmp_path / "d")
    back = Detections.load(tmp_path / "d")
    pd.testing.assert_frame_equal(back.boxes, gt.boxes)
    gt.save(tmp_path / "d")  # replacing an existing directory works
    write_coco_gt(gt, tmp_path / "gt.json")
    write_coco_results(pred, tmp_path / "res.json")
    assert len(load_detections(tmp_path / "res.json", images=tmp_path / "gt.json")) == len(pred)
    assert len(load_detections(tmp_path / "d")) == len(gt)
    # YOLO with sizes read from an image folder
    (tmp_path / "img").mkdir()
    for name, pic in zip(gt.images.file_name, pics, strict=True):
        Image.fromarray(pic).save(tmp_path / "img" / name)
    tab = image_table(tmp_path / "img")
    assert tab.width.tolist() == [128] * 8 and tab.height.tolist() == [96] * 8
    write_yolo(gt, tmp_path / "y")
    y = load_detections(tmp_path / "y", images=tmp_path / "img")
    np.testing.assert_allclose(y.xyxy, gt.xyxy, atol=1e-4)


def test_encode_decode_mask_round_trip():
    rng = np.random.default_rng(0)
    m = rng.random((13, 17)) < 0.4
    assert (decode_mask(encode_mask(m)) == m).all()
    assert isinstance(encode_mask(m)["counts"], str)  # JSON-ready


# -------------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    "ann,match",
    [
        ({"bbox": [90, 10, 30, 10], "category_id": 1}, (r"gt\.json: box at row 0 \(image 1 'a\.jpg', category 1\).*"
                                                        r"outside the image \(width 100, height 50\)")),
        ({"bbox": [10, 10, -5, 10], "category_id": 1}, r"annotation 0 \(image 1, category 1\).*negative or zero"),
        ({"bbox": [10, 10, 5, 10], "category_id": 2}, r"category id 2 is unknown \(known ids: \[1, 3\]\)"),
        ({"bbox": [10, 10, 5, 10], "category_id": 1, "image_id": 9}, r"image id 9 is not in the image list"),
        ({"bbox": [10, 10, 5], "category_id": 1}, r"annotation 0 .*is not \[x, y, width, height\]"),
        ({"bbox": [10, 10, 5, 5], "category_id": 1, "segmentation": {"size": [40, 100], "counts": "PP3"}},
         r"mask size 40x100 \(h x w\) does not match the image \(50x100\)"),
    ],
)
def test_bad_coco_ground_truth_names_the_item(tmp_path, ann, match):
    a = {"id": 1, "image_id": 1, **ann}
    with pytest.raises(InputError, match=match):
        read_coco_gt(_coco(tmp_path, [a]))


def test_boxes_outside_can_be_clipped_on_request(tmp_path):
    p = _coco(tmp_path, [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [90, 10, 30, 10]}])
    d = read_coco_gt(p, outside="clip")
    assert d.xyxy.tolist() == [[90.0, 10.0, 100.0, 20.0]]


def test_bad_results_and_json(tmp_path, scenes):
    gt, _, _ = scenes
    bad = tmp_path / "res.json"
    bad.write_text(json.dumps([{"image_id": 1, "category_id": 1, "bbox": [1, 1, 5, 5]}]))
    with pytest.raises(InputError, match=r"res\.json: detection 0 has no 'score'"):
        read_coco_results(bad, gt)
    bad.write_text(json.dumps([{"image_id": 1, "category_id": "dog", "bbox": [1, 1, 5, 5], "score": 0.5}]))
    with pytest.raises(InputError, match=r"res\.json: detection 0: category_id 'dog' is not an integer"):
        read_coco_results(bad, gt)
    bad.write_text(json.dumps([{"image_id": 1, "category_id": 1, "bbox": [1, 1, 5, 5], "score": "high"}]))
    with pytest.raises(InputError, match=r"res\.json: detection 0: score 'high' is not a number"):
        read_coco_results(bad, gt)
    bad.write_text("[{]")
    with pytest.raises(InputError, match=r"res\.json: not valid JSON"):
        read_coco_results(bad, gt)
    with pytest.raises(InputError, match="needs the images and categories"):
        load_detections(_results(tmp_path))


def _results(tmp_path):
    p = tmp_path / "r2.json"
    p.write_text(json.dumps([{"image_id": 1, "category_id": 1, "bbox": [1, 1, 5, 5], "score": 0.5}]))
    return p


@pytest.mark.parametrize(
    "line,match",
    [
        ("5 0.5 0.5 0.1 0.1", r"a\.txt line 2: unknown class index \(classes are 0\.\.1\)"),
        ("0 0.5 0.5 -0.1 0.1", r"a\.txt line 2: negative or zero box width/height"),
        ("0 0.95 0.5 0.3 0.1", r"a\.txt line 2: box outside the image"),
        ("0 0.5 0.5", r"a\.txt line 2: a line needs 5 numbers"),
        ("0 0.5 zero 0.1 0.1", r"a\.txt line 2: not a number"),
    ],
)
def test_bad_yolo_lines_name_file_and_line(tmp_path, line, match):
    (tmp_path / "lab").mkdir()
    (tmp_path / "lab" / "a.txt").write_text(f"0 0.5 0.5 0.2 0.2\n{line}\n")
    img = pd.DataFrame({"image_id": [1], "file_name": ["a.jpg"], "width": [100], "height": [100]})
    with pytest.raises(InputError, match=match):
        read_yolo(tmp_path / "lab", images=img, categories=["x", "y"])


def test_undecodable_image_is_named(tmp_path):
    (tmp_path / "img").mkdir()
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / "img" / "ok.png")
    (tmp_path / "img" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    with pytest.raises(InputError, match=r"broken\.png: the image cannot be decoded"):
        image_table(tmp_path / "img")


def test_label_file_without_image_is_named(tmp_path):
    (tmp_path / "lab").mkdir()
    (tmp_path / "lab" / "ghost.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    img = pd.DataFrame({"image_id": [1], "file_name": ["a.jpg"], "width": [100], "height": [100]})
    with pytest.raises(InputError, match=r"ghost\.txt: no image named ghost"):
        read_yolo(tmp_path / "lab", images=img, categories=["x"])


def test_nothing_half_written(tmp_path, scenes, monkeypatch):
    gt, pred, _ = scenes
    # an existing YOLO folder is not touched without overwrite
    write_yolo(gt, tmp_path / "y")
    before = {p.name: p.read_text() for p in (tmp_path / "y").iterdir()}
    with pytest.raises(InputError, match="already exists"):
        write_yolo(pred, tmp_path / "y")
    assert {p.name: p.read_text() for p in (tmp_path / "y").iterdir()} == before
    # a failure in the middle of writing leaves neither the folder nor temporary files
    calls = {"n": 0}
    real = Path.write_text

    def flaky(self, *a, **k):
        calls["n"] += 1
        if calls["n"] == 4:
            raise OSError("disk full")
        return real(self, *a, **k)

    monkeypatch.setattr(Path, "write_text", flaky)
    with pytest.raises(OSError, match="disk full"):
        write_yolo(gt, tmp_path / "y2")
    monkeypatch.undo()
    assert not (tmp_path / "y2").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["y"]
    # results need scores: refused before anything is written
    with pytest.raises(InputError, match="has no score"):
        write_coco_results(gt, tmp_path / "res.json")
    assert not (tmp_path / "res.json").exists()


# ------------------------------------------------------------------------------------- CLI
def test_cli_import_thresholds_evaluate_export(tmp_path, capsys):
    gt, _ = make_scenes(300, random_state=7, render=False)
    pred = SimulatedDetector(random_state=8).predict(gt)
    write_coco_gt(gt, tmp_path / "gt.json")
    write_coco_results(pred, tmp_path / "res.json")
    assert main(["detect", "import", str(tmp_path / "res.json"), "--images", str(tmp_path / "gt.json"),
                 "--out", str(tmp_path / "pred")]) == 0
    assert len(Detections.load(tmp_path / "pred")) == len(pred)
    assert main(["detect", "thresholds", "--gt", str(tmp_path / "gt.json"), "--pred", str(tmp_path / "pred"),
                 "--epsilon", "0.1", "--delta", "0.1", "--out", str(tmp_path / "rep.csv"),
                 "--sweep", str(tmp_path / "sweep.csv"), "--apply", str(tmp_path / "pred"),
                 "--accepted", str(tmp_path / "acc")]) == 0
    rep = pd.read_csv(tmp_path / "rep.csv")
    assert set(rep["class"]) == {"square", "disk", "triangle"}
    acc = Detections.load(tmp_path / "acc")
    thr = dict(zip(rep.category_id, rep.threshold_guarantee, strict=True))
    assert (acc.scores >= acc.boxes.category_id.map(thr).to_numpy()).all()
    assert main(["detect", "evaluate", "--gt", str(tmp_path / "gt.json"), "--pred", str(tmp_path / "res.json"),
                 "--out-dir", str(tmp_path / "ev")]) == 0
    assert (tmp_path / "ev" / "pr_curves.png").stat().st_size > 1000
    summary = json.loads((tmp_path / "ev" / "summary.json").read_text())
    assert 0 < summary["AP"] < summary["AP50"] <= 1
    assert main(["detect", "export", str(tmp_path / "pred"), "--format", "yolo", "--out", str(tmp_path / "y")]) == 0
    assert main(["detect", "export", str(tmp_path / "y"), "--images", str(tmp_path / "gt.json"), "--format", "coco",
                 "--out", str(tmp_path / "back.json")]) == 0
    back = json.loads((tmp_path / "back.json").read_text())
    assert len(back) == len(pred) and {"score", "bbox"} <= set(back[0])
    capsys.readouterr()
    # bad input: one line on stderr, exit code 2
    bad = _coco(tmp_path, [{"id": 1, "image_id": 1, "category_id": 7, "bbox": [1, 1, 5, 5]}])
    assert main(["detect", "import", str(bad), "--out", str(tmp_path / "z")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "category id 7 is unknown" in err and not (tmp_path / "z").exists()


def test_cli_audit_small(tmp_path, capsys):
    rc = main(["detect", "audit", "--seeds", "4", "--verified-images", "80", "--pool-images", "300",
               "--out", str(tmp_path / "a.csv")])
    out = capsys.readouterr().out
    assert rc in (0, 1) and ("PASSED" in out) == (rc == 0)
    assert pd.read_csv(tmp_path / "a.csv").seed.nunique() == 4
