"""Where independent tasks run: in this process, on a local process pool, or on a Ray cluster.

An :class:`Executor` runs ``fn(*args)`` for every task and reports each result as it finishes;
Ctrl-C cancels the tasks not yet finished and returns the finished ones. ``accelmap map``
(one task per layer) and ``accelmap sweep`` (one per hardware point and layer) use it. Tasks
must be deterministic functions of their arguments (the mapper seeds each layer with
``seed + index``), so results do not depend on the backend or on the order tasks finish in.

Ray is optional (``pip install 'accelmap[ray]'``) and imported only by :class:`RayExecutor`.
"""

from __future__ import annotations

import os
import sys
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Any, Callable, Sequence

from accelmap.errors import AccelmapError

OnDone = Callable[[int, Any], None]  # (task index, result)


def single_threaded() -> None:
    """One task per core: the kernel inside each worker must not spawn its own threads too."""
    try:
        import numba

        numba.set_num_threads(1)
    except ImportError:
        pass
    import torch

    torch.set_num_threads(1)


def _start_method() -> str:
    """'fork' (fast: workers inherit the imports), unless this process has already run numba's
    GNU OpenMP threads (the compiled kernel's parallel loop), which cannot survive a fork: a
    forked worker would terminate itself. Then 'spawn'."""
    import multiprocessing

    if "fork" not in multiprocessing.get_all_start_methods():
        return "spawn"
    numba = sys.modules.get("numba")
    if numba is not None:
        try:
            if numba.threading_layer() == "omp":
                return "spawn"
        except ValueError:  # no parallel region has run yet
            pass
    return "fork"


def can_fork() -> bool:
    """Whether a local pool starts by forking this process (cheap: workers inherit its imports)."""
    return _start_method() == "fork"


def _init_pool_worker() -> None:
    # Ctrl-C is the parent's to handle: it stops the pool and keeps the finished tasks.
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    single_threaded()


class Executor:
    """Runs tasks; ``run`` returns {task index: result} for the tasks that finished."""

    name = "serial"

    def describe(self) -> str:
        return "in this process"

    def run(self, fn: Callable, tasks: Sequence[tuple], on_done: OnDone | None = None) -> dict[int, Any]:
        done: dict[int, Any] = {}
        import torch

        # A search's tensors are small (a population of genomes): with several intra-op threads
        # each indexing op opens an OpenMP region, which costs milliseconds on a loaded machine
        # (advanced indexing of a [16, 99] tensor: 8-20 ms with 2 threads, 6 us with 1), and the
        # cost model's compiled kernel keeps its own threads.
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            for i, args in enumerate(tasks):
                done[i] = fn(*args)
                if on_done:
                    on_done(i, done[i])
        except KeyboardInterrupt:
            pass
        finally:
            torch.set_num_threads(threads)
        return done

    def close(self) -> None:
        pass

    def __enter__(self) -> "Executor":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class PoolExecutor(Executor):
    """A local process pool of ``workers`` processes (one task per process at a time)."""

    name = "pool"

    def __init__(self, workers: int):
        if workers < 1:
            raise AccelmapError(f"workers must be at least 1, got {workers}", field="--workers")
        self.workers = workers

    def describe(self) -> str:
        return f"a local pool of {self.workers} processes"

    def run(self, fn: Callable, tasks: Sequence[tuple], on_done: OnDone | None = None) -> dict[int, Any]:
        done: dict[int, Any] = {}
        import multiprocessing

        pool = ProcessPoolExecutor(max_workers=max(1, min(self.workers, len(tasks))), initializer=_init_pool_worker,
                                   mp_context=multiprocessing.get_context(_start_method()))
        try:
            futures = {pool.submit(fn, *args): i for i, args in enumerate(tasks)}
            for f in as_completed(futures):
                i = futures[f]
                done[i] = f.result()
                if on_done:
                    on_done(i, done[i])
        except KeyboardInterrupt:
            procs = list((getattr(pool, "_processes", None) or {}).values())
            pool.shutdown(wait=False, cancel_futures=True)
            for p in procs:
                p.terminate()
            return done
        pool.shutdown()
        return done


