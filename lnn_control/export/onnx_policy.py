"""Run an exported single-step ONNX policy with onnxruntime and NumPy only (no torch import).

:class:`OnnxPolicy` has the streaming interface of :class:`~lnn_control.policies.policy.Policy`
(``reset()``, ``act(observation, dt_seconds)``, ``neuron_activity()``, ``observation_spec``,
``action_spec``), so the real-time loop can run either engine on a robot without torch.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from lnn_control.policies.observation import validate_dt_seconds, validate_observation
from lnn_control.spec import ActionSpec, ObservationSpec

ONNX_FORMAT = "lnn-control-onnx-step"  # metadata value marking a single-step policy export
ONNX_FORMAT_VERSION = 1


class OnnxPolicyError(ValueError):
    """An ONNX policy file is missing, corrupt, or not an lnn-control single-step export."""


class OnnxPolicy:
    """A streaming policy backed by an ONNX Runtime session (CPU, ``threads`` intra-op threads)."""

    def __init__(self, path: str | os.PathLike[str], threads: int = 1) -> None:
        import onnxruntime

        if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
            raise ValueError(f"threads must be an integer >= 1, got {threads!r}")
        self.path = Path(path)
        if not self.path.is_file():
            raise OnnxPolicyError(f"{self.path}: no such ONNX file; create one with 'lnn-control export'")
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        try:
            self._session = onnxruntime.InferenceSession(
                str(self.path), options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own exception types for bad files
            raise OnnxPolicyError(f"{self.path}: not a loadable ONNX model ({exc})") from None
        metadata = self._session.get_modelmeta().custom_metadata_map
        if metadata.get("lnn_control.format") != ONNX_FORMAT:
            raise OnnxPolicyError(f"{self.path}: not an lnn-control policy export (no '{ONNX_FORMAT}' metadata)")
        if metadata.get("lnn_control.format_version") != str(ONNX_FORMAT_VERSION):
            raise OnnxPolicyError(
                f"{self.path}: export format version {metadata.get('lnn_control.format_version')!r} "
                f"is not supported; this lnn-control reads version {ONNX_FORMAT_VERSION}"
            )
        try:
            config = json.loads(metadata["lnn_control.policy_config"])
            self.observation_spec = ObservationSpec.from_dict(config["observation_spec"])
            self.action_spec = ActionSpec.from_dict(config["action_spec"])
            self.control_rate_hz = float(config["control_rate_hz"])
            self.config: dict[str, Any] = config
            self._initial_state = np.asarray(
                json.loads(metadata["lnn_control.initial_state"]), dtype=np.float32
            ).reshape(1, -1)
            self.provenance: dict[str, Any] = json.loads(metadata.get("lnn_control.provenance", "{}"))
        except (KeyError, TypeError, ValueError) as exc:
            raise OnnxPolicyError(f"{self.path}: broken lnn-control metadata ({exc})") from None
        self._inputs = {item.name for item in self._session.get_inputs()}
        self._low = np.asarray(self.action_spec.low, dtype=np.float32)
        self._high = np.asarray(self.action_spec.high, dtype=np.float32)
        self._state = self._initial_state.copy()

    @property
    def state_size(self) -> int:
        return int(self._initial_state.shape[1])

    def reset(self) -> None:
        """Forget the recurrent state."""
        self._state = self._initial_state.copy()

    def act(self, observation: dict[str, Any], dt_seconds: float) -> np.ndarray:
        """One control step: observation dict -> action ``[A]`` float32 clipped to the action spec."""
        image, extras = validate_observation(self.observation_spec, observation)
        dt = validate_dt_seconds(dt_seconds)
        feeds = {
            "image": image[None],
            "extras": extras[None],
            "dt": np.array([dt], dtype=np.float32),
            "state": self._state,
        }
        action, next_state = self._session.run(None, {k: v for k, v in feeds.items() if k in self._inputs})
        self._state = next_state
        return np.clip(action[0], self._low, self._high).astype(np.float32, copy=False)

    def neuron_activity(self) -> np.ndarray:
        """The core's state after the last ``act`` (``[S]`` float32)."""
        return self._state[0].copy()
