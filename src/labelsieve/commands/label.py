"""``labelsieve label``: zero-/few-shot labels from a foundation model (or a scores file), offline.

Writes ``OUT/labels.csv`` (``id,label,confidence,source``) and ``OUT/metrics.json`` (accuracy and
macro-F1 when the data carry ground truth), each atomically; on an error nothing is written.
Embeddings are cached under ``--cache`` (default ``OUT/cache``), so an interrupted run resumes.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from labelsieve._registry import LazyHelp


def _labeler_help() -> str:
    from labelsieve.labelers import encoder_specs

    return f"a registered encoder ({encoder_specs()}) or scores:FILE (your model's scores)"


class PairScorer:
    """Engine adapter: scores a block of ``(id, item)`` pairs with a labeler (ids key its cache)."""

    def __init__(self, labeler: Any) -> None:
        self.labeler = labeler

    def scores(self, pairs: Any) -> Any:
        ids = [p[0] for p in pairs]
        return self.labeler.scores([p[1] for p in pairs], ids)


def register(sub: Any, bench: Any) -> None:
    p = sub.add_parser("label", help="zero-/few-shot labels from a local foundation model or a scores file")
    p.add_argument("--dataset", required=True,
                   help="20newsgroups, r8, rotten-tomatoes, an embedded set, a CSV/Parquet (id,text[,label]) or an image folder")
    p.add_argument("--labeler", required=True, help=LazyHelp(_labeler_help))
    g = p.add_mutually_exclusive_group()
    g.add_argument("--classes", help='comma-separated class names, e.g. "sports,politics"')
    g.add_argument("--classes-file",
                   help="one class per line, or JSON {class: [description, ...]} (several prompts per class)")
    p.add_argument("--few-shot", type=int, default=None, metavar="K",
                   help="fit a logistic-regression head on K human labels per class (taken from the data's truth)")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--cache", default=None, help="embedding cache directory (default OUT/cache)")
    p.add_argument("--split", choices=["train", "test", "all"], default="train", help="split of a named text set")
    p.add_argument("--n", type=int, default=None, help="random subset of this many items (named text sets)")
    p.add_argument("--text-column", default="text")
    p.add_argument("--max-seq-length", type=int, default=None, help="truncate texts for MiniLM (<= 256)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-progress", action="store_true")
    g = p.add_argument_group("guarantee (PAC labeling of the labeler's output)")
    g.add_argument("--guarantee", choices=["none", "dataset"], default="none",
                   help="dataset: audit a random sample, route uncertain items to humans, and guarantee that the "
                        "whole final data set's error is <= --epsilon w.p. >= 1 - --delta (written to OUT/pac/)")
    g.add_argument("--epsilon", type=float, default=0.05)
    g.add_argument("--delta", type=float, default=0.05)
    g.add_argument("--audit", type=int, default=500, help="K, audit draws (default 500; the paper uses n/10 for images)")
    g.add_argument("--audit-prior", choices=["uniform", "uncertainty"], default="uniform")
    g.add_argument("--pac-bound", choices=["betting", "clt"], default="betting",
                   help="betting: finite-sample; clt: asymptotic only")
    g.add_argument("--answers", action="append", default=[], metavar="FILE",
                   help="human answers (CSV id,label) for the requested items, when the data has no label column")
    from labelsieve.engine import add_engine_arguments

    add_engine_arguments(p)
    p.set_defaults(func=_label)


def _read_classes(args: argparse.Namespace) -> tuple[list[str] | None, dict[str, Sequence[str]] | None]:
    import json

    from labelsieve.errors import InputError
    from labelsieve.labelers.base import check_classes

    if args.classes is not None:
        return list(check_classes(args.classes.split(","), owner="--classes")), None
    if args.classes_file is None:
        return None, None
    path = Path(args.classes_file)
    if not path.exists():
        raise InputError(f"--classes-file {path}: no such file.")
    text = path.read_text(encoding="utf-8")
    if text.lstrip().startswith("{"):
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InputError(f"{path}: invalid JSON at line {exc.lineno}: {exc.msg}.") from exc
        classes = list(check_classes(list(obj), owner=str(path)))
        prompts: dict[str, Sequence[str]] = {str(k): ([v] if isinstance(v, str) else list(v)) for k, v in obj.items()}
        return classes, prompts
    lines = [ln.strip() for ln in text.splitlines()]
    while lines and not lines[-1]:
        lines.pop()
    return list(check_classes(lines, owner=str(path))), None


def _label(args: argparse.Namespace) -> int:
    import json

    import numpy as np
    import pandas as pd

    from labelsieve._atomic import atomic_write_text
    from labelsieve.data.text import load_pool
    from labelsieve.errors import InputError
    from labelsieve.labelers import FewShotLabeler, ZeroShotLabeler, load_scores, sample_per_class
    from labelsieve.labelers.fewshot import encoder_from_spec
    from labelsieve.metrics import accuracy, precision_recall_f1
    from labelsieve.models.base import Scores

    classes, prompts = _read_classes(args)
    ds = load_pool(args.dataset, split=args.split, n=args.n, classes=classes, text_column=args.text_column,
                   random_state=args.seed)
    if classes is not None and list(ds.classes) != classes:
        if set(classes) != set(ds.classes):
            raise InputError(f"--classes {classes} differ from the data set's classes {list(ds.classes)}.")
        remap = np.array([classes.index(c) for c in ds.classes])
        y = None if ds.y is None else np.where(ds.y >= 0, remap[np.maximum(ds.y, 0)], -1)
        ds = type(ds)(ids=ds.ids, X=ds.X, classes=tuple(classes), y=y, raw=ds.raw, name=ds.name,
                      source=ds.source, meta=ds.meta)
    if prompts is None and "prompts" in ds.meta:
        prompts = {c: p for c, p in ds.meta["prompts"].items() if c in ds.classes}
    K = ds.n_classes
    out = Path(args.out)
    cache = Path(args.cache) if args.cache else out / "cache"
    ids = ds.ids
    human = np.zeros(len(ds), dtype=bool)
    spec = args.labeler.strip()
    info: dict[str, Any] = {"labeler": spec, "dataset": args.dataset, "n": len(ds), "classes": list(ds.classes)}

    if spec.lower().startswith("scores:"):
        if args.few_shot:
            raise InputError("--few-shot needs an embedding labeler (a registered encoder), not a scores file.")
        table = load_scores(spec[7:], classes=ds.classes)
        scores = table.align(ids)
        pred, conf = scores.predicted, scores.probs.max(axis=1)
        source = np.full(len(ds), f"scores:{Path(spec[7:]).name}", dtype=object)
        info["scores_kind"] = table.kind
    else:
        if ds.raw is None:
            raise InputError(f"{args.dataset}: no texts or images to label (the data set has no raw items).")
        encoder = encoder_from_spec(spec, max_seq_length=args.max_seq_length)
        common = {"classes": ds.classes, "batch_size": args.batch_size, "cache_dir": cache,
                      "progress": not args.no_progress}
        items = list(ds.raw)
        if args.few_shot:
            if not ds.has_truth or ds.y is None:
                raise InputError("--few-shot K takes K human labels per class from the data's 'label' column; it has none.")
            human[sample_per_class(ds.y, args.few_shot, random_state=args.seed)] = True
            lab: Any = FewShotLabeler(encoder, **common).fit([items[i] for i in np.flatnonzero(human)],
                                                             ds.y[human], ids[human])
            kind = f"few-shot-{args.few_shot}"
        else:
            templates = ("a photo of a {}.",) if spec.lower().startswith("clip:") else ("{}", "this text is about {}.")
            lab = ZeroShotLabeler(encoder, prompts=prompts, templates=templates, **common).fit()
            info["temperature"] = lab.temperature_
            kind = "zero-shot"
        info["model_id"] = lab.model_id
        from labelsieve.engine import engine_from_args

        engine = engine_from_args(args)
        if engine is not None:  # the fitted labeler goes to each worker once; blocks of items are scored there
            from labelsieve.engine.base import ArraySource

            column = np.empty(len(items), dtype=object)
            column[:] = list(zip(ids, items, strict=True))  # ids key the labeler's embedding cache
            bs = args.block_size or max(args.batch_size * 16, 1)
            sc = engine.score(PairScorer(lab), ArraySource({"item": column}), column="item", block_size=bs)
            assert isinstance(sc, Scores), "scores come back in memory when no out= is given"
            pred, conf = sc.predicted.astype(np.int64), sc.probs.max(axis=1)
            info["engine"] = "ray"
        else:
            pred = np.empty(len(ds), dtype=np.int64)
            conf = np.empty(len(ds))
            start = 0
            for b_ids, sc in lab.iter_scores(items, ids):  # streaming: one batch of logits at a time
                stop = start + len(b_ids)
                pred[start:stop], conf[start:stop] = sc.predicted, sc.probs.max(axis=1)
                start = stop
        name = spec.split(":")[0].lower()
        source = np.full(len(ds), f"{kind}:{name}", dtype=object)
        if human.any() and ds.y is not None:  # human labels exist only with --few-shot, which needs truth
            pred[human], conf[human], source[human] = ds.y[human], 1.0, "human"

    labels = pd.DataFrame({"id": ids, "label": np.asarray(ds.classes, dtype=object)[pred],
                           "confidence": np.round(conf, 6), "source": source})
    if ds.has_truth and ds.y is not None:
        ev = (ds.y >= 0) & ~human
        prf = precision_recall_f1(ds.y[ev], pred[ev], K)
        info.update(n_evaluated=int(ev.sum()), n_human=int(human.sum()),
                    accuracy=accuracy(ds.y[ev], pred[ev]), macro_f1=float(prf.macro_f1),
                    per_class_f1={c: float(f) for c, f in zip(ds.classes, prf.f1)})
    info["guarantee"] = args.guarantee
    if args.guarantee == "dataset":  # these are the model's labels; the final ones are PAC's
        info["final_labels"] = str(Path("pac") / "labels.csv")
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "labels.csv", labels.to_csv(index=False))
    atomic_write_text(out / "metrics.json", json.dumps(info, indent=2, default=float) + "\n")
    summary = f"labeled {len(ds)} items with {spec}"
    if "accuracy" in info:
        summary += f": accuracy {info['accuracy']:.3f}, macro-F1 {info['macro_f1']:.3f} on {info['n_evaluated']} items"
    print(summary)
    print(f"wrote {out / 'labels.csv'} and {out / 'metrics.json'}", file=sys.stdout)
    if args.guarantee == "dataset":
        return _dataset_guarantee(args, ds, pred, conf, out)
    return 0


def _dataset_guarantee(args: argparse.Namespace, ds: Any, pred: Any, conf: Any, out: Path) -> int:
    """PAC labeling of the labeler's predictions: the same code path as ``labelsieve pac``.

    ``OUT/predictions.csv`` (id, prediction, confidence and, when the data has ground truth, label:
    the simulated human) is written, then ``labelsieve pac`` runs on it into ``OUT/pac`` (its
    ``labels.csv`` holds the final labels with source and role; it resumes and asks for
    ``--answers`` files like ``labelsieve pac`` when there is no label column).
    """
    import numpy as np
    import pandas as pd

    from labelsieve._atomic import atomic_write_text
    from labelsieve.commands.pac import _pac

    names = np.asarray(ds.classes, dtype=object)
    table = pd.DataFrame({"id": ds.ids, "prediction": names[pred], "confidence": np.clip(conf, 0.0, 1.0)})
    if ds.has_truth and (ds.y >= 0).all():
        table["label"] = names[ds.y]
    atomic_write_text(out / "predictions.csv", table.to_csv(index=False))
    pac_args = argparse.Namespace(
        predictions=str(out / "predictions.csv"), epsilon=args.epsilon, delta=args.delta, audit=args.audit,
        prior=args.audit_prior, mix=0.5, loss="zero-one", loss_bound=None, bound=args.pac_bound,
        max_candidates=None, seed=args.seed, out=str(out / "pac"), answers=args.answers,
    )
    print()
    return _pac(pac_args)
