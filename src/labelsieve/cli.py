"""The ``labelsieve`` command line. Thin: parse, call the library, print.

Each module in :mod:`labelsieve.commands` registers its sub-commands with ``register(sub, bench)``,
where ``sub`` holds top-level commands and ``bench`` the ``labelsieve bench ...`` experiments.
Command modules import heavy dependencies inside their handlers so ``--help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import pkgutil
import sys
from collections.abc import Sequence

from labelsieve import __version__
from labelsieve.errors import LabelsieveError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="labelsieve",
        description="Auto-label an unlabeled pool with an error guarantee; aggregate crowd labels.",
    )
    parser.add_argument("--version", action="version", version=f"labelsieve {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    bench_parser = sub.add_parser("bench", help="paper experiments and speed benchmarks")
    bench = bench_parser.add_subparsers(dest="bench_command", metavar="EXPERIMENT")

    def bench_help(a: argparse.Namespace) -> int:
        bench_parser.print_help()
        return 2

    bench_parser.set_defaults(func=bench_help)

    from labelsieve import commands

    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"labelsieve.commands.{info.name}")
        register = getattr(module, "register", None)
        if register is not None:
            register(sub, bench)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        rc = args.func(args)
    except LabelsieveError as exc:
        print(f"labelsieve: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("labelsieve: interrupted; a resumable run continues with --resume", file=sys.stderr)
        return 130
    return int(rc or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
