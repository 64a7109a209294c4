"""Compiled (Numba) wired CfC recurrence for CPU training: the forward pass over all steps (keeping
what the backward needs) and the hand-written BPTT, batch rows in parallel. The maths is that of
:func:`lnn_control.nn.cfc_kernels.wired_run` (the torch reference, tested equal); the autograd node that
calls these kernels is :class:`lnn_control.nn.cfc_kernels.WiredSequence`.

Shapes: ``B`` batch, ``T`` steps, ``N`` neurons (internal layer order), ``C`` head columns (layer-blocked,
head-major within a layer: ``ff1, ff2, a, b`` of ``n`` columns each, pure mode ``ff1`` only). ``layers[L,3]``
holds per layer (first neuron, end neuron, first column) in signal-flow order; the feed-forward blocks
(``[n_source, heads * n_target]`` each) are packed one after another into a flat array, ``blocks[K,3]``
holding per block (target layer, source layer, offset). ``mode``: one of :data:`MODE_CODES`' values.

Speed: the batch is split into ``chunks`` (one per thread, at most :data:`lnn_control.nn.ltc_kernels.CHUNK_ROWS` rows each) and every
chunk keeps its working arrays batch-innermost (``[N or C, rows]``), so the matrix products are vector
operations over the chunk's rows; the transcendental functions are libm's (``exp``, and ``expm1`` for tanh).

Numba's on-disk cache is used where writable (see :func:`lnn_control.nn.ltc_kernels.jit_kernel`).
"""

from __future__ import annotations

import math

import numba
import numpy as np

from lnn_control.nn.ltc_kernels import chunk_bounds, jit_kernel, jit_parallel_kernel

MODE_CODES = {"default": 0, "no_gate": 1, "pure": 2}
_DEFAULT, _PURE = 0, 2
@jit_kernel
def _tanh(x):  # noqa: ANN001, ANN202
    """``tanh(x)`` in float64 as glibc computes it, ``-expm1(-2|x|) / (2 + expm1(-2|x|))`` with the sign of
    ``x``: within 3 ulp (float32 results correctly rounded), and here twice as fast as ``math.tanh``."""
    e = math.expm1(-2.0 * abs(x))
    magnitude = -e / (2.0 + e)
    return magnitude if x >= 0.0 else -magnitude


@jit_parallel_kernel
def wired_forward(projected, h0, elapsed, recurrent, block_values, blocks, layers, mode, w_tau, amplitude,  # noqa: ANN001, ANN201
                  chunks):
    """States ``history[B,T,N]`` from ``projected[B,T,C]``, ``h0[B,N]``, ``elapsed[T,B]`` (nominal steps),
    ``recurrent[N,C]`` and the packed blocks (pure mode: ``w_tau[N]``, ``amplitude[N]``).

    Also returns, for :func:`wired_backward`, ``saved[T,C,B]`` (tanh of ``ff1`` and ``ff2`` in their
    columns, the gate in the ``a`` columns; pure mode the decay ``exp(-t (|w_tau| + |ff1|))``) and
    ``heads[T,C,B]`` (pure mode the heads ``ff1``; empty otherwise).
    """
    batch, steps, columns = projected.shape
    units = h0.shape[1]
    dtype = projected.dtype
    pure = mode == _PURE
    gated = mode == _DEFAULT
    heads_per_neuron = 1 if pure else 4
    history = np.empty((batch, steps, units), dtype=dtype)
    saved = np.empty((steps, columns, batch), dtype=dtype)
    heads = np.empty((steps, columns, batch) if pure else (0, 0, 0), dtype=dtype)
    for chunk in numba.prange(chunks):
        b0, rows = chunk_bounds(chunk, batch, chunks)
        h = np.empty((units, rows), dtype=dtype)
        pre = np.empty((columns, rows), dtype=dtype)  # head pre-activations of the step
        for r in range(rows):
            for i in range(units):
                h[i, r] = h0[b0 + r, i]
        for t in range(steps):
            for r in range(rows):
                for c in range(columns):
                    pre[c, r] = projected[b0 + r, t, c]
            for i in range(units):  # previous states
                for c in range(columns):
                    weight = recurrent[i, c]
                    for r in range(rows):
                        pre[c, r] += h[i, r] * weight
            for layer in range(layers.shape[0]):
                t0, t1, c0 = layers[layer, 0], layers[layer, 1], layers[layer, 2]
                n = t1 - t0
                width = heads_per_neuron * n
                for k in range(blocks.shape[0]):  # new states of earlier layers
                    if blocks[k, 0] != layer:
                        continue
                    s0, s1 = layers[blocks[k, 1], 0], layers[blocks[k, 1], 1]
                    for i in range(s1 - s0):
                        for c in range(width):
                            weight = block_values[blocks[k, 2] + i * width + c]
                            for r in range(rows):
                                pre[c0 + c, r] += h[s0 + i, r] * weight
                for j in range(n):
                    if pure:
                        for r in range(rows):
                            q = pre[c0 + j, r]
                            decay = math.exp(-elapsed[t, b0 + r] * (abs(w_tau[t0 + j]) + abs(q)))
                            heads[t, c0 + j, b0 + r] = q
                            saved[t, c0 + j, b0 + r] = decay
                            h[t0 + j, r] = amplitude[t0 + j] - amplitude[t0 + j] * (decay * q)
                    else:
                        for r in range(rows):
                            ff1 = _tanh(pre[c0 + j, r])
                            ff2 = _tanh(pre[c0 + n + j, r])
                            gate = 1.0 / (1.0 + math.exp(-(pre[c0 + 3 * n + j, r]
                                                           + pre[c0 + 2 * n + j, r] * elapsed[t, b0 + r])))
                            saved[t, c0 + j, b0 + r] = ff1
                            saved[t, c0 + n + j, b0 + r] = ff2
                            saved[t, c0 + 2 * n + j, b0 + r] = gate
                            h[t0 + j, r] = ff1 + gate * (ff2 - ff1) if gated else ff1 + gate * ff2
            for r in range(rows):
                for i in range(units):
                    history[b0 + r, t, i] = h[i, r]
    return history, saved, heads


