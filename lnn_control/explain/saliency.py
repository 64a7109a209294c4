"""Saliency maps over camera frames: VisualBackProp and SmoothGrad.

- **VisualBackProp** (Bojarski et al. 2016, the method used for NCP driving policies): average each
  conv layer's ReLU output over channels; starting at the deepest layer, scale the map up to the
  previous layer's size with a deconvolution of ones (the layer's kernel and stride) and multiply it
  point-wise with that layer's mean map; the last deconvolution reaches the input size. It reads the
  CNN only (the core does not enter), so it is the same for every core type.
- **SmoothGrad** (Smilkov et al. 2017): mean over ``samples`` noisy copies of the frame (Gaussian,
  ``noise`` × 255 grey levels) of ``|∂ response / ∂ pixel|`` summed over colour channels, through the
  whole policy - CNN, extras, the core from its current state, output squash. The response is the sum
  of the actions of this step and the next ``horizon - 1`` steps (later frames held at their recorded
  values): a frame acts on the motor neurons over a few steps in some cores (a wired CT-RNN needs one
  step per layer, inter -> command -> motor), so a one-step gradient would miss it. Each action
  component is taken in normalised units (``(a - mid) / half range``) and the components' maps are
  summed, so a 4-D drone action weighs each component alike.

Maps are ``[H,W]`` float32 at the camera resolution. :func:`normalize_map` scales a map to [0, 1]
for display and for the attention numbers (an all-zero map stays zero).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional

from lnn_control.explain.grad import action_scale, encode, frames_to_float, policy_step
from lnn_control.nn.perception import PerceptionCNN


@dataclass(frozen=True)
class SmoothGradConfig:
    """samples: noisy copies per frame (≥ 1); noise: Gaussian std as a fraction of the 0..255 pixel
    range (0 = plain gradient); horizon: control steps whose actions make the response (≥ 1, see the
    module docstring); seed: the noise generator's seed (same seed ⇒ same maps)."""

    samples: int = 8
    noise: float = 0.15
    horizon: int = 3
    seed: int = 0

    def __post_init__(self) -> None:
        if isinstance(self.samples, bool) or not isinstance(self.samples, int) or self.samples < 1:
            raise ValueError(f"smoothgrad samples must be an integer ≥ 1, got {self.samples!r}")
        if not (isinstance(self.noise, (int, float)) and 0.0 <= float(self.noise) <= 1.0):
            raise ValueError(f"smoothgrad noise must be a fraction of the pixel range in [0, 1], got {self.noise!r}")
        if isinstance(self.horizon, bool) or not isinstance(self.horizon, int) or not 1 <= self.horizon <= 20:
            raise ValueError(f"smoothgrad horizon must be an integer in 1..20 control steps, got {self.horizon!r}")


def normalize_map(saliency: np.ndarray, percentile: float = 99.5) -> np.ndarray:
    """Scale a non-negative map to [0, 1] by its ``percentile`` (clipped above); zeros stay zeros."""
    array = np.asarray(saliency, np.float32)
    peak = float(array.max(initial=0.0))
    if peak <= 0.0:
        return np.zeros_like(array)
    scale = float(np.percentile(array, percentile))
    if scale <= 0.0:
        scale = peak
    return np.clip(array / scale, 0.0, 1.0).astype(np.float32)


#: Below this peak |∂response/∂pixel| (normalised action units per grey level) a frame's gradient
#: saliency has vanished: a full 255-level change of its most salient pixel would move the response
#: by under 3e-6 of the action's half range, and what is left of the map is float underflow. A policy
#: whose sensory synapses saturate (CNN features far outside the sigmoids' width, README "Explain")
#: gets there on most frames; VisualBackProp reads activations and is not affected.
VANISHED_GRADIENT = 1e-8


# ------------------------------------------------------------------------------ VisualBackProp
def _conv_relu_pairs(cnn: PerceptionCNN) -> list[tuple[nn.Conv2d, nn.Module]]:
    layers = list(cnn.convs)
    pairs = []
    for index, layer in enumerate(layers):
        if isinstance(layer, nn.Conv2d):
            if index + 1 >= len(layers) or not isinstance(layers[index + 1], nn.ReLU):
                raise ValueError("VisualBackProp needs every conv layer followed by a ReLU")
            pairs.append((layer, layers[index + 1]))
    if not pairs:
        raise ValueError("VisualBackProp needs a CNN with at least one conv layer")
    return pairs


def _upscale(mask: torch.Tensor, conv: nn.Conv2d, size: tuple[int, int]) -> torch.Tensor:
    """Deconvolve ``mask [B,1,h,w]`` with a ones kernel of ``conv``'s size and stride to ``size``."""
    kernel = torch.ones(1, 1, *conv.kernel_size, dtype=mask.dtype)
    if isinstance(conv.padding, str):
        raise ValueError(f"VisualBackProp needs numeric conv padding, got {conv.padding!r}")
    up = functional.conv_transpose2d(mask, kernel, stride=conv.stride, padding=conv.padding)
    height, width = size
    up = up[..., :height, :width]
    return functional.pad(up, (0, width - up.shape[-1], 0, height - up.shape[-2]))


