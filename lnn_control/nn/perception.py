"""Perception CNN: raw uint8 camera frames -> a small feature vector for the liquid core.

NCP-paper style conv stack (strided convolutions with ReLU, flatten, linear) sized for the
control loop: the default camera frame is **64 x 128 (height x width) RGB**, which the
envs use as their default too. Normalisation lives inside the model, so deployment code passes
camera frames exactly as they come (``uint8``, ``[H, W, 3]``, RGB).

Shapes: ``forward`` takes ``[B, H, W, 3]`` or ``[B, T, H, W, 3]`` uint8 and returns
``[B, features]`` or ``[B, T, features]`` float32.
"""

from __future__ import annotations

import enum
import math
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn
from torch.nn import functional

DEFAULT_IMAGE_HEIGHT = 64
DEFAULT_IMAGE_WIDTH = 128


class ImageNormalization(str, enum.Enum):
    """How pixel values are normalised inside the model.

    PER_IMAGE: per-frame, per-channel standardisation ``(x - mean) / sqrt(var + 1)`` in grey
        levels - insensitive to global brightness shifts and (nearly) to contrast, as in the NCP paper.
    FIXED: ``(pixel / 255 - mean) / std`` with the config's fixed per-channel mean and std.
    """

    PER_IMAGE = "per_image"
    FIXED = "fixed"


class FeatureNorm(str, enum.Enum):
    """What the linear head's ``F`` features pass through before they leave the CNN.

    NONE: the head's output as it is (unbounded).
    LAYER_TANH: layer normalisation over the ``F`` features of each frame (no learned affine: the
        core's input map is one), then ``tanh``: every feature stays in (-1, 1), the working range of
        the LTC's sensory synapses (``sigmoid(sigma * (x - mu))``, ``mu`` 0.3-0.8, ``sigma`` 3-8 at
        initialisation). Unbounded features drifted during training to a median |x| of 5-90 on the
        drone runs that stalled at the mean command, where those sigmoids are flat and pass neither
        the frame nor a gradient (README "Measured numbers", 2026-12-07).
    """

    NONE = "none"
    LAYER_TANH = "layer_tanh"


