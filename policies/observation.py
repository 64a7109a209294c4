"""Checks on what a streaming policy is given (NumPy only, no torch): observation dicts and dt.

Shared by the torch :class:`~lnn_control.policies.policy.Policy` and the torch-free
:class:`~lnn_control.export.onnx_policy.OnnxPolicy`, so both reject the same inputs with the
same messages.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from lnn_control.spec import ObservationSpec


def validate_observation(spec: ObservationSpec, observation: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """Check ``observation`` against ``spec``; return (contiguous uint8 image (H,W,3), float32 extras [E]).

    Raises ``ValueError`` naming the key for a missing key, a non-uint8 or wrongly shaped image,
    or an extra that is not a single finite number. Keys the spec does not name are ignored.
    """
    if not isinstance(observation, Mapping):
        raise ValueError(
            f"observation must be a dict with 'image' and {list(spec.extras)}, got {type(observation).__name__}"
        )
    missing = [key for key in ("image", *spec.extras) if key not in observation]
    if missing:
        raise ValueError(f"observation is missing {missing}; the policy needs 'image' and extras {list(spec.extras)}")
    image = observation["image"]
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8:
        found = getattr(image, "dtype", type(image).__name__)
        raise ValueError(f"observation['image'] must be a uint8 NumPy array (H,W,3), got {found}")
    if image.shape != tuple(spec.image_shape):
        raise ValueError(
            f"observation['image'] has shape {image.shape}; the policy expects {tuple(spec.image_shape)} (H,W,RGB)"
        )
    values = np.empty(len(spec.extras), dtype=np.float32)
    for i, name in enumerate(spec.extras):
        raw = observation[name]
        try:
            value = np.asarray(raw, dtype=np.float32)
        except (TypeError, ValueError):
            raise ValueError(f"observation[{name!r}] must be a number, got {raw!r}") from None
        if value.size != 1 or value.ndim > 1:
            raise ValueError(f"observation[{name!r}] must be a float32 array of shape (1,), got shape {value.shape}")
        if not np.isfinite(value).all():
            raise ValueError(f"observation[{name!r}] is {float(value.reshape(-1)[0])}; it must be finite")
        values[i] = value.reshape(-1)[0]
    return np.ascontiguousarray(image), values


def validate_dt_seconds(dt_seconds: Any) -> float:
    """Return ``dt_seconds`` as a float; ``ValueError`` unless it is a finite number > 0."""
    if isinstance(dt_seconds, bool) or not isinstance(dt_seconds, (int, float, np.integer, np.floating)):
        raise ValueError(f"dt_seconds must be a number of seconds, got {type(dt_seconds).__name__}")
    dt = float(dt_seconds)
    if not (math.isfinite(dt) and dt > 0):
        raise ValueError(f"dt_seconds must be finite and > 0 (measured seconds since the last step), got {dt}")
    return dt
