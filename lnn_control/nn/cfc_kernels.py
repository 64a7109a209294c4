"""CfC training kernels: the closed-form updates and the wired recurrence as torch autograd functions
with hand-written backward passes (tested equal to autograd through the step loop). On CPU the wired
recurrence runs in the compiled kernels of :mod:`lnn_control.nn.cfc_numba`; :func:`wired_run` is the
torch reference (other devices, and tracing for export). The cells that use them are in
:mod:`lnn_control.nn.cfc_cells`; the batch-1 deployment stepper is :mod:`lnn_control.nn.cfc_stepper`."""

from __future__ import annotations

from enum import Enum
from typing import Any

import numpy as np
import torch
from torch.autograd.function import once_differentiable

from lnn_control.nn.cfc_numba import MODE_CODES, wired_backward, wired_forward
from lnn_control.nn.ltc_kernels import chunk_count, kernel_threads


class CfCMode(str, Enum):
    """Which closed-form update a CfC neuron uses (see the module docstring)."""

    DEFAULT = "default"
    NO_GATE = "no_gate"
    PURE = "pure"


class _GatedUpdate(torch.autograd.Function):
    """default / no_gate update as one autograd node (analytic backward; far fewer per-step ops)."""

    @staticmethod
    def forward(ctx: Any, heads: torch.Tensor, elapsed: torch.Tensor, n: int, gated: bool) -> torch.Tensor:
        state_heads, gate_a, gate_b = heads.split([2 * n, n, n], dim=1)
        ff = torch.tanh(state_heads)
        ff1, ff2 = ff.split([n, n], dim=1)
        gate = torch.sigmoid(torch.addcmul(gate_b, gate_a, elapsed))
        out = torch.lerp(ff1, ff2, gate) if gated else torch.addcmul(ff1, gate, ff2)
        ctx.save_for_backward(ff, gate, elapsed)
        ctx.n, ctx.gated = n, gated
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        ff, gate, elapsed = ctx.saved_tensors
        n = ctx.n
        ff1, ff2 = ff.split([n, n], dim=1)
        if ctx.gated:  # h = ff1 + g (ff2 - ff1)
            grad_ff2 = grad * gate
            grad_ff1 = grad - grad_ff2
            grad_gate = grad * (ff2 - ff1)
        else:  # h = ff1 + g ff2
            grad_ff1, grad_ff2, grad_gate = grad, grad * gate, grad * ff2
        grad_ff = torch.cat([grad_ff1, grad_ff2], dim=1) * (1.0 - ff * ff)
        grad_b = grad_gate * gate * (1.0 - gate)
        return torch.cat([grad_ff, grad_b * elapsed, grad_b], dim=1), None, None, None


class _PureUpdate(torch.autograd.Function):
    """pure update ``A - A exp(-t (|w_tau| + |ff1|)) ff1`` as one autograd node."""

    @staticmethod
    def forward(ctx: Any, ff1: torch.Tensor, elapsed: torch.Tensor, w_tau: torch.Tensor,
                amplitude: torch.Tensor) -> torch.Tensor:
        decay = torch.exp(-elapsed * (w_tau.abs() + ff1.abs()))
        decayed = decay * ff1
        ctx.save_for_backward(ff1, elapsed, w_tau, amplitude, decay, decayed)
        return amplitude - amplitude * decayed

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        ff1, elapsed, w_tau, amplitude, decay, decayed = ctx.saved_tensors
        grad_a = grad * amplitude
        grad_ff1 = -grad_a * decay * (1.0 - elapsed * ff1.abs())
        grad_w = (grad_a * decayed * elapsed).sum(0) * torch.sign(w_tau)
        grad_amplitude = (grad * (1.0 - decayed)).sum(0)
        return grad_ff1, None, grad_w, grad_amplitude


def closed_form_update(mode: CfCMode, heads: torch.Tensor, elapsed: torch.Tensor, n: int,
                       w_tau: torch.Tensor | None = None, amplitude: torch.Tensor | None = None) -> torch.Tensor:
    """New states ``[B,n]`` from head pre-activations ``[B, H*n]`` (head-major) and ``elapsed`` ``[B,1]``."""
    if mode is CfCMode.PURE:
        return _PureUpdate.apply(heads, elapsed, w_tau, amplitude)
    return _GatedUpdate.apply(heads, elapsed, n, mode is CfCMode.DEFAULT)


