"""The executor seam on Ray: each task is a Ray remote function with one CPU.

Without an address a private local Ray runtime is started with ``workers`` CPUs, the dashboard
off, logs kept out of the terminal, and its session files under ``temp_dir`` (a short path: Ray
puts Unix sockets there). With an address (``auto`` on a cluster node, or ``HEAD_IP:6379``) the
tasks go to that cluster and its CPUs decide the parallelism; every node needs lnn-control
installed (the same version) because tasks travel as references to its functions.

Ray is imported only here, when an executor is made; without it the error names the extra.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from lnn_control.parallel.executor import MissingDependency, limit_threads

#: Environment variables forwarded to the Ray workers (rendering back end, thread limits).
_FORWARDED = ("MUJOCO_GL", "PYOPENGL_PLATFORM")


def import_ray() -> Any:
    """``import ray`` or an error that says how to install it."""
    try:
        import ray
    except ImportError as exc:
        raise MissingDependency(
            "the Ray executor needs Ray: pip install 'lnn-control[ray]' (or pip install ray), "
            "or use --executor local"
        ) from exc
    return ray


def _run_task(fn: Callable[..., Any], args: tuple, kwargs: dict) -> Any:
    limit_threads()
    return fn(*args, **kwargs)


class RayExecutor:
    """``concurrent.futures``-shaped executor on Ray (see the module docstring)."""

    def __init__(self, workers: int, address: str | None = None, temp_dir: str | None = None) -> None:
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            raise ValueError(f"workers must be an integer ≥ 1, got {workers!r}")
        ray = import_ray()
        self._ray = ray
        self.workers = workers
        self.address = address
        env_vars = {name: os.environ[name] for name in _FORWARDED if name in os.environ}
        env_vars.update({"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"})
        self._owns_runtime = not ray.is_initialized()
        if self._owns_runtime:
            options: dict[str, Any] = {
                "runtime_env": {"env_vars": env_vars},
                "log_to_driver": False,
                "configure_logging": False,
            }
            if address is None:
                options.update(
                    num_cpus=workers,
                    include_dashboard=False,
                    _node_ip_address="127.0.0.1",
                )
                if temp_dir is not None:
                    options["_temp_dir"] = str(temp_dir)
            else:
                options["address"] = address
            ray.init(**options)
        self._remote = ray.remote(num_cpus=1, max_retries=0)(_run_task)
        self._closed = False

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future:
        """Run ``fn(*args, **kwargs)`` as a Ray task; its ``ObjectRef`` as a ``concurrent.futures.Future``."""
        if self._closed:
            raise RuntimeError("cannot submit to an executor that was shut down")
        return self._remote.remote(fn, args, kwargs).future()

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Stop the local Ray runtime this executor started (a cluster it joined keeps running)."""
        if self._closed:
            return
        self._closed = True
        if self._owns_runtime:
            self._ray.shutdown()

    def __enter__(self) -> RayExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
