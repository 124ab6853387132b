"""One typed spec for every run, and the CLI flags generated from it.

:class:`RunSpec` holds everything that defines a TBAL run: the loop, the oracle variant, the
labeler, the confidence function, the cost and the guarantee type. Each field carries its flag's
help, its choices and the *sinks* it works with (``"dir"``: a run directory, ``labelsieve run
--out``; ``"project"``: a project store, ``labelsieve run --project`` / ``project-run``).
:func:`add_spec_arguments` writes the flags of a parser from the fields, so ``run``, ``run
--project`` and ``project-run`` take the same flags with the same defaults, and
:func:`check_sink` refuses, with a message naming the flag, a value that the sink cannot honour:
no flag is ever dropped.

Where a run executes (``--engine``) is not part of what it *is*: the engine flags stay in
:mod:`labelsieve.engine` and both sinks take them.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from labelsieve._registry import LazyChoices
from labelsieve.errors import InputError

DIR, PROJECT = "dir", "project"
BOTH = (DIR, PROJECT)


def _bounds() -> tuple[str, ...]:
    from labelsieve.guarantees import bound_choices

    return bound_choices()


def _strategies() -> tuple[str, ...]:
    from labelsieve.active.base import QUERY_STRATEGIES

    return tuple(QUERY_STRATEGIES.names(tbal=True))


def _confidences() -> tuple[str, ...]:
    from labelsieve.confidence import CONFIDENCE_FUNCTIONS

    return tuple(CONFIDENCE_FUNCTIONS)


def _f(default: Any, help: str, *, choices: tuple[str, ...] | Callable[[], tuple[str, ...]] | None = None,
       sinks: tuple[str, ...] = BOTH, flag: str | None = None, group: str = "", why: str = "",
       new: bool = False) -> Any:
    """A spec field with its flag's metadata (``why``: the reason a sink refuses it; ``new``: added
    after the run stores were first written, so left out of stored configs at its default)."""
    return field(default=default, metadata={"help": help, "choices": choices, "sinks": sinks, "flag": flag,
                                            "group": group, "why": why, "new": new})


@dataclass(frozen=True)
class RunSpec:
    """Everything that defines a run (see the module docstring); flags are generated from it."""

    dataset: str = field(default="", metadata={
        "help": "embedded name (digits, breast-cancer, waveform) or a CSV/Parquet/.npy path", "choices": None,
        "sinks": (DIR,), "flag": None, "group": "", "why": "a project's data set is the one it was created from",
        "new": False})
    epsilon: float = _f(0.05, "target error (default 0.05): of the auto-labels (subset) or of all labels (dataset)")
    delta: float = _f(0.05, "failure probability of the guarantee (default 0.05)")
    budget: int = _f(400, "human labels in all for TBAL's rounds, validation included (default 400)")
    seed: int = _f(0, "random seed (default 0)")
    oracle: str = _f("simulated", "who answers: simulated (ground truth; default for --out), file (CSV round trips, "
                     "--out only), app (the web app; default for a project), crowd (simulated labelers aggregated "
                     "by GTX, --out only)", choices=("simulated", "file", "app", "crowd"))
    noise: float = _f(0.0, "simulated oracle's label-noise rate")
    scope: str = _f("global", "one threshold for all classes, or one per class", choices=("global", "per-class"))
    model: str = _f("logreg", "classifier trained on the human labels", choices=("logreg", "mlp"))
    strategy: str = _f("margin-random", "query strategy of the rounds", choices=_strategies)
    bound: str = _f("clopper-pearson", "subset bound (sigma and tbal-hoeffding are the TBAL authors' heuristics, "
                    "not guarantees)", choices=_bounds)
    rounds: int = _f(5, "TBAL rounds")
    val_fraction: float = _f(0.4, "share of the budget spent on validation")
    delta_schedule: str = _f("last", "last (default): certify once, in the final round; geometric/uniform: every "
                             "round (see docs/guarantee.md)", choices=("last", "geometric", "uniform"))
    label_column: str = _f("label", "ground-truth column of a CSV/Parquet pool", sinks=(DIR,),
                           why="a project's columns were read at init")
    id_column: str = _f("id", "id column of a CSV/Parquet pool", sinks=(DIR,), why="a project's columns were read "
                        "at init")
    classes: str | None = _f(None, "comma-separated class names (required for a pool without labels)", sinks=(DIR,),
                             why="a project's classes were fixed at init")
    labeler: str | None = _f(None, "minilm | hashing | clip:PATH: run TBAL on this labeler's embeddings with a "
                             "few-shot head", sinks=(DIR,), why="a project's features were fixed at init "
                             "(labelsieve init --embedder)")
    text_column: str = _f("text", "text column of a CSV/Parquet pool for --labeler", sinks=(DIR,),
                          why="a project's columns were read at init")
    crowd_accuracy: str = _f("0.6,0.9", "labeler accuracies ~ U(low,high)", sinks=(DIR,), group="crowd",
                             why="a project's crowd answers in the web app")
    crowd_table: str | None = _f(None, "CSV with columns labeler,accuracy: your own labelers instead of drawing",
                                 sinks=(DIR,), group="crowd", why="a project's crowd answers in the web app")
    n_workers: int = _f(10, "labelers in the simulated crowd", sinks=(DIR,), flag="--crowd-workers", group="crowd",
                        why="a project's crowd answers in the web app")
    crowd_strategy: str = _f("threshold", "GTX collection: confidence threshold (tau, kappa) or uncertainty "
                             "sampling", choices=("threshold", "uncertainty"), sinks=(DIR,), group="crowd",
                             why="set the project's collection with `labelsieve serve --strategy`")
    tau: float = _f(0.999, "stop asking once the GTX posterior reaches tau", sinks=(DIR,), group="crowd",
                    why="set the project's tau with `labelsieve serve --tau`")
    kappa: int = _f(7, "at most this many answers per item", sinks=(DIR,), group="crowd",
                    why="set the project's kappa with `labelsieve serve --kappa`")
    answers_per_item: float = _f(3.0, "uncertainty strategy: answers per item", sinks=(DIR,), group="crowd",
                                 why="a project's crowd answers in the web app")
    gold_size: int = _f(200, "gold items every simulated labeler answers (accuracies)", sinks=(DIR,), group="crowd",
                        why="a project estimates accuracies from its own votes and reviews")
    delta_accuracy: float = _f(0.01, "share of --delta spent on the labelers' accuracy limits", sinks=(DIR,),
                               group="crowd", why="a project estimates accuracies from its own votes and reviews")
    difficulty: float = _f(0.75, "item difficulty shared with the model (0: none)", sinks=(DIR,), group="crowd",
                           why="a simulation parameter")
    expert_cost: float = _f(10.0, "price of an expert label", group="crowd")
    crowd_cost: float = _f(1.0, "price of one crowd answer", sinks=(DIR,), group="crowd",
                           why="a project's crowd answers in the web app")
    compare_expert: bool = _f(True, "", sinks=(DIR,), group="crowd")
    confidence: str = _f("softmax", "confidence function (any registered one)", choices=_confidences, new=True)
    guarantee: str = _f("subset", "subset: the auto-labels' error <= epsilon (TBAL); dataset: the error of ALL "
                        "final labels <= epsilon (PAC labeling: audit + routing after TBAL's rounds)",
                        choices=("subset", "dataset"), group="guarantee", new=True)
    audit: int = _f(500, "--guarantee dataset: audit draws K (humans label them)", group="guarantee", new=True)
    audit_prior: str = _f("uniform", "--guarantee dataset: audit sampling prior",
                          choices=("uniform", "uncertainty"), group="guarantee", new=True)
    pac_bound: str = _f("betting", "--guarantee dataset: betting (finite-sample) or clt (asymptotic)",
                        choices=("betting", "clt"), group="guarantee", new=True)

    @classmethod
    def from_json(cls, path: Path) -> RunSpec:
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise InputError(f"{path}: cannot read the run configuration ({exc})") from None
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def spec_dict(spec: RunSpec) -> dict[str, Any]:
    """The stored form: every field, except fields added later while they hold their default (so a
    store or run directory written before them still matches, and outputs stay byte-identical)."""
    meta = {f.name: f for f in fields(RunSpec)}
    return {k: v for k, v in asdict(spec).items() if not (meta[k].metadata["new"] and v == meta[k].default)}


def spec_json(spec: RunSpec, **kw: Any) -> str:
    return json.dumps(spec_dict(spec), **kw)


def _flag(f: Any) -> str:
    return f.metadata["flag"] or "--" + f.name.replace("_", "-")


def add_spec_arguments(parser: Any, *, skip: tuple[str, ...] = ("dataset", "compare_expert")) -> None:
    """Add one flag per :class:`RunSpec` field (defaults ``None``: the spec's own default applies,
    and :func:`given` tells what the user set)."""
    groups: dict[str, Any] = {"": parser}
    titles = {"crowd": "crowd oracle (--oracle crowd)", "guarantee": "guarantee type"}
    for f in fields(RunSpec):
        if f.name in skip:
            continue
        m = f.metadata
        g = groups.get(m["group"]) or groups.setdefault(m["group"], parser.add_argument_group(titles[m["group"]]))
        typ = type(f.default) if f.default is not None and f.default is not MISSING else str
        choices = m["choices"]
        kw: dict[str, Any] = {"default": None, "dest": f.name, "help": m["help"]}
        if choices is not None:
            kw["choices"] = LazyChoices(choices) if callable(choices) else choices
        else:
            kw["type"] = typ
        g.add_argument(_flag(f), **kw)
    if "compare_expert" in skip and "compare_expert" not in {a.dest for a in parser._actions}:
        groups.get("crowd", parser).add_argument(
            "--no-expert-comparison", action="store_true",
            help="skip the simulated expert run at the same cost reported in metrics.json")


def given(args: Any) -> dict[str, Any]:
    """The spec fields the user set explicitly on the command line."""
    out = {f.name: getattr(args, f.name) for f in fields(RunSpec) if getattr(args, f.name, None) is not None}
    if getattr(args, "no_expert_comparison", False):
        out["compare_expert"] = False
    return out


def check_sink(values: dict[str, Any], sink: str) -> None:
    """Refuse a field the sink cannot honour, naming the flag and why (never drop it silently)."""
    meta = {f.name: f for f in fields(RunSpec)}
    for k, v in values.items():
        f = meta[k]
        if sink not in f.metadata["sinks"] and v != f.default:
            where = "a project (--project / project-run)" if sink == PROJECT else "a run directory (--out)"
            flag = "--no-expert-comparison" if k == "compare_expert" else _flag(f)
            raise InputError(f"{flag} does not apply to {where}: {f.metadata['why'] or 'not supported there'}")
    oracle = values.get("oracle")
    if sink == PROJECT and oracle in ("file", "crowd"):
        raise InputError(f"--oracle {oracle} is for run directories (--out); a project's humans answer in the web "
                         "app (--oracle app)")
    if sink == DIR and oracle == "app":
        raise InputError("--oracle app needs --project DIR")
