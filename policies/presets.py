"""Ready-made policy architectures by name: ``build_policy("ncp19_car", core="ltc")``.

A preset fixes the task-side defaults - camera size, extras, action names/units/limits, control
rate and the liquid wiring - and any of them can be overridden with the env's own specs. The
same preset with ``core="lstm"`` (or ``gru``, ``ctrnn``, ``feedforward``) gives the baseline
with ``hidden_size`` units, the same perception CNN and the same output scaling, so robustness
studies compare like with like.

========================  ==========================================================
``ncp19_car``             64x128 camera, steering in [-1, 1] (normalised), 20 Hz,
                          NCP 12 inter / 6 command / 1 motor (the NCP paper's car network)
``ncp19_drone``           64x128 camera, body-frame (vx, vy, vz, yaw_rate) in
                          ([-2, 2], [-1, 1], [-1, 1]) m/s and [-1, 1] rad/s, 20 Hz,
                          NCP 9 inter / 6 command / 4 motor
``ncp34_drone``           as ``ncp19_drone`` with NCP 18 inter / 12 command / 4 motor
========================  ==========================================================
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

import torch

from lnn_control.nn.contract import RecurrentCore
from lnn_control.nn.perception import FeatureNorm, PerceptionConfig
from lnn_control.policies.policy import OutputSquash, Policy, PolicyConfig
from lnn_control.spec import ActionFrame, ActionSpec, ObservationSpec

CoreType = Literal["ltc", "cfc", "wired_ctrnn", "lstm", "gru", "ctrnn", "feedforward"]
LIQUID_CORES = ("ltc", "cfc")
WIRED_CORES = (*LIQUID_CORES, "wired_ctrnn")
"""Cores built on the preset's wiring (``wired_ctrnn``: a CT-RNN with the NCP's synapses)."""


@dataclass(frozen=True)
class PolicyPreset:
    """Task-side defaults of a named architecture (see the module table)."""

    wiring: str
    observation_spec: ObservationSpec
    action_spec: ActionSpec
    control_rate_hz: float


_CAMERA = ObservationSpec((64, 128, 3))
_DRONE_ACTIONS = ActionSpec(
    ("vx", "vy", "vz", "yaw_rate"), (-2.0, -1.0, -1.0, -1.0), (2.0, 1.0, 1.0, 1.0), ("m/s", "m/s", "m/s", "rad/s"),
    ActionFrame.FLU,
)
PRESETS: dict[str, PolicyPreset] = {
    "ncp19_car": PolicyPreset(
        "ncp19_car", _CAMERA, ActionSpec(("steering",), (-1.0,), (1.0,), ("normalized",), ActionFrame.FLU), 20.0
    ),
    "ncp19_drone": PolicyPreset("ncp19_drone", _CAMERA, _DRONE_ACTIONS, 20.0),
    "ncp34_drone": PolicyPreset("ncp34_drone", _CAMERA, _DRONE_ACTIONS, 20.0),
}


def build_core_for(
    core: CoreType, wiring: str, input_size: int, output_size: int, hidden_size: int, seed: int = 0
) -> RecurrentCore:
    """A freshly initialised core: liquid (``ltc``/``cfc``) or ``wired_ctrnn`` on the named wiring,
    or a baseline with ``hidden_size`` units. Weights come from ``seed`` (LTC) or the torch RNG (the others)."""
    if core in WIRED_CORES:
        from lnn_control.nn.wirings import wiring_from_name

        # The wiring's own seed is part of the named architecture (the paper's network), not the
        # training seed; the weights are drawn from the torch RNG seeded by build_policy.
        built_wiring = wiring_from_name(wiring, input_dim=input_size)
        if built_wiring.output_dim != output_size:
            raise ValueError(
                f"wiring {wiring!r} has {built_wiring.output_dim} motor neurons but the action spec has "
                f"{output_size} components; pick a wiring with {output_size} motor neurons"
            )
        if core == "ltc":
            from lnn_control.nn.ltc import LTC

            return LTC(built_wiring, seed=seed)
        if core == "wired_ctrnn":
            from lnn_control.nn.wired_ctrnn import WiredCTRNN

            return WiredCTRNN(built_wiring)
        from lnn_control.nn.cfc import CfC

        return CfC(input_size, built_wiring)
    from lnn_control.nn.baselines import BASELINE_CORES

    if core not in BASELINE_CORES:
        raise ValueError(f"unknown core {core!r}; choose one of {list(get_args(CoreType))}")
    return BASELINE_CORES[core](input_size, hidden_size, output_size)


def build_policy(
    preset: str | PolicyConfig,
    *,
    core: CoreType = "ltc",
    seed: int = 0,
    observation_spec: ObservationSpec | None = None,
    action_spec: ActionSpec | None = None,
    control_rate_hz: float | None = None,
    perception: PerceptionConfig | None = None,
    hidden_size: int = 19,
    extras_scale: tuple[float, ...] = (),
    output_squash: OutputSquash = OutputSquash.TANH,
    feature_norm: FeatureNorm | str = FeatureNorm.NONE,
) -> Policy:
    """A freshly initialised policy (same ``seed`` => same weights).

    preset: a preset name (see :data:`PRESETS`) or a full :class:`PolicyConfig` (then only
        ``seed`` is used). Overrides replace the preset's specs and rate; the perception input
        follows ``observation_spec``'s image size and uses ``feature_norm`` unless ``perception``
        is given.
    """
    with torch.random.fork_rng(devices=[]):  # seeded without disturbing the caller's RNG
        torch.manual_seed(seed)
        if isinstance(preset, PolicyConfig):
            return Policy(preset)
        return _from_preset(
            preset, core, seed, observation_spec, action_spec, control_rate_hz, perception, hidden_size,
            extras_scale, output_squash, FeatureNorm(feature_norm),
        )


def _from_preset(
    preset: str,
    core: CoreType,
    seed: int,
    observation_spec: ObservationSpec | None,
    action_spec: ActionSpec | None,
    control_rate_hz: float | None,
    perception: PerceptionConfig | None,
    hidden_size: int,
    extras_scale: tuple[float, ...],
    output_squash: OutputSquash,
    feature_norm: FeatureNorm,
) -> Policy:
    if preset not in PRESETS:
        raise ValueError(f"unknown policy preset {preset!r}; choose one of {sorted(PRESETS)}")
    defaults = PRESETS[preset]
    observations = observation_spec or defaults.observation_spec
    actions = action_spec or defaults.action_spec
    height, width, _ = observations.image_shape
    vision = perception if perception is not None else PerceptionConfig(
        image_height=height, image_width=width, feature_norm=feature_norm)
    core_inputs = vision.features + len(observations.extras)
    recurrent = build_core_for(core, defaults.wiring, core_inputs, actions.size, hidden_size, seed)
    config = PolicyConfig(
        perception=vision,
        core=recurrent.config(),
        observation_spec=observations,
        action_spec=actions,
        control_rate_hz=float(control_rate_hz if control_rate_hz is not None else defaults.control_rate_hz),
        output_squash=output_squash,
        extras_scale=tuple(extras_scale),
    )
    return Policy(config, core=recurrent)
