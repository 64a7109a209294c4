"""Camera-image corruptions with severity 1..5, in the spirit of ImageNet-C (Hendrycks & Dietterich).

Every corruption is a pure function ``corrupt(image, severity, rng) -> image``:

- ``image``: ``uint8`` array ``(H, W, 3)``, RGB, any size (parameters that are lengths scale with
  the frame, so a 64×128 camera frame and a 480×640 one look alike).
- ``severity``: int in 1..5 (1 = mild, 5 = severe); the per-severity parameters are the tuples
  named ``*_BY_SEVERITY`` below, index ``severity - 1``.
- ``rng``: :class:`numpy.random.Generator`; the only source of randomness, so the same generator
  state gives the same output. JPEG, brightness and contrast draw nothing (deterministic).

The result is a new ``uint8`` array of the same shape; the input is never modified. Each one costs
well under a millisecond on a 64×128 frame (``lnn-control conditions --bench FILE`` measures it).
Written with NumPy/OpenCV rather than albumentations 2.0.8, whose RandomFog (≈ 18 ms) and
RandomSunFlare (≈ 4 ms) cost far more per 64×128 frame here and draw from their own RNG.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

SEVERITIES = (1, 2, 3, 4, 5)

CorruptionFn = Callable[[np.ndarray, int, np.random.Generator], np.ndarray]


def check_image(image: np.ndarray, name: str = "image") -> np.ndarray:
    """Validate a camera frame: ``uint8`` ``(H, W, 3)`` with H, W ≥ 8; returns it unchanged."""
    if not isinstance(image, np.ndarray):
        raise ValueError(f"{name} must be a numpy uint8 array of shape (H, W, 3), got {type(image).__name__}")
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"{name} must be uint8 of shape (H, W, 3), got {image.dtype} {image.shape}")
    if image.shape[0] < 8 or image.shape[1] < 8:
        raise ValueError(f"{name} must be at least 8×8 pixels, got {image.shape[:2]}")
    return image


def check_severity(severity: int) -> int:
    """Validate a severity: an int in 1..5."""
    if isinstance(severity, bool) or not isinstance(severity, (int, np.integer)) or not 1 <= severity <= 5:
        raise ValueError(f"severity must be an integer in 1..5, got {severity!r}")
    return int(severity)


def _to_uint8(x: np.ndarray) -> np.ndarray:
    return np.clip(x, 0.0, 255.0, out=x).astype(np.uint8)


# --- noise ---------------------------------------------------------------------------------------
#: Gaussian noise: standard deviation as a fraction of the 0..255 range.
NOISE_SIGMA_BY_SEVERITY = (0.04, 0.07, 0.10, 0.14, 0.20)


def gaussian_noise(image: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Additive white Gaussian noise, independent per pixel and channel (sensor read noise)."""
    sigma = 255.0 * NOISE_SIGMA_BY_SEVERITY[severity - 1]
    noise = rng.standard_normal(image.shape, dtype=np.float32)
    noise *= sigma
    noise += image
    return _to_uint8(noise)


#: Impulse (salt-and-pepper) noise: fraction of values replaced by 0 or 255.
IMPULSE_AMOUNT_BY_SEVERITY = (0.01, 0.025, 0.05, 0.09, 0.15)


