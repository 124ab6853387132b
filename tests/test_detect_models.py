"""Detector/segmenter labelers on tiny randomly initialised models built and saved here (offline).

Shapes and formats, not accuracy. Post-processing is checked on hand-made outputs.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from labelsieve.detect import decode_mask
from labelsieve.detect.models import (
    GroundingDinoDetector,
    Owlv2Detector,
    OwlViTDetector,
    SamSegmenter,
    grounding_postprocess,
    owl_postprocess,
    phrase_token_classes,
)
from labelsieve.errors import InputError

torch = pytest.importorskip("torch", reason="detector labelers need torch")
transformers = pytest.importorskip("transformers", reason="detector labelers need transformers")

CLASSES = ["cat", "dog"]


# ------------------------------------------------------------------- post-processing by hand
def test_owl_postprocess_scales_plain_and_square_padded():
    logits = np.array([[[1.0, 3.0], [-5.0, -6.0]]])  # patch 0: class 1, sigmoid(3) = .953; patch 1 low
    boxes = np.array([[[0.25, 0.5, 0.5, 0.2], [0.5, 0.5, 1.0, 1.0]]])
    b, xyxy, s, c = owl_postprocess(logits, boxes, np.array([[100, 300]]), threshold=0.5, square_pad=False)
    assert b.tolist() == [0] and c.tolist() == [1] and s[0] == pytest.approx(1 / (1 + np.exp(-3)))
    np.testing.assert_allclose(xyxy, [[0.0, 40.0, 150.0, 60.0]])  # x * 300, y * 100
    _, xyxy, _, _ = owl_postprocess(logits, boxes, np.array([[100, 300]]), threshold=0.5, square_pad=True)
    np.testing.assert_allclose(xyxy, [[0.0, 120.0, 150.0, 180.0]])  # both axes * 300 (padded square)
    assert len(owl_postprocess(logits, boxes, np.array([[100, 300]]), threshold=0.0, square_pad=False)[0]) == 2


def test_grounding_postprocess_takes_best_token_of_each_phrase():
    # tokens: [CLS] cat . dog . [SEP] -> classes -1 0 -1 1 -1 -1
    tc = phrase_token_classes([(0, 0), (0, 3), (4, 5), (6, 9), (10, 11), (0, 0)], [(0, 3), (6, 9)])
    assert tc.tolist() == [-1, 0, -1, 1, -1, -1]
    logits = np.full((1, 2, 8), -10.0)
    logits[0, 0, 3] = 2.0  # query 0: "dog"
    logits[0, 0, 0] = 5.0  # a special token never counts
    logits[0, 1, 1] = -1.0  # query 1: "cat" at sigmoid(-1) = .27
    boxes = np.array([[[0.5, 0.5, 0.5, 0.5], [0.1, 0.1, 0.2, 0.2]]])
    _b, xyxy, s, c = grounding_postprocess(logits, boxes, tc, 2, np.array([[10, 20]]), threshold=0.2)
    assert c.tolist() == [1, 0] and s == pytest.approx([1 / (1 + np.exp(-2)), 1 / (1 + np.exp(1))])
    np.testing.assert_allclose(xyxy[0], [5.0, 2.5, 15.0, 7.5])
    assert grounding_postprocess(logits, boxes, tc, 2, np.array([[10, 20]]), threshold=0.5)[0].tolist() == [0]


# ------------------------------------------------------------------------ tiny checkpoints
def _byte_vocab() -> dict[str, int]:
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), 256))
    chars, extra = keep[:], 0
    for b in range(256):
        if b not in keep:
            chars.append(256 + extra)
            extra += 1
    vocab: dict[str, int] = {}
    for c in chars:
        vocab[chr(c)] = len(vocab)
    for c in chars:
        vocab[chr(c) + "</w>"] = len(vocab)
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    return vocab


def _save_owl(path, v2: bool):
    tf = transformers
    vocab = _byte_vocab()
    tok = tf.CLIPTokenizer(vocab=vocab, merges=[])
    text = {"vocab_size": len(vocab), "hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
                "max_position_embeddings": 16, "bos_token_id": len(vocab) - 2, "eos_token_id": len(vocab) - 1,
                "pad_token_id": len(vocab) - 1}
    vision = {"image_size": 32, "patch_size": 8, "hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1,
                  "num_attention_heads": 2}
    if v2:
        cfg = tf.Owlv2Config(text_config=text, vision_config=vision, projection_dim=16)
        ip = tf.Owlv2ImageProcessor(size={"height": 32, "width": 32})
        proc, model = tf.Owlv2Processor(image_processor=ip, tokenizer=tok), tf.Owlv2ForObjectDetection(cfg)
    else:
        cfg = tf.OwlViTConfig(text_config=text, vision_config=vision, projection_dim=16)
        ip = tf.OwlViTImageProcessor(size={"height": 32, "width": 32}, crop_size={"height": 32, "width": 32})
        proc, model = tf.OwlViTProcessor(image_processor=ip, tokenizer=tok), tf.OwlViTForObjectDetection(cfg)
    model.save_pretrained(path)
    proc.save_pretrained(path)


def _save_grounding_dino(path):
    tf = transformers
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", "a", "cat", "dog"]
    tok = tf.BertTokenizer(vocab={w: i for i, w in enumerate(words)})
    ip = tf.GroundingDinoImageProcessor(size={"shortest_edge": 64, "longest_edge": 96})
    backbone = tf.SwinConfig(image_size=32, patch_size=4, embed_dim=8, depths=[1, 1, 1, 1], num_heads=[1, 1, 1, 1],
                             window_size=2, out_features=["stage2", "stage3", "stage4"])
    text = tf.BertConfig(vocab_size=len(words), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=32, max_position_embeddings=64)
    # d_model must be a multiple of 32 (GroupNorm); two decoder layers for the shared box heads
    cfg = tf.GroundingDinoConfig(backbone_config=backbone, text_config=text, d_model=32, encoder_layers=1,
                                 decoder_layers=2, encoder_ffn_dim=32, decoder_ffn_dim=32, encoder_attention_heads=2,
                                 decoder_attention_heads=2, num_queries=10, max_text_len=32, encoder_n_points=2,
                                 decoder_n_points=2, num_feature_levels=3, disable_custom_kernels=True)
    tf.GroundingDinoForObjectDetection(cfg).save_pretrained(path)
    tf.GroundingDinoProcessor(image_processor=ip, tokenizer=tok).save_pretrained(path)


def _save_sam(path):
    tf = transformers
    vc = tf.SamVisionConfig(hidden_size=16, output_channels=16, num_hidden_layers=1, num_attention_heads=2,
                            image_size=64, patch_size=8, mlp_dim=32, global_attn_indexes=[0], window_size=4,
                            num_pos_feats=8)
    pc = tf.SamPromptEncoderConfig(hidden_size=16, image_size=64, patch_size=8, mask_input_channels=4)
    mc = tf.SamMaskDecoderConfig(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, mlp_dim=32,
                                 iou_head_hidden_dim=16)
    tf.SamModel(tf.SamConfig(vision_config=vc, prompt_encoder_config=pc, mask_decoder_config=mc)).save_pretrained(path)
    tf.SamProcessor(image_processor=tf.SamImageProcessor(size={"longest_edge": 64},
                                                         pad_size={"height": 64, "width": 64})).save_pretrained(path)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("tiny_models")
    _save_owl(root / "owlvit", v2=False)
    _save_owl(root / "owlv2", v2=True)
    _save_grounding_dino(root / "gdino")
    _save_sam(root / "sam")
    return root


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(0)
    return [rng.integers(0, 255, (40, 60, 3), dtype=np.uint8), rng.integers(0, 255, (30, 30, 3), dtype=np.uint8),
            rng.integers(0, 255, (50, 20, 3), dtype=np.uint8)]


# (class, folder, boxes per image at threshold 0, batch size: several batches for OWL, one forward for DINO)
DETECTORS = [(OwlViTDetector, "owlvit", 16, 2), (Owlv2Detector, "owlv2", 16, 2), (GroundingDinoDetector, "gdino", 10, 3)]


@pytest.mark.parametrize("cls,folder,per_image,batch", DETECTORS, ids=[d[1] for d in DETECTORS])
def test_detector_loads_locally_and_returns_valid_boxes(tiny, images, cls, folder, per_image, batch, tmp_path):
    det = cls(tiny / folder, classes=CLASSES, score_threshold=0.0, batch_size=batch, cache_dir=tmp_path / "cache")
    out = det.detect(images, image_ids=[11, 12, 13])
    # threshold 0 keeps every patch/query that has a non-empty box inside its image
    counts = out.boxes.image_id.value_counts()
    assert set(counts.index) <= {11, 12, 13} and (counts <= per_image).all() and counts.sum() >= per_image
    assert out.is_prediction and ((out.scores >= 0) & (out.scores <= 1)).all()
    assert set(out.boxes.category_id) <= {1, 2} and out.categories == {1: "cat", 2: "dog"}
    sizes = out.images.set_index("image_id").loc[out.boxes.image_id]
    xyxy = out.xyxy
    assert (xyxy[:, 0] >= 0).all() and (xyxy[:, 2] <= sizes.width.to_numpy()).all()
    assert (xyxy[:, 3] <= sizes.height.to_numpy()).all() and (xyxy[:, 2] > xyxy[:, 0]).all()
    assert out.images.height.tolist() == [40, 30, 50] and out.images.width.tolist() == [60, 30, 20]
    # resumable: a second run reads the finished batches and never calls the model
    again = cls(tiny / folder, classes=CLASSES, score_threshold=0.0, batch_size=batch, cache_dir=tmp_path / "cache")
    again._setup()
    again._run_batch = lambda imgs: (_ for _ in ()).throw(AssertionError("model called"))
    np.testing.assert_allclose(again.detect(images, image_ids=[11, 12, 13]).xyxy, xyxy)


def test_detector_reads_image_files_and_names_broken_ones(tiny, tmp_path):
    Image.fromarray(np.zeros((20, 30, 3), np.uint8)).save(tmp_path / "ok.png")
    (tmp_path / "bad.png").write_bytes(b"nope")
    det = OwlViTDetector(tiny / "owlvit", classes=CLASSES, score_threshold=0.0)
    out = det.detect([tmp_path / "ok.png"])
    assert out.images.file_name.tolist() == ["ok.png"] and out.images.width.tolist() == [30]
    with pytest.raises(InputError, match=r"bad\.png.*cannot be decoded"):
        det.detect([tmp_path / "ok.png", tmp_path / "bad.png"])


@pytest.mark.parametrize("cls", [OwlViTDetector, Owlv2Detector, GroundingDinoDetector])
def test_missing_model_directory_is_named(cls, tmp_path):
    with pytest.raises(InputError, match=rf"{cls.__name__}: model directory not found: .*nowhere"):
        cls(tmp_path / "nowhere", classes=CLASSES).detect([np.zeros((8, 8, 3), np.uint8)])
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="has no config.json"):
        cls(tmp_path / "empty", classes=CLASSES).detect([np.zeros((8, 8, 3), np.uint8)])


def test_sam_missing_directory_and_bad_classes(tmp_path):
    with pytest.raises(InputError, match="SamSegmenter: model directory not found"):
        SamSegmenter(tmp_path / "x")._setup()
    with pytest.raises(InputError, match="distinct non-empty names"):
        OwlViTDetector(tmp_path, classes=["a", "a"]).detect([])


def test_sam_masks_one_per_box_in_rle(tiny, images):
    det = OwlViTDetector(tiny / "owlvit", classes=CLASSES, score_threshold=0.0).detect(images[:2])
    det = det.select(np.r_[np.ones(3, bool), np.zeros(len(det) - 3, bool)])  # 3 boxes keep it quick
    seg = SamSegmenter(tiny / "sam").segment(images[:2], det)
    assert seg.has_masks and seg.boxes["mask"].notna().all() and len(seg) == 3
    for row, m in zip(seg.boxes.itertuples(), seg.boxes["mask"], strict=True):
        h, w = (40, 60) if row.image_id == 1 else (30, 30)
        assert decode_mask(m).shape == (h, w) and m["size"] == [h, w]
        json.dumps(m)  # storable as is
    with pytest.raises(InputError, match=r"image 1 'image_1' is 30x30 \(h x w\) but its boxes were made for 40x60"):
        SamSegmenter(tiny / "sam").segment([images[1], images[1]], det)


def test_cli_label_folder_with_masks(tiny, images, tmp_path):
    from labelsieve.cli import main
    from labelsieve.detect import Detections

    (tmp_path / "img").mkdir()
    for i, im in enumerate(images[:2]):
        Image.fromarray(im).save(tmp_path / "img" / f"p{i}.png")
    rc = main(["detect", "label", str(tmp_path / "img"), "--model", str(tiny / "owlvit"), "--kind", "owlvit",
               "--classes", "cat,dog", "--score-threshold", "0.52", "--sam", str(tiny / "sam"),
               "--out", str(tmp_path / "out")])
    assert rc == 0
    d = Detections.load(tmp_path / "out")
    assert d.images.file_name.tolist() == ["p0.png", "p1.png"] and d.categories == {1: "cat", 2: "dog"}
    assert len(d) > 0 and (d.scores >= 0.52).all() and d.boxes["mask"].notna().all()
    assert main(["detect", "label", str(tmp_path / "img"), "--model", str(tmp_path / "missing"), "--kind", "owlv2",
                 "--classes", "cat", "--out", str(tmp_path / "o2")]) == 2
