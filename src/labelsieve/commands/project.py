"""Project commands: ``labelsieve init``, ``import``, ``labeler``, ``project-run``, ``serve``, ``export``."""

from __future__ import annotations

import argparse
import sys
from typing import Any


def register(sub: Any, bench: Any) -> None:
    p = sub.add_parser("init", help="create a labeling project (a store with provenance) from a data set")
    p.add_argument("dir", help="project directory (created)")
    p.add_argument("--dataset", required=True, help="embedded name (digits, ...) or a CSV/Parquet/.npy path or image folder")
    p.add_argument("--db", help="SQLAlchemy URL of another database (default: DIR/project.db, SQLite)")
    p.add_argument("--name", help="project name (default: the data set's)")
    p.add_argument("--label-column", default="label")
    p.add_argument("--id-column", default="id")
    p.add_argument("--text-column", help="column holding the text shown to labelers")
    p.add_argument("--import-labels", action="store_true",
                   help="store the data set's labels as imported label events (default: ground truth only)")
    p.add_argument("--embedder", default="minilm", choices=["minilm", "hashing"],
                   help="text pools without feature columns are embedded at init: minilm (all-MiniLM-L6-v2, "
                        "offline, default) or hashing (bag of words, no model)")
    p.add_argument("--instructions", metavar="FILE", help="markdown file of instructions shown on the label page")
    p.set_defaults(func=_init)

    p = sub.add_parser("import", help="import existing labels (CSV/Parquet/JSONL with columns id,label) into a project")
    p.add_argument("dir")
    p.add_argument("file")
    p.add_argument("--who", default="import", help="labeler id recorded on the events (default: import)")
    p.set_defaults(func=_import)

    p = sub.add_parser("labeler", help="register a labeler id (and optionally its known accuracy)")
    p.add_argument("dir")
    p.add_argument("id", nargs="+", help="one or more labeler ids")
    p.add_argument("--name", default="")
    p.add_argument("--accuracy", type=float, help="known accuracy in (0, 1), used by the GTX aggregate")
    p.add_argument("--role", choices=["labeler", "reviewer", "admin"],
                   help="what the labeler may do in the web app once accounts are on (new labelers: labeler)")
    p.add_argument("--token", action="store_true",
                   help="issue a web-app token and a one-time login link (printed once; replaces earlier ones); "
                        "once any labeler has one, the app requires accounts for every write")
    p.add_argument("--url", default="http://127.0.0.1:8000", help="the app's address, for the printed login link")
    p.set_defaults(func=_labeler)

    p = sub.add_parser("project-run", help="auto-label a project's pool (TBAL); resumes a killed or waiting run")
    p.add_argument("dir")
    from labelsieve.engine import add_engine_arguments
    from labelsieve.runs.spec import add_spec_arguments

    add_spec_arguments(p)  # the same flags as `labelsieve run`; those a project cannot honour are refused
    add_engine_arguments(p)
    p.add_argument("--new", action="store_true", help="run again even if a run with this configuration completed")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_project_run)

    p = sub.add_parser("serve", help="web app: labeling, review queue, dashboard, embeddings map (loopback by default)")
    p.add_argument("dir")
    p.add_argument("--host", default="127.0.0.1", help="default 127.0.0.1; anything else exposes the app to the network")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--strategy", choices=["threshold", "uncertainty"], default="threshold")
    p.add_argument("--tau", type=float, default=0.95, help="stop serving an item once its GTX confidence reaches tau")
    p.add_argument("--kappa", type=int, default=3, help="at most this many labels per item")
    p.add_argument("--allow-host", action="append", default=[], metavar="NAME",
                   help="another host name requests may use (e.g. a DNS name of this machine); repeatable")
    p.add_argument("--instructions", metavar="FILE", help="set the project's instructions (markdown) before serving")
    p.add_argument("--relabel", action=argparse.BooleanOptionalAction, default=None,
                   help="also serve auto-labeled items to labelers (a project setting, kept until changed)")
    p.add_argument("--show-votes-to-reviewers", action=argparse.BooleanOptionalAction, default=None,
                   help="reviewers see an item's votes and aggregate before answering (project setting)")
    p.set_defaults(func=_serve)

    p = sub.add_parser("export", help="export the current labels with provenance")
    p.add_argument("dir")
    p.add_argument("--format", choices=["csv", "parquet", "jsonl", "manifest"], default="csv")
    p.add_argument("--out", required=True)
    p.add_argument("--all", action="store_true", help="include items without a label")
    p.set_defaults(func=_export)


