"""The demo's saliency inset: VisualBackProp of the onboard frame blended over it (``demo --saliency``).

VisualBackProp reads the perception CNN only - one batch-1 CNN pass with activations kept, ~1-2 ms
on these CPUs - so it keeps up with the demo at its control rate for every core type.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from lnn_control.explain.figures import overlay
from lnn_control.explain.saliency import visual_backprop


def saliency_inset(policy: Any, frame: np.ndarray) -> np.ndarray:
    """uint8 RGB ``[H,W,3]``: ``frame`` (the camera image the policy reads) with its VisualBackProp map."""
    return overlay(frame, visual_backprop(policy, frame)[0], scale=1)
