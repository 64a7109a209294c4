"""Policy = perception CNN + recurrent core (liquid or baseline) + output scaling to the action space.

Two ways to run it:

- training: ``policy(images[B,T,H,W,3] uint8, extras[B,T,E], dt_seconds[B,T], state=None)``
  -> ``(actions[B,T,A] in action units, state[B,S])``, differentiable;
- streaming: ``reset()``, then ``act(observation, dt_seconds) -> np.ndarray[A] float32`` once per
  control period (no grad, NumPy in and out), ``neuron_activity()`` for overlays.

Time: the cores take elapsed time in nominal control periods (1.0 = one step at
``control_rate_hz``), so both paths pass ``dt_seconds * control_rate_hz`` - the **measured**
elapsed time, which liquid networks use. Output scaling: the core's outputs ``y`` get a learned
per-component gain and bias, then ``tanh`` maps them onto ``[low, high]`` (or, with
``OutputSquash.CLIP``, an affine map with a hard clamp).
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from lnn_control.nn.contract import RecurrentCore
from lnn_control.nn.perception import PerceptionCNN, PerceptionConfig
from lnn_control.policies.observation import validate_dt_seconds, validate_observation
from lnn_control.registry import LazyRegistry
from lnn_control.spec import ActionSpec, ObservationSpec

# Core type -> (module, class) of a compiled batch-1 stepper for ``act``: ``Class.from_module(core)``,
# a settable ``state`` [S] and ``step(x[F], dt) -> y[O]``; results agree with ``core.step`` (tested).
COMPILED_STEPPERS = LazyRegistry("compiled stepper", {
    "ltc": "lnn_control.nn.ltc_stepper:LTCStepper",
    "cfc": "lnn_control.nn.cfc_stepper:CfCStepper",
})


@dataclass
class _Stream:
    """Streaming state of ``Policy.act`` (a plain object: attribute writes stay cheap in the hot path)."""

    state: torch.Tensor | None = None  # [1, S], the core's state after the last step
    stepper: Any | None = None  # compiled stepper, if the core type has one
    params: tuple[torch.Tensor, ...] = ()  # the core parameters the stepper was built from
    versions: tuple[int, ...] = ()  # their version counters at that time
    synced: bool = False  # True while the stepper's own state equals ``state``


class OutputSquash(str, enum.Enum):
    """How core outputs map onto the action range ``[low, high]``.

    TANH: ``low + (tanh(z) + 1) / 2 * (high - low)`` - smooth, never leaves the range.
    CLIP: ``mid + z * (high - low) / 2`` clamped to the range - linear inside it.
    """

    TANH = "tanh"
    CLIP = "clip"


@dataclass(frozen=True)
class PolicyConfig:
    """Everything needed to rebuild a policy's architecture (not its weights).

    perception: the CNN; its image size must equal ``observation_spec.image_shape[:2]``.
    core: the recurrent core's ``config()`` dict (``build_core`` rebuilds it); its input size is
        ``perception.features + len(observation_spec.extras)``, its output size the action size.
    observation_spec / action_spec: what the policy reads and writes, with units and limits.
    control_rate_hz: nominal control rate; one nominal step of the core is ``1 / control_rate_hz`` s.
    output_squash: see :class:`OutputSquash`.
    extras_scale: one multiplier per extra, applied before the core so extras reach it at about
        unit scale (e.g. 0.5 for a speed up to 2 m/s); empty means 1 for every extra.
    """

    perception: PerceptionConfig
    core: dict[str, Any]
    observation_spec: ObservationSpec
    action_spec: ActionSpec
    control_rate_hz: float
    output_squash: OutputSquash = OutputSquash.TANH
    extras_scale: tuple[float, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        rate = self.control_rate_hz
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not math.isfinite(rate) or rate <= 0:
            raise ValueError(f"PolicyConfig.control_rate_hz must be a finite number > 0 (Hz), got {rate!r}")
        height, width, _ = self.observation_spec.image_shape
        if (height, width) != (self.perception.image_height, self.perception.image_width):
            raise ValueError(
                f"PolicyConfig: observation_spec.image_shape {tuple(self.observation_spec.image_shape)} "
                f"does not match the perception input {self.perception.image_height}x"
                f"{self.perception.image_width}; make them equal"
            )
        if not isinstance(self.core, Mapping) or not isinstance(self.core.get("type"), str):
            raise ValueError("PolicyConfig.core must be a core config dict with a string 'type'")
        if not isinstance(self.output_squash, OutputSquash):
            allowed = [m.value for m in OutputSquash]
            raise ValueError(f"PolicyConfig.output_squash must be one of {allowed}, got {self.output_squash!r}")
        extras = len(self.observation_spec.extras)
        if self.extras_scale and len(self.extras_scale) != extras:
            raise ValueError(
                f"PolicyConfig.extras_scale has {len(self.extras_scale)} entries but observation_spec "
                f"has {extras} extras {self.observation_spec.extras}; give one per extra or none"
            )
        if any(not (math.isfinite(float(s)) and float(s) != 0.0) for s in self.extras_scale):
            raise ValueError(f"PolicyConfig.extras_scale entries must be finite and non-zero, got {self.extras_scale}")

    @property
    def core_input_size(self) -> int:
        """Features fed to the core each step: CNN features, then the scaled extras."""
        return self.perception.features + len(self.observation_spec.extras)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form; ``load_dataclass(PolicyConfig, d)`` reads it back."""
        return {
            "perception": self.perception.to_dict(),
            "core": dict(self.core),
            "observation_spec": self.observation_spec.to_dict(),
            "action_spec": self.action_spec.to_dict(),
            "control_rate_hz": float(self.control_rate_hz),
            "output_squash": self.output_squash.value,
            "extras_scale": [float(s) for s in self.extras_scale],
        }


