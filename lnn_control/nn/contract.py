"""The recurrent-core contract shared by LTC, CfC and the baselines, plus its input checks.

A core is a ``torch.nn.Module`` with

- ``input_size`` (F), ``output_size`` (O), ``state_size`` (S);
- ``initial_state(batch_size) -> Tensor[B,S]`` (zeros);
- ``forward(x[B,T,F], state=None, dt=1.0) -> (y[B,T,O], state[B,S])``;
- ``step(x[B,F], state[B,S], dt=1.0) -> (y[B,O], state[B,S])`` giving the same numbers as ``forward``;
- ``config() -> dict``: JSON-serialisable, with ``"type"`` (and the wiring for wired cores), from which
  :func:`lnn_control.nn.cores.build_core` rebuilds the architecture.

``dt`` is elapsed time in ODE time units, 1.0 = one nominal step (the ``ncps`` convention): a float,
a ``Tensor[B]`` (one value per sample, every step) or a ``Tensor[B,T]``. It must be finite and > 0.
Wired cores follow ``ncps`` neuron order: motor neurons first, so ``y = state[:, :output_size]``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Protocol, runtime_checkable

import torch
from torch import nn


@runtime_checkable
class RecurrentCore(Protocol):
    """Structural type of a core (see the module docstring); being a ``torch.nn.Module``, a core is
    also called like ``forward`` and has ``parameters()``."""

    input_size: int
    output_size: int
    state_size: int

    def initial_state(self, batch_size: int) -> torch.Tensor: ...

    def forward(
        self, x: torch.Tensor, state: torch.Tensor | None = None, dt: float | torch.Tensor = 1.0
    ) -> tuple[torch.Tensor, torch.Tensor]: ...

    def step(
        self, x: torch.Tensor, state: torch.Tensor, dt: float | torch.Tensor = 1.0
    ) -> tuple[torch.Tensor, torch.Tensor]: ...

    def config(self) -> dict[str, Any]: ...

    def __call__(
        self, x: torch.Tensor, state: torch.Tensor | None = None, dt: float | torch.Tensor = 1.0
    ) -> tuple[torch.Tensor, torch.Tensor]: ...

    def parameters(self, recurse: bool = True) -> Iterator[nn.Parameter]: ...


def check_batch_size(batch_size: Any) -> int:
    """``batch_size`` as an int >= 1, else ``ValueError``."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
    return batch_size


def check_sequence(x: Any, input_size: int) -> torch.Tensor:
    """``x`` must be a finite floating tensor ``[B,T,F]`` with ``F == input_size`` and B, T >= 1."""
    return _check_input(x, input_size, "[B,T,F]", 3)


def check_step_input(x: Any, input_size: int) -> torch.Tensor:
    """``x`` must be a finite floating tensor ``[B,F]`` with ``F == input_size``."""
    return _check_input(x, input_size, "[B,F]", 2)


def _check_input(x: Any, input_size: int, layout: str, dims: int) -> torch.Tensor:
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise ValueError(f"x must be a floating-point torch.Tensor {layout}, got {getattr(x, 'dtype', type(x))}")
    if x.dim() != dims or x.shape[-1] != input_size or min(x.shape) < 1:
        raise ValueError(f"x must have shape {layout} with F={input_size}, got {tuple(x.shape)}")
    if not bool(torch.isfinite(x).all()):
        raise ValueError("x contains NaN or inf; check the sensor / feature inputs")
    return x


def check_state(state: Any, batch: int, state_size: int) -> torch.Tensor:
    """``state`` must be a finite floating tensor ``[batch, state_size]``."""
    if not isinstance(state, torch.Tensor) or not state.is_floating_point():
        raise ValueError(f"state must be a floating-point torch.Tensor [B,S], got {type(state).__name__}")
    if tuple(state.shape) != (batch, state_size):
        raise ValueError(f"state must have shape [B,S] = [{batch},{state_size}], got {tuple(state.shape)}")
    if not bool(torch.isfinite(state).all()):
        raise ValueError("state contains NaN or inf; start over from initial_state()")
    return state


def expand_dt(
    dt: Any, batch: int, steps: int, dtype: torch.dtype = torch.float32, device: torch.device | None = None
) -> torch.Tensor:
    """Elapsed times as ``[batch, steps]``: from a float, ``[B]`` or ``[B,T]``; never a silent broadcast.

    Raises ``ValueError`` for another shape, a non-number, or any value that is NaN, inf or <= 0.
    """
    if isinstance(dt, torch.Tensor):
        if dt.dim() == 0:
            value = dt.reshape(1, 1).expand(batch, steps)
        elif dt.dim() == 1 and dt.shape[0] == batch:
            value = dt.unsqueeze(1).expand(batch, steps)
        elif dt.dim() == 2 and tuple(dt.shape) == (batch, steps):
            value = dt
        else:
            raise ValueError(
                f"dt must be a float, a tensor [B]=[{batch}] or [B,T]=[{batch},{steps}], got shape {tuple(dt.shape)}"
            )
        value = value.to(dtype=dtype, device=device)
    elif isinstance(dt, (int, float)) and not isinstance(dt, bool):
        value = torch.full((batch, steps), float(dt), dtype=dtype, device=device)
    else:
        raise ValueError(f"dt must be a float or a torch.Tensor, got {type(dt).__name__}")
    if not bool(((value > 0) & torch.isfinite(value)).all()):
        raise ValueError("dt (elapsed time in nominal steps) must be finite and > 0")
    return value
