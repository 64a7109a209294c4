"""The parallel seam: results, errors and dead workers on the local pool and on a real local Ray runtime."""

from __future__ import annotations

import math
import operator
import os
import sys
import tempfile
from concurrent.futures import wait

import pytest

from lnn_control.parallel.executor import (
    MissingDependency,
    WorkerDied,
    describe_worker,
    make_executor,
)

# end to end, each test starts worker processes: outside `make test-fast`, still run by `make test`
pytestmark = pytest.mark.slow


def test_local_pool_returns_results_in_submission_order_and_keeps_one_thread_per_worker() -> None:
    with make_executor("local", 2) as pool:
        futures = [pool.submit(math.factorial, n) for n in range(8)]
        workers = [pool.submit(describe_worker) for _ in range(4)]
        assert [f.result(timeout=60) for f in futures] == [math.factorial(n) for n in range(8)]
        infos = [f.result(timeout=60) for f in workers]
    assert all(info["pid"] != os.getpid() for info in infos)
    assert len({info["pid"] for info in infos}) <= 2
    # describe_worker reports torch's thread count when torch was imported in the worker
    assert all(info["torch_threads"] in (1, None) for info in infos)


def test_local_pool_passes_task_exceptions_back_as_themselves() -> None:
    with make_executor("local", 1) as pool:
        future = pool.submit(operator.truediv, 1, 0)
        with pytest.raises(ZeroDivisionError):
            future.result(timeout=60)
        assert pool.submit(operator.add, 2, 3).result(timeout=60) == 5


def test_a_dying_worker_fails_only_its_task_and_the_pool_goes_on() -> None:
    with make_executor("local", 2) as pool:
        before = [pool.submit(math.factorial, 5) for _ in range(2)]
        wait(before, timeout=60)
        crash = pool.submit(os.abort)  # the worker dies of SIGABRT mid-task
        after = [pool.submit(math.factorial, n) for n in range(6)]
        with pytest.raises(WorkerDied, match="exited with code"):
            crash.result(timeout=60)
        assert [f.result(timeout=60) for f in after] == [math.factorial(n) for n in range(6)]
        assert all(f.result() == 120 for f in before)


def test_bad_worker_counts_and_kinds_are_named() -> None:
    with pytest.raises(ValueError, match="workers must be an integer"):
        make_executor("local", 0)
    with pytest.raises(ValueError, match="unknown executor"):
        make_executor("dask", 1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="needs --executor ray"):
        make_executor("local", 1, ray_address="auto")


def test_missing_ray_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    with pytest.raises(MissingDependency, match=r"pip install 'lnn-control\[ray\]'"):
        make_executor("ray", 1)


@pytest.mark.slow
def test_ray_executor_runs_tasks_on_a_local_runtime() -> None:
    pytest.importorskip("ray")
    with tempfile.TemporaryDirectory(prefix="lnnray", dir="/tmp") as temp_dir:
        with make_executor("ray", 2, ray_temp_dir=temp_dir) as pool:
            futures = [pool.submit(math.factorial, n) for n in range(6)]
            assert [f.result(timeout=120) for f in futures] == [math.factorial(n) for n in range(6)]
            info = pool.submit(describe_worker).result(timeout=120)
            assert info["pid"] != os.getpid()
            with pytest.raises(Exception, match="division by zero"):
                pool.submit(operator.truediv, 1, 0).result(timeout=120)
