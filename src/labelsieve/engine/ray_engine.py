"""The Ray engine: the same block tasks as the local engine, run on a Ray cluster.

A source is cut into pieces (rows ``start:stop`` of in-memory arrays in the object store, or a
slice of a Parquet row group that the worker reads itself). Two ways to run them:

* blocks that need per-worker state -- a model or labeler to load (``setup``, used by
  :meth:`~labelsieve.engine.base.BaseEngine.score`) -- go through Ray Data: each piece is one row
  of a data set, ``map_batches`` sends the pieces to a pool of actors, each actor runs ``setup``
  once (weights load once per worker) and then one block per call;
* stateless blocks (maps, the EM map-reduce, top-k, auto-labeling with a fitted model carried in
  the task) are one Ray task per piece on warm worker processes: milliseconds of overhead instead
  of the seconds an actor pool takes to start.

A worker process killed mid-job is replaced and its piece run again (actors restart and their calls
are retried; tasks have ``TASK_RETRIES`` retries). Results are keyed by piece, so no row is lost or
counted twice. An exception raised by a block function is not retried and reaches the caller.

``ray`` is imported lazily; without it :class:`~labelsieve.errors.MissingDependencyError` says how
to install the extra.
"""

from __future__ import annotations

import logging
import os
import pickle
import socket
import time
from typing import Any

import numpy as np

from labelsieve.engine.base import BaseEngine, BlockTask, Source
from labelsieve.errors import LabelsieveError, MissingDependencyError, ParameterError

log = logging.getLogger(__name__)

INSTALL_HINT = 'the Ray engine needs Ray: pip install "labelsieve[ray]"'
#: Seconds to wait for an explicit cluster address to answer before giving up.
CONNECT_TIMEOUT = 10.0
#: Attempts (about one second each) to reach the Ray GCS behind an open port.
GCS_RETRIES = 8


def import_ray() -> Any:
    """``import ray`` (and Ray Data) or raise :class:`MissingDependencyError` with the install line."""
    try:
        import ray
        import ray.data
    except ImportError as exc:
        raise MissingDependencyError(INSTALL_HINT) from exc
    return ray


def _host_port(address: str) -> tuple[str, int] | None:
    a = address.split("://", 1)[-1].rstrip("/")
    if ":" not in a:
        return None
    host, _, port = a.rpartition(":")
    try:
        return host, int(port)
    except ValueError:
        return None


def check_reachable(address: str, timeout: float = CONNECT_TIMEOUT) -> None:
    """Raise :class:`LabelsieveError` unless a TCP connection to ``address`` (host:port) opens."""
    hp = _host_port(address)
    if hp is None:
        raise ParameterError(
            f"The 'address' parameter of the Ray engine must be 'auto' or HOST:PORT (or ray://HOST:PORT). "
            f"Got {address!r} instead."
        )
    try:
        with socket.create_connection(hp, timeout=timeout):
            pass
    except OSError as exc:
        raise LabelsieveError(
            f"cannot reach the Ray cluster at {address} ({exc.strerror or exc}); is `ray start --head` "
            f"running there, and is the port open?"
        ) from exc


#: Sources kept in the object store between calls (the EM iterations reuse one source).
_KEEP_SOURCES = 2
#: Attempts of a stateless piece whose worker process died.
TASK_RETRIES = 5
_REMOTE: dict[str, Any] = {}


def _run_piece(task: BlockTask, source: Source, piece: Any) -> Any:
    return task.run(source.read(piece))


def _remote_piece(ray: Any) -> Any:
    if "piece" not in _REMOTE:
        _REMOTE["piece"] = ray.remote(max_retries=TASK_RETRIES, num_cpus=1)(_run_piece)
    return _REMOTE["piece"]


class _PieceRunner:
    """Ray Data actor: holds the task's per-worker state and runs one piece per row of its batch."""

    def __init__(self, payload: list[Any]) -> None:
        import ray

        self.task, self.source, self.pieces = ray.get(payload[0])
        self.state = self.task.start()

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        ids = np.asarray(batch["data"], dtype=np.int64).ravel()
        results = [
            pickle.dumps(self.task.run(self.source.read(self.pieces[int(p)]), self.state), protocol=5)
            for p in ids
        ]
        out = np.empty(len(results), dtype=object)
        out[:] = results
        return {"piece": ids, "result": out}


