"""Photometric image augmentation for training windows (NumPy, uint8 in and out).

One random transform per window, applied identically to all its frames, so the temporal
structure the liquid network learns from is preserved. Geometric transforms are left out on
purpose: shifting or rotating the camera image changes the correct steering.
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
    """

    brightness: float = 0.15
    contrast: float = 0.25
    channel_gain: float = 0.1
    noise_std: float = 0.03
    probability: float = 0.8

    def __post_init__(self) -> None:
        for name in ("brightness", "contrast", "channel_gain", "noise_std"):
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
    result = torch.randn(window.shape, generator=generator).mul_(column(noise_std)).add_(shift)
    result.addcmul_(window, scale)
    out[active] = result.clamp_(0, 255).to(torch.uint8).numpy()
    return out
