"""``labelsieve pac``: PAC labeling of a predictions file — a guarantee on the whole labeled data set.

Input: a CSV or Parquet file with columns ``id, prediction, confidence`` and optionally ``label``
(the truth: it answers as a simulated human and gives the true error). Without ``label``, the items
humans must label are written to ``DIR/queries/request-00Q.csv`` and the command stops; it continues
when run again with ``--answers FILE`` (columns ``id,label``): first the audit sample, then the
items above the certified uncertainty threshold. See docs/pac.md.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
from pathlib import Path
from typing import Any

OUT_FILES = ("labels.csv", "metrics.json")


def register(sub: Any, bench: Any) -> None:
    p = sub.add_parser(
        "pac",
        help="PAC labeling of a predictions file: the final data set's error <= epsilon w.p. >= 1 - delta",
        description="Audit a random sample, certify an uncertainty threshold (fixed-sequence scan, "
        "betting or CLT bound), send the items above it to humans and keep the model's labels below it. "
        "With probability >= 1 - delta the mean loss of all final labels (human and model) is <= epsilon.",
    )
    p.add_argument("--predictions", required=True, help="CSV or Parquet: id, prediction, confidence [, label]")
    p.add_argument("--epsilon", type=float, required=True, help="bound on the final data set's mean loss")
    p.add_argument("--delta", type=float, required=True, help="failure probability of the guarantee")
    p.add_argument("--audit", type=int, required=True, help="K, audit draws with replacement (e.g. 500, or n/10)")
    p.add_argument("--prior", choices=["uniform", "uncertainty"], default="uniform",
                   help="audit sampling: uniform, or proportional to 1 - confidence mixed with uniform")
    p.add_argument("--mix", type=float, default=0.5, help="share of uniform in the uncertainty prior (default 0.5)")
    p.add_argument("--loss", choices=["zero-one", "squared"], default="zero-one")
    p.add_argument("--loss-bound", type=float, default=None,
                   help="squared loss: a bound on (label - prediction)^2, e.g. (label range)^2 (required)")
    p.add_argument("--bound", choices=["betting", "clt"], default="betting",
                   help="betting: finite-sample (Waudby-Smith-Ramdas); clt: asymptotic only")
    p.add_argument("--max-candidates", type=int, default=None,
                   help="scan at most this many fixed uncertainty quantiles (for very large audits)")
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--answers", action="append", default=[], metavar="FILE",
                   help="human answers (CSV id,label) for the requested items; may be repeated")
    p.set_defaults(func=_pac)


# --------------------------------------------------------------------------------------------------
# input
# --------------------------------------------------------------------------------------------------


def _where(path: Path, r: int) -> str:
    return f"{path}, line {r + 2}" if path.suffix.lower() in (".csv", ".tsv") else f"{path}, row {r}"


def _first(mask: Any) -> int:
    import numpy as np

    return int(np.flatnonzero(np.asarray(mask))[0])


def read_predictions(path: str | Path, *, loss: str = "zero-one") -> dict[str, Any]:
    """Read and check a predictions file; errors name the file, the row and the column.

    Returns ids, prediction (strings for 0-1 loss, floats for squared loss), confidence, and
    label (or None) as NumPy arrays, plus ``prediction_text`` / ``label_text`` as given.
    """
    import numpy as np
    import pandas as pd

    from labelsieve.errors import InputError

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file.")
    suffix = path.suffix.lower()
    try:
        if suffix in (".parquet", ".pq"):
            df = pd.read_parquet(path)
            df = df.astype({c: str for c in df.columns if c != "confidence"})
            df = df.replace({"None": "", "nan": "", "<NA>": ""})
        elif suffix in (".csv", ".tsv"):
            df = pd.read_csv(path, sep="\t" if suffix == ".tsv" else ",", dtype=str, keep_default_na=False)
        else:
            raise InputError(f"{path}: unknown format {suffix!r}; give a .csv, .tsv or .parquet file.")
    except (OSError, ValueError, pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        if isinstance(exc, InputError):
            raise
        raise InputError(f"{path}: cannot be read ({exc})") from None
    missing = [c for c in ("id", "prediction", "confidence") if c not in df.columns]
    if missing:
        raise InputError(f"{path}: missing column(s) {missing}; found {list(df.columns)}")
    if len(df) == 0:
        raise InputError(f"{path}: no rows.")
    ids = df["id"].astype(str).str.strip()
    empty = ids == ""
    if empty.any():
        raise InputError(f"{_where(path, _first(empty))}, column 'id': empty id")
    dup = ids.duplicated()
    if dup.any():
        r = _first(dup)
        q = _first(ids == ids.iloc[r])
        raise InputError(f"{_where(path, r)}, column 'id': {ids.iloc[r]!r} appears twice (first at {_where(path, q)})")
    raw_conf = df["confidence"]
    conf = pd.to_numeric(raw_conf, errors="coerce").to_numpy(dtype=np.float64)
    nan = ~np.isfinite(conf)
    if nan.any():
        r = _first(nan)
        raise InputError(f"{_where(path, r)} (id {ids.iloc[r]!r}), column 'confidence': {raw_conf.iloc[r]!r} is not a "
                         "finite number")
    out_of = (conf < 0) | (conf > 1)
    if out_of.any():
        r = _first(out_of)
        raise InputError(f"{_where(path, r)} (id {ids.iloc[r]!r}), column 'confidence': {float(conf[r])!r} is outside [0, 1]")
    pred_text = df["prediction"].astype(str).str.strip()
    if (pred_text == "").any():
        r = _first(pred_text == "")
        raise InputError(f"{_where(path, r)} (id {ids.iloc[r]!r}), column 'prediction': empty prediction")
    label_text = None
    if "label" in df.columns:
        label_text = df["label"].astype(str).str.strip()
        if (label_text == "").any():
            r = _first(label_text == "")
            raise InputError(f"{_where(path, r)} (id {ids.iloc[r]!r}), column 'label': empty label; the 'label' column "
                             "answers for the humans, so every row needs one (drop the column to label by hand)")
    pred = _values(pred_text, path, "prediction", ids, loss)
    label = None if label_text is None else _values(label_text, path, "label", ids, loss)
    return {
        "path": path, "ids": ids.to_numpy(dtype=object), "prediction": pred, "confidence": conf, "label": label,
        "prediction_text": pred_text.to_numpy(dtype=object),
        "label_text": None if label_text is None else label_text.to_numpy(dtype=object),
    }


def _values(text: Any, path: Path, column: str, ids: Any, loss: str) -> Any:
    """Comparable values: floats for squared loss; for 0-1 loss numbers compare as numbers, else strings."""
    import numpy as np
    import pandas as pd

    from labelsieve.errors import InputError

    num = pd.to_numeric(text, errors="coerce").to_numpy(dtype=np.float64)
    if loss == "squared":
        bad = ~np.isfinite(num)
        if bad.any():
            r = _first(bad)
            raise InputError(f"{_where(path, r)} (id {ids.iloc[r]!r}), column {column!r}: {text.iloc[r]!r} is not a "
                             "number (squared loss needs numeric labels)")
        return num
    return np.array([_key(v) for v in text], dtype=object)


def _key(v: str) -> str:
    """Canonical class key: '1', '1.0' and ' 1' are the same class; other strings as given."""
    try:
        f = float(v)
    except ValueError:
        return v
    return repr(f) if math.isfinite(f) else v


def _fingerprint(data: dict[str, Any]) -> str:
    h = hashlib.sha256()
    for col in ("ids", "prediction_text"):
        h.update("\x1f".join(map(str, data[col])).encode())
    h.update(data["confidence"].tobytes())
    return h.hexdigest()[:16]


# --------------------------------------------------------------------------------------------------
# answers and requests
# --------------------------------------------------------------------------------------------------


def _read_answers(path: Path, known: set[str]) -> dict[str, str]:
    import numpy as np
    import pandas as pd

    from labelsieve.errors import InputError

    if not path.is_file():
        raise InputError(f"{path}: no such answers file.")
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot be read as CSV ({exc})") from None
    missing = [c for c in ("id", "label") if c not in df.columns]
    if missing:
        raise InputError(f"{path}: missing column(s) {missing}; found {list(df.columns)}")
    ids, labels = df["id"].str.strip(), df["label"].str.strip()
    for mask, what in ((labels == "", "empty label"), (ids.duplicated(), "id answered twice"),
                       (~ids.isin(known), "id not in the predictions file")):
        if mask.any():
            r = int(np.flatnonzero(mask.to_numpy())[0])
            raise InputError(f"{path}, line {r + 2}, id {ids.iloc[r]!r}: {what}")
    return dict(zip(ids, labels, strict=True))


def _csv(rows: list[list[Any]]) -> str:
    import csv
    import io

    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    return buf.getvalue()


def _state(out: Path, data: dict[str, Any], answer_files: list[str]) -> dict[str, str]:
    """Stored answers merged with the new ``--answers`` files (a conflicting answer is an error)."""
    import pandas as pd

    from labelsieve._atomic import atomic_write_text
    from labelsieve.errors import InputError

    known = set(data["ids"])
    state = out / "state" / "answers.csv"
    answers: dict[str, str] = {}
    if state.exists():
        df = pd.read_csv(state, dtype=str, keep_default_na=False)
        answers = dict(zip(df["id"], df["label"], strict=True))
    changed = False
    for f in answer_files:
        for i, lab in _read_answers(Path(f), known).items():
            if i in answers and answers[i] != lab:
                raise InputError(f"{f}: id {i!r} is answered {lab!r}, but {answers[i]!r} was recorded before "
                                 f"(in {state}); delete that row there to change it")
            changed |= i not in answers
            answers[i] = lab
    if changed:
        atomic_write_text(state, _csv([["id", "label"]] + [[k, v] for k, v in answers.items()]))
    return answers


def _request(out: Path, q: int, ids: list[str], what: str) -> int:
    from labelsieve._atomic import atomic_write_text

    path = out / "queries" / f"request-{q:03d}.csv"
    atomic_write_text(path, _csv([["id"]] + [[i] for i in ids]))
    print(f"waiting for human labels: wrote {len(ids)} {what} items to {path}; label them and run the same command "
          f"again with --answers FILE (CSV with columns id,label)")
    return 0


# --------------------------------------------------------------------------------------------------
# the command
# --------------------------------------------------------------------------------------------------


def _check_args(args: argparse.Namespace, n: int, path: Path) -> None:
    from labelsieve.errors import InputError

    for name in ("epsilon", "delta"):
        v = getattr(args, name)
        if not (isinstance(v, float) and 0.0 < v < 1.0):
            raise InputError(f"--{name} must be in (0, 1); got {v!r}")
    if args.audit < 1:
        raise InputError(f"--audit must be >= 1; got {args.audit}")
    if args.audit > n:
        raise InputError(f"--audit {args.audit} is more than the {n} items of {path}")
    if args.loss == "squared" and (args.loss_bound is None or not args.loss_bound > 0):
        raise InputError("--loss squared needs --loss-bound B > 0, a bound on (label - prediction)^2 for every item")
    if not 0.0 < args.mix <= 1.0:
        raise InputError(f"--mix must be in (0, 1]; got {args.mix!r}")
    if args.seed < 0:
        raise InputError(f"--seed must be >= 0; got {args.seed}")


def _config(args: argparse.Namespace, data: dict[str, Any]) -> dict[str, Any]:
    return {
        "predictions": str(Path(args.predictions).resolve()), "fingerprint": _fingerprint(data), "n": len(data["ids"]),
        "epsilon": args.epsilon, "delta": args.delta, "audit": args.audit, "prior": args.prior, "mix": args.mix,
        "loss": args.loss, "loss_bound": args.loss_bound, "bound": args.bound, "max_candidates": args.max_candidates,
        "seed": args.seed,
    }


def _check_config(out: Path, cfg: dict[str, Any]) -> None:
    from labelsieve._atomic import atomic_write_text
    from labelsieve.errors import InputError

    path = out / "config.json"
    if path.exists():
        stored = json.loads(path.read_text())
        diff = {k: (stored.get(k), v) for k, v in cfg.items() if k != "predictions" and stored.get(k) != v}
        if diff:
            shown = ", ".join(f"{k}: stored {a!r}, given {b!r}" for k, (a, b) in diff.items())
            raise InputError(f"{out} holds a PAC run with other settings or data ({shown}); use another --out")
    else:
        atomic_write_text(path, json.dumps(cfg, indent=2) + "\n")


def _pac(args: argparse.Namespace) -> int:
    import numpy as np

    from labelsieve.guarantees.pac import PACLabeler, pac_losses

    data = read_predictions(args.predictions, loss=args.loss)
    ids, conf = data["ids"], data["confidence"]
    n = len(ids)
    _check_args(args, n, data["path"])
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    _check_config(out, _config(args, data))
    u = 1.0 - conf
    lab = PACLabeler(
        epsilon=args.epsilon, alpha=args.delta, audit=args.audit, prior=args.prior, mix=args.mix, loss=args.loss,
        loss_bound=args.loss_bound, bound=args.bound, max_candidates=args.max_candidates, random_state=args.seed,
    )
    audited = lab.split(u)
    simulated = data["label"] is not None
    if simulated:
        truth, truth_text = data["label"], data["label_text"]
        answers: dict[str, str] = {}
    else:
        answers = _state(out, data, args.answers)

    def human(idx: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """(comparable values, label text) for items ``idx``, or None when some answers are missing."""
        if simulated:
            return truth[idx], truth_text[idx]
        got = [answers.get(ids[i]) for i in idx]
        if any(g is None for g in got):
            return None
        text = np.array(got, dtype=object)
        return _values_of_answers(text, args.loss), text

    first = human(audited)
    if first is None:
        return _request(out, 1, [ids[i] for i in audited], "audit")
    lab.fit_from_labels(data["prediction"], u, audited, first[0])
    routed = np.flatnonzero(lab.routed_mask_)
    second = human(routed) if len(routed) else (np.array([]), np.array([], dtype=object))
    if second is None:
        return _request(out, 2, [ids[i] for i in routed], "routed (above the certified uncertainty threshold)")
    if len(routed):
        lab.set_routed_labels(second[0])
    text = data["prediction_text"].copy()
    text[audited] = first[1]
    text[routed] = second[1]
    metrics = lab.summary()
    metrics["dataset_error"] = None
    if simulated:
        err = pac_losses(truth, lab.labels_, args.loss, loss_bound=math.inf)
        metrics["dataset_error"] = float(err.mean())
    t = lab.threshold_
    metrics.update({
        "confidence_threshold": None if t == -np.inf else float(1.0 - t),
        "seed": args.seed, "predictions": str(data["path"]), "mix": args.mix if args.prior != "uniform" else None,
        "loss_bound": args.loss_bound if args.loss == "squared" else 1.0, "answers": "label column (simulated human)"
        if simulated else "human answers files",
    })
    _write(out, ids, text, lab, metrics)
    print(summary_table(metrics))
    print(f"\nwrote {out}/labels.csv and {out}/metrics.json")
    return 0


def _values_of_answers(text: Any, loss: str) -> Any:
    import numpy as np

    from labelsieve.errors import InputError

    if loss == "squared":
        try:
            return np.array([float(v) for v in text])
        except ValueError as exc:
            raise InputError(f"an answer is not a number (squared loss needs numeric labels): {exc}") from None
    return np.array([_key(str(v)) for v in text], dtype=object)


def _write(out: Path, ids: Any, text: Any, lab: Any, metrics: dict[str, Any]) -> None:
    """labels.csv then metrics.json (last: its presence means the run is complete), each atomically."""
    import numpy as np

    from labelsieve._atomic import atomic_write_text

    roles = lab.roles_
    source = np.where(roles == "auto", "auto", "human")
    rows = [["id", "label", "source", "role"]] + [[i, t, s, r] for i, t, s, r in zip(ids, text, source, roles, strict=True)]
    atomic_write_text(out / "labels.csv", _csv(rows))
    atomic_write_text(out / "metrics.json", json.dumps(metrics, indent=2) + "\n")


def summary_table(m: dict[str, Any]) -> str:
    """One screen: counts, threshold, bound, true error and the guarantee's statement."""
    err = ("n/a (no label column)" if m["dataset_error"] is None
           else f"{m['dataset_error']:.4f}  (true, against the label column)")
    thr = "none (every item goes to humans)" if m["threshold"] is None else (
        f"uncertainty <= {m['threshold']:.6g} (confidence >= {m['confidence_threshold']:.6g})")
    rows = [
        ("items", f"{m['n']}"),
        ("audit", f"{m['audit_draws']} draws ({m['prior']} prior), {m['audited']} distinct items"),
        ("routed to humans", f"{m['routed']}"),
        ("human labels", f"{m['human_labels']}"),
        ("model labels kept", f"{m['auto_labeled']}  (saved fraction {m['saved_fraction']:.3f})"),
        ("threshold", thr),
        ("error bound", (f"{m['error_bound']:.4f} <= epsilon {m['epsilon']:g} ({m['bound']}; IPW estimate "
                        f"{m['ipw_estimate']:.4f})")),
        ("data-set error", err),
    ]
    w = max(len(k) for k, _ in rows)
    lines = ["labelsieve pac: " + ("guarantee" if m["guaranteed"] else "ASYMPTOTIC (CLT) bound, not a guarantee")]
    lines += [f"  {k:<{w}}  {v}" for k, v in rows]
    lines.append(f"  {m['statement']}")
    return "\n".join(lines)
