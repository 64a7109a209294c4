"""A local process pool in which a dead worker costs only its own task.

Each of the N slots is a thread in the calling process that owns one worker process (started
with ``spawn`` or ``forkserver``: OpenGL and PyBullet contexts do not survive ``fork``). A slot
takes the next task from a shared FIFO queue, sends it to its worker over a pipe and waits for the
result. If the worker dies mid-task (SIGKILL, segfault in a simulator), the task's future gets
:class:`~lnn_control.parallel.executor.WorkerDied`, the slot starts a fresh worker and goes on;
the other slots never notice. (``concurrent.futures.ProcessPoolExecutor`` instead breaks the
whole pool and fails every pending task.)
"""

from __future__ import annotations

import multiprocessing
import queue
import threading
import traceback
from collections.abc import Callable
from concurrent.futures import Future
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any, Literal

from lnn_control.parallel.executor import TaskError, WorkerDied, limit_threads

_STOP = None


def _worker_main(conn: Any) -> None:
    """Worker process: one compute thread, then run tasks from ``conn`` until told to stop."""
    limit_threads()
    while True:
        try:
            task = conn.recv()
        except EOFError:  # the parent went away
            return
        if task is _STOP:
            return
        fn, args, kwargs = task
        try:
            reply: tuple[str, Any] = ("ok", fn(*args, **kwargs))
        except BaseException as exc:  # noqa: BLE001 - every failure goes back to the caller
            reply = ("error", (exc, traceback.format_exc()))
        try:
            conn.send(reply)
        except Exception as exc:  # noqa: BLE001 - the result or exception did not pickle
            conn.send(("error", (None, f"{type(exc).__name__}: {exc}\n{reply[1]!r}"[:4000])))


class LocalPoolExecutor:
    """``workers`` worker processes on this machine (see the module docstring)."""

    def __init__(self, workers: int, start_method: Literal["spawn", "forkserver"] = "spawn") -> None:
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            raise ValueError(f"workers must be an integer ≥ 1, got {workers!r}")
        if start_method not in ("spawn", "forkserver"):
            raise ValueError(f"start_method must be 'spawn' or 'forkserver' (not fork: GL contexts), got {start_method!r}")
        self.workers = workers
        self._context = (
            multiprocessing.get_context("spawn") if start_method == "spawn"
            else multiprocessing.get_context("forkserver")
        )
        self._queue: queue.Queue = queue.Queue()
        self._closed = False
        self._lock = threading.Lock()
        self._slots = [
            threading.Thread(target=self._slot_loop, name=f"lnn-pool-slot-{i}", daemon=True) for i in range(workers)
        ]
        for slot in self._slots:
            slot.start()

    # ------------------------------------------------------------------ executor API
    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future:
        """Queue ``fn(*args, **kwargs)``; tasks start in submission order as slots free up."""
        with self._lock:
            if self._closed:
                raise RuntimeError("cannot submit to an executor that was shut down")
            future: Future = Future()
            self._queue.put((future, fn, args, kwargs))
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Stop accepting tasks; let queued ones run (or cancel them) and stop the workers."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            if cancel_futures:
                while True:
                    try:
                        item = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    item[0].cancel()
            for _ in self._slots:
                self._queue.put(_STOP)
        if wait:
            for slot in self._slots:
                slot.join()

    def __enter__(self) -> LocalPoolExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown(wait=True, cancel_futures=exc[0] is not None)

    # ------------------------------------------------------------------ slots
    def _start_worker(self) -> tuple[BaseProcess, Connection]:
        parent, child = self._context.Pipe(duplex=True)
        process = self._context.Process(target=_worker_main, args=(child,), daemon=True, name="lnn-pool-worker")
        process.start()
        child.close()  # so that recv() sees EOF when the worker dies
        return process, parent

    def _slot_loop(self) -> None:
        worker: tuple[BaseProcess, Connection] | None = None  # (process, its end of the pipe)
        try:
            while True:
                item = self._queue.get()
                if item is _STOP:
                    return
                future, fn, args, kwargs = item
                if not future.set_running_or_notify_cancel():
                    continue
                if worker is None or not worker[0].is_alive():
                    worker = self._start_worker()
                process, conn = worker
                try:
                    conn.send((fn, args, kwargs))
                except Exception as exc:  # noqa: BLE001 - e.g. an argument that does not pickle
                    future.set_exception(exc)
                    continue
                try:
                    status, payload = conn.recv()
                except (EOFError, OSError):
                    process.join(timeout=5)
                    name = getattr(fn, "__qualname__", repr(fn))
                    future.set_exception(
                        WorkerDied(f"worker pid {process.pid} exited with code {process.exitcode} while running {name}")
                    )
                    conn.close()
                    worker = None
                    continue
                if status == "ok":
                    future.set_result(payload)
                else:
                    error, text = payload
                    if isinstance(error, BaseException):
                        if hasattr(error, "add_note"):  # Python ≥ 3.11: keep the worker's traceback
                            error.add_note(f"in worker pid {process.pid}:\n{text}")
                        future.set_exception(error)
                    else:
                        future.set_exception(TaskError(text))
        finally:
            if worker is not None and worker[0].is_alive():
                process, conn = worker
                try:
                    conn.send(_STOP)
                except OSError:
                    pass
                process.join(timeout=10)
                if process.is_alive():
                    process.kill()
                    process.join()
