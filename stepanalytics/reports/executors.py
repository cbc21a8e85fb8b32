"""Where a batch's reports run: a local process pool or a Dask cluster.

The batch logic (:func:`stepanalytics.reports.batch.render_batch`) is written
once against :class:`BatchExecutor`: it shares the objects every job needs
(:meth:`~BatchExecutor.share`), submits one job per report
(:meth:`~BatchExecutor.submit`) and takes the results in the order they
finish (:meth:`~BatchExecutor.as_completed`).  Two executors implement it:

- :class:`ProcessPoolBatchExecutor`: ``concurrent.futures`` with spawned
  processes on this machine;
- :class:`DaskBatchExecutor`: a Dask distributed cluster, either one at a
  scheduler address or a ``LocalCluster`` started for the batch (worker
  processes, one thread each, listening on the loopback interface only) and
  closed after it.  ``distributed`` is an optional dependency
  (``pip install 'stepanalytics[dask]'``).

An executor also says whether its workers see the client's file system
(:attr:`~BatchExecutor.ships`): when they may not, the peer results are
scattered to the workers and the reports come back to the client (see
:mod:`stepanalytics.reports.batch_jobs`).
"""

from __future__ import annotations

import logging
import multiprocessing
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures import as_completed as futures_as_completed
from types import ModuleType, TracebackType
from typing import Any

from stepanalytics.errors import UsageError

#: ``--scheduler local``: start a LocalCluster for the batch.
LOCAL_SCHEDULER = "local"
#: How the workers get the shared peer results (see :func:`choose_shipping`).
SHIP_CHOICES = ("auto", "scatter", "path")
#: Seconds to wait for a remote scheduler before giving up.
CONNECT_TIMEOUT_S = 20
DASK_INSTALL_HINT = "pip install 'stepanalytics[dask]'"


class BatchExecutor(ABC):
    """Runs a batch's jobs somewhere; used as a context manager.

    Attributes
    ----------
    ships : bool
        True when the workers may not see the client's file system: shared
        objects are sent to them and the reports come back to the client.
    description : str
        One line for the provenance block and the terminal.
    """

    ships: bool = False
    description: str = ""

    def __enter__(self) -> BatchExecutor:
        self.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    @abstractmethod
    def start(self) -> None:
        """Start (or connect to) the workers."""

    @abstractmethod
    def close(self) -> None:
        """Release the workers; a cluster started for the batch is shut down."""

    @abstractmethod
    def share(self, value: Any) -> Any:
        """Something to pass to :meth:`submit` that the workers receive as ``value``.

        Sent once per worker where the executor can (Dask scatters it);
        otherwise the value itself, sent with every job.
        """

    @abstractmethod
    def submit(self, func: Callable[..., Any], *args: Any, name: str) -> Any:
        """Start ``func(*args)`` on a worker; returns a future (``.result()``)."""

    @abstractmethod
    def as_completed(self, futures: Iterable[Any]) -> Iterator[Any]:
        """The futures in the order they finish."""


class ProcessPoolBatchExecutor(BatchExecutor):
    """Spawned worker processes on this machine (``concurrent.futures``)."""

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self.description = f"local process pool ({workers} worker process(es))"
        self._pool: ProcessPoolExecutor | None = None

    def start(self) -> None:
        # spawn, not fork: the parent may hold threads (progress bar) and zmq state.
        context = multiprocessing.get_context("spawn")
        self._pool = ProcessPoolExecutor(max_workers=self.workers, mp_context=context)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def share(self, value: Any) -> Any:
        return value  # pickled with each job; nothing cheaper exists for a process pool

    def submit(self, func: Callable[..., Any], *args: Any, name: str) -> Any:
        if self._pool is None:
            raise RuntimeError("start the executor before submitting jobs")
        return self._pool.submit(func, *args)

    def as_completed(self, futures: Iterable[Any]) -> Iterator[Any]:
        return futures_as_completed(list(futures))


