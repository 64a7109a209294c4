"""Photometric image augmentation for training windows (NumPy, uint8 in and out).

One random transform per window, applied identically to all its frames, so the temporal
structure the liquid network learns from is preserved. Geometric transforms are left out on
purpose: shifting or rotating the camera image changes the correct steering.

Besides brightness, contrast, colour cast and sensor noise (on by default), two light effects
that recipes switch on for robustness to lighting they never collected: ``glow`` (a soft bright
light at a random place and size, screen-blended towards white) and ``haze`` (a uniform veil
towards white). Neither is one of the evaluation conditions of :mod:`lnn_control.envs.wrappers`
(glare adds lens ghosts, keeps the sun in the upper frame and scales all three with severity), but
they are of the same family as ``glare`` and ``fog``. Two lens effects of the ``rain`` family, again
not the condition itself: ``blur`` (a Gaussian defocus of random width per window) and ``lines``
(generic clutter: thin lines at one random orientation per window, all brighter or all darker, new
ones every frame; rain's are near-vertical and bright, and rain also darkens and wets the lens). The bundle's provenance keeps the launch file text (with its
``train.augment``) next to the collected training conditions.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch

#: Largest ``AugmentConfig.blur`` (px): at 64×128 a sigma of 3 px already hides the lane lines' edges.
MAX_BLUR_SIGMA = 3.0
#: The ``lines`` augmentation: density range (lines per pixel), length range (fraction of the
#: height) and strength (how far a pixel on a line moves towards white or black, as a fraction).
LINE_DENSITY = (0.002, 0.012)
LINE_LENGTH = (0.06, 0.24)
LINE_STRENGTH = (0.25, 0.5)


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
    blur: max Gaussian blur sigma in pixels (0-3), drawn per augmented window (before the noise).
    lines: chance that an augmented window also gets thin lines: 2-12 per 1000 px, 6-24 % of the
        frame height long, one orientation (any) and one sign per window: a pixel on a line moves
        25-50 % of the way to white (brighter) or to black (darker), new lines every frame.
    ``blur`` and ``lines`` draw their random numbers only when on and after all the others: a
    recipe without them augments exactly as before they existed (the same seed, the same windows;
    pinned in the tests).
    """

    brightness: float = 0.15
    contrast: float = 0.25
    channel_gain: float = 0.1
    noise_std: float = 0.03
    probability: float = 0.8
    glow: float = 0.0
    haze: float = 0.0
    blur: float = 0.0
    lines: float = 0.0

    def __post_init__(self) -> None:
        for name in ("brightness", "contrast", "channel_gain", "noise_std", "glow", "haze", "lines"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"AugmentConfig.{name} must be in [0, 1], got {value}")
        if not 0.0 <= self.blur <= MAX_BLUR_SIGMA:
            raise ValueError(f"AugmentConfig.blur is a Gaussian sigma in pixels in [0, {MAX_BLUR_SIGMA}], got {self.blur}")
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
    # drawn only when asked for, after everything above: recipes without them keep their windows
    blur = np.asarray(rng.uniform(0.0, config.blur, b)) if config.blur > 0 else np.zeros(b)
    lined = np.asarray(rng.random(b) < config.lines) if config.lines > 0 else np.zeros(b, bool)
    line_seed = int(rng.integers(0, 2**63 - 1)) if config.lines > 0 else 0
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
    if config.blur > 0:
        result = _gaussian_blur(result, blur[active])
    if config.lines > 0:
        line_rng = np.random.default_rng(line_seed)
        for lined_row in np.flatnonzero(lined[active]).tolist():
            result[lined_row] = _add_lines(result[lined_row], line_rng)
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


def _gaussian_blur(windows: torch.Tensor, sigma: np.ndarray) -> torch.Tensor:
    """``windows`` float [n,T,H,W,3], window k blurred by a Gaussian of ``sigma[k]`` px (edges
    replicated; OpenCV per frame, in place: about 20 µs a frame)."""
    frames = windows.numpy()  # shares memory with ``windows``
    for k, width in enumerate(sigma.tolist()):
        if width < 0.2:  # under a fifth of a pixel the kernel is a delta
            continue
        for t in range(frames.shape[1]):
            frames[k, t] = cv2.GaussianBlur(frames[k, t], (0, 0), width, borderType=cv2.BORDER_REPLICATE)
    return windows


def _add_lines(frames: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    """``frames`` float [T,H,W,3] with thin lines: sparse seeds smeared along one line kernel per
    window (random orientation), fresh seeds per frame, all brighter or all darker."""
    t, h, w, _ = frames.shape
    density = rng.uniform(*LINE_DENSITY)
    length = max(3, int(round(rng.uniform(*LINE_LENGTH) * h)))
    angle = rng.uniform(0.0, np.pi)
    strength = rng.uniform(*LINE_STRENGTH) * (1.0 if rng.random() < 0.5 else -1.0)
    size = length if length % 2 == 1 else length + 1
    kernel = torch.zeros(size, size)
    along = np.linspace(-(length - 1) / 2.0, (length - 1) / 2.0, 2 * length)
    rows = np.clip(np.round(size // 2 + along * np.sin(angle)).astype(int), 0, size - 1)
    cols = np.clip(np.round(size // 2 + along * np.cos(angle)).astype(int), 0, size - 1)
    kernel[rows, cols] = 1.0
    seeds = torch.from_numpy((rng.random((t, 1, h, w)) < density).astype(np.float32))
    lines = torch.nn.functional.conv2d(seeds, kernel.view(1, 1, size, size), padding=size // 2).clamp_(0.0, 1.0)
    lines = lines.view(t, h, w, 1)
    headroom = (255.0 - frames) if strength > 0 else frames  # towards white, or towards black
    return frames + strength * lines * headroom