def impulse_noise(image: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Salt-and-pepper noise: each channel value becomes 0 or 255 with the severity's probability."""
    amount = IMPULSE_AMOUNT_BY_SEVERITY[severity - 1]
    u = rng.random(image.shape, dtype=np.float32)
    out = image.copy()
    out[u < amount / 2] = 0
    out[(u >= amount / 2) & (u < amount)] = 255
    return out


# --- weather and light -----------------------------------------------------------------------------
#: Fog: peak opacity of the fog layer at the top of the frame (far away, near the horizon).
FOG_DENSITY_BY_SEVERITY = (0.30, 0.45, 0.60, 0.72, 0.85)
FOG_COLOR = np.array([205.0, 208.0, 212.0], np.float32)


def fog(image: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Fog: blend towards a grey-white veil, thicker near the horizon (top of a forward camera's
    frame, where things are far) and patchy (low-frequency noise, ±25 %)."""
    h, w = image.shape[:2]
    density = FOG_DENSITY_BY_SEVERITY[severity - 1]
    patches = rng.random((4, 8), dtype=np.float32)
    patches = np.asarray(cv2.resize(patches, (w, h), interpolation=cv2.INTER_CUBIC), np.float32)
    # depth proxy: 1 at the top row, 0.45 at the bottom row
    depth = np.linspace(1.0, 0.45, h, dtype=np.float32)[:, None]
    alpha = np.clip(density * depth * (0.75 + 0.5 * patches), 0.0, 0.97)[:, :, None]
    out = image.astype(np.float32)
    out += alpha * (FOG_COLOR - out)
    return _to_uint8(out)


#: Rain: (streaks per 1000 px, streak length as a fraction of the frame height, streak brightness
#: added (0..255), darkening factor, lens blur sigma in px at 128 px width, lens droplets).
RAIN_BY_SEVERITY = (
    (1.5, 0.10, 70.0, 0.92, 0.0, 0),
    (3.0, 0.13, 85.0, 0.85, 0.5, 1),
    (5.0, 0.16, 100.0, 0.78, 0.8, 2),
    (8.0, 0.20, 115.0, 0.70, 1.1, 4),
    (12.0, 0.24, 130.0, 0.62, 1.5, 6),
)


def _line_kernel(length: int, angle_deg: float) -> np.ndarray:
    """A normalised line kernel of ``length`` px at ``angle_deg`` (0 = horizontal)."""
    length = max(int(length), 1)
    size = length if length % 2 == 1 else length + 1
    kernel = np.zeros((size, size), np.float32)
    c = size // 2
    dx = np.cos(np.deg2rad(angle_deg)) * (length - 1) / 2.0
    dy = np.sin(np.deg2rad(angle_deg)) * (length - 1) / 2.0
    p0 = (int(round(c - dx)), int(round(c - dy)))
    p1 = (int(round(c + dx)), int(round(c + dy)))
    cv2.line(kernel, p0, p1, 1.0, 1)
    return kernel / kernel.sum()


def rain(image: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Rain: darker, flatter light; bright slanted streaks (sparse drops smeared by a line
    kernel, one wind angle per frame); a wet, slightly blurred lens; from severity 2 on, a few
    water droplets on the lens that show a strongly blurred view."""
    per_kpx, length_frac, brightness, dark, blur_sigma, droplets = RAIN_BY_SEVERITY[severity - 1]
    h, w = image.shape[:2]
    scale = w / 128.0
    out = image.astype(np.float32)
    if blur_sigma > 0:
        out = np.asarray(cv2.GaussianBlur(out, (0, 0), blur_sigma * scale), np.float32)
    out = out * dark + (1.0 - dark) * 40.0  # darker and lower contrast (overcast)

    drops = (rng.random((h, w), dtype=np.float32) < per_kpx / 1000.0).astype(np.float32)
    angle = 90.0 + rng.uniform(-20.0, 20.0)  # near-vertical
    length = max(3, int(round(length_frac * h)))
    streaks = cv2.filter2D(drops, -1, _line_kernel(length, angle) * length, borderType=cv2.BORDER_CONSTANT)
    np.minimum(streaks, 1.0, out=streaks)
    out += (brightness * streaks)[:, :, None] * (1.0 - out / 320.0)

    if droplets:
        heavy = cv2.blur(out, (max(3, int(7 * scale)) | 1,) * 2)
        mask = np.zeros((h, w), np.float32)
        radius_px = 0.07 * h
        for _ in range(droplets):
            cx, cy = int(rng.integers(0, w)), int(rng.integers(0, h))
            r = max(2, int(round(radius_px * rng.uniform(0.7, 1.4))))
            cv2.circle(mask, (cx, cy), r, 1.0, -1)
        mask = mask[:, :, None]
        out = out * (1.0 - mask) + (heavy * 1.08 + 6.0) * mask
    return _to_uint8(out)


#: Night / low light: (brightness gain, gamma, noise sigma as a fraction of 0..255).
NIGHT_BY_SEVERITY = (
    (0.60, 1.15, 0.010),
    (0.45, 1.30, 0.020),
    (0.33, 1.50, 0.030),
    (0.23, 1.70, 0.040),
    (0.15, 1.90, 0.050),
)
#: Moonlight colour cast (R, G, B gains).
NIGHT_TINT = np.array([0.85, 0.93, 1.0], np.float32)


def _night_lut(severity: int) -> np.ndarray:
    gain, gamma, _ = NIGHT_BY_SEVERITY[severity - 1]
    x = np.arange(256, dtype=np.float32) / 255.0
    return (255.0 * gain * x**gamma).astype(np.float32)


_NIGHT_LUTS = {s: _night_lut(s) for s in SEVERITIES}


def night(image: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Night / low light: gamma darkening, a bluish cast and the amplified sensor noise of a
    camera at high gain."""
    sigma = 255.0 * NIGHT_BY_SEVERITY[severity - 1][2]
    out = _NIGHT_LUTS[severity][image]
    out *= NIGHT_TINT
    noise = rng.standard_normal(image.shape[:2], dtype=np.float32)  # luminance noise
    noise *= sigma
    out += noise[:, :, None]
    return _to_uint8(out)


#: Glare: (flare intensity 0..1, flare radius as a fraction of the frame width, veil 0..1).
GLARE_BY_SEVERITY = (
    (0.45, 0.10, 0.05),
    (0.60, 0.13, 0.10),
    (0.75, 0.16, 0.16),
    (0.88, 0.20, 0.23),
    (1.00, 0.25, 0.32),
)


def glare(image: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Glare: a bright sun flare in the upper part of the frame (screen-blended Gaussian glow),
    lens ghosts along the line through the frame centre, and a veil that washes out contrast."""
    intensity, radius_frac, veil = GLARE_BY_SEVERITY[severity - 1]
    h, w = image.shape[:2]
    sx, sy = rng.uniform(0.1, 0.9) * w, rng.uniform(0.0, 0.45) * h
    r = radius_frac * w
    ys = ((np.arange(h, dtype=np.float32) - sy) ** 2)[:, None]
    xs = ((np.arange(w, dtype=np.float32) - sx) ** 2)[None, :]
    glow = intensity * np.exp(-(xs + ys) / (2.0 * r * r))
    ghosts = np.zeros((h, w), np.float32)
    cx, cy = w / 2.0, h / 2.0
    for t, size, strength in ((0.6, 0.35, 0.25), (1.3, 0.5, 0.2), (1.8, 0.25, 0.3)):
        gx, gy = sx + t * (cx - sx), sy + t * (cy - sy)
        cv2.circle(ghosts, (int(round(gx)), int(round(gy))), max(1, int(round(size * r))), strength, -1)
    ghosts = np.asarray(cv2.GaussianBlur(ghosts, (0, 0), max(0.8, 0.08 * r)), np.float32)
    light = np.clip(glow + intensity * ghosts + veil, 0.0, 1.0)[:, :, None]
    out = image.astype(np.float32)
    out += light * (np.array([255.0, 250.0, 235.0], np.float32) - out)  # screen-like, warm white
    return _to_uint8(out)


# --- optics ----------------------------------------------------------------------------------------
#: Motion blur: kernel length as a fraction of the frame width (3.2 … 14 px at 128 px).
MOTION_BLUR_BY_SEVERITY = (0.025, 0.04, 0.06, 0.08, 0.11)


def motion_blur(image: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Motion blur: a line kernel at a random angle within ±45° of horizontal (camera shake and
    yaw while turning)."""
    length = max(2, int(round(MOTION_BLUR_BY_SEVERITY[severity - 1] * image.shape[1])))
    kernel = _line_kernel(length, rng.uniform(-45.0, 45.0))
    return cv2.filter2D(image, -1, kernel, borderType=cv2.BORDER_REFLECT)


#: Lens occlusion: (number of blobs, blob radius as a fraction of the frame height, opacity).
OCCLUSION_BY_SEVERITY = (
    (1, 0.16, 0.75),
    (2, 0.18, 0.80),
    (3, 0.21, 0.85),
    (4, 0.24, 0.90),
    (6, 0.26, 0.95),
)
DIRT_COLOR = np.array([58.0, 50.0, 42.0], np.float32)


def occlusion(image: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Lens occlusion: out-of-focus blobs of dirt/mud on the lens (random ellipses with soft
    edges), mostly opaque. The wrapper keeps them fixed during an episode."""
    count, radius_frac, opacity = OCCLUSION_BY_SEVERITY[severity - 1]
    h, w = image.shape[:2]
    mask = np.zeros((h, w), np.float32)
    for _ in range(count):
        center = (int(rng.integers(0, w)), int(rng.integers(0, h)))
        a = max(2, int(round(radius_frac * h * rng.uniform(0.8, 1.3))))
        b = max(2, int(round(a * rng.uniform(0.5, 1.0))))
        cv2.ellipse(mask, center, (a, b), float(rng.uniform(0, 180)), 0, 360, 1.0, -1)
    mask = cv2.GaussianBlur(mask, (0, 0), max(0.8, 0.04 * h)) * opacity
    out = image.astype(np.float32)
    out += mask[:, :, None] * (DIRT_COLOR - out)
    return _to_uint8(out)


#: JPEG compression quality (OpenCV ``IMWRITE_JPEG_QUALITY``), lower = more artefacts.
JPEG_QUALITY_BY_SEVERITY = (30, 20, 14, 9, 5)


def jpeg(image: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """JPEG artefacts: encode and decode at the severity's quality (blocking, ringing, chroma
    bleeding). Deterministic: ``rng`` is not used."""
    quality = JPEG_QUALITY_BY_SEVERITY[severity - 1]
    bgr = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    ok, data = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:  # pragma: no cover - OpenCV always encodes a valid uint8 image
        raise RuntimeError("OpenCV failed to JPEG-encode the frame")
    decoded = cv2.imdecode(data, cv2.IMREAD_COLOR)
    if decoded is None:  # pragma: no cover - OpenCV decodes what it just encoded
        raise RuntimeError("OpenCV failed to decode its own JPEG frame")
    return cv2.cvtColor(decoded, cv2.COLOR_BGR2RGB)


# --- colour and exposure -------------------------------------------------------------------------
#: Season shift: fraction of the way foliage hue moves from green to autumn orange, saturation gain.
SEASON_BY_SEVERITY = ((0.25, 1.0), (0.45, 1.05), (0.65, 1.1), (0.85, 1.15), (1.0, 1.2))


def season(image: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Season / colour shift: green foliage and grass turn yellow → orange → brown (autumn),
    weighted by how green and saturated a pixel is, so grey road and blue sky stay. The target hue
    is drawn per call (orange to yellow); the wrapper keeps it fixed during an episode."""
    amount, sat_gain = SEASON_BY_SEVERITY[severity - 1]
    target = rng.uniform(8.0, 22.0)  # OpenCV hue units (0..180): orange .. yellow
    hsv = cv2.cvtColor(image, cv2.COLOR_RGB2HSV).astype(np.float32)
    hue, sat = hsv[:, :, 0], hsv[:, :, 1]
    # green band ≈ 30..95 (OpenCV units), soft edges, ignoring unsaturated (grey) pixels
    greenness = np.clip(1.0 - np.abs(hue - 62.0) / 33.0, 0.0, 1.0) * np.clip(sat / 60.0, 0.0, 1.0)
    weight = amount * greenness
    hsv[:, :, 0] = hue + weight * (target - hue)
    hsv[:, :, 1] = np.minimum(sat * (1.0 + weight * (sat_gain - 1.0)), 255.0)
    return cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2RGB)


#: Brightness: fraction of the remaining headroom added (over-exposure).
BRIGHTNESS_BY_SEVERITY = (0.12, 0.24, 0.36, 0.50, 0.65)
_BRIGHTNESS_LUTS = {
    s: np.clip(np.arange(256) + BRIGHTNESS_BY_SEVERITY[s - 1] * (255 - np.arange(256)), 0, 255)
    .round()
    .astype(np.uint8)
    for s in SEVERITIES
}


def brightness(image: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Over-exposure: each value moves the severity's fraction towards 255. Deterministic."""
    return _BRIGHTNESS_LUTS[severity][image]


#: Contrast: factor applied to deviations from the frame's mean.
CONTRAST_BY_SEVERITY = (0.65, 0.50, 0.38, 0.27, 0.17)


def contrast(image: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Low contrast (haze, cheap sensor): ``mean + c·(x − mean)`` per channel. Deterministic."""
    c = CONTRAST_BY_SEVERITY[severity - 1]
    mean = np.array(cv2.mean(image)[:3], np.float32)
    lut = np.arange(256, dtype=np.float32)[:, None] * c + (1.0 - c) * mean  # (256, 3): one table per channel
    return cv2.LUT(image, np.clip(np.rint(lut), 0, 255).astype(np.uint8).reshape(1, 256, 3))


@dataclass(frozen=True)
class Corruption:
    """One image corruption: its function, what it does, and how its randomness behaves.

    ``per_episode``: the random draws (blob positions, sun position, season hue) model something
    that does not change from frame to frame; the wrapper re-uses one draw for a whole episode.
    ``stochastic``: False when the function ignores ``rng`` (same output for every generator).
    """

    name: str
    function: CorruptionFn
    summary: str
    per_episode: bool = False
    stochastic: bool = True

    def __call__(self, image: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
        check_image(image)
        return self.function(np.ascontiguousarray(image), check_severity(severity), rng)


CORRUPTIONS: dict[str, Corruption] = {
    c.name: c
    for c in (
        Corruption("rain", rain, "rain streaks, wet blurred lens with droplets, darker light"),
        Corruption("fog", fog, "grey-white veil, thicker towards the horizon, patchy"),
        Corruption("night", night, "low light: gamma darkening, blue cast, high-gain sensor noise"),
        Corruption("glare", glare, "sun flare with lens ghosts and a contrast-washing veil", per_episode=True),
        Corruption("noise", gaussian_noise, "additive Gaussian sensor noise"),
        Corruption("impulse", impulse_noise, "salt-and-pepper (impulse) noise"),
        Corruption("blur", motion_blur, "motion blur at a random angle"),
        Corruption("occlusion", occlusion, "dirt blobs on the lens", per_episode=True),
        Corruption("jpeg", jpeg, "JPEG compression artefacts", stochastic=False),
        Corruption("season", season, "autumn colour shift of foliage and grass", per_episode=True),
        Corruption("brightness", brightness, "over-exposure", stochastic=False),
        Corruption("contrast", contrast, "low contrast", stochastic=False),
    )
}


def corrupt(image: np.ndarray, name: str, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Apply the corruption called ``name`` (see :data:`CORRUPTIONS`) at ``severity`` 1..5."""
    if name not in CORRUPTIONS:
        raise ValueError(f"unknown image corruption {name!r}; allowed: {', '.join(CORRUPTIONS)}")
    return CORRUPTIONS[name](image, severity, rng)
