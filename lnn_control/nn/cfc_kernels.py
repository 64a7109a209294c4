"""CfC training kernels: the closed-form updates and the wired recurrence as torch autograd functions
with hand-written backward passes (tested equal to autograd through the step loop). The cells that
use them are in :mod:`lnn_control.nn.cfc_cells`; the batch-1 deployment stepper is
:mod:`lnn_control.nn.cfc_stepper`."""

from __future__ import annotations

from enum import Enum
from typing import Any

import torch
from torch.autograd.function import once_differentiable


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


class WiredSequence(torch.autograd.Function):
    """The whole wired recurrence as one autograd node with hand-written BPTT.

    Per-step backward work is only the element-wise closed-form derivative and two small matmuls; the
    weight gradients are one matmul over all ``B*T`` rows at the end (instead of autograd bookkeeping
    for ~25 ops per step).
    """

    @staticmethod
    def forward(ctx: Any, plan: WiredPlan, projected: torch.Tensor, h0: torch.Tensor, elapsed: torch.Tensor,
                recurrent: torch.Tensor, w_tau: torch.Tensor | None, amplitude: torch.Tensor | None,
                *flat_blocks: torch.Tensor) -> torch.Tensor:
        blocks, index = [], 0
        for sources in plan.sources:
            blocks.append(list(flat_blocks[index: index + len(sources)]))
            index += len(sources)
        saved: list[_StepSaved] = []
        history = wired_run(plan, projected, h0, elapsed, recurrent, w_tau, amplitude, blocks, saved)
        ctx.plan, ctx.blocks, ctx.saved_steps = plan, blocks, saved
        ctx.save_for_backward(h0, elapsed, recurrent, history,
                              *(t for t in (w_tau, amplitude) if t is not None))
        return history

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad_history: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
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
        # weight gradients over all B*T rows at once
        previous = torch.cat([h0.unsqueeze(1), history[:, :-1]], dim=1).reshape(batch * steps, -1)
        flat_grad = grad_pre_all.reshape(batch * steps, -1)
        grad_recurrent = previous.t() @ flat_grad
        flat_history = history.reshape(batch * steps, -1)
        grad_blocks = []
        grad_columns = flat_grad.split(plan.column_sizes, dim=1)
        for layer, sources in enumerate(plan.sources):
            for source in sources:
                s0, s1 = plan.bounds[source]
                grad_blocks.append(flat_history[:, s0:s1].t() @ grad_columns[layer])
        grad_w = grad_amp = None
        if pure_grads is not None:
            grad_w, grad_amp = pure_grads[0] * torch.sign(extras[0]), pure_grads[1]
        return (None, grad_pre_all, carry, None, grad_recurrent, grad_w, grad_amp, *grad_blocks)
