"""Engines: where the blocks of a pool-sized job run (``local`` in process, ``ray`` on a Ray cluster).

>>> get_engine("local").name
'local'
"""

from __future__ import annotations

from typing import Any

from labelsieve.engine.base import (
    DEFAULT_BLOCK_SIZE,
    ArraySource,
    BaseEngine,
    BlockTask,
    Engine,
    ParquetSource,
    as_source,
    group_bounds,
    partition_by_key,
    select_top,
)
from labelsieve.engine.local import LocalEngine, score_in_blocks
from labelsieve.errors import ParameterError

ENGINES = ("local", "ray")

__all__ = [
    "DEFAULT_BLOCK_SIZE",
    "ENGINES",
    "ArraySource",
    "BaseEngine",
    "BlockTask",
    "Engine",
    "LocalEngine",
    "ParquetSource",
    "as_source",
    "get_engine",
    "group_bounds",
    "partition_by_key",
    "resolve_engine",
    "score_in_blocks",
    "select_top",
]


def get_engine(name: str = "local", *, address: str | None = None, **options: Any) -> Engine:
    """The engine called ``name``.

    ``address`` (Ray only): ``None`` starts a local Ray (``num_cpus=`` option), ``"auto"`` joins the
    running cluster, ``"HOST:PORT"`` a given one. Other options go to the engine's constructor
    (Ray: ``num_cpus``, ``workers``).
    """
    if name == "local":
        if address is not None:
            raise ParameterError(f"The 'address' parameter is for the ray engine only. Got {address!r} instead.")
        return LocalEngine()
    if name == "ray":
        from labelsieve.engine.ray_engine import RayEngine

        return RayEngine(address=address, **options)
    raise ParameterError(f"The 'engine' parameter must be one of 'local', 'ray'. Got {name!r} instead.")


def resolve_engine(engine: Engine | str | None) -> Engine:
    """An engine instance from an instance, a name, or ``None`` (local)."""
    if engine is None:
        return LocalEngine()
    if isinstance(engine, str):
        return get_engine(engine)
    if not hasattr(engine, "run_tasks"):
        raise ParameterError(
            f"The 'engine' parameter must be 'local', 'ray' or an engine instance. Got {type(engine).__name__} instead."
        )
    return engine


def add_engine_arguments(parser: Any) -> None:
    """``--engine local|ray``, ``--ray-address ADDR``, ``--block-size N`` on a CLI parser."""
    parser.add_argument("--engine", choices=ENGINES, default="local",
                        help="where pool-sized work runs: in this process (local, default) or on Ray")
    parser.add_argument("--ray-address", default=None, metavar="ADDR",
                        help="with --engine ray: 'auto' joins the Ray cluster running on this machine, HOST:PORT "
                             "a given one; default: start a local Ray on this machine's CPUs")
    parser.add_argument("--block-size", type=int, default=None, metavar="N",
                        help="rows per block (default: 65536 pool rows / 1000000 label rows)")


def engine_from_args(args: Any) -> Engine | None:
    """The engine the CLI flags ask for; ``None`` for ``--engine local`` (the in-process path)."""
    if args.block_size is not None and args.block_size < 1:
        raise ParameterError(f"--block-size must be a positive integer. Got {args.block_size} instead.")
    if args.engine == "local":
        if args.ray_address is not None:
            raise ParameterError("--ray-address needs --engine ray.")
        return None
    return get_engine("ray", address=args.ray_address)