def _init(args: argparse.Namespace) -> int:
    from labelsieve.data import load_dataset
    from labelsieve.store.project import init_project

    ds = load_dataset(args.dataset, label_column=args.label_column, id_column=args.id_column,
                      text_column=args.text_column)
    p = init_project(args.dir, ds, db=args.db, name=args.name, import_truth=args.import_labels,
                     embedder=args.embedder)
    if args.instructions:
        _set_instructions(p, args.instructions)
    print(f"created project '{p.name}' in {args.dir}: {p.store.n_items()} items, classes {list(p.classes)}")
    return 0


def _set_instructions(project: Any, path: str) -> None:
    from pathlib import Path

    from labelsieve.errors import InputError
    from labelsieve.store.labeling import set_instructions

    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read the instructions file {path}: {exc}") from None
    set_instructions(project, text)


def _import(args: argparse.Namespace) -> int:
    from labelsieve.store.project import Project, import_labels

    n = import_labels(Project(args.dir), args.file, who=args.who)
    print(f"imported {n} new label events from {args.file}")
    return 0


def _labeler(args: argparse.Namespace) -> int:
    from labelsieve.store.project import Project

    p = Project(args.dir)
    with p.store.transaction() as c:
        for i in args.id:
            p.store.add_labeler(i, name=args.name, gold_accuracy=args.accuracy, role=args.role, conn=c)
    print(f"registered labeler(s) {', '.join(args.id)}")
    if args.token:
        from urllib.parse import quote

        print("tokens (shown once; only their hashes are stored):")
        for i in args.id:
            token, code = p.store.issue_token(i)
            print(f"  {i}: token {token}\n      one-time login link {args.url.rstrip('/')}/login?token={quote(code)}")
    return 0


def _project_run(args: argparse.Namespace) -> int:
    from labelsieve.runs.spec import PROJECT, check_sink, given

    values = given(args)
    check_sink(values, PROJECT)
    return run_spec_on_project(args.dir, values, args)


def run_spec_on_project(project_dir: str, values: dict[str, Any], args: argparse.Namespace) -> int:
    """The one project path of ``labelsieve run --project`` and ``project-run``: every flag in
    ``values`` reaches the run (``check_sink`` has refused those a project cannot honour)."""
    from labelsieve.autolabel.oracles import AwaitingAnswers
    from labelsieve.engine import engine_from_args
    from labelsieve.runs.directory import RunConfig, summary_table
    from labelsieve.runs.preflight import MIN_PILOT_LABELS, budget_preflight, pilot_forecast
    from labelsieve.runs.project import run_project, will_resume
    from labelsieve.store.project import Project

    cfg = RunConfig(**{"oracle": "app", **values, "dataset": "project"})  # a project's humans answer in the app
    project = Project(project_dir)
    needs_cal = cfg.confidence not in ("softmax",)
    pre = budget_preflight(cfg, project.store.n_items(), len(project.classes), needs_calibration=needs_cal)
    print(f"before spending: {pre.message}", file=sys.stderr)
    if args.new or not will_resume(project, cfg):  # a resumed run has spent already: no new forecast
        forecast = pilot_forecast(project, cfg, needs_calibration=needs_cal)
        print("before spending: " + (forecast.message if forecast else f"no pilot yet (fewer than {MIN_PILOT_LABELS} human labels in the project): "
                                     "the next run of a new configuration forecasts its coverage from them"),
              file=sys.stderr)
    try:
        run_id, result = run_project(project, cfg, progress=not args.no_progress, new=args.new,
                                     engine=engine_from_args(args))
    except AwaitingAnswers as wait:
        print(f"waiting for human labels: {wait}")
        return 0
    print(summary_table(result))
    print(f"\nrun {run_id} committed to {project_dir}; export with `labelsieve export {project_dir} --out labels.csv`")
    return 0


def _serve(args: argparse.Namespace) -> int:
    from labelsieve.app.server import serve
    from labelsieve.store import labeling as L
    from labelsieve.store.project import Project

    settings = {k: v for k, v in ((L.SETTING_RELABEL, args.relabel),
                                  (L.SETTING_SHOW_VOTES, args.show_votes_to_reviewers)) if v is not None}
    if args.instructions or settings:
        project = Project(args.dir)
        if args.instructions:
            _set_instructions(project, args.instructions)
        project.store.set_meta(settings)
        project.close()
    serve(args.dir, host=args.host, port=args.port, strategy=args.strategy, tau=args.tau, kappa=args.kappa,
          allow_hosts=args.allow_host)
    return 0


def _export(args: argparse.Namespace) -> int:
    from labelsieve.store.project import Project, export_labels, wrong_label_summary

    project = Project(args.dir)
    n = export_labels(project, args.format, args.out, include_unlabeled=args.all)
    print(f"wrote {n} rows to {args.out}", file=sys.stdout)
    print(f"wrong labels: {wrong_label_summary(project)['statement']}", file=sys.stdout)
    return 0