class DaskBatchExecutor(BatchExecutor):
    """A Dask distributed cluster: at a scheduler address, or a LocalCluster.

    Parameters
    ----------
    scheduler : str
        ``"local"`` to start a LocalCluster for the batch, else the address
        of a running scheduler (``tcp://host:8786``).
    workers : int
        Worker processes of the LocalCluster (a remote cluster has its own).
    ships : bool
        Scatter the shared objects and bring the reports back to the client
        (workers may be on other machines), rather than passing paths.
    """

    def __init__(self, scheduler: str, *, workers: int, ships: bool) -> None:
        self.scheduler = scheduler
        self.workers = workers
        self.ships = ships
        where = (
            f"LocalCluster of {workers} worker process(es)"
            if scheduler == LOCAL_SCHEDULER
            else f"cluster at {scheduler}"
        )
        shipping = "peer results scattered" if ships else "peer results read from a path"
        self.description = f"Dask {where} ({shipping})"
        self._cluster: Any = None
        self._client: Any = None
        self._distributed: ModuleType | None = None

    def start(self) -> None:
        distributed = import_distributed()
        self._distributed = distributed
        if self.scheduler == LOCAL_SCHEDULER:
            self._cluster = start_local_cluster(self.workers)
            try:
                self._client = distributed.Client(self._cluster, set_as_default=False)
            except BaseException:
                self._cluster.close()
                raise
        else:
            try:
                self._client = distributed.Client(
                    self.scheduler, timeout=CONNECT_TIMEOUT_S, set_as_default=False
                )
            except (OSError, TimeoutError, ValueError) as err:
                raise UsageError(
                    f"Cannot reach a Dask scheduler at {self.scheduler!r} "
                    f"({type(err).__name__}: {err}). Start one (`dask scheduler`, then "
                    "`dask worker ADDRESS` on each machine), check the address, or use "
                    "--scheduler local for a cluster on this machine."
                ) from None
            try:  # a scheduler without workers would queue the reports for ever
                self._client.wait_for_workers(1, timeout=CONNECT_TIMEOUT_S)
            except (OSError, TimeoutError) as err:
                self.close()
                raise UsageError(
                    f"The Dask scheduler at {self.scheduler!r} has no workers "
                    f"({type(err).__name__}). Start some with `dask worker {self.scheduler}`."
                ) from None

    def close(self) -> None:
        try:
            if self._client is not None:
                self._client.close()
        finally:
            self._client = None
            if self._cluster is not None:
                self._cluster.close()
                self._cluster = None

    def share(self, value: Any) -> Any:
        # Broadcast: every worker gets one copy now instead of fetching it per task.
        return self._require_client().scatter(value, broadcast=True, hash=False)

    def submit(self, func: Callable[..., Any], *args: Any, name: str) -> Any:
        return self._require_client().submit(func, *args, pure=False, key=_task_key(name))

    def as_completed(self, futures: Iterable[Any]) -> Iterator[Any]:
        client = self._require_client()
        if self._distributed is None:
            raise RuntimeError("start the executor before waiting for jobs")
        # The client is not made the process's default one, so name its event loop.
        return iter(self._distributed.as_completed(list(futures), loop=client.loop))

    def _require_client(self) -> Any:
        if self._client is None:
            raise RuntimeError("start the executor before submitting jobs")
        return self._client


def start_local_cluster(workers: int) -> Any:
    """A Dask LocalCluster as batches use it: processes, one thread each, loopback only.

    Close it when done (``cluster.close()`` or a ``with`` block).

    Parameters
    ----------
    workers : int
        Worker processes.

    Returns
    -------
    distributed.LocalCluster
    """
    distributed = import_distributed()
    return distributed.LocalCluster(
        n_workers=workers,
        threads_per_worker=1,  # each report runs its own kernel process
        processes=True,
        host="127.0.0.1",  # nothing listens beyond this machine
        dashboard_address=None,
        # The scheduler's HTTP endpoints (health, metrics) start even without a
        # dashboard, on port 8787 by default: take a free loopback port instead.
        scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
        silence_logs=logging.ERROR,
    )


def _task_key(name: str) -> str:
    """A readable, unique task key (shown on the Dask dashboard)."""
    import uuid

    return f"stepanalytics-report-{name.replace(' ', '-')}-{uuid.uuid4().hex[:8]}"


def import_distributed() -> ModuleType:
    """Import ``distributed`` or say how to install it.

    Raises
    ------
    UsageError
        When the optional dependency is missing.
    """
    try:
        import distributed
    except ImportError:
        raise UsageError(
            "Running a batch on Dask needs the optional dependency 'distributed', which is "
            f"not installed: install stepanalytics[dask] ({DASK_INSTALL_HINT})."
        ) from None
    return distributed


def choose_shipping(scheduler: str | None, ship: str) -> bool:
    """Whether to scatter the shared results and bring the reports back.

    ``auto`` scatters on a cluster at an address (its workers may be on
    other machines) and passes paths to a LocalCluster or the process pool
    (same machine, same files).

    Examples
    --------
    >>> choose_shipping("tcp://10.0.0.5:8786", "auto"), choose_shipping("local", "auto")
    (True, False)
    """
    if ship not in SHIP_CHOICES:
        raise UsageError(f"ship must be one of {', '.join(SHIP_CHOICES)}, not {ship!r}.")
    if scheduler is None:
        if ship == "scatter":
            raise UsageError(
                "ship='scatter' needs a Dask scheduler (--scheduler ADDRESS or --scheduler "
                "local); the local process pool always shares this machine's files."
            )
        return False
    if ship == "auto":
        return scheduler != LOCAL_SCHEDULER
    return ship == "scatter"


def open_executor(scheduler: str | None, *, workers: int, ship: str = "auto") -> BatchExecutor:
    """The executor for a batch (not yet started; use it in a ``with`` block).

    Parameters
    ----------
    scheduler : str or None
        None for the local process pool, ``"local"`` for a Dask LocalCluster,
        else a Dask scheduler address.
    workers : int
        Processes of the pool or the LocalCluster.
    ship : {"auto", "scatter", "path"}
        See :func:`choose_shipping`.

    Examples
    --------
    >>> open_executor(None, workers=2).description
    'local process pool (2 worker process(es))'
    """
    ships = choose_shipping(scheduler, ship)
    if scheduler is None:
        return ProcessPoolBatchExecutor(workers)
    if not scheduler.strip():
        raise UsageError("Give a Dask scheduler address (tcp://host:8786) or 'local'.")
    import_distributed()  # fail now, before any work, when the extra is missing
    return DaskBatchExecutor(scheduler.strip(), workers=workers, ships=ships)
