"""Auxiliary frame-wise readout: a training-only shortcut from the CNN features to the labels.

Behaviour cloning reaches the CNN only through the recurrent core. :class:`FeatureReadout` maps the
core's input of each frame (CNN features + scaled extras, ``[B,T,F+E]``) linearly to an action, and
its error, weighted by ``TrainConfig.aux_readout``, is added to the loss, so the CNN also gets a
direct signal. The readout is owned by the trainer: it is checkpointed with the run (resume stays
exact) but never part of the policy or its bundle.

What it showed (README "Measured numbers", 2026-12-07): on a drone run that stalled near the mean
command, the readout's loss fell to 0.54 while the policy's stayed at 0.81, so the features carried
the command and the core did not pass it on; the readout itself did not end the stall. Its logged
loss (``train_aux_readout_loss``) is the diagnostic: CNN or core.
"""

from __future__ import annotations

import torch
from torch import nn


class FeatureReadout(nn.Module):
    """Linear map ``core_input[B,T,F]`` -> actions ``[B,T,A]`` (action units, unclipped).

    Starts at zero weights and the action range's midpoint, so it adds no gradient to the CNN until
    it has learned something, and creating it draws nothing from torch's random generator (a run
    with the readout keeps the same initial policy weights as one without).
    """

    action_mid: torch.Tensor
    action_half: torch.Tensor

    def __init__(self, in_features: int, action_low: torch.Tensor, action_high: torch.Tensor) -> None:
        super().__init__()
        if in_features < 1:
            raise ValueError(f"FeatureReadout: in_features must be ≥ 1, got {in_features}")
        actions = int(action_low.numel())
        self.weight = nn.Parameter(torch.zeros(actions, in_features))  # [A, F]
        self.bias = nn.Parameter(torch.zeros(actions))  # [A]
        self.register_buffer("action_mid", (action_low + action_high) / 2, persistent=False)
        self.register_buffer("action_half", (action_high - action_low) / 2, persistent=False)

    def forward(self, core_input: torch.Tensor) -> torch.Tensor:
        return self.action_mid + self.action_half * nn.functional.linear(core_input, self.weight, self.bias)


class TrainedModules(nn.Module):
    """The policy and its readout as one module, so one checkpoint file holds both."""

    def __init__(self, policy: nn.Module, readout: FeatureReadout) -> None:
        super().__init__()
        self.policy = policy
        self.readout = readout
