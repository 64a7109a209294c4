"""Compiled (Numba) LTC training kernels: the recurrence (forward + hand-written backward) as a
torch autograd function. The batch-1 deployment stepper is :mod:`lnn_control.nn.ltc_stepper`.

The maths is exactly that of :mod:`lnn_control.nn.ltc` (fused semi-implicit Euler over the synapses
present in the wiring). Per unfold, with ``a_k = sigmoid(sigma_k (v[src_k] - mu_k))``:

    D_j = den_j + sum_{k->j} w_k a_k,   M_j = num_j + cm_j v_j + sum_{k->j} w_k erev_k a_k,   v'_j = M_j / D_j

where ``num``, ``den`` and ``cm`` (= cm/Δ) are per-step constants computed in torch (the sensory
synapses, leak terms and elapsed time). The backward pass walks the stored unfold states in
reverse; ``gradcheck`` in the tests checks it against finite differences.

The sensory synapses (input feature -> neuron, once per step) have their own fused kernel pair,
:func:`compiled_sensory`: ``num_j += sum_{k->j} w_k erev_k s_k``, ``den_j += sum_{k->j} w_k s_k`` with
``s_k = sigmoid(sigma_k (x[src_k] - mu_k))``. In torch ops this part (a ``[B,T,Ks]`` gather, its
sigmoid, two scatter matmuls and their backward) took two thirds of an LTC-NCP19 training step.

Speed (as :mod:`lnn_control.nn.cfc_numba`): the batch is split into chunks (one per thread, at most
:data:`CHUNK_ROWS` rows each, run in parallel) and every chunk keeps its arrays batch-innermost
(``[units or synapses, rows]``), so all but the sigmoid's ``exp`` (a scalar libm call) are vector
operations over the chunk's rows. The forward passes store, per chunk, what the backward passes need
(activations, unfold states, denominators), so the backward passes compute no ``exp``.

Numba's on-disk cache is used where the package folder (or Numba's user cache) is writable; if
neither is, the kernels are compiled in memory on first use instead.
"""

from __future__ import annotations

import math
from typing import Any

import numba
import numpy as np
import torch


def jit_kernel(function: Any) -> Any:
    """``numba.njit`` with the on-disk cache where one is writable, else compiled in memory."""
    try:
        return numba.njit(cache=True, fastmath=False)(function)
    except RuntimeError:  # no writable cache location: compile without caching
        return numba.njit(fastmath=False)(function)


def jit_parallel_kernel(function: Any) -> Any:
    """As :func:`jit_kernel`, with ``parallel=True``: the kernel's ``prange`` loop (over batch chunks)
    runs on :func:`kernel_threads` threads."""
    try:
        return numba.njit(cache=True, fastmath=False, parallel=True)(function)
    except RuntimeError:
        return numba.njit(fastmath=False, parallel=True)(function)


def kernel_threads() -> int:
    """Threads for the parallel kernels: torch's intra-op thread count (``TrainConfig.threads``),
    at most Numba's pool size. Set per call, so a run with ``threads: 1`` stays on one core.

    Torch's own count is kept: launching Numba's OpenMP pool (on the first call) resets the OpenMP
    thread count that torch reads too, which turned a one-thread training run into a two-thread one."""
    torch_threads = torch.get_num_threads()
    threads = max(1, min(torch_threads, numba.config.NUMBA_NUM_THREADS))  # type: ignore[attr-defined]
    numba.set_num_threads(threads)
    if torch.get_num_threads() != torch_threads:
        torch.set_num_threads(torch_threads)
    return threads


CHUNK_ROWS = 64  # rows per chunk: a chunk's working arrays stay in the caches