@torch.no_grad()
def visual_backprop(policy: Any, frames: np.ndarray, chunk: int = 64) -> np.ndarray:
    """VisualBackProp maps ``[B,H,W]`` float32 in [0, 1] (each scaled by its maximum) of uint8
    frames ``[B,H,W,3]`` (or one ``[H,W,3]``, giving ``[1,H,W]``)."""
    pairs = _conv_relu_pairs(policy.perception)
    images = frames_to_float(frames)
    height, width = images.shape[1], images.shape[2]
    captured: list[torch.Tensor] = []
    hooks = [relu.register_forward_hook(lambda _m, _i, out: captured.append(out)) for _, relu in pairs]
    maps = []
    try:
        for start in range(0, images.shape[0], chunk):
            captured.clear()
            encode(policy, images[start:start + chunk])
            means = [activation.mean(dim=1, keepdim=True) for activation in captured]
            mask = means[-1]
            for level in range(len(means) - 1, 0, -1):
                below = means[level - 1]
                mask = _upscale(mask, pairs[level][0], (below.shape[-2], below.shape[-1])) * below
            mask = _upscale(mask, pairs[0][0], (height, width))[:, 0]
            peak = mask.flatten(1).amax(dim=1).clamp(min=1e-12).view(-1, 1, 1)
            maps.append((mask / peak).numpy().astype(np.float32))
    finally:
        for hook in hooks:
            hook.remove()
    return np.concatenate(maps, axis=0)


# ---------------------------------------------------------------------------------- SmoothGrad
@torch.no_grad()
def core_inputs(policy: Any, frames: np.ndarray, extras: np.ndarray, chunk: int = 64) -> torch.Tensor:
    """The core inputs ``x [T,F+E]`` (CNN features, scaled extras) of uint8 frames ``[T,H,W,3]`` and extras ``[T,E]``."""
    parts = []
    for start in range(0, frames.shape[0], chunk):
        features = encode(policy, frames_to_float(frames[start:start + chunk]))
        scaled = torch.as_tensor(np.asarray(extras[start:start + chunk], np.float32)) * policy.extras_scale
        parts.append(torch.cat([features, scaled], dim=1))
    return torch.cat(parts, dim=0)


@dataclass
class GradStep:
    """One control step analysed: ``saliency [H,W]`` (raw SmoothGrad, not normalised), the noise-free
    ``action [A]`` (action units), core input ``x [F+E]`` and the core state after the step ``[S]``.

    ``vanished``: the map's peak is below :data:`VANISHED_GRADIENT`, so it carries no information."""

    saliency: np.ndarray
    action: np.ndarray
    x: torch.Tensor
    state: torch.Tensor

    @property
    def peak(self) -> float:
        """Largest |∂response/∂pixel| of the map (normalised action units per grey level)."""
        return float(self.saliency.max(initial=0.0))

    @property
    def vanished(self) -> bool:
        return self.peak < VANISHED_GRADIENT


def smoothgrad_step(
    policy: Any,
    frame: np.ndarray,
    extras: np.ndarray,
    state: torch.Tensor,
    dt_seconds: float,
    config: SmoothGradConfig,
    generator: torch.Generator,
    future: Sequence[tuple[torch.Tensor, float]] = (),
) -> GradStep:
    """SmoothGrad of one frame ``[H,W,3]`` uint8 with ``extras [E]`` from core ``state [1,S]``.

    future: ``(core input x [F+E], dt_seconds)`` of the following steps (up to ``horizon - 1`` are
    used; fewer at the end of an episode). The noise-free frame rides in the same batch (row 0): its
    outputs give the action and the next state, so an episode is analysed in one pass per frame.
    """
    clean = frames_to_float(frame)
    noise = torch.randn((config.samples, *clean.shape[1:]), generator=generator) * (float(config.noise) * 255.0)
    images = torch.cat([clean, clean + noise], dim=0).requires_grad_(True)
    rows = images.shape[0]
    extras_t = torch.as_tensor(np.asarray(extras, np.float32)).reshape(1, -1).expand(rows, -1)
    with torch.enable_grad():
        actions, x, new_state = policy_step(policy, images, extras_t, state.expand(rows, -1), dt_seconds)
        mid, half = action_scale(policy)
        normalised = (actions - mid) / half
        later = new_state
        for x_next, dt_next in list(future)[: config.horizon - 1]:
            y, later = policy.core.step(x_next.reshape(1, -1).expand(rows, -1), later, policy._core_dt(float(dt_next)))
            normalised = normalised + (policy.squash(y) - mid) / half
        total = torch.zeros(images.shape[1:3])
        components = normalised.shape[1]
        for k in range(components):
            (grad,) = torch.autograd.grad(normalised[1:, k].sum(), images, retain_graph=k + 1 < components)
            total += grad[1:].abs().sum(dim=-1).mean(dim=0)
    return GradStep(
        saliency=total.numpy().astype(np.float32),
        action=actions[0].detach().numpy().astype(np.float32),
        x=x[0].detach(),
        state=new_state[:1].detach(),
    )
