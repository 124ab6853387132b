"""Labeler throughput and memory.

1. Items scored per second per backend, ours vs calling the embedding model directly on the same
   batches (the overhead of batching, validation, cosine logits and softmax; and with the Parquet
   cache on, of writing shards). Backends: MiniLM (real weights), the hashing encoder, a tiny
   randomly initialised CLIP built here (real CLIP weights cannot be downloaded; this measures our
   code around the model), and a scores file (no model: read + align).
   Repeats are interleaved and the best time of each kept; the overhead is given on wall time and
   on this process's CPU time (steadier on a shared machine).
2. Peak resident memory of a streaming scoring run (``labelsieve label``'s loop: pred/conf kept,
   logits and embeddings dropped per batch; cache on) at 10k vs 100k items, each in a fresh
   process (hashing encoder: the memory of our code, not of a model).

Run ``python benchmarks/bench_labelers.py`` (about two minutes here); ``--skip-minilm`` / ``--skip-clip``.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def _best(fns: dict, repeats: int) -> dict:
    """Best (wall, process CPU) seconds of each function over interleaved repeats."""
    best = {k: (float("inf"), float("inf")) for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():  # interleave: a load spike hits both sides alike
            w, c = time.perf_counter(), time.process_time()
            fn()
            w, c = time.perf_counter() - w, time.process_time() - c
            best[k] = (min(best[k][0], w), min(best[k][1], c))
    return best


def _report(name: str, n: int, t: dict) -> None:
    dw, dc = t["direct"]
    cells = [f"direct {n / dw:8.1f} items/s"]
    for k, (w, c) in t.items():
        if k != "direct":
            cells.append(f"{k} {n / w:8.1f} items/s (overhead: wall {100 * (w / dw - 1):+5.1f}%, "
                         f"CPU {100 * (c / dc - 1):+5.1f}%)")
    print(f"{name:<10} " + " | ".join(cells))


def _texts(n: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    words = np.array(["the", "a", "film", "movie", "story", "plot", "actor", "great", "bad", "boring", "funny", "slow", "dull", "brilliant", "scene", "music", "end", "start", "love", "hate", "long", "short"])
    return [" ".join(rng.choice(words, rng.integers(6, 20))) for _ in range(n)]


def bench_text(encoder, name: str, n: int, batch: int, repeats: int) -> None:
    from labelsieve.labelers import ZeroShotLabeler

    texts = _texts(n)
    ids = [f"t{i}" for i in range(n)]
    lab = ZeroShotLabeler(encoder, classes=["positive", "negative"], batch_size=batch).fit()
    encoder.encode_items(texts[:batch])  # warm up
    list(lab.iter_scores(texts[:batch]))

    def direct():
        for s in range(0, n, batch):
            encoder.encode_items(texts[s:s + batch])

    def ours():
        for _, sc in lab.iter_scores(texts, ids):
            sc.probs.max(1)

    def ours_cache():
        with tempfile.TemporaryDirectory() as d:
            cached = ZeroShotLabeler(encoder, classes=["positive", "negative"], batch_size=batch, cache_dir=d).fit()
            for _, sc in cached.iter_scores(texts, ids):
                sc.probs.max(1)

    _report(name, n, _best({"direct": direct, "ours": ours, "ours+cache": ours_cache}, repeats))


def _tiny_clip(d: Path) -> Path:
    import torch
    from tokenizers.pre_tokenizers import ByteLevel
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor, CLIPTokenizer

    chars = sorted(ByteLevel.alphabet())
    vocab = {c: i for i, c in enumerate(chars)} | {c + "</w>": len(chars) + i for i, c in enumerate(chars)}
    vocab |= {"<|startoftext|>": len(vocab), "<|endoftext|>": len(vocab) + 1}
    torch.manual_seed(0)
    cfg = CLIPConfig(
        text_config={"vocab_size": len(vocab), "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
                         "num_attention_heads": 4, "max_position_embeddings": 32, "bos_token_id": len(vocab) - 2,
                         "eos_token_id": len(vocab) - 1, "pad_token_id": len(vocab) - 1},
        vision_config={"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
                           "image_size": 64, "patch_size": 8},
        projection_dim=32,
    )
    CLIPModel(cfg).save_pretrained(d)
    ip = CLIPImageProcessor(size={"shortest_edge": 64}, crop_size={"height": 64, "width": 64})
    CLIPProcessor(image_processor=ip, tokenizer=CLIPTokenizer(vocab=vocab, merges=[])).save_pretrained(d)
    return d


def bench_clip(n: int, batch: int, repeats: int) -> None:
    import torch
    from PIL import Image

    from labelsieve.labelers.clip import CLIPLabeler

    with tempfile.TemporaryDirectory() as tmp:
        path = _tiny_clip(Path(tmp) / "clip")
        rng = np.random.default_rng(0)
        images = [rng.integers(0, 255, (64, 64, 3), dtype=np.uint8) for _ in range(n)]
        ids = [f"im{i}" for i in range(n)]
        lab = CLIPLabeler(path, classes=["cat", "dog", "car"], batch_size=batch).fit()
        model, proc = lab._resolve_encoder()._load()

        def direct():
            for s in range(0, n, batch):
                pil = [Image.fromarray(a) for a in images[s:s + batch]]
                with torch.no_grad():
                    model.get_image_features(**proc.image_processor(images=pil, return_tensors="pt"))

        def ours():
            for _, sc in lab.iter_scores(images, ids):
                sc.probs.max(1)

        direct(), ours()  # warm up both paths
        _report("tiny-CLIP", n, _best({"direct": direct, "ours": ours}, repeats))


def bench_cache_io(batch: int = 64, dim: int = 384, n_batches: int = 50) -> None:
    """Cost of the cache alone: one shard write per batch, and reading every batch back."""
    from labelsieve.labelers import EmbeddingCache

    rng = np.random.default_rng(0)
    E = rng.normal(size=(batch, dim)).astype(np.float32)
    with tempfile.TemporaryDirectory() as d:
        cache = EmbeddingCache(d, "bench:cache")
        t = time.perf_counter()
        for b in range(n_batches):
            cache.write(np.array([f"b{b}-{i}" for i in range(batch)]), E)
        w = (time.perf_counter() - t) / n_batches
        cache = EmbeddingCache(d, "bench:cache")
        t = time.perf_counter()
        for b in range(n_batches):
            cache.read(cache.lookup(np.array([f"b{b}-{i}" for i in range(batch)])))
        r = (time.perf_counter() - t) / n_batches
    print(f"cache      per batch of {batch} x {dim}: write {1e3 * w:.1f} ms, look up + read {1e3 * r:.1f} ms")


def bench_scores_file(n: int) -> None:
    from labelsieve.labelers import load_scores, write_scores

    rng = np.random.default_rng(0)
    ids = np.array([f"i{j}" for j in range(n)])
    with tempfile.TemporaryDirectory() as d:
        for suffix in (".csv", ".parquet"):
            p = Path(d) / f"s{suffix}"
            write_scores(p, ids, rng.normal(size=(n, 10)), [f"c{k}" for k in range(10)])
            t = time.perf_counter()
            load_scores(p).align(ids[::-1])
            dt = time.perf_counter() - t
            print(f"scores{suffix:<8} read + align {n} items x 10 classes: {n / dt:10.0f} items/s")


def _hwm() -> float:
    """Peak resident set of this process in KiB (VmHWM; ru_maxrss survives exec on Linux)."""
    try:
        with open("/proc/self/status") as f:
            return float(next(line.split()[1] for line in f if line.startswith("VmHWM")))
    except (OSError, StopIteration):
        return float(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def memory_child(n: int) -> None:
    """One streaming run over ``n`` generated texts with the cache on; print peak RSS and the peak
    of Python + NumPy allocations (tracemalloc, started after imports), in MiB."""
    import tracemalloc

    from labelsieve.labelers import HashingTextEncoder, ZeroShotLabeler

    base = _hwm()
    tracemalloc.start()
    words = np.array(["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota", "kappa"])
    rng = np.random.default_rng(0)
    texts = (" ".join(rng.choice(words, 8)) for _ in range(n))  # a generator: never a list of the pool
    ids = (f"x{i}" for i in range(n))
    with tempfile.TemporaryDirectory() as d:
        lab = ZeroShotLabeler(HashingTextEncoder(n_features=384), classes=["a", "b", "c"], batch_size=256,
                              cache_dir=d).fit()
        pred = np.empty(n, dtype=np.int64)
        conf = np.empty(n)
        s = 0
        for b_ids, sc in lab.iter_scores(texts, ids):
            pred[s:s + len(b_ids)], conf[s:s + len(b_ids)] = sc.predicted, sc.probs.max(1)
            s += len(b_ids)
        cold = _hwm()
        cold_py = tracemalloc.get_traced_memory()[1]
        tracemalloc.reset_peak()
        texts = (" ".join(rng.choice(words, 8)) for _ in range(n))
        ids = (f"x{i}" for i in range(n))
        for b_ids, sc in lab.iter_scores(texts, ids):  # warm: everything read back from the cache
            pass
        warm = _hwm()
        warm_py = tracemalloc.get_traced_memory()[1]
    mib = 2**20
    print(f"{base / 1024:.1f} {cold / 1024:.1f} {warm / 1024:.1f} {cold_py / mib:.1f} {warm_py / mib:.1f}")


def bench_memory() -> None:
    print("peak RSS of a streaming scoring run (hashing encoder, 384-d, cache on; fresh process each):")
    for n in (10_000, 100_000):
        t = time.perf_counter()
        out = subprocess.run([sys.executable, __file__, "--memory-child", str(n)], capture_output=True, text=True,
                             check=True).stdout.split()
        base, cold, warm, cold_py, warm_py = map(float, out)
        print(f"  {n:>7} items: RSS after imports {base:6.1f} MiB, peak first run (encode + write cache) "
              f"{cold:6.1f}, second run (read cache) {warm:6.1f} | Python+NumPy peak: first run {cold_py:5.1f} MiB, "
              f"second run {warm_py:5.1f} MiB   ({time.perf_counter() - t:.0f}s)")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--memory-child", type=int, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--n", type=int, default=512)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--skip-minilm", action="store_true")
    ap.add_argument("--skip-clip", action="store_true")
    args = ap.parse_args()
    if args.memory_child:
        memory_child(args.memory_child)
        return
    from labelsieve.labelers import HashingTextEncoder, MiniLMEncoder

    print(f"throughput, {args.n} items, best of {args.repeats} interleaved repeats (cpu count {os.cpu_count()}):")
    if not args.skip_minilm:
        bench_text(MiniLMEncoder(), "MiniLM", args.n // 2, 64, args.repeats)
    bench_text(HashingTextEncoder(n_features=384), "hashing", 20 * args.n, 256, args.repeats)
    if not args.skip_clip:
        bench_clip(args.n, 32, args.repeats)
    bench_cache_io()
    bench_scores_file(100_000)
    bench_memory()


if __name__ == "__main__":
    main()