def chunk_count(batch: int, threads: int) -> int:
    """How many chunks to split ``batch`` rows into for ``threads`` threads (as :mod:`lnn_control.nn.cfc_numba`)."""
    return max(1, min(batch, max(threads, -(-batch // CHUNK_ROWS))))


@numba.njit(cache=True, inline="always")
def chunk_bounds(chunk, batch, chunks):  # noqa: ANN001, ANN201
    """``(first row, row count)`` of chunk ``chunk`` when ``batch`` rows are split into ``chunks``."""
    first = chunk * batch // chunks
    return first, (chunk + 1) * batch // chunks - first


@jit_parallel_kernel
def _recurrence_forward(v0, num, den, cm, src, tgt, sigma, mu, w, we, unfolds, chunks):  # noqa: ANN001, ANN202
    """``trajectory[B,T,N]`` (state after every step) from ``v0[B,N]`` and the per-step constants ``num, den,
    cm [B,T,N]``, the batch split into ``chunks``. Also returns, per chunk (``R``: rows of the widest chunk),
    what the backward pass needs: the states after every unfold ``states[chunks, T*unfolds+1, N, R]`` (index
    0 = ``v0``), the synapse activations ``acts[chunks, T*unfolds, K, R]`` and the denominators
    ``denoms[chunks, T*unfolds, N, R]``."""
    batch, steps, units = num.shape
    synapses = src.shape[0]
    dtype = num.dtype
    one = dtype.type(1.0)  # in the arrays' precision (a float literal would make the arithmetic float64)
    width = -(-batch // chunks)
    trajectory = np.empty((batch, steps, units), dtype=dtype)
    states = np.empty((chunks, steps * unfolds + 1, units, width), dtype=dtype)
    acts = np.empty((chunks, steps * unfolds, synapses, width), dtype=dtype)
    denoms = np.empty((chunks, steps * unfolds, units, width), dtype=dtype)
    for chunk in numba.prange(chunks):
        b0, rows = chunk_bounds(chunk, batch, chunks)
        chunk_states, chunk_acts, chunk_denoms = states[chunk], acts[chunk], denoms[chunk]
        step_num = np.empty((units, rows), dtype=dtype)
        step_den = np.empty((units, rows), dtype=dtype)
        step_cm = np.empty((units, rows), dtype=dtype)
        acc_num = np.empty((units, rows), dtype=dtype)
        for r in range(rows):
            for j in range(units):
                chunk_states[0, j, r] = v0[b0 + r, j]
        i = 0
        for t in range(steps):
            for r in range(rows):
                for j in range(units):
                    step_num[j, r] = num[b0 + r, t, j]
                    step_den[j, r] = den[b0 + r, t, j]
                    step_cm[j, r] = cm[b0 + r, t, j]
            for _ in range(unfolds):
                v, act, acc_den = chunk_states[i], chunk_acts[i], chunk_denoms[i]
                for j in range(units):
                    for r in range(rows):
                        acc_num[j, r] = step_num[j, r] + step_cm[j, r] * v[j, r]
                        acc_den[j, r] = step_den[j, r]
                for k in range(synapses):  # the exp stays a scalar call: the loops around it vectorise
                    s = src[k]
                    for r in range(rows):
                        act[k, r] = -sigma[k] * (v[s, r] - mu[k])
                    for r in range(rows):
                        act[k, r] = math.exp(act[k, r])
                for k in range(synapses):
                    j = tgt[k]
                    for r in range(rows):
                        a = one / (one + act[k, r])
                        act[k, r] = a
                        acc_num[j, r] += we[k] * a
                        acc_den[j, r] += w[k] * a
                v_next = chunk_states[i + 1]
                for j in range(units):
                    for r in range(rows):
                        v_next[j, r] = acc_num[j, r] / acc_den[j, r]
                i += 1
            for r in range(rows):
                for j in range(units):
                    trajectory[b0 + r, t, j] = chunk_states[i, j, r]
    return trajectory, states, acts, denoms


@numba.njit(cache=True, fastmath=False, inline="always")
def _synapses_backward(src, tgt, sigma, mu, w, erev, act, pre, d_num, d_den, rows, sums, g_pre):  # noqa: ANN001, ANN202
    """Backward through sigmoid synapses ``k: pre[src_k] -> tgt_k`` (conductance ``w_k a_k`` into the
    denominator, ``w_k erev_k a_k`` into the numerator), one chunk, batch-innermost: ``act[K,R]`` the
    activations, ``pre[S,R]`` the presynaptic values, ``d_num, d_den [N,R]`` the numerator / denominator
    gradients. Adds ``d loss / d pre`` into ``g_pre[S,R]`` and, per synapse and row, into ``sums[4,K,R]``:
    ``a d(conductance)`` (-> w), ``d_num a`` (-> erev), ``d_z (pre - mu)`` (-> sigma), ``d_z`` (-> mu),
    with ``d_z`` the gradient of the sigmoid's argument over ``sigma``; :func:`_synapse_gradients` finishes."""
    one = act.dtype.type(1.0)
    for k in range(src.shape[0]):
        s, j = src[k], tgt[k]
        for r in range(rows):
            a = act[k, r]
            d_conductance = d_num[j, r] * erev[k] + d_den[j, r]
            d_z = w[k] * d_conductance * a * (one - a)
            sums[0, k, r] += a * d_conductance
            sums[1, k, r] += d_num[j, r] * a
            sums[2, k, r] += d_z * (pre[s, r] - mu[k])
            sums[3, k, r] += d_z
            g_pre[s, r] += d_z * sigma[k]


@jit_kernel
def _synapse_gradients(chunk_sums, sigma, w):  # noqa: ANN001, ANN202
    """``(g_sigma, g_mu, g_w, g_erev) [K]`` from the per-chunk sums ``chunk_sums[4, chunks, K]`` of
    :func:`_synapses_backward`."""
    sums = chunk_sums.sum(axis=1)
    return sums[2], -sigma * sums[3], sums[0], w * sums[1]


@jit_parallel_kernel
def _recurrence_backward(grad_trajectory, states, acts, denoms, cm, src, tgt, sigma, mu, w, erev, unfolds):  # noqa: ANN001, ANN202
    """Gradients w.r.t. ``v0[B,N]``, ``num, den, cm [B,T,N]`` and the per-synapse ``sigma, mu, w, erev [K]``
    given ``grad_trajectory[B,T,N]`` (d loss / d state after every step), with the ``states``, ``acts`` and
    ``denoms`` of :func:`_recurrence_forward` (and its chunks)."""
    batch, steps, units = grad_trajectory.shape
    chunks = states.shape[0]
    synapses = src.shape[0]
    dtype = states.dtype
    g_v0 = np.empty((batch, units), dtype=dtype)
    g_num = np.empty((batch, steps, units), dtype=dtype)
    g_den = np.empty((batch, steps, units), dtype=dtype)
    g_cm = np.empty((batch, steps, units), dtype=dtype)
    # per-synapse sums per chunk (chunks run in parallel), summed at the end
    chunk_sums = np.zeros((4, chunks, synapses), dtype=dtype)
    for chunk in numba.prange(chunks):
        b0, rows = chunk_bounds(chunk, batch, chunks)
        chunk_states, chunk_acts, chunk_denoms = states[chunk], acts[chunk], denoms[chunk]
        g = np.zeros((units, rows), dtype=dtype)  # d loss / d state (after the unfold being walked back)
        d_num = np.empty((units, rows), dtype=dtype)  # d loss / d numerator of the unfold
        d_den = np.empty((units, rows), dtype=dtype)  # d loss / d denominator of the unfold
        step_cm = np.empty((units, rows), dtype=dtype)
        step_g_num = np.empty((units, rows), dtype=dtype)
        step_g_den = np.empty((units, rows), dtype=dtype)
        step_g_cm = np.empty((units, rows), dtype=dtype)
        sums = np.zeros((4, synapses, rows), dtype=dtype)  # see _synapses_backward
        for t in range(steps - 1, -1, -1):
            for r in range(rows):
                for j in range(units):
                    g[j, r] += grad_trajectory[b0 + r, t, j]
                    step_cm[j, r] = cm[b0 + r, t, j]
            step_g_num[:] = 0.0
            step_g_den[:] = 0.0
            step_g_cm[:] = 0.0
            for u in range(unfolds - 1, -1, -1):
                i = t * unfolds + u  # states[i] -> states[i + 1]
                v, v_next, act, den = chunk_states[i], chunk_states[i + 1], chunk_acts[i], chunk_denoms[i]
                for j in range(units):
                    for r in range(rows):
                        d_n = g[j, r] / den[j, r]
                        d_d = -d_n * v_next[j, r]
                        d_num[j, r] = d_n
                        d_den[j, r] = d_d
                        step_g_num[j, r] += d_n
                        step_g_den[j, r] += d_d
                        step_g_cm[j, r] += d_n * v[j, r]
                        g[j, r] = d_n * step_cm[j, r]  # from here on d loss / d states[i]
                _synapses_backward(src, tgt, sigma, mu, w, erev, act, v, d_num, d_den, rows, sums, g)
            for r in range(rows):
                for j in range(units):
                    g_num[b0 + r, t, j] = step_g_num[j, r]
                    g_den[b0 + r, t, j] = step_g_den[j, r]
                    g_cm[b0 + r, t, j] = step_g_cm[j, r]
        for r in range(rows):
            for j in range(units):
                g_v0[b0 + r, j] = g[j, r]
        for k in range(synapses):
            for q in range(4):
                chunk_sums[q, chunk, k] = sums[q, k, :rows].sum()
    return (g_v0, g_num, g_den, g_cm, *_synapse_gradients(chunk_sums, sigma, w))


@jit_parallel_kernel
def _sensory_forward(x, src, tgt, sigma, mu, w, erev, units, chunks):  # noqa: ANN001, ANN202
    """Sensory conductances summed into their targets, ``num[B,T,N]`` (times erev) and ``den[B,T,N]``, the
    batch split into ``chunks``; for the backward pass also the activations per chunk ``acts[chunks, T, Ks, R]``
    (``R``: rows of the widest chunk)."""
    batch, steps, features = x.shape
    synapses = src.shape[0]
    dtype = x.dtype
    one = dtype.type(1.0)
    num = np.empty((batch, steps, units), dtype=dtype)
    den = np.empty((batch, steps, units), dtype=dtype)
    acts = np.empty((chunks, steps, synapses, -(-batch // chunks)), dtype=dtype)
    for chunk in numba.prange(chunks):
        b0, rows = chunk_bounds(chunk, batch, chunks)
        inputs = np.empty((features, rows), dtype=dtype)
        acc_num = np.empty((units, rows), dtype=dtype)
        acc_den = np.empty((units, rows), dtype=dtype)
        for t in range(steps):
            act = acts[chunk, t]
            for r in range(rows):
                for f in range(features):
                    inputs[f, r] = x[b0 + r, t, f]
            for k in range(synapses):
                s = src[k]
                for r in range(rows):
                    act[k, r] = -sigma[k] * (inputs[s, r] - mu[k])
                for r in range(rows):
                    act[k, r] = math.exp(act[k, r])
            acc_num[:] = 0.0
            acc_den[:] = 0.0
            for k in range(synapses):
                j = tgt[k]
                for r in range(rows):
                    a = one / (one + act[k, r])
                    act[k, r] = a
                    conductance = w[k] * a
                    acc_num[j, r] += conductance * erev[k]
                    acc_den[j, r] += conductance
            for r in range(rows):
                for j in range(units):
                    num[b0 + r, t, j] = acc_num[j, r]
                    den[b0 + r, t, j] = acc_den[j, r]
    return num, den, acts


@jit_parallel_kernel
def _sensory_backward(g_num, g_den, x, acts, src, tgt, sigma, mu, w, erev):  # noqa: ANN001, ANN202
    """Gradients w.r.t. ``x[B,T,F]`` and the per-synapse ``sigma, mu, w, erev [Ks]`` given ``g_num, g_den
    [B,T,N]``, with the ``acts`` of :func:`_sensory_forward` (and its chunks)."""
    batch, steps, features = x.shape
    units = g_num.shape[2]
    chunks = acts.shape[0]
    synapses = src.shape[0]
    dtype = x.dtype
    g_x = np.empty_like(x)
    chunk_sums = np.zeros((4, chunks, synapses), dtype=dtype)
    for chunk in numba.prange(chunks):
        b0, rows = chunk_bounds(chunk, batch, chunks)
        inputs = np.empty((features, rows), dtype=dtype)
        g_inputs = np.empty((features, rows), dtype=dtype)
        step_g_num = np.empty((units, rows), dtype=dtype)
        step_g_den = np.empty((units, rows), dtype=dtype)
        sums = np.zeros((4, synapses, rows), dtype=dtype)  # see _synapses_backward
        for t in range(steps):
            act = acts[chunk, t]
            for r in range(rows):
                for f in range(features):
                    inputs[f, r] = x[b0 + r, t, f]
                for j in range(units):
                    step_g_num[j, r] = g_num[b0 + r, t, j]
                    step_g_den[j, r] = g_den[b0 + r, t, j]
            g_inputs[:] = 0.0
            _synapses_backward(src, tgt, sigma, mu, w, erev, act, inputs, step_g_num, step_g_den, rows, sums, g_inputs)
            for r in range(rows):
                for f in range(features):
                    g_x[b0 + r, t, f] = g_inputs[f, r]
        for k in range(synapses):
            for q in range(4):
                chunk_sums[q, chunk, k] = sums[q, k, :rows].sum()
    return (g_x, *_synapse_gradients(chunk_sums, sigma, w))


def _numpy(tensor: torch.Tensor) -> np.ndarray:
    return np.ascontiguousarray(tensor.detach().cpu().numpy())


class CompiledRecurrence(torch.autograd.Function):
    """``trajectory[B,T,N]`` (state after each step) of the LTC recurrence, forward and backward in Numba."""

    @staticmethod
    def forward(ctx, v0, num, den, cm, sigma, mu, w, erev, src, tgt, unfolds):  # noqa: ANN001, ANN205
        src_np, tgt_np = _numpy(src), _numpy(tgt)
        arrays = [_numpy(a) for a in (v0, num, den, cm, sigma, mu, w, erev)]
        v0_np, num_np, den_np, cm_np, sigma_np, mu_np, w_np, erev_np = arrays
        chunks = chunk_count(num_np.shape[0], kernel_threads())
        trajectory, states, acts, denoms = _recurrence_forward(v0_np, num_np, den_np, cm_np, src_np, tgt_np, sigma_np,
                                                               mu_np, w_np, w_np * erev_np, unfolds, chunks)
        if any(ctx.needs_input_grad):
            ctx.saved_numpy = (states, acts, denoms, cm_np, src_np, tgt_np, sigma_np, mu_np, w_np, erev_np)
        ctx.unfolds = unfolds
        return torch.from_numpy(trajectory).to(num.device)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_trajectory):  # noqa: ANN001, ANN205
        states, acts, denoms, cm, src, tgt, sigma, mu, w, erev = ctx.saved_numpy
        grad = _numpy(grad_trajectory).astype(cm.dtype, copy=False)
        kernel_threads()
        grads = _recurrence_backward(grad, states, acts, denoms, cm, src, tgt, sigma, mu, w, erev, ctx.unfolds)
        device = grad_trajectory.device
        tensors = tuple(torch.from_numpy(g).to(device) for g in grads)
        return (*tensors, None, None, None)


def compiled_recurrence(
    v0: torch.Tensor,
    num: torch.Tensor,
    den: torch.Tensor,
    cm: torch.Tensor,
    sigma: torch.Tensor,
    mu: torch.Tensor,
    w: torch.Tensor,
    erev: torch.Tensor,
    src: torch.Tensor,
    tgt: torch.Tensor,
    unfolds: int,
) -> torch.Tensor:
    """Trajectory ``[B,T,N]`` of the recurrence (see the module docstring); differentiable."""
    dtype = num.dtype
    cast = [t.to(dtype) for t in (v0, num, den, cm, sigma, mu, w, erev)]
    return CompiledRecurrence.apply(*cast, src, tgt, unfolds)


class CompiledSensory(torch.autograd.Function):
    """``(num[B,T,N], den[B,T,N])`` of the sensory synapses, forward and backward in Numba."""

    @staticmethod
    def forward(ctx, x, sigma, mu, w, erev, src, tgt, units):  # noqa: ANN001, ANN205
        arrays = [_numpy(a) for a in (x, sigma, mu, w, erev)]
        src_np, tgt_np = _numpy(src), _numpy(tgt)
        chunks = chunk_count(arrays[0].shape[0], kernel_threads())
        num, den, acts = _sensory_forward(arrays[0], src_np, tgt_np, *arrays[1:], units, chunks)
        if any(ctx.needs_input_grad):
            ctx.saved_numpy = (arrays, acts, src_np, tgt_np)
        return torch.from_numpy(num).to(x.device), torch.from_numpy(den).to(x.device)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_num, grad_den):  # noqa: ANN001, ANN205
        (x, sigma, mu, w, erev), acts, src, tgt = ctx.saved_numpy
        g_num = _numpy(grad_num).astype(x.dtype, copy=False)
        g_den = _numpy(grad_den).astype(x.dtype, copy=False)
        kernel_threads()
        grads = _sensory_backward(g_num, g_den, x, acts, src, tgt, sigma, mu, w, erev)
        device = grad_num.device
        return (*(torch.from_numpy(g).to(device) for g in grads), None, None, None)


def compiled_sensory(
    x: torch.Tensor,
    sigma: torch.Tensor,
    mu: torch.Tensor,
    w: torch.Tensor,
    erev: torch.Tensor,
    src: torch.Tensor,
    tgt: torch.Tensor,
    units: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sensory synapse sums ``(num, den)``, each ``[B,T,units]``, for inputs ``x[B,T,F]`` (see the
    module docstring); differentiable in ``x`` and the per-synapse ``sigma, mu, w, erev [Ks]``."""
    dtype = x.dtype
    cast = [t.to(dtype) for t in (x, sigma, mu, w, erev)]
    return CompiledSensory.apply(*cast, src, tgt, units)
