"""The executor interface every parallel job in lnn-control goes through.

An executor is shaped like :class:`concurrent.futures.Executor`: ``submit(fn, *args, **kwargs)``
returns a :class:`concurrent.futures.Future`; ``shutdown()`` ends it; it is a context manager.
``fn`` must be a module-level function (it travels to another process by reference) and its
arguments and result must be picklable (in memory only; nothing is pickled to disk).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, Literal, Protocol

ExecutorKind = Literal["local", "ray"]
EXECUTOR_KINDS: tuple[str, ...] = ("local", "ray")

#: Environment variables that keep numerical libraries to one thread in a worker.
_THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS")


class WorkerDied(RuntimeError):
    """The worker process running a task exited (killed, crashed) before returning a result."""


class MissingDependency(RuntimeError):
    """An optional dependency (an extra) is not installed; the message says what to install."""


class TaskError(RuntimeError):
    """A task raised an exception that could not be sent back as itself; the message holds its traceback."""


class Executor(Protocol):
    """``concurrent.futures``-shaped executor (see the module docstring)."""

    workers: int

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future: ...

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None: ...

    def __enter__(self) -> Executor: ...

    def __exit__(self, *exc: object) -> None: ...


def limit_threads() -> None:
    """One compute thread in this process: BLAS/OpenMP variables and ``torch.set_num_threads(1)``.

    Called first in every worker; batch-1 policy steps and small training batches are fastest on
    one thread, and two workers with two threads each would fight over two cores.
    """
    for name in _THREAD_VARIABLES:
        os.environ[name] = "1"
    try:
        import torch
    except ImportError:  # a worker without torch runs torch-free tasks only
        return
    torch.set_num_threads(1)


def describe_worker() -> dict[str, Any]:
    """Where this code runs: ``{"host", "pid", "torch_threads"}`` (recorded with every study cell)."""
    import socket
    import sys

    torch = sys.modules.get("torch")
    return {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "torch_threads": torch.get_num_threads() if torch is not None else None,
    }


def make_executor(
    kind: ExecutorKind = "local",
    workers: int = 1,
    *,
    ray_address: str | None = None,
    ray_temp_dir: str | None = None,
    start_method: Literal["spawn", "forkserver"] = "spawn",
) -> Executor:
    """An executor of ``kind`` with ``workers`` parallel slots.

    local: ``workers`` processes on this machine. ray: a local Ray runtime with ``workers`` CPUs,
    or the cluster at ``ray_address`` (e.g. ``auto`` or ``HEAD_IP:6379``; then the cluster's CPUs
    decide the parallelism). ``ray_temp_dir``: Ray's session folder (keep it short: Ray puts Unix
    sockets there).
    """
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be an integer ≥ 1, got {workers!r}")
    if kind == "local":
        if ray_address is not None:
            raise ValueError("--ray-address needs --executor ray")
        from lnn_control.parallel.local import LocalPoolExecutor

        return LocalPoolExecutor(workers, start_method=start_method)
    if kind == "ray":
        from lnn_control.parallel.ray_executor import RayExecutor

        return RayExecutor(workers, address=ray_address, temp_dir=ray_temp_dir)
    raise ValueError(f"unknown executor {kind!r}; choose one of {list(EXECUTOR_KINDS)}")