class RayEngine(BaseEngine):
    """Run blocks on a Ray cluster (module docstring: actors for model-holding blocks, tasks otherwise).

    Parameters
    ----------
    address : None, "auto" or "HOST:PORT" / "ray://HOST:PORT"
        ``None``: use the Ray runtime of this process, starting a local one (``num_cpus`` CPUs,
        loopback, no dashboard) if there is none. ``"auto"``: join the cluster running on this
        machine. An explicit address is probed first; unreachable -> a clear error within
        ``CONNECT_TIMEOUT`` seconds.
    num_cpus : int, optional
        CPUs of the local Ray started when ``address=None``.
    workers : int, optional
        Actors per map (default: the cluster's CPU count).

    The engine keeps the last ``_KEEP_SOURCES`` in-memory sources in the object store (the EM
    iterations reuse one); :meth:`close` releases them and stops a Ray it started.
    """

    name = "ray"

    def __init__(
        self,
        *,
        address: str | None = None,
        num_cpus: int | None = None,
        workers: int | None = None,
    ) -> None:
        self.address = address
        self.num_cpus = num_cpus
        self.workers = workers
        self._ray = import_ray()
        self._started = False
        self._refs: list[tuple[Any, Any]] = []
        self._connect()

    def _connect(self) -> None:
        ray = self._ray
        if ray.is_initialized():
            return
        t0 = time.perf_counter()
        common: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, "logging_level": logging.WARNING}
        if self.address is None:
            ray.init(num_cpus=self.num_cpus, _node_ip_address="127.0.0.1", **common)
            self._started = True
        elif self.address == "auto":
            try:
                ray.init(address="auto", **common)
            except (ConnectionError, RuntimeError) as exc:
                raise LabelsieveError(
                    f"--ray-address auto: no running Ray cluster found on this machine ({exc}); start one "
                    f"with `ray start --head` or give HOST:PORT."
                ) from exc
        else:
            check_reachable(self.address)
            # something answers on the port; if it is not a Ray GCS, give up after ~GCS_RETRIES seconds
            # instead of Ray's default (about 20 s) -- an explicit RAY_ variable of the user wins
            os.environ.setdefault("RAY_gcs_server_port_wait_time_s", str(GCS_RETRIES))
            try:
                ray.init(address=self.address, **common)
            except (ConnectionError, RuntimeError, TimeoutError) as exc:
                raise LabelsieveError(
                    f"cannot join the Ray cluster at {self.address}: the port answers but no Ray head did "
                    f"within {GCS_RETRIES} s ({exc}); check the address (the GCS port, 6379 by default)."
                ) from exc
        from ray.data import DataContext

        ctx = DataContext.get_current()
        ctx.enable_progress_bars = False
        ctx.print_on_execution_start = False
        log.info("Ray ready in %.1f s: %s", time.perf_counter() - t0, ray.cluster_resources())

    def _n_workers(self, n_pieces: int) -> int:
        if self.workers is not None:
            return max(1, min(int(self.workers), n_pieces))
        cpus = int(self._ray.cluster_resources().get("CPU", 1))
        return max(1, min(cpus, n_pieces))

    def _source_ref(self, source: Source) -> Any:
        """The source in the object store, put once and reused by later calls (EM iterations)."""
        for held, ref in self._refs:
            if held is source:
                return ref
        ref = self._ray.put(source)
        self._refs = [(source, ref)] + self._refs[: _KEEP_SOURCES - 1]
        return ref

    def run_tasks(self, task: BlockTask, source: Source, *, block_size: int) -> list[tuple[int, Any]]:
        pieces = source.pieces(block_size)
        if not pieces:
            return []
        try:
            if task.setup is None:
                return self._run_as_tasks(task, source, pieces)
            return self._run_on_actors(task, source, pieces)
        except Exception as exc:
            cause = _user_error(exc)
            if cause is not None:
                raise cause from exc
            raise

    def _run_as_tasks(self, task: BlockTask, source: Source, pieces: list[Any]) -> list[tuple[int, Any]]:
        """Stateless blocks: one Ray task per piece (warm worker processes, milliseconds each)."""
        ray = self._ray
        remote = _remote_piece(ray)
        task_ref, src_ref = ray.put(task), self._source_ref(source)
        refs = [remote.remote(task_ref, src_ref, piece) for piece in pieces]
        try:
            return list(enumerate(ray.get(refs)))
        except BaseException:
            # stop the other pieces and wait for them, so none writes after the caller cleans up
            for r in refs:
                ray.cancel(r)
            ray.wait(refs, num_returns=len(refs), timeout=60)
            raise

    def _run_on_actors(self, task: BlockTask, source: Source, pieces: list[Any]) -> list[tuple[int, Any]]:
        """Blocks needing per-worker state (a model): Ray Data map_batches over an actor pool."""
        ray = self._ray
        payload = [ray.put((task, source, pieces))]
        size = self._n_workers(len(pieces))
        # from_numpy creates the piece ids on the driver: no read tasks competing with the actors for CPUs
        ids = np.arange(len(pieces), dtype=np.int64)
        ds = ray.data.from_numpy(np.array_split(ids, len(pieces))).map_batches(
            _PieceRunner,
            batch_size=1,
            batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(size=size),
            fn_constructor_kwargs={"payload": payload},
            num_cpus=1,
        )
        parts: list[tuple[int, Any]] = []
        for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
            for p, r in zip(batch["piece"], batch["result"], strict=True):
                parts.append((int(p), pickle.loads(r)))
        return parts

    def close(self) -> None:
        """Shut down the local Ray runtime if this engine started it."""
        self._refs = []
        if self._started and self._ray.is_initialized():
            self._ray.shutdown()
            self._started = False


def _user_error(exc: BaseException) -> BaseException | None:
    """The labelsieve error a block raised on a worker, unwrapped from Ray's wrappers."""
    seen = set()
    e: BaseException | None = exc
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        cause = getattr(e, "cause", None)  # RayTaskError wraps the worker's exception here
        if isinstance(cause, LabelsieveError):
            return cause
        if isinstance(e, LabelsieveError) and cause is None:
            return e
        e = e.__cause__ or e.__context__
    return None