@dataclass(frozen=True)
class PerceptionConfig:
    """Architecture of the perception CNN.

    image_height / image_width: expected frame size in pixels (default 64 x 128).
    conv_channels / kernel_sizes / strides: one entry per conv layer; padding is kernel // 2.
    features: length of the output feature vector (32 sensory inputs for the NCP19 networks).
    normalization: see :class:`ImageNormalization`.
    feature_norm: see :class:`FeatureNorm`.
    mean / std: per-channel (R, G, B) values in [0, 1] units, used by ``FIXED`` normalisation.
    """

    image_height: int = DEFAULT_IMAGE_HEIGHT
    image_width: int = DEFAULT_IMAGE_WIDTH
    conv_channels: tuple[int, ...] = (16, 24, 32, 32, 32)
    kernel_sizes: tuple[int, ...] = (5, 3, 3, 3, 3)
    strides: tuple[int, ...] = (2, 2, 2, 1, 2)
    features: int = 32
    normalization: ImageNormalization = ImageNormalization.PER_IMAGE
    feature_norm: FeatureNorm = FeatureNorm.NONE
    mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    std: tuple[float, float, float] = (0.25, 0.25, 0.25)

    def __post_init__(self) -> None:
        for name in ("image_height", "image_width", "features"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"PerceptionConfig.{name} must be a positive integer, got {value!r}")
        layers = len(self.conv_channels)
        if layers == 0:
            raise ValueError("PerceptionConfig.conv_channels must list at least one conv layer")
        for name in ("kernel_sizes", "strides"):
            if len(getattr(self, name)) != layers:
                raise ValueError(
                    f"PerceptionConfig.{name} has {len(getattr(self, name))} entries but "
                    f"conv_channels has {layers}; give one per conv layer"
                )
        for name in ("conv_channels", "kernel_sizes", "strides"):
            for value in getattr(self, name):
                if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                    raise ValueError(f"PerceptionConfig.{name} entries must be positive integers, got {value!r}")
        if not isinstance(self.normalization, ImageNormalization):
            allowed = [m.value for m in ImageNormalization]
            raise ValueError(f"PerceptionConfig.normalization must be one of {allowed}, got {self.normalization!r}")
        if not isinstance(self.feature_norm, FeatureNorm):
            allowed = [m.value for m in FeatureNorm]
            raise ValueError(f"PerceptionConfig.feature_norm must be one of {allowed}, got {self.feature_norm!r}")
        if len(self.mean) != 3 or len(self.std) != 3:
            raise ValueError("PerceptionConfig.mean and .std need 3 values (R, G, B)")
        if any(not math.isfinite(float(v)) for v in (*self.mean, *self.std)):
            raise ValueError(f"PerceptionConfig.mean and .std must be finite, got {self.mean}, {self.std}")
        if any(not float(s) > 0 for s in self.std):
            raise ValueError(f"PerceptionConfig.std entries must be > 0, got {self.std}")

    def output_grid(self) -> tuple[int, int]:
        """Spatial size (rows, cols) of the last conv layer's output."""
        height, width = self.image_height, self.image_width
        for kernel, stride in zip(self.kernel_sizes, self.strides):
            pad = kernel // 2
            height = (height + 2 * pad - kernel) // stride + 1
            width = (width + 2 * pad - kernel) // stride + 1
        return height, width

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form (lists for tuples, the enum's value)."""
        data = asdict(self)
        for key, value in data.items():
            if isinstance(value, tuple):
                data[key] = list(value)
        data["normalization"] = self.normalization.value
        data["feature_norm"] = self.feature_norm.value
        return data


class PerceptionCNN(nn.Module):
    """Conv stack + linear head; uint8 HWC frames in, ``config.features`` floats out."""

    # per-channel normalisation buffers (registered in __init__; declared here for their type)
    _mean: torch.Tensor
    _inv_std: torch.Tensor

    def __init__(self, config: PerceptionConfig | None = None) -> None:
        super().__init__()
        self.config = config or PerceptionConfig()
        layers: list[nn.Module] = []
        in_channels = 3
        for out_channels, kernel, stride in zip(
            self.config.conv_channels, self.config.kernel_sizes, self.config.strides
        ):
            layers.append(nn.Conv2d(in_channels, out_channels, kernel, stride, padding=kernel // 2))
            layers.append(nn.ReLU())
            in_channels = out_channels
        self.convs = nn.Sequential(*layers)
        rows, cols = self.config.output_grid()
        self.head = nn.Linear(in_channels * rows * cols, self.config.features)
        self._init_convs()
        mean = torch.tensor(self.config.mean, dtype=torch.float32).view(1, 3, 1, 1)
        std = torch.tensor(self.config.std, dtype=torch.float32).view(1, 3, 1, 1)
        # Buffers, not parameters: fixed by the config and rebuilt from it, so not persisted.
        self.register_buffer("_mean", mean, persistent=False)
        self.register_buffer("_inv_std", 1.0 / std, persistent=False)

    def _init_convs(self) -> None:
        """He (fan-in, ReLU) initialisation of the conv weights, zero biases: each layer keeps the
        signal's variance, so a fresh network's features already vary with the image.

        PyTorch's default conv init shrinks the variance about 3x per ReLU layer; after these five
        layers a fresh CNN's 32 features varied by a standard deviation of 0.0025 across the frames
        of a drone episode (mean |feature| 0.017), against 0.20 with this init (seeds 0-4). The core
        then saw a nearly constant image and large velocity extras, and whether training ever made
        it look (rather than copy its velocity into its command) depended on the seed."""
        for layer in self.convs:
            if isinstance(layer, nn.Conv2d):
                nn.init.kaiming_normal_(layer.weight, mode="fan_in", nonlinearity="relu")
                nn.init.zeros_(layer.bias)  # type: ignore[arg-type]

    @property
    def features(self) -> int:
        return self.config.features

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """``[B,H,W,3]`` -> ``[B,F]`` or ``[B,T,H,W,3]`` -> ``[B,T,F]`` (uint8 in, float32 out)."""
        self.check_images(images)
        lead = images.shape[:-3]
        frames = images.reshape(-1, *images.shape[-3:])
        return self._encode(frames).reshape(*lead, self.config.features)

    def _encode(self, frames: torch.Tensor) -> torch.Tensor:
        batch, height, width, _ = frames.shape
        x = frames.permute(0, 3, 1, 2).to(torch.float32)
        if self.config.normalization is ImageNormalization.PER_IMAGE:
            # (x - mean) / sqrt(var + 1) per frame and channel, in grey levels; the +1 keeps a
            # uniform frame (lens cap, black screen) finite. layer_norm is the fast fused kernel.
            flat = x.reshape(batch, 3, height * width)
            x = functional.layer_norm(flat, (height * width,), eps=1.0).reshape(batch, 3, height, width)
        else:
            x = (x * (1.0 / 255.0) - self._mean) * self._inv_std
        # channels_last (NHWC) activations: the CPU's oneDNN convolutions run forward + backward
        # 1.3-2x faster on them (`lnn-control bench bcstep`, 2026-12-07). The weights stay in
        # the default layout (safetensors stores them as they are); flatten reads NCHW order, so
        # the head sees the same features either way, up to float rounding.
        x = self.convs(x.contiguous(memory_format=torch.channels_last))
        features = self.head(x.flatten(1))
        if self.config.feature_norm is FeatureNorm.LAYER_TANH:
            features = torch.tanh(functional.layer_norm(features, (self.config.features,)))
        return features

    def check_images(self, images: torch.Tensor) -> None:
        """Raise ``ValueError`` unless ``images`` is uint8 ``[..., H, W, 3]`` with 4 or 5 dims."""
        if not isinstance(images, torch.Tensor):
            raise ValueError(f"images must be a torch.Tensor of uint8, got {type(images).__name__}")
        if images.dtype != torch.uint8:
            raise ValueError(f"images must be uint8 camera frames (0..255), got dtype {images.dtype}")
        expected = (self.config.image_height, self.config.image_width, 3)
        if images.dim() not in (4, 5) or tuple(images.shape[-3:]) != expected:
            raise ValueError(
                f"images must have shape [B,{expected[0]},{expected[1]},3] or "
                f"[B,T,{expected[0]},{expected[1]},3] (height, width, RGB), got {tuple(images.shape)}"
            )