NO_RAY = "--ray needs Ray, which is not installed; pip install 'accelmap[ray]'"


def check_ray() -> None:
    """Raise the missing-Ray error now, without importing Ray (seconds): for checking options
    before anything is created or searched."""
    import importlib.util

    if importlib.util.find_spec("ray") is None:
        raise AccelmapError(NO_RAY, field="--ray")


def _ray():
    try:
        import ray
    except ImportError:
        raise AccelmapError(NO_RAY, field="--ray") from None
    return ray


def _call_single_threaded(fn: Callable, args: tuple) -> Any:
    single_threaded()
    return fn(*args)


class RayExecutor(Executor):
    """Tasks on a Ray cluster, one CPU each.

    ``address`` is passed to ``ray.init``: ``"auto"`` joins the cluster running on this machine
    (``ray start --head``) and, when there is none, starts a local one with this machine's
    CPUs; ``"ray://host:10001"`` or ``"host:6379"`` joins that cluster. When Ray is already
    initialized in this process (``ray.init(...)`` by the caller), that session is used as is.
    A local cluster this executor started is shut down by :meth:`close`.
    """

    name = "ray"

    def __init__(self, address: str = "auto", num_cpus: int | None = None):
        ray = _ray()
        self.address = address
        self.started_local = False
        if ray.is_initialized():
            self.owner = False
        else:
            self.owner = True
            try:
                ray.init(address=address, include_dashboard=False, log_to_driver=False)
            except ConnectionError as exc:
                if address != "auto":
                    raise AccelmapError(f"cannot connect to the Ray cluster at '{address}': {exc}",
                                        field="--ray") from None
                ray.init(num_cpus=num_cpus or os.cpu_count() or 1, include_dashboard=False, log_to_driver=False)
                self.started_local = True
            except (ValueError, RuntimeError) as exc:
                raise AccelmapError(f"cannot connect to the Ray cluster at '{address}': {exc}", field="--ray") from None
        self.cpus = int(ray.cluster_resources().get("CPU", 0))
        self._remote = ray.remote(num_cpus=1, max_retries=0)(_call_single_threaded)

    def describe(self) -> str:
        if self.started_local:
            return f"a local Ray cluster started here ({self.cpus} CPUs; no running cluster was found)"
        return f"the Ray cluster at '{self.address}' ({self.cpus} CPUs)" if self.owner else \
            f"the running Ray session ({self.cpus} CPUs)"

    def run(self, fn: Callable, tasks: Sequence[tuple], on_done: OnDone | None = None) -> dict[int, Any]:
        ray = _ray()
        done: dict[int, Any] = {}
        refs = {self._remote.remote(fn, args): i for i, args in enumerate(tasks)}
        pending = list(refs)
        try:
            while pending:
                # a short timeout hands control back to Python, so Ctrl-C is seen while tasks run
                ready, pending = ray.wait(pending, num_returns=1, timeout=0.2)
                for r in ready:
                    i = refs[r]
                    done[i] = ray.get(r)
                    if on_done:
                        on_done(i, done[i])
        except KeyboardInterrupt:
            for r in pending:
                ray.cancel(r, force=True)
        return done

    def close(self) -> None:
        if self.owner:
            _ray().shutdown()
            self.owner = False


def make_executor(workers: int = 1, ray: str | None = None) -> Executor:
    """The executor for ``--workers N`` / ``--ray ADDRESS`` (Ray when an address is given)."""
    if ray:
        return RayExecutor(ray)
    if workers < 1:
        raise AccelmapError(f"workers must be at least 1, got {workers}", field="--workers")
    return PoolExecutor(workers) if workers > 1 else Executor()
