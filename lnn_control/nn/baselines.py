"""Baseline recurrent cores with the same contract as the liquid cores: LSTM, GRU, CT-RNN, feed-forward.

Every core here is a ``torch.nn.Module`` with ``input_size``, ``output_size``, ``state_size``,
``initial_state(batch_size) -> [B,S]``, ``forward(x[B,T,F], state=None, dt=1.0) -> (y[B,T,O], state[B,S])``,
``step(x[B,F], state[B,S], dt) -> (y[B,O], state[B,S])`` and ``config() -> dict``; ``build_core`` in
:mod:`lnn_control.nn.cores` rebuilds them from that dict (types ``"lstm"``, ``"gru"``, ``"ctrnn"``,
``"feedforward"``). The one size knob shared with the liquid cores is ``units`` (hidden neurons);
outputs come from a linear readout of the hidden state.

Time: ``dt`` is elapsed time in nominal control steps (1.0 = one step), a float, ``[B]`` or ``[B,T]``.
LSTM and GRU are discrete-time and, like in ``ncps``' comparisons, ignore the value of ``dt``
(it is still validated). The CT-RNN integrates ``tau dh/dt = -h + tanh(W_in x + W_rec h + b)``
over ``dt`` with an exponential-Euler step (stable for any ``dt``). The feed-forward core has no
memory; it keeps a **1-element dummy state** that is always zero, so the state plumbing (bundles,
ONNX export, run logs) needs no special case.

LSTM state layout: ``concat(h, c)``, ``state_size = 2 * units``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn
from torch.nn import functional


def _check_int(name: str, value: Any, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value


def _check_config_keys(kind: str, config: Mapping[str, Any], required: set[str], optional: set[str]) -> None:
    if not isinstance(config, Mapping):
        raise ValueError(f"{kind} config must be a mapping, got {type(config).__name__}")
    keys = set(config) - {"type"}
    missing = sorted(required - keys)
    unknown = sorted(keys - required - optional)
    if missing:
        raise ValueError(f"{kind} config is missing key(s) {missing}; required: {sorted(required)}")
    if unknown:
        raise ValueError(
            f"{kind} config has unknown key(s) {unknown}; allowed: {sorted(required | optional)}"
        )
    if config.get("type", kind) != kind:
        raise ValueError(f"{kind} config has type {config['type']!r}, expected {kind!r}")


def check_inputs(x: torch.Tensor, input_size: int, sequence: bool) -> None:
    """Raise ``ValueError`` unless ``x`` is a finite float tensor ``[B,T,F]`` (or ``[B,F]``)."""
    layout = "[B,T,F]" if sequence else "[B,F]"
    dims = 3 if sequence else 2
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise ValueError(f"x must be a floating-point torch.Tensor {layout}, got {getattr(x, 'dtype', type(x))}")
    if x.dim() != dims or x.shape[-1] != input_size or x.shape[0] < 1:
        raise ValueError(f"x must have shape {layout} with F={input_size}, got {tuple(x.shape)}")
    if not bool(torch.isfinite(x).all()):
        raise ValueError("x contains NaN or inf; check the sensor inputs")


def check_state(state: torch.Tensor, batch: int, state_size: int) -> None:
    """Raise ``ValueError`` unless ``state`` is a finite float tensor ``[batch, state_size]``."""
    if not isinstance(state, torch.Tensor) or not state.is_floating_point():
        raise ValueError(f"state must be a floating-point torch.Tensor [B,S], got {type(state).__name__}")
    if tuple(state.shape) != (batch, state_size):
        raise ValueError(f"state must have shape [B,S] = [{batch},{state_size}], got {tuple(state.shape)}")
    if not bool(torch.isfinite(state).all()):
        raise ValueError("state contains NaN or inf; call reset / initial_state() to start over")


def expand_dt(dt: float | torch.Tensor, batch: int, steps: int) -> torch.Tensor:
    """Elapsed times as a ``[batch, steps]`` float32 tensor; ``ValueError`` unless all are finite and > 0."""
    if isinstance(dt, torch.Tensor):
        if dt.dim() == 0:
            value = dt.to(torch.float32).expand(batch, steps)
        elif dt.dim() == 1 and dt.shape[0] == batch:
            value = dt.to(torch.float32).unsqueeze(1).expand(batch, steps)
        elif dt.dim() == 2 and tuple(dt.shape) == (batch, steps):
            value = dt.to(torch.float32)
        else:
            raise ValueError(
                f"dt must be a float, a tensor [B]=[{batch}] or [B,T]=[{batch},{steps}], got shape {tuple(dt.shape)}"
            )
    elif isinstance(dt, (int, float)) and not isinstance(dt, bool):
        value = torch.full((batch, steps), float(dt), dtype=torch.float32)
    else:
        raise ValueError(f"dt must be a float or a torch.Tensor, got {type(dt).__name__}")
    if not bool(((value > 0) & torch.isfinite(value)).all()):
        raise ValueError("dt (elapsed time, in nominal steps) must be finite and > 0")
    return value


class _Core(nn.Module):
    """Shared plumbing: validation, the ``forward``/``step`` loop over ``_cell``."""

    kind = ""

    def __init__(self, input_size: int, units: int, output_size: int, state_size: int | None = None) -> None:
        """``state_size`` defaults to ``units`` (one state per neuron)."""
        super().__init__()
        self.input_size = _check_int("input_size", input_size)
        self.units = _check_int("units", units)
        self.output_size = _check_int("output_size", output_size)
        self.state_size = self.units if state_size is None else state_size

    def initial_state(self, batch_size: int) -> torch.Tensor:
        """Zero state ``[batch_size, state_size]``."""
        _check_int("batch_size", batch_size)
        return torch.zeros(batch_size, self.state_size, device=self._device())

    def _device(self) -> torch.device:
        return next(self.parameters()).device

    def forward(
        self, x: torch.Tensor, state: torch.Tensor | None = None, dt: float | torch.Tensor = 1.0
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Run a sequence: ``x[B,T,F]`` -> ``(y[B,T,O], final state[B,S])``."""
        check_inputs(x, self.input_size, sequence=True)
        batch, steps = x.shape[0], x.shape[1]
        state = self.initial_state(batch) if state is None else state
        check_state(state, batch, self.state_size)
        elapsed = expand_dt(dt, batch, steps).to(x.device)
        return self._sequence(x, state, elapsed)

    def step(
        self, x: torch.Tensor, state: torch.Tensor, dt: float | torch.Tensor = 1.0
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One streaming step: ``x[B,F]`` -> ``(y[B,O], state[B,S])``; same maths as ``forward``."""
        check_inputs(x, self.input_size, sequence=False)
        check_state(state, x.shape[0], self.state_size)
        elapsed = expand_dt(dt, x.shape[0], 1).to(x.device)
        y, new_state = self._sequence(x.unsqueeze(1), state, elapsed)
        return y[:, 0], new_state

    def _sequence(
        self, x: torch.Tensor, state: torch.Tensor, elapsed: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        outputs = []
        for t in range(x.shape[1]):
            y, state = self._cell(x[:, t], state, elapsed[:, t])
            outputs.append(y)
        return torch.stack(outputs, dim=1), state

    def _cell(
        self, x: torch.Tensor, state: torch.Tensor, elapsed: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError  # every concrete core overrides _cell or _sequence

    def config(self) -> dict[str, Any]:
        """JSON-serialisable architecture; ``build_core(config)`` rebuilds it."""
        return {
            "type": self.kind,
            "input_size": self.input_size,
            "units": self.units,
            "output_size": self.output_size,
        }

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> _Core:
        _check_config_keys(cls.kind, config, {"input_size", "units", "output_size"}, set())
        return cls(config["input_size"], config["units"], config["output_size"])


class LSTMCore(_Core):
    """Discrete-time LSTM (``torch.nn.LSTM``) + linear readout; state ``concat(h, c)``; ``dt`` ignored."""

    kind = "lstm"

    def __init__(self, input_size: int, units: int, output_size: int) -> None:
        super().__init__(input_size, units, output_size, state_size=2 * _check_int("units", units))
        self.rnn = nn.LSTM(input_size, units, batch_first=True)
        self.readout = nn.Linear(units, output_size)

    def _sequence(self, x, state, elapsed):  # noqa: ANN001, ANN202 - see _Core
        h0 = state[:, : self.units].unsqueeze(0).contiguous()
        c0 = state[:, self.units :].unsqueeze(0).contiguous()
        hidden, (h, c) = self.rnn(x, (h0, c0))
        return self.readout(hidden), torch.cat([h[0], c[0]], dim=1)


class GRUCore(_Core):
    """Discrete-time GRU (``torch.nn.GRU``) + linear readout; state ``h``; ``dt`` ignored."""

    kind = "gru"

    def __init__(self, input_size: int, units: int, output_size: int) -> None:
        super().__init__(input_size, units, output_size, state_size=_check_int("units", units))
        self.rnn = nn.GRU(input_size, units, batch_first=True)
        self.readout = nn.Linear(units, output_size)

    def _sequence(self, x, state, elapsed):  # noqa: ANN001, ANN202 - see _Core
        hidden, h = self.rnn(x, state.unsqueeze(0).contiguous())
        return self.readout(hidden), h[0]


class CTRNNCore(_Core):
    """Continuous-time RNN: ``tau * dh/dt = -h + tanh(W_in x + W_rec h + b)``, per-neuron ``tau > 0``.

    Each input step integrates over the elapsed ``dt`` in ``unfolds`` exponential-Euler sub-steps
    (``h <- f + (h - f) * exp(-delta / tau)`` with ``delta = dt / unfolds``), exact for constant drive.
    ``tau`` is in nominal control steps, initialised to 1 and kept positive with softplus.
    """

    kind = "ctrnn"

    def __init__(self, input_size: int, units: int, output_size: int, unfolds: int = 1) -> None:
        super().__init__(input_size, units, output_size, state_size=_check_int("units", units))
        self.unfolds = _check_int("unfolds", unfolds)
        self.input_map = nn.Linear(input_size, units)
        self.recurrent = nn.Linear(units, units, bias=False)
        # softplus(raw) = 1 at raw = log(e - 1)
        self.tau_raw = nn.Parameter(torch.full((units,), math.log(math.e - 1.0)))
        self.readout = nn.Linear(units, output_size)

    def tau(self) -> torch.Tensor:
        """Per-neuron time constants ``[units]`` (nominal steps), > 0."""
        return functional.softplus(self.tau_raw) + 1e-3

    def _cell(self, x, state, elapsed):  # noqa: ANN001, ANN202 - see _Core
        drive = self.input_map(x)
        decay = torch.exp(-(elapsed / self.unfolds).unsqueeze(1) / self.tau())
        h = state
        for _ in range(self.unfolds):
            target = torch.tanh(drive + self.recurrent(h))
            h = target + (h - target) * decay
        return self.readout(h), h

    def config(self) -> dict[str, Any]:
        return {**super().config(), "unfolds": self.unfolds}

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> CTRNNCore:
        _check_config_keys(cls.kind, config, {"input_size", "units", "output_size"}, {"unfolds"})
        return cls(config["input_size"], config["units"], config["output_size"], config.get("unfolds", 1))


class FeedForwardCore(_Core):
    """Memoryless MLP ``input -> units (tanh) -> output``; a 1-element dummy state that stays zero."""

    kind = "feedforward"

    def __init__(self, input_size: int, units: int, output_size: int) -> None:
        super().__init__(input_size, units, output_size, state_size=1)
        self.hidden = nn.Linear(input_size, units)
        self.readout = nn.Linear(units, output_size)

    def _sequence(self, x, state, elapsed):  # noqa: ANN001, ANN202 - see _Core
        return self.readout(torch.tanh(self.hidden(x))), torch.zeros_like(state)


BASELINE_CORES: dict[str, type[_Core]] = {
    core.kind: core for core in (LSTMCore, GRUCore, CTRNNCore, FeedForwardCore)
}


def build_baseline(config: Mapping[str, Any]) -> _Core:
    """Rebuild a baseline core from its ``config()`` dict (``type`` picks the class)."""
    if not isinstance(config, Mapping):
        raise ValueError(f"core config must be a mapping, got {type(config).__name__}")
    kind = config.get("type")
    if kind not in BASELINE_CORES:
        raise ValueError(f"unknown baseline core type {kind!r}; known: {sorted(BASELINE_CORES)}")
    return BASELINE_CORES[kind].from_config(config)
