"""Photometric image augmentation for training windows (NumPy, uint8 in and out).

One random transform per window, applied identically to all its frames, so the temporal
structure the liquid network learns from is preserved. Geometric transforms are left out on
purpose: shifting or rotating the camera image changes the correct steering.

Besides brightness, contrast, colour cast and sensor noise (on by default), two light effects
that recipes switch on for robustness to lighting they never collected: ``glow`` (a soft bright
light at a random place and size, screen-blended towards white) and ``haze`` (a uniform veil
towards white). Neither is one of the evaluation conditions of :mod:`lnn_control.envs.wrappers`
(glare adds lens ghosts, keeps the sun in the upper frame and scales all three with severity), but
they are of the same family as ``glare`` and ``fog``. The bundle's provenance keeps the launch file
text (with its ``train.augment``) next to the collected training conditions.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class AugmentConfig:
    """Ranges of the random transforms; all zero disables augmentation.

    brightness: max additive offset, in units of full scale (0.1 = ±25 grey levels).
    contrast: max relative contrast change (0.2 = ×0.8 .. ×1.2 around the mean).
    channel_gain: max per-channel gain change (colour cast).
    noise_std: max std of additive Gaussian noise, full-scale units.
    probability: chance that a window is augmented at all.
    glow: chance that an augmented window also gets a soft light: a Gaussian glow centred anywhere
        in the frame, radius 5-30 % of the frame width, peak 0.3-1.0 of the way to white.
    haze: max strength of a uniform veil towards white (0.2 = up to 20 % of the way), drawn per
        augmented window.
    """

    brightness: float = 0.15
    contrast: float = 0.25
    channel_gain: float = 0.1
    noise_std: float = 0.03
    probability: float = 0.8
    glow: float = 0.0
    haze: float = 0.0

    def __post_init__(self) -> None:
        for name in ("brightness", "contrast", "channel_gain", "noise_std", "glow", "haze"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"AugmentConfig.{name} must be in [0, 1], got {value}")
        if not 0.0 <= self.probability <= 1.0:
            raise ValueError(f"AugmentConfig.probability must be in [0, 1], got {self.probability}")


def augment_windows(images: np.ndarray, config: AugmentConfig, rng: np.random.Generator) -> np.ndarray:
    """Return augmented copies of ``images`` (uint8 [B,T,H,W,3]); one transform per window.

    The transform parameters come from ``rng``; the pixel noise from a torch generator seeded by
    ``rng`` (torch draws Gaussians about 4x faster than NumPy), so the result is a function of the
    rng state alone. Runs in torch, vectorised over the augmented windows."""
    if images.ndim != 5 or images.shape[-1] != 3 or images.dtype != np.uint8:
        raise ValueError(f"images must be uint8 [B,T,H,W,3], got {images.dtype} {images.shape}")
    b = images.shape[0]
    active = np.flatnonzero(rng.random(b) < config.probability)
    offset = np.asarray(rng.uniform(-config.brightness, config.brightness, b)) * 255.0
    contrast = 1.0 + np.asarray(rng.uniform(-config.contrast, config.contrast, b))
    gain = 1.0 + np.asarray(rng.uniform(-config.channel_gain, config.channel_gain, (b, 3)))
    noise_std = np.asarray(rng.uniform(0.0, config.noise_std, b)) * 255.0
    glow = np.asarray(rng.random(b) < config.glow)
    glow_at = np.asarray(rng.uniform(0.0, 1.0, (b, 2)))  # (x, y) as fractions of width, height
    glow_radius = np.asarray(rng.uniform(0.05, 0.30, b))
    glow_peak = np.asarray(rng.uniform(0.3, 1.0, b)) * glow
    haze = np.asarray(rng.uniform(0.0, config.haze, b))
    noise_seed = int(rng.integers(0, 2**63 - 1))
    out = images.copy()
    if active.size == 0:
        return out
    per_window = (active.size, 1, 1, 1, 1)

    def column(values: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(values[active].astype(np.float32)).view(per_window)

    window = torch.from_numpy(images[active]).to(torch.float32)
    mean = window.mean(dim=(1, 2, 3, 4), keepdim=True)
    channel_gain = torch.from_numpy(gain[active].astype(np.float32)).view(active.size, 1, 1, 1, 3)
    # ((x - mean) * contrast + mean + offset) * gain + noise, as one x * scale + shift (+ noise)
    scale = column(contrast) * channel_gain
    shift = (mean * (1.0 - column(contrast)) + column(offset)) * channel_gain
    generator = torch.Generator().manual_seed(noise_seed)
    noise = torch.randn(window.shape, generator=generator).mul_(column(noise_std))
    result = torch.addcmul(shift, window, scale)
    if config.glow > 0 or config.haze > 0:
        height, width = images.shape[2], images.shape[3]
        light = _light(glow_at[active], glow_radius[active], glow_peak[active], haze[active], height, width)
        white = torch.tensor([255.0, 250.0, 240.0])
        result.addcmul_(light, white - result)  # screen-like: light 1 = white, 0 = unchanged
    result.add_(noise)
    out[active] = result.clamp_(0, 255).to(torch.uint8).numpy()
    return out


def _light(at: np.ndarray, radius: np.ndarray, peak: np.ndarray, haze: np.ndarray, height: int,
           width: int) -> torch.Tensor:
    """Per-window light map ``[n, 1, H, W, 1]`` in [0, 1]: a Gaussian glow (centre ``at[n, 2]`` as
    fractions of width and height, ``radius[n]`` as a fraction of the width, ``peak[n]``) plus a
    uniform ``haze[n]``."""
    n = at.shape[0]
    xs = torch.arange(width, dtype=torch.float32).view(1, 1, width)
    ys = torch.arange(height, dtype=torch.float32).view(1, height, 1)
    cx = torch.from_numpy((at[:, 0] * width).astype(np.float32)).view(n, 1, 1)
    cy = torch.from_numpy((at[:, 1] * height).astype(np.float32)).view(n, 1, 1)
    r = torch.from_numpy((radius * width).astype(np.float32)).view(n, 1, 1)
    glow = torch.exp(-((xs - cx) ** 2 + (ys - cy) ** 2) / (2.0 * r * r)) * torch.from_numpy(
        peak.astype(np.float32)).view(n, 1, 1)
    light = (glow + torch.from_numpy(haze.astype(np.float32)).view(n, 1, 1)).clamp_(0.0, 1.0)
    return light.view(n, 1, height, width, 1)