@jit_parallel_kernel
def wired_backward(grad_history, elapsed, recurrent, block_values, blocks, layers, mode, saved, heads,  # noqa: ANN001, ANN201
                   amplitude, chunks):
    """BPTT through :func:`wired_forward` given ``grad_history[B,T,N]`` (d loss / d states), with the
    same ``elapsed``, weights, layout, ``chunks`` and its ``saved`` and ``heads``.

    Returns ``grad_projected[B,T,C]`` (= d loss / d head pre-activations, which the weight gradients are
    made of), ``grad_h0[B,N]`` and, pure mode only (else ``[0]``), the sums ``[N]`` over batch and steps
    of ``d loss / d |w_tau|`` and ``d loss / d amplitude``.
    """
    batch, steps, units = grad_history.shape
    columns = saved.shape[1]
    dtype = saved.dtype
    pure = mode == _PURE
    gated = mode == _DEFAULT
    heads_per_neuron = 1 if pure else 4
    grad_projected = np.empty((batch, steps, columns), dtype=dtype)
    grad_h0 = np.empty((batch, units), dtype=dtype)
    # pure-mode parameter gradients per chunk (chunks run in parallel), summed at the end
    grad_w_chunks = np.zeros((chunks, units) if pure else (0, 0), dtype=dtype)
    grad_amplitude_chunks = np.zeros((chunks, units) if pure else (0, 0), dtype=dtype)
    for chunk in numba.prange(chunks):
        b0, rows = chunk_bounds(chunk, batch, chunks)
        g = np.zeros((units, rows), dtype=dtype)  # d loss / d states after step t
        grad_pre = np.empty((columns, rows), dtype=dtype)  # d loss / d head pre-activations of step t
        for t in range(steps - 1, -1, -1):
            for r in range(rows):
                for i in range(units):
                    g[i, r] += grad_history[b0 + r, t, i]
            for layer in range(layers.shape[0] - 1, -1, -1):
                t0, t1, c0 = layers[layer, 0], layers[layer, 1], layers[layer, 2]
                n = t1 - t0
                width = heads_per_neuron * n
                for j in range(n):
                    if pure:
                        for r in range(rows):
                            grad = g[t0 + j, r]
                            dt = elapsed[t, b0 + r]
                            q = heads[t, c0 + j, b0 + r]
                            decay = saved[t, c0 + j, b0 + r]
                            grad_a = grad * amplitude[t0 + j]
                            grad_pre[c0 + j, r] = -grad_a * decay * (1.0 - dt * abs(q))
                            grad_w_chunks[chunk, t0 + j] += grad_a * decay * q * dt
                            grad_amplitude_chunks[chunk, t0 + j] += grad * (1.0 - decay * q)
                    else:
                        for r in range(rows):
                            grad = g[t0 + j, r]
                            ff1 = saved[t, c0 + j, b0 + r]
                            ff2 = saved[t, c0 + n + j, b0 + r]
                            gate = saved[t, c0 + 2 * n + j, b0 + r]
                            grad_ff2 = grad * gate
                            # default: h = ff1 + g (ff2 - ff1); no_gate: h = ff1 + g ff2
                            grad_ff1 = grad - grad_ff2 if gated else grad
                            grad_b = grad * (ff2 - ff1 if gated else ff2) * gate * (1.0 - gate)
                            grad_pre[c0 + j, r] = grad_ff1 * (1.0 - ff1 * ff1)
                            grad_pre[c0 + n + j, r] = grad_ff2 * (1.0 - ff2 * ff2)
                            grad_pre[c0 + 2 * n + j, r] = grad_b * elapsed[t, b0 + r]
                            grad_pre[c0 + 3 * n + j, r] = grad_b
                for k in range(blocks.shape[0]):  # into the new states of earlier layers
                    if blocks[k, 0] != layer:
                        continue
                    s0, s1 = layers[blocks[k, 1], 0], layers[blocks[k, 1], 1]
                    for i in range(s1 - s0):
                        for c in range(width):
                            weight = block_values[blocks[k, 2] + i * width + c]
                            for r in range(rows):
                                g[s0 + i, r] += grad_pre[c0 + c, r] * weight
            for i in range(units):  # into the previous states
                for r in range(rows):
                    g[i, r] = 0.0
                for c in range(columns):
                    weight = recurrent[i, c]
                    for r in range(rows):
                        g[i, r] += grad_pre[c, r] * weight
            for r in range(rows):
                for c in range(columns):
                    grad_projected[b0 + r, t, c] = grad_pre[c, r]
        for r in range(rows):
            for i in range(units):
                grad_h0[b0 + r, i] = g[i, r]
    return grad_projected, grad_h0, grad_w_chunks.sum(axis=0), grad_amplitude_chunks.sum(axis=0)