# what one step of wired_run keeps for the backward pass, per layer: (q, decay, decayed) in pure
# mode, (tanh of the state heads, gate) otherwise
_StepSaved = list[tuple[torch.Tensor, ...]]


class WiredPlan:
    """Static structure of a wired cell that the sequence kernel needs (no tensors)."""

    def __init__(self, mode: CfCMode, bounds: list[tuple[int, int]], column_sizes: list[int],
                 sources: list[list[int]]) -> None:
        self.mode, self.bounds, self.column_sizes, self.sources = mode, bounds, column_sizes, sources
        self.sizes = [t1 - t0 for t0, t1 in bounds]

    def compiled_layout(self) -> tuple[np.ndarray, np.ndarray]:
        """``(layers[L,3], blocks[K,3])`` for :mod:`lnn_control.nn.cfc_numba`: per layer (first neuron, end
        neuron, first column), per feed-forward block (target layer, source layer, offset when packed)."""
        starts = np.cumsum([0, *self.column_sizes[:-1]])
        layers = [(t0, t1, c0) for (t0, t1), c0 in zip(self.bounds, starts)]
        blocks, offset = [], 0
        for target, sources in enumerate(self.sources):
            for source in sources:
                blocks.append((target, source, offset))
                offset += self.sizes[source] * self.column_sizes[target]
        return np.array(layers, dtype=np.int64).reshape(-1, 3), np.array(blocks, dtype=np.int64).reshape(-1, 3)


def wired_run(plan: WiredPlan, projected: torch.Tensor, h: torch.Tensor, elapsed: torch.Tensor,
               recurrent: torch.Tensor, w_tau: torch.Tensor | None, amplitude: torch.Tensor | None,
               blocks: list[list[torch.Tensor]], saved: list[_StepSaved] | None) -> torch.Tensor:
    """All steps of the wired recurrence, internal order; ``elapsed`` ``[B,T,1]``; returns ``[B,T,N]``."""
    history = projected.new_empty(projected.shape[0], projected.shape[1], h.shape[1])
    pure: tuple[torch.Tensor, torch.Tensor] | None = None  # (w_tau, amplitude) in pure mode
    if plan.mode is CfCMode.PURE:
        if w_tau is None or amplitude is None:
            raise ValueError("wired_run: pure mode needs w_tau and amplitude")
        pure = (w_tau, amplitude)
    gated = plan.mode is CfCMode.DEFAULT
    single = len(plan.bounds) == 1
    for t in range(projected.shape[1]):
        pre = torch.addmm(projected[:, t], h, recurrent)
        parts = (pre,) if single else pre.split(plan.column_sizes, dim=1)
        elapsed_t = elapsed[:, t]
        news: list[torch.Tensor] = []
        step_saved: _StepSaved = []
        for layer, (t0, t1) in enumerate(plan.bounds):
            q = parts[layer]
            for source, block in zip(plan.sources[layer], blocks[layer]):
                q = torch.addmm(q, news[source], block)
            n = t1 - t0
            if pure is not None:
                amp = pure[1][t0:t1]
                decay = torch.exp(-elapsed_t * (pure[0][t0:t1].abs() + q.abs()))
                decayed = decay * q
                news.append(amp - amp * decayed)
                step_saved.append((q, decay, decayed))
            else:
                state_heads, gate_a, gate_b = q.split([2 * n, n, n], dim=1)
                ff = torch.tanh(state_heads)
                ff1, ff2 = ff.split([n, n], dim=1)
                gate = torch.sigmoid(torch.addcmul(gate_b, gate_a, elapsed_t))
                news.append(torch.lerp(ff1, ff2, gate) if gated else torch.addcmul(ff1, gate, ff2))
                step_saved.append((ff, gate))
        h = news[0] if single else torch.cat(news, dim=1)
        history[:, t] = h
        if saved is not None:
            saved.append(step_saved)
    return history


def _numpy(tensor: torch.Tensor) -> np.ndarray:
    return np.ascontiguousarray(tensor.detach().cpu().numpy())


def _packed(blocks: list[list[torch.Tensor]], dtype: torch.dtype) -> np.ndarray:
    """The feed-forward blocks flattened one after another, as :func:`WiredPlan.compiled_layout` counts
    their offsets."""
    return _numpy(torch.cat([block.reshape(-1) for layer in blocks for block in layer] or
                            [torch.empty(0)]).to(dtype))


