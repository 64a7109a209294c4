"""One seam for parallel work: a ``concurrent.futures``-shaped executor, local or on Ray.

- :mod:`.executor`: the :class:`~.executor.Executor` protocol, :func:`~.executor.make_executor`,
  :func:`~.executor.limit_threads` (one torch/BLAS thread per worker) and the errors.
- :mod:`.local`: :class:`~.local.LocalPoolExecutor`, N spawned worker processes; a killed worker
  fails only the task it was running and is replaced.
- :mod:`.ray_executor`: :class:`~.ray_executor.RayExecutor`, the same tasks as Ray remote
  functions (optional extra: ``pip install lnn-control[ray]``).

Tasks are plain module-level functions with their own seeds, so a result never depends on the
executor, the worker count or the order in which tasks finish.
"""
