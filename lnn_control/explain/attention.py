"""Attention robustness as numbers: how alike two saliency maps are, and where their mass falls.

- :func:`ssim`: structural similarity (Wang et al. 2004) of two maps in [0, 1] - Gaussian window
  sigma 1.5 px, constants ``C1 = (0.01)^2``, ``C2 = (0.03)^2`` for data range 1; 1 = identical.
  Used between the saliency of the clean and the corrupted version of the same frame.
- :func:`mass_share`: the share of a map's total mass inside a boolean mask (road pixels, sky,
  trunks); 0..1, NaN for an all-zero map.
- :func:`summarize`: means and per-frame lists of both over an episode.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

_C1 = 0.01**2
_C2 = 0.03**2


def _check_pair(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape or a.ndim != 2:
        raise ValueError(f"ssim needs two maps [H,W] of one shape, got {a.shape} and {b.shape}")
    return a, b


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Mean SSIM of two ``[H,W]`` maps with values in [0, 1]."""
    import cv2

    a, b = _check_pair(a, b)

    def blur(image: np.ndarray) -> np.ndarray:
        return cv2.GaussianBlur(image, (11, 11), 1.5, borderType=cv2.BORDER_REFLECT)

    mu_a, mu_b = blur(a), blur(b)
    var_a = blur(a * a) - mu_a**2
    var_b = blur(b * b) - mu_b**2
    cov = blur(a * b) - mu_a * mu_b
    numerator = (2 * mu_a * mu_b + _C1) * (2 * cov + _C2)
    denominator = (mu_a**2 + mu_b**2 + _C1) * (var_a + var_b + _C2)
    return float(np.mean(numerator / denominator))


def mass_share(saliency: np.ndarray, mask: np.ndarray) -> float:
    """Share of ``saliency``'s (non-negative ``[H,W]``) total inside ``mask`` (bool ``[H,W]``)."""
    saliency = np.asarray(saliency, np.float64)
    mask = np.asarray(mask, bool)
    if saliency.shape != mask.shape:
        raise ValueError(f"saliency {saliency.shape} and mask {mask.shape} must have the same shape")
    total = float(saliency.sum())
    return float(saliency[mask].sum() / total) if total > 0 else math.nan


def _mean(values: Sequence[float]) -> float | None:
    finite = [v for v in values if math.isfinite(v)]
    return float(np.mean(finite)) if finite else None


def summarize(
    maps: Mapping[str, np.ndarray],
    clean_maps: Mapping[str, np.ndarray] | None,
    masks: Mapping[str, np.ndarray] | None,
) -> dict[str, Any]:
    """Attention numbers of one episode, per saliency method.

    maps: method -> ``[T,H,W]`` normalised maps of the frames the policy saw (under the condition);
    clean_maps: the same for the clean twins of those frames (None when the condition is ``clean``);
    a frame whose map (or twin's map) is all zero gets no SSIM (``None``) and no mass share;
    masks: mask name -> ``[T,H,W]`` bool (None without privileged masks). Returns, per method,
    ``{"ssim_clean_vs_condition": mean, "mass_share": {mask: {"condition": mean, "clean": mean}},
    "per_frame": {...}}``, plus ``mask_area`` (mean share of pixels per mask) when masks are given.
    """
    out: dict[str, Any] = {}
    for method, frames in maps.items():
        entry: dict[str, Any] = {"per_frame": {}}
        if clean_maps is not None:
            # a blank map (vanished gradients) says nothing: no score rather than a perfect one
            scores = [ssim(a, b) if a.any() and b.any() else math.nan for a, b in zip(frames, clean_maps[method])]
            entry["ssim_clean_vs_condition"] = _mean(scores)
            entry["per_frame"]["ssim_clean_vs_condition"] = [None if not math.isfinite(s) else round(s, 5)
                                                             for s in scores]
        if masks:
            entry["mass_share"] = {}
            for name, mask in masks.items():
                shares = [mass_share(m, k) for m, k in zip(frames, mask)]
                share = {"condition": _mean(shares)}
                entry["per_frame"][f"mass_share_{name}"] = [None if not math.isfinite(s) else round(s, 5) for s in shares]
                if clean_maps is not None:
                    share["clean"] = _mean([mass_share(m, k) for m, k in zip(clean_maps[method], mask)])
                entry["mass_share"][name] = share
        out[method] = entry
    if masks:
        out["mask_area"] = {name: float(np.mean(mask)) for name, mask in masks.items()}
    return out
