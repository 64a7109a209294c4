"""A policy as a differentiable function of one camera frame, for gradient saliency.

``Policy.forward`` takes uint8 frames (what cameras give); gradients need float pixels. The
perception CNN's own encoder (normalisation included) accepts float frames in grey levels, so
:func:`policy_step` runs exactly the policy's maths - CNN, extras scaling, one core step, output
squash - with the image as a float tensor that can require grad. Nothing in the policy changes.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch


def frames_to_float(frames: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 ``[B,H,W,3]`` (or ``[H,W,3]``) -> float32 ``[B,H,W,3]`` in grey levels 0..255."""
    tensor = torch.as_tensor(np.asarray(frames)) if not isinstance(frames, torch.Tensor) else frames
    if tensor.dim() == 3:
        tensor = tensor.unsqueeze(0)
    if tensor.dim() != 4 or tensor.shape[-1] != 3:
        raise ValueError(f"frames must be [B,H,W,3] or [H,W,3] RGB, got shape {tuple(tensor.shape)}")
    return tensor.to(torch.float32)


def encode(policy: Any, images: torch.Tensor) -> torch.Tensor:
    """CNN features ``[B,F]`` of float frames ``[B,H,W,3]`` (grey levels); differentiable in ``images``.
    Same numbers as ``policy.perception`` on the uint8 frames (tested)."""
    expected = (policy.perception.config.image_height, policy.perception.config.image_width, 3)
    if images.dim() != 4 or tuple(images.shape[1:]) != expected:
        raise ValueError(f"images must be [B,{expected[0]},{expected[1]},3] float, got {tuple(images.shape)}")
    return policy.perception._encode(images)


def action_scale(policy: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """``(mid, half_range)`` ``[A]`` of the action spec: ``(a - mid) / half_range`` is in [-1, 1]."""
    low = torch.as_tensor(policy.action_spec.low, dtype=torch.float32)
    high = torch.as_tensor(policy.action_spec.high, dtype=torch.float32)
    return 0.5 * (low + high), 0.5 * (high - low)


def policy_step(
    policy: Any,
    images: torch.Tensor,
    extras: torch.Tensor,
    state: torch.Tensor,
    dt_seconds: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One control step from float frames.

    images: ``[B,H,W,3]`` float grey levels; extras: ``[B,E]`` raw observation extras (units of the
    observation spec); state: ``[B,S]`` core state before the step; dt_seconds: elapsed time (s).
    Returns ``(actions [B,A] in action units, core input x [B,F+E], new state [B,S])``.
    """
    features = encode(policy, images)
    x = torch.cat([features, extras.to(torch.float32) * policy.extras_scale], dim=1)
    y, new_state = policy.core.step(x, state, policy._core_dt(float(dt_seconds)))
    return policy.squash(y), x, new_state
