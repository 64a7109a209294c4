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
    """As :func:`jit_kernel`, with ``parallel=True``: the kernel's ``prange`` loop (over the batch)
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


@jit_parallel_kernel
def _recurrence_forward(v0, num, den, cm, src, tgt, sigma, mu, w, we, unfolds):  # noqa: ANN001, ANN202
    """States after every unfold ``out[B, T*unfolds + 1, N]`` (index 0 = initial state), and for the
    backward pass the synapse activations ``acts[B, T*unfolds, K]`` and denominators ``denoms[B, T*unfolds, N]``."""
    batch, steps, units = num.shape
    synapses = src.shape[0]
    out = np.empty((batch, steps * unfolds + 1, units), dtype=num.dtype)
    acts = np.empty((batch, steps * unfolds, synapses), dtype=num.dtype)
    denoms = np.empty((batch, steps * unfolds, units), dtype=num.dtype)
    for b in numba.prange(batch):
        acc_n = np.empty(units, dtype=num.dtype)
        acc_d = np.empty(units, dtype=num.dtype)
        for j in range(units):
            out[b, 0, j] = v0[b, j]
        i = 0
        for t in range(steps):
            for _ in range(unfolds):
                for j in range(units):
                    acc_n[j] = num[b, t, j] + cm[b, t, j] * out[b, i, j]
                    acc_d[j] = den[b, t, j]
                for k in range(synapses):
                    a = 1.0 / (1.0 + math.exp(-sigma[k] * (out[b, i, src[k]] - mu[k])))
                    acts[b, i, k] = a
                    acc_n[tgt[k]] += we[k] * a
                    acc_d[tgt[k]] += w[k] * a
                for j in range(units):
                    out[b, i + 1, j] = acc_n[j] / acc_d[j]
                    denoms[b, i, j] = acc_d[j]
                i += 1
    return out, acts, denoms


@jit_parallel_kernel
def _recurrence_backward(grad_steps, grad_final, states, acts, denoms, num, cm, src, tgt, sigma, mu, w, erev,  # noqa: ANN001, ANN202
                         unfolds):  # noqa: ANN001
    """Gradients of the loss w.r.t. v0, num, den, cm [per step] and sigma, mu, w, erev [per synapse].

    ``grad_steps[B,T,N]`` is dL/d(state after step t) (excluding the final-state gradient),
    ``grad_final[B,N]`` dL/d(final state); ``states``, ``acts``, ``denoms`` from :func:`_recurrence_forward`.
    """
    batch, steps, units = num.shape
    synapses = src.shape[0]
    dtype = num.dtype
    g_num = np.zeros((batch, steps, units), dtype=dtype)
    g_den = np.zeros((batch, steps, units), dtype=dtype)
    g_cm = np.zeros((batch, steps, units), dtype=dtype)
    g_v0 = np.empty((batch, units), dtype=dtype)
    # per-synapse gradients per batch row (rows run in parallel), summed at the end
    g_sigma = np.zeros((batch, synapses), dtype=dtype)
    g_mu = np.zeros((batch, synapses), dtype=dtype)
    g_w = np.zeros((batch, synapses), dtype=dtype)
    g_erev = np.zeros((batch, synapses), dtype=dtype)
    for b in numba.prange(batch):
        g = np.empty(units, dtype=dtype)
        g_prev = np.empty(units, dtype=dtype)
        d_m = np.empty(units, dtype=dtype)
        d_d = np.empty(units, dtype=dtype)
        for j in range(units):
            g[j] = grad_final[b, j]
        for t in range(steps - 1, -1, -1):
            for j in range(units):
                g[j] += grad_steps[b, t, j]
            for u in range(unfolds - 1, -1, -1):
                i = t * unfolds + u  # states[b, i] -> states[b, i + 1]
                for j in range(units):
                    d_m[j] = g[j] / denoms[b, i, j]
                    d_d[j] = -d_m[j] * states[b, i + 1, j]
                    g_num[b, t, j] += d_m[j]
                    g_den[b, t, j] += d_d[j]
                    g_cm[b, t, j] += d_m[j] * states[b, i, j]
                    g_prev[j] = d_m[j] * cm[b, t, j]
                for k in range(synapses):
                    a = acts[b, i, k]
                    j = tgt[k]
                    d_a = w[k] * (d_m[j] * erev[k] + d_d[j])
                    g_w[b, k] += a * (d_m[j] * erev[k] + d_d[j])
                    g_erev[b, k] += d_m[j] * w[k] * a
                    d_z = d_a * a * (1.0 - a)
                    diff = states[b, i, src[k]] - mu[k]
                    g_sigma[b, k] += d_z * diff
                    g_mu[b, k] -= d_z * sigma[k]
                    g_prev[src[k]] += d_z * sigma[k]
                for j in range(units):
                    g[j] = g_prev[j]
        for j in range(units):
            g_v0[b, j] = g[j]
    return (g_v0, g_num, g_den, g_cm, g_sigma.sum(axis=0), g_mu.sum(axis=0), g_w.sum(axis=0),
            g_erev.sum(axis=0))


@jit_parallel_kernel
def _sensory_forward(x, src, tgt, sigma, mu, w, erev, units):  # noqa: ANN001, ANN202
    """Sensory conductances summed into their targets: ``num[B,T,N]`` (times erev) and ``den[B,T,N]``."""
    batch, steps, _ = x.shape
    num = np.zeros((batch, steps, units), dtype=x.dtype)
    den = np.zeros((batch, steps, units), dtype=x.dtype)
    for b in numba.prange(batch):
        for t in range(steps):
            for k in range(src.shape[0]):
                g = w[k] / (1.0 + math.exp(-sigma[k] * (x[b, t, src[k]] - mu[k])))
                num[b, t, tgt[k]] += g * erev[k]
                den[b, t, tgt[k]] += g
    return num, den


@jit_parallel_kernel
def _sensory_backward(g_num, g_den, x, src, tgt, sigma, mu, w, erev):  # noqa: ANN001, ANN202
    """Gradients w.r.t. ``x[B,T,F]`` and the per-synapse sigma, mu, w, erev ``[Ks]``."""
    batch, steps, _ = x.shape
    synapses = src.shape[0]
    g_x = np.zeros_like(x)
    g_sigma = np.zeros((batch, synapses), dtype=x.dtype)
    g_mu = np.zeros((batch, synapses), dtype=x.dtype)
    g_w = np.zeros((batch, synapses), dtype=x.dtype)
    g_erev = np.zeros((batch, synapses), dtype=x.dtype)
    for b in numba.prange(batch):
        for t in range(steps):
            for k in range(synapses):
                j = tgt[k]
                diff = x[b, t, src[k]] - mu[k]
                a = 1.0 / (1.0 + math.exp(-sigma[k] * diff))
                d_g = g_num[b, t, j] * erev[k] + g_den[b, t, j]  # d loss / d conductance
                g_w[b, k] += d_g * a
                g_erev[b, k] += g_num[b, t, j] * w[k] * a
                d_z = d_g * w[k] * a * (1.0 - a)
                g_sigma[b, k] += d_z * diff
                g_mu[b, k] -= d_z * sigma[k]
                g_x[b, t, src[k]] += d_z * sigma[k]
    return g_x, g_sigma.sum(axis=0), g_mu.sum(axis=0), g_w.sum(axis=0), g_erev.sum(axis=0)


def _numpy(tensor: torch.Tensor) -> np.ndarray:
    return np.ascontiguousarray(tensor.detach().cpu().numpy())


class CompiledRecurrence(torch.autograd.Function):
    """``trajectory[B,T,N]`` (state after each step) of the LTC recurrence, forward and backward in Numba."""

    @staticmethod
    def forward(ctx, v0, num, den, cm, sigma, mu, w, erev, src, tgt, unfolds):  # noqa: ANN001, ANN205
        src_np, tgt_np = _numpy(src), _numpy(tgt)
        arrays = [_numpy(a) for a in (v0, num, den, cm, sigma, mu, w, erev)]
        v0_np, num_np, den_np, cm_np, sigma_np, mu_np, w_np, erev_np = arrays
        kernel_threads()
        states, acts, denoms = _recurrence_forward(v0_np, num_np, den_np, cm_np, src_np, tgt_np, sigma_np, mu_np,
                                                   w_np, w_np * erev_np, unfolds)
        if any(ctx.needs_input_grad):
            ctx.saved_numpy = (states, acts, denoms, num_np, cm_np, src_np, tgt_np, sigma_np, mu_np, w_np, erev_np)
        ctx.unfolds = unfolds
        trajectory = states[:, unfolds::unfolds]
        return torch.from_numpy(np.ascontiguousarray(trajectory)).to(num.device)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_trajectory):  # noqa: ANN001, ANN205
        states, acts, denoms, num, cm, src, tgt, sigma, mu, w, erev = ctx.saved_numpy
        grad = _numpy(grad_trajectory).astype(num.dtype, copy=False)
        grad_final = np.zeros((grad.shape[0], grad.shape[2]), dtype=num.dtype)
        kernel_threads()
        grads = _recurrence_backward(grad, grad_final, states, acts, denoms, num, cm, src, tgt, sigma, mu, w, erev,
                                     ctx.unfolds)
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
        kernel_threads()
        num, den = _sensory_forward(arrays[0], src_np, tgt_np, *arrays[1:], units)
        if any(ctx.needs_input_grad):
            ctx.saved_numpy = (arrays, src_np, tgt_np)
        return torch.from_numpy(num).to(x.device), torch.from_numpy(den).to(x.device)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_num, grad_den):  # noqa: ANN001, ANN205
        (x, sigma, mu, w, erev), src, tgt = ctx.saved_numpy
        g_num = _numpy(grad_num).astype(x.dtype, copy=False)
        g_den = _numpy(grad_den).astype(x.dtype, copy=False)
        kernel_threads()
        grads = _sensory_backward(g_num, g_den, x, src, tgt, sigma, mu, w, erev)
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