def _weight_gradients(plan: WiredPlan, h0: torch.Tensor, history: torch.Tensor,
                      grad_pre_all: torch.Tensor) -> list[torch.Tensor]:
    """Gradients of the recurrent matrix and every feed-forward block, one matmul over all ``B*T`` rows
    each, from ``grad_pre_all[B,T,C]`` (d loss / d head pre-activations)."""
    batch, steps, _ = history.shape
    previous = torch.cat([h0.unsqueeze(1), history[:, :-1]], dim=1).reshape(batch * steps, -1)
    flat_grad = grad_pre_all.reshape(batch * steps, -1)
    grads = [previous.t() @ flat_grad]
    flat_history = history.reshape(batch * steps, -1)
    grad_columns = flat_grad.split(plan.column_sizes, dim=1)
    for layer, sources in enumerate(plan.sources):
        for source in sources:
            s0, s1 = plan.bounds[source]
            grads.append(flat_history[:, s0:s1].t() @ grad_columns[layer])
    return grads


class WiredSequence(torch.autograd.Function):
    """The whole wired recurrence as one autograd node with hand-written BPTT.

    Where :meth:`runs_compiled`, forward and backward are the compiled kernels of
    :mod:`lnn_control.nn.cfc_numba`; elsewhere the torch step loop of :func:`wired_run`, whose per-step
    backward work is only the element-wise closed-form derivative and two small matmuls. Either way the
    weight gradients are one matmul over all ``B*T`` rows at the end.
    """

    @staticmethod
    def runs_compiled(projected: torch.Tensor) -> bool:
        """Whether :meth:`forward` runs the compiled kernels: CPU tensors, and not while tracing (export)."""
        return projected.device.type == "cpu" and not torch.jit.is_tracing()

    @staticmethod
    def forward(ctx: Any, plan: WiredPlan, projected: torch.Tensor, h0: torch.Tensor, elapsed: torch.Tensor,
                recurrent: torch.Tensor, w_tau: torch.Tensor | None, amplitude: torch.Tensor | None,
                *flat_blocks: torch.Tensor) -> torch.Tensor:
        blocks, index = [], 0
        for sources in plan.sources:
            blocks.append(list(flat_blocks[index: index + len(sources)]))
            index += len(sources)
        ctx.plan, ctx.blocks = plan, blocks
        if WiredSequence.runs_compiled(projected):
            history = WiredSequence._compiled_forward(ctx, plan, projected, h0, elapsed, recurrent, w_tau,
                                                      amplitude, blocks)
        else:
            ctx.compiled = None
            ctx.saved_steps = []
            history = wired_run(plan, projected, h0, elapsed, recurrent, w_tau, amplitude, blocks,
                                ctx.saved_steps)
        ctx.save_for_backward(h0, elapsed, recurrent, history,
                              *(t for t in (w_tau, amplitude) if t is not None))
        return history

    @staticmethod
    def _compiled_forward(ctx: Any, plan: WiredPlan, projected: torch.Tensor, h0: torch.Tensor,
                          elapsed: torch.Tensor, recurrent: torch.Tensor, w_tau: torch.Tensor | None,
                          amplitude: torch.Tensor | None, blocks: list[list[torch.Tensor]]) -> torch.Tensor:
        """:func:`lnn_control.nn.cfc_numba.wired_forward`; keeps what its backward needs on ``ctx.compiled``."""
        dtype = projected.dtype
        batch, steps, _ = projected.shape
        layers, block_index = plan.compiled_layout()
        elapsed_np = _numpy(elapsed.reshape(batch, steps).t().to(dtype))
        if w_tau is not None and amplitude is not None:
            w_tau_np, amplitude_np = _numpy(w_tau.to(dtype)), _numpy(amplitude.to(dtype))
        else:  # not read outside pure mode
            w_tau_np = amplitude_np = _numpy(projected.new_empty(0))
        recurrent_np, block_values = _numpy(recurrent.to(dtype)), _packed(blocks, dtype)
        mode, chunks = MODE_CODES[plan.mode.value], chunk_count(batch, kernel_threads())
        history, saved, heads = wired_forward(_numpy(projected), _numpy(h0.to(dtype)), elapsed_np, recurrent_np,
                                              block_values, block_index, layers, mode, w_tau_np, amplitude_np,
                                              chunks)
        ctx.compiled = (saved, heads, elapsed_np, recurrent_np, block_values, block_index, layers, mode,
                        amplitude_np, chunks)
        return torch.from_numpy(history)

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad_history: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        if ctx.compiled is not None:
            return WiredSequence._compiled_backward(ctx, grad_history)
        plan, blocks, saved = ctx.plan, ctx.blocks, ctx.saved_steps
        h0, elapsed, recurrent, history, *extras = ctx.saved_tensors
        pure = plan.mode is CfCMode.PURE
        gated = plan.mode is CfCMode.DEFAULT
        batch, steps, _ = history.shape
        grad_pre_all = history.new_empty(batch, steps, recurrent.shape[1])
        carry = torch.zeros_like(h0)
        recurrent_t = recurrent.t()
        blocks_t = [[block.t() for block in layer_blocks] for layer_blocks in blocks]
        # (grad w_tau, grad amplitude) in pure mode, accumulated over the steps
        pure_grads = (torch.zeros_like(extras[0]), torch.zeros_like(extras[1])) if pure else None
        for t in range(steps - 1, -1, -1):
            grads = list((carry + grad_history[:, t]).split(plan.sizes, dim=1))
            elapsed_t = elapsed[:, t]
            grad_q_reversed: list[torch.Tensor] = []  # last layer first
            for layer in range(len(plan.bounds) - 1, -1, -1):
                grad = grads[layer]
                t0, t1 = plan.bounds[layer]
                if pure_grads is not None:
                    q, decay, decayed = saved[t][layer]
                    grad_a = grad * extras[1][t0:t1]
                    grad_q = -grad_a * decay * (1.0 - elapsed_t * q.abs())
                    pure_grads[0][t0:t1] += (grad_a * decayed * elapsed_t).sum(0)
                    pure_grads[1][t0:t1] += (grad * (1.0 - decayed)).sum(0)
                else:
                    ff, gate = saved[t][layer]
                    n = t1 - t0
                    ff1, ff2 = ff.split([n, n], dim=1)
                    grad_ff2 = grad * gate
                    if gated:
                        grad_ff1, grad_gate = grad - grad_ff2, grad * (ff2 - ff1)
                    else:
                        grad_ff1, grad_gate = grad, grad * ff2
                    grad_ff = torch.cat([grad_ff1, grad_ff2], dim=1) * (1.0 - ff * ff)
                    grad_b = grad_gate * gate * (1.0 - gate)
                    grad_q = torch.cat([grad_ff, grad_b * elapsed_t, grad_b], dim=1)
                for source, block_t in zip(plan.sources[layer], blocks_t[layer]):
                    grads[source] = torch.addmm(grads[source], grad_q, block_t)
                grad_q_reversed.append(grad_q)
            grad_q_all = grad_q_reversed[::-1]
            grad_pre = grad_q_all[0] if len(grad_q_all) == 1 else torch.cat(grad_q_all, dim=1)
            grad_pre_all[:, t] = grad_pre
            carry = grad_pre @ recurrent_t
        grad_w = grad_amp = None
        if pure_grads is not None:
            grad_w, grad_amp = pure_grads[0] * torch.sign(extras[0]), pure_grads[1]
        grad_recurrent, *grad_blocks = _weight_gradients(plan, h0, history, grad_pre_all)
        return (None, grad_pre_all, carry, None, grad_recurrent, grad_w, grad_amp, *grad_blocks)

    @staticmethod
    def _compiled_backward(ctx: Any, grad_history: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        """:func:`lnn_control.nn.cfc_numba.wired_backward`, then the weight gradients in torch."""
        saved, heads, elapsed, recurrent, block_values, block_index, layers, mode, amplitude, chunks = ctx.compiled
        h0, _, _, history, *extras = ctx.saved_tensors
        kernel_threads()
        grads = wired_backward(_numpy(grad_history.to(history.dtype)), elapsed, recurrent, block_values, block_index,
                               layers, mode, saved, heads, amplitude, chunks)
        grad_projected, grad_h0, grad_w, grad_amplitude = (torch.from_numpy(g) for g in grads)
        grad_recurrent, *grad_blocks = _weight_gradients(ctx.plan, h0.to(history.dtype), history, grad_projected)
        pure_grads = (grad_w * torch.sign(extras[0]), grad_amplitude) if extras else (None, None)
        return (None, grad_projected, grad_h0, None, grad_recurrent, *pure_grads, *grad_blocks)
