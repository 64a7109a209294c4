"""A CT-RNN on an NCP wiring: the LTC's wiring with additive ("electrical") synapses.

The ablation of Farsang et al. (2024): same neurons, same sparse synapses and polarities as the
LTC/CfC NCP, but each neuron follows the plain continuous-time RNN

    tau_i dh_i/dt = -h_i + tanh( sum_j W_ji h_j + sum_k U_ki x_k + b_i )

instead of the LTC's conductance-based (chemical) synapses with reversal potentials. Only the
synapses present in the wiring exist (``W``/``U`` are masked by its adjacency; initial signs follow
the synapse polarity, magnitudes ``U(0.5, 1) / sqrt(fan-in)``); integration over the elapsed ``dt``
(nominal steps) uses ``unfolds`` exponential-Euler sub-steps, exact for a constant drive and
stable for any ``dt``. Inputs pass an element-wise affine map first and the output is the motor
neurons' state through an element-wise affine map, as in :class:`lnn_control.nn.ltc.LTC`.

Contract: that of :mod:`lnn_control.nn.baselines` (``forward``, ``step``, ``initial_state``,
``config``); ``build_core({"type": "wired_ctrnn", ...})`` rebuilds it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional

from lnn_control.nn.baselines import _check_config_keys, _check_int, _Core
from lnn_control.nn.wirings import Wiring


class WiredCTRNN(_Core):
    """CT-RNN whose synapses are exactly those of ``wiring`` (see the module docstring)."""

    kind = "wired_ctrnn"

    # 0/1 synapse masks (registered in __init__; declared here for their type)
    recurrent_mask: torch.Tensor
    sensory_mask: torch.Tensor

    def __init__(self, wiring: Wiring, unfolds: int = 1) -> None:
        if not isinstance(wiring, Wiring) or wiring.sensory_adjacency is None:
            raise ValueError("wiring must be a built lnn_control.nn.wirings.Wiring (call wiring.build(input_size))")
        sensory_polarity = wiring.sensory_adjacency  # [F, N]
        super().__init__(int(sensory_polarity.shape[0]), wiring.units, wiring.output_dim, state_size=wiring.units)
        self.wiring = wiring
        self.unfolds = _check_int("unfolds", unfolds)
        recurrent = torch.from_numpy(wiring.adjacency.astype(np.float32))  # [N, N] source -> target, ±1/0
        sensory = torch.from_numpy(sensory_polarity.astype(np.float32))  # [F, N]
        self.register_buffer("recurrent_mask", recurrent.abs())
        self.register_buffer("sensory_mask", sensory.abs())
        self.recurrent_weight = nn.Parameter(self._signed_init(recurrent))
        self.sensory_weight = nn.Parameter(self._signed_init(sensory))
        self.bias = nn.Parameter(torch.zeros(self.units))
        # softplus(raw) = 1 nominal step at raw = log(e - 1)
        self.tau_raw = nn.Parameter(torch.full((self.units,), math.log(math.e - 1.0)))
        self.input_w = nn.Parameter(torch.ones(self.input_size))
        self.input_b = nn.Parameter(torch.zeros(self.input_size))
        self.output_w = nn.Parameter(torch.ones(self.output_size))
        self.output_b = nn.Parameter(torch.zeros(self.output_size))

    @staticmethod
    def _signed_init(polarity: torch.Tensor) -> torch.Tensor:
        fan_in = polarity.abs().sum(dim=0).clamp(min=1.0)  # synapses into each target neuron
        magnitude = (torch.rand(polarity.shape) * 0.5 + 0.5) / fan_in.sqrt()
        return polarity * magnitude

    def tau(self) -> torch.Tensor:
        """Per-neuron time constants ``[N]`` in nominal control steps, > 0."""
        return functional.softplus(self.tau_raw) + 1e-3

    def synapse_count(self) -> int:
        """Synapses that exist (recurrent + sensory), i.e. trainable weight entries that matter."""
        return int(self.recurrent_mask.sum() + self.sensory_mask.sum())

    def _cell(self, x, state, elapsed):  # noqa: ANN001, ANN202 - see _Core
        drive = (x * self.input_w + self.input_b) @ (self.sensory_weight * self.sensory_mask) + self.bias
        recurrent = self.recurrent_weight * self.recurrent_mask
        decay = torch.exp(-(elapsed / self.unfolds).unsqueeze(1) / self.tau())
        h = state
        for _ in range(self.unfolds):
            target = torch.tanh(drive + h @ recurrent)
            h = target + (h - target) * decay
        return h[:, : self.output_size] * self.output_w + self.output_b, h

    def config(self) -> dict[str, Any]:
        return {"type": self.kind, "wiring": self.wiring.to_dict(), "unfolds": self.unfolds}

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> WiredCTRNN:
        _check_config_keys(cls.kind, config, {"wiring"}, {"unfolds"})
        return cls(Wiring.from_dict(config["wiring"]), config.get("unfolds", 1))