def build_core(config: Mapping[str, Any]) -> nn.Module:
    """Rebuild a recurrent core (liquid or baseline) from its ``config()`` dict via the core registry."""
    from lnn_control.nn.cores import build_core as registry_build_core

    return registry_build_core(dict(config))


class Policy(nn.Module):
    """Perception + core + output scaling; see the module docstring for the two ways to run it."""

    core: RecurrentCore  # an nn.Module (a registered submodule) that follows the core contract
    # output range, fixed by the config (buffers registered in __init__; declared here for their type)
    action_low: torch.Tensor
    action_high: torch.Tensor
    extras_scale: torch.Tensor

    def __init__(self, config: PolicyConfig, core: RecurrentCore | None = None) -> None:
        super().__init__()
        if not isinstance(config, PolicyConfig):
            raise ValueError(f"config must be a PolicyConfig, got {type(config).__name__}")
        self.config = config
        self.perception = PerceptionCNN(config.perception)
        built = build_core(config.core) if core is None else core
        if not isinstance(built, RecurrentCore):
            raise ValueError(
                f"Policy: core {type(built).__name__} does not follow the recurrent-core contract "
                "(lnn_control.nn.contract.RecurrentCore); build it with lnn_control.nn.cores.build_core"
            )
        if core is not None and built.config() != dict(config.core):
            raise ValueError(
                "Policy: the core passed in does not match config.core; build the config from core.config()"
            )
        self.core = built
        actions = config.action_spec.size
        if built.input_size != config.core_input_size:
            raise ValueError(
                f"Policy: core input_size is {built.input_size} but perception features "
                f"({config.perception.features}) + extras ({len(config.observation_spec.extras)}) = "
                f"{config.core_input_size}; build the core with input_size={config.core_input_size}"
            )
        if built.output_size != actions:
            raise ValueError(
                f"Policy: core output_size is {built.output_size} but the action spec has {actions} "
                f"components {config.action_spec.names}; give the core {actions} outputs (motor neurons)"
            )
        self.output_gain = nn.Parameter(torch.ones(actions))
        self.output_bias = nn.Parameter(torch.zeros(actions))
        low = torch.tensor(config.action_spec.low, dtype=torch.float32)
        high = torch.tensor(config.action_spec.high, dtype=torch.float32)
        scale = config.extras_scale or (1.0,) * len(config.observation_spec.extras)
        # Fixed by the config, rebuilt from it: not persisted in the weights file.
        self.register_buffer("action_low", low, persistent=False)
        self.register_buffer("action_high", high, persistent=False)
        self.register_buffer("extras_scale", torch.tensor(scale, dtype=torch.float32), persistent=False)
        self._low_np = np.asarray(config.action_spec.low, dtype=np.float32)
        self._high_np = np.asarray(config.action_spec.high, dtype=np.float32)
        # Streaming fast path (see COMPILED_STEPPERS); set False to step the torch core instead.
        self.use_compiled_stepper = True
        self._stream = _Stream()
        self.provenance: dict[str, Any] = {}  # filled by load_policy from the bundle

    # ----------------------------------------------------------------- specs
    @property
    def observation_spec(self) -> ObservationSpec:
        return self.config.observation_spec

    @property
    def action_spec(self) -> ActionSpec:
        return self.config.action_spec

    @property
    def state_size(self) -> int:
        return int(self.core.state_size)

    # -------------------------------------------------------------- training
    def forward(
        self,
        images: torch.Tensor,
        extras: torch.Tensor | None,
        dt_seconds: float | torch.Tensor,
        state: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``images[B,T,H,W,3]`` uint8, ``extras[B,T,E]``, ``dt_seconds`` (float, ``[B]`` or ``[B,T]``)
        -> ``(actions[B,T,A], state[B,S])``."""
        core_output, state, _ = self.core_pass(images, extras, dt_seconds, state)
        return self.squash(core_output), state

    def core_pass(
        self,
        images: torch.Tensor,
        extras: torch.Tensor | None,
        dt_seconds: float | torch.Tensor,
        state: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Perception and core without the output layer: ``(core_output[B,T,A], state[B,S],
        core_input[B,T,F+E])``; :meth:`squash` of ``core_output`` is :meth:`forward`'s actions, and
        ``core_input`` (the CNN features, then the scaled extras) is what the core saw, for training
        losses on the features themselves."""
        if not isinstance(images, torch.Tensor) or images.dim() != 5:
            raise ValueError(
                f"images must be a uint8 tensor [B,T,H,W,3], got shape {tuple(getattr(images, 'shape', ()))}"
            )
        batch, steps = images.shape[0], images.shape[1]
        features = self.perception(images)
        x = torch.cat([features, self._check_extras(extras, batch, steps)], dim=-1)
        core_output, state = self.core(x, state, dt=self._core_dt(dt_seconds))
        return core_output, state, x

    def _check_extras(self, extras: torch.Tensor | None, batch: int, steps: int) -> torch.Tensor:
        count = len(self.config.observation_spec.extras)
        if extras is None:
            if count:
                raise ValueError(
                    f"extras [B,T,{count}] are required for {self.config.observation_spec.extras}, got None"
                )
            return torch.zeros(batch, steps, 0, device=self.output_gain.device)
        if not isinstance(extras, torch.Tensor) or not extras.is_floating_point():
            raise ValueError(f"extras must be a float tensor [B,T,E], got {getattr(extras, 'dtype', type(extras))}")
        if tuple(extras.shape) != (batch, steps, count):
            raise ValueError(
                f"extras must have shape [B,T,E] = [{batch},{steps},{count}] "
                f"({self.config.observation_spec.extras}), got {tuple(extras.shape)}"
            )
        return extras.to(torch.float32) * self.extras_scale

    def _core_dt(self, dt_seconds: float | torch.Tensor) -> float | torch.Tensor:
        rate = float(self.config.control_rate_hz)
        if isinstance(dt_seconds, torch.Tensor):
            return dt_seconds.to(torch.float32) * rate
        if isinstance(dt_seconds, bool) or not isinstance(dt_seconds, (int, float)):
            raise ValueError(f"dt_seconds must be a float or a tensor, got {type(dt_seconds).__name__}")
        return float(dt_seconds) * rate

    def squash(self, y: torch.Tensor) -> torch.Tensor:
        """Core outputs ``[..., A]`` -> actions in ``[low, high]`` (action units)."""
        z = y * self.output_gain + self.output_bias
        low, high = self.action_low, self.action_high
        if self.config.output_squash is OutputSquash.TANH:
            return low + (torch.tanh(z) + 1.0) * (0.5 * (high - low))
        mid = 0.5 * (low + high)
        return torch.minimum(torch.maximum(mid + z * (0.5 * (high - low)), low), high)

    # ------------------------------------------------------------- streaming
    def reset(self) -> None:
        """Forget the recurrent state; the next ``act`` starts from ``initial_state``."""
        self._stream.state = None
        self._stream.synced = False

    def _compiled_stepper(self) -> Any | None:
        """The core's compiled batch-1 stepper, rebuilt whenever a core parameter changed (or None).

        Changes are seen through the tensors' version counters, which every in-place update bumps
        (optimiser steps, ``load_state_dict``, edits under ``no_grad``).
        """
        stream = self._stream
        if stream.stepper is not None and self.use_compiled_stepper:
            if tuple(p._version for p in stream.params) == stream.versions:
                return stream.stepper
        kind = self.config.core["type"]
        if kind not in COMPILED_STEPPERS or not self.use_compiled_stepper:
            return None
        stepper_class = COMPILED_STEPPERS.get(kind)
        build = getattr(stepper_class, "from_module", stepper_class)
        stream.params = tuple(self.core.parameters())
        stream.versions = tuple(p._version for p in stream.params)
        stream.stepper, stream.synced = build(self.core), False
        return stream.stepper

    def act(self, observation: Mapping[str, Any], dt_seconds: float) -> np.ndarray:
        """One control step: observation dict -> action ``[A]`` float32, clipped to the action spec.

        ``dt_seconds``: measured time since the previous step (> 0; use the nominal period for
        the first step after ``reset``). Raises ``ValueError`` for a malformed observation.
        """
        image, extras = validate_observation(self.config.observation_spec, observation)
        dt = validate_dt_seconds(dt_seconds)
        elapsed = dt * float(self.config.control_rate_hz)
        stream = self._stream
        with torch.inference_mode():
            if stream.state is None:
                stream.state = self.core.initial_state(1)
            features = self.perception(torch.from_numpy(image).unsqueeze(0))
            x = torch.cat([features, torch.from_numpy(extras).unsqueeze(0) * self.extras_scale], dim=1)
            stepper = self._compiled_stepper()
            if stepper is None:
                y, stream.state = self.core.step(x, stream.state, elapsed)
                output = y[0].numpy()
                stream.synced = False
            else:
                if not stream.synced:
                    stepper.state = stream.state[0].numpy().astype(np.float64)
                output = np.asarray(stepper.step(x[0].numpy(), elapsed), dtype=np.float32)
                stream.state = torch.from_numpy(np.array(stepper.state, dtype=np.float32)).unsqueeze(0)
                stream.synced = True
            action = self._squash_numpy(output)
        return np.clip(action, self._low_np, self._high_np).astype(np.float32, copy=False)

    def _squash_numpy(self, y: np.ndarray) -> np.ndarray:
        """:meth:`squash` for one ``[A]`` output in NumPy (the streaming hot path)."""
        z = y * self.output_gain.detach().numpy() + self.output_bias.detach().numpy()
        low, high = self._low_np, self._high_np
        if self.config.output_squash is OutputSquash.TANH:
            return low + (np.tanh(z) + 1.0) * (0.5 * (high - low))
        return np.minimum(np.maximum(0.5 * (low + high) + z * (0.5 * (high - low)), low), high)

    def validate_observation(self, observation: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray]:
        """Check ``observation`` against the spec; return (contiguous uint8 image, float32 extras[E])."""
        return validate_observation(self.config.observation_spec, observation)

    def neuron_activity(self) -> np.ndarray:
        """The core's state after the last ``act`` (``[S]`` float32; zeros before the first step)."""
        if self._stream.state is None:
            return self.core.initial_state(1)[0].detach().numpy().astype(np.float32)
        return self._stream.state[0].detach().numpy().astype(np.float32, copy=True)
