"""``lnn_control/DroneForest-v0``: fly a quadrotor through a procedural forest to a target from a front camera."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any, Literal

import numpy as np
from gymnasium import spaces

from lnn_control.envs.base import RenderMode, StepResult, TaskEnv
from lnn_control.envs.common import BoundedCache, config_from
from lnn_control.envs.drone_forest.backend import (
    BACKENDS,
    DroneBackend,
    DroneState,
    VisualVariation,
    make_backend,
    yaw_quaternion,
)
from lnn_control.envs.drone_forest.controller import (
    ACTION_HIGH,
    ACTION_LOW,
    ACTION_NAMES,
    ACTION_UNITS,
    CascadedController,
    ControllerGains,
)
from lnn_control.envs.drone_forest.expert import DroneExpert, ExpertConfig
from lnn_control.envs.drone_forest.forest import (
    Forest,
    ForestConfig,
    generate_forest,
)
from lnn_control.envs.drone_forest.quad import QuadParams, motor_response
from lnn_control.envs.drone_forest.rules import DroneRules, DroneRulesConfig
from lnn_control.spec import ActionFrame, ActionSpec, ObservationSpec

VELOCITY_LIMIT = 5.0
"""|vx|, |vy|, |vz| observation bound (m/s)."""


_OWNER = "DroneForestEnv"


class DroneForestEnv(TaskEnv):
    """Quadrotor forest flight to a target, in PyBullet or MuJoCo.

    An X-frame quadrotor (:class:`~.quad.QuadParams`: 1.0 kg, thrust/weight 2.5) starts at 1.5 m in a
    forest generated from a seed (:class:`~.forest.ForestConfig`: 50 × 50 m, 5 trees / 100 m²; seeds
    < 900 train, 900–999 select models, ≥ 1000 held out) facing roughly towards a target 15–30 m away behind trees. A
    cascaded controller (:mod:`.controller`) at ``controller_rate_hz`` (120 Hz; physics and the motor
    lag at ``physics_rate_hz`` = 240 Hz) turns the action into rotor thrusts; the agent acts at
    ``control_rate_hz`` (20 Hz) from the onboard camera.

    **Action space** ``Box(low=(-2, -1, -1, -1), high=(2, 1, 1, 1), (4,), float32)``: ``(vx, vy, vz)``
    m/s in the heading frame (x forward, y left, z up; level, rotated by the yaw) and ``yaw_rate``
    rad/s (+ = counter-clockwise) — MAVLink body-frame velocity + yaw-rate set-point semantics.
    Non-finite or out-of-range actions raise ``ValueError`` and never reach the simulator.

    **Observation space** ``Dict``: ``"image"``: ``Box(0, 255, (64, 128, 3), uint8)`` forward camera;
    with ``include_velocity=True``: ``"vx"``, ``"vy"``, ``"vz"``: ``Box(-5, 5, (1,), float32)`` each,
    heading-frame velocity (m/s).

    **Reward**: Σ weight · term (:class:`~.rules.RewardWeights`): ``progress`` (m closer to the target),
    ``proximity`` (near trunks), ``success`` (+1 on arrival), ``failure`` (−1). Terms in
    ``info["reward_terms"]``.

    **Info** (every step): ``distance_to_target`` (m), ``bearing_to_target`` (rad, + = left),
    ``clearance`` (m to the nearest trunk surface), ``collision`` (bool), ``speed`` (m/s),
    ``altitude`` / ``x`` / ``y`` / ``z`` (m), ``sim_time`` (s), ``success`` (bool), ``end_reason``
    (str, "" while running), ``forest_seed`` (int), ``reward_terms`` (dict).

    **Termination**: success (within 1 m of the target), collision, leaving the flight volume,
    upset, or NaN physics (``end_reason="diverged"``). **Truncation**: the time limit.

    **Seeding**: ``reset(seed=s)`` flies forest ``s`` (``options={"forest_seed": n}`` overrides);
    without a seed the forest is drawn from the env's RNG among training seeds. Domain randomisation
    (``domain_randomization=True``: sky, tints, light, camera pitch) and start noise come from the
    env's RNG: same seed ⇒ identical trajectory.

    **Shift hooks**: ``set_wind(v)`` (world air velocity, m/s; before any step) and
    ``set_tree_density_scale(s)`` (from the next reset).

    **Rendering**: ``render_mode="rgb_array"`` returns a chase-camera frame (``chase_size`` = (W, H));
    ``"human"`` opens the simulator's own viewer.
    """

    world_seed_option = "forest_seed"

    def __init__(
        self,
        backend: Literal["pybullet", "mujoco"] = "pybullet",
        render_mode: RenderMode | None = None,
        *,
        forest_config: ForestConfig | Mapping[str, Any] | None = None,
        forest_density: float | None = None,
        quad: QuadParams | Mapping[str, Any] | None = None,
        rules: DroneRulesConfig | Mapping[str, Any] | None = None,
        expert: ExpertConfig | Mapping[str, Any] | None = None,
        gains: ControllerGains | Mapping[str, Any] | None = None,
        control_rate_hz: float = 20.0,
        physics_rate_hz: float = 240.0,
        controller_rate_hz: float = 120.0,
        include_velocity: bool = True,
        domain_randomization: bool = False,
        start_noise: bool = True,
        wind: tuple[float, float, float] = (0.0, 0.0, 0.0),
        chase_size: tuple[int, int] = (320, 240),
    ) -> None:
        super().__init__(BACKENDS.names(), backend, render_mode, chase_size)
        self.forest_config: ForestConfig = config_from(ForestConfig, forest_config, "forest_config", _OWNER)
        if forest_density is not None:
            if not (isinstance(forest_density, (int, float)) and math.isfinite(forest_density) and forest_density >= 0):
                raise ValueError(f"forest_density must be ≥ 0 trees per 100 m², got {forest_density!r}")
            self.forest_config = dataclasses.replace(self.forest_config, density=float(forest_density))
        self.quad: QuadParams = config_from(QuadParams, quad, "quad", _OWNER)
        self.rules_config: DroneRulesConfig = config_from(DroneRulesConfig, rules, "rules", _OWNER)
        self.expert_config: ExpertConfig = config_from(ExpertConfig, expert, "expert", _OWNER)
        self.gains: ControllerGains = config_from(ControllerGains, gains, "gains", _OWNER)
        if not (math.isfinite(control_rate_hz) and 1 <= control_rate_hz <= 100):
            raise ValueError(f"control_rate_hz must be in [1, 100], got {control_rate_hz}")
        if not (math.isfinite(physics_rate_hz) and physics_rate_hz >= max(100.0, control_rate_hz)):
            raise ValueError(f"physics_rate_hz must be ≥ max(100, control_rate_hz={control_rate_hz}), got {physics_rate_hz}")
        if not (math.isfinite(controller_rate_hz) and control_rate_hz <= controller_rate_hz <= physics_rate_hz):
            raise ValueError(
                f"controller_rate_hz must be in [control_rate_hz={control_rate_hz}, physics_rate_hz={physics_rate_hz}], "
                f"got {controller_rate_hz}"
            )
        # physics steps per controller update, controller updates per env step
        self.physics_per_controller = max(1, int(round(physics_rate_hz / controller_rate_hz)))
        self.physics_dt = 1.0 / float(physics_rate_hz)
        self.controller_dt = self.physics_per_controller * self.physics_dt
        self.substeps = max(1, int(round(1.0 / (control_rate_hz * self.controller_dt))))
        self.control_dt = self.substeps * self.controller_dt
        self.include_velocity = bool(include_velocity)
        self.domain_randomization = bool(domain_randomization)
        self.start_noise = bool(start_noise)
        self.metadata = {**self.metadata, "render_fps": int(round(1.0 / self.control_dt))}

        obs: dict[str, spaces.Space] = {"image": spaces.Box(0, 255, self.quad.image_shape, np.uint8)}
        extras = ("vx", "vy", "vz") if self.include_velocity else ()
        for name in extras:
            obs[name] = spaces.Box(-VELOCITY_LIMIT, VELOCITY_LIMIT, (1,), np.float32)
        self.observation_space = spaces.Dict(obs)
        self.action_space = spaces.Box(np.array(ACTION_LOW, np.float32), np.array(ACTION_HIGH, np.float32), (4,), np.float32)
        self.action_spec = ActionSpec(ACTION_NAMES, ACTION_LOW, ACTION_HIGH, ACTION_UNITS, ActionFrame.FLU)
        self.observation_spec = ObservationSpec(self.quad.image_shape, extras, ("m/s",) * len(extras))

        self._backend: DroneBackend = make_backend(backend)
        self._attach_backend(self._backend)
        self._controller = CascadedController(self.quad, self.gains)
        self.tree_density_scale = 1.0
        self.set_wind(wind)
        self._forests: BoundedCache[tuple[int, float], Forest] = BoundedCache(
            lambda key: generate_forest(key[0], self.forest_config, key[1])
        )
        self.forest: Forest | None = None
        self.forest_seed: int | None = None
        self._rules: DroneRules | None = None
        self._expert: DroneExpert | None = None
        self._motor = np.zeros(4)
        self._info: dict[str, Any] = {}
        self._obs: dict[str, np.ndarray] | None = None

    # --- the episode (TaskEnv supplies reset/step/render/close around these) ----------------------
    def _reset_episode(self, forest_seed: int) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        self.forest_seed = forest_seed
        self.forest = self._forests.get((forest_seed, self.tree_density_scale))
        visuals = VisualVariation.sample(self.np_random) if self.domain_randomization else VisualVariation()
        if self.start_noise:
            offset = self.np_random.uniform(-1.0, 1.0, 3) * np.array([0.3, 0.3, 0.2])
            yaw_offset = float(self.np_random.uniform(-0.1, 0.1))
        else:
            offset, yaw_offset = np.zeros(3), 0.0
        self._backend.build(self.forest, self.quad, visuals, self.physics_dt)
        start = DroneState(
            0.0, self.forest.start_position + offset, yaw_quaternion(self.forest.start_yaw + yaw_offset),
            np.zeros(3), np.zeros(3),
        )
        self._backend.reset(start)
        self._controller.reset()
        self._motor = np.full(4, self.quad.hover_thrust)
        self._backend.set_rotor_thrusts(self._motor)
        self._rules = DroneRules(self.forest, self.quad, self.rules_config)
        self._expert = DroneExpert(self.forest, self.expert_config)
        state = self._backend.drone_state()
        self._expert.reset()
        self._info = {**self._rules.reset(state), "forest_seed": forest_seed}
        self._obs = self._observation(state)
        return self._obs, dict(self._info)

    def _step_episode(self, command: np.ndarray) -> StepResult:
        assert self._rules is not None and self._obs is not None  # TaskEnv.step refuses a step before reset()
        backend, quad = self._backend, self.quad
        state = backend.drone_state()
        for _ in range(self.substeps):
            if not state.finite:
                break
            thrust = self._controller.update(command, state, self.controller_dt)
            for _ in range(self.physics_per_controller):  # motor lag per physics step
                self._motor = motor_response(self._motor, thrust, self.physics_dt, quad.motor_time_constant)
                backend.set_rotor_thrusts(self._motor)
                backend.advance(self.physics_dt)
            state = backend.drone_state()
        outcome = self._rules.step(state, backend.collided())
        self._info = {**outcome.info, "forest_seed": self.forest_seed}
        if outcome.info["end_reason"] != "diverged":
            self._obs = self._observation(state)
        return self._obs, outcome.reward, outcome.terminated, outcome.truncated, dict(self._info)

    # --- extras used by the pipeline ----------------------------------------------------------------
    def expert_action(self) -> np.ndarray:
        """The privileged expert's action for the current state (action units, float32 [4])."""
        if self._expert is None:
            raise RuntimeError("call reset() before expert_action()")
        state = self._backend.drone_state()
        if not state.finite:
            return np.zeros(4, np.float32)
        return self._expert.act(state)

    def drone_state(self) -> DroneState:
        """The backend's current :class:`~.backend.DroneState` (ground truth)."""
        return self._backend.drone_state()

    def top_down_view(self, path_xy: np.ndarray, size: int = 360) -> np.ndarray:
        """Map of the current forest (uint8 RGB [size, size, 3]): trunks, start, target, the flown
        ``path_xy`` ([N, 2] m, world frame) and the drone's heading; see :mod:`.topdown`."""
        from lnn_control.envs.drone_forest.topdown import draw_top_down

        if self.forest is None:
            raise RuntimeError("call reset() before top_down_view()")
        state = self._backend.drone_state()
        return draw_top_down(self.forest, path_xy, state.yaw if state.finite else 0.0, size)

    def set_wind(self, velocity: Any) -> None:
        """World-frame air velocity (3,) in m/s acting through drag from the next physics step on."""
        wind = np.asarray(velocity, dtype=float)
        if wind.shape != (3,) or not np.all(np.isfinite(wind)):
            raise ValueError(f"wind must be a finite (3,) world-frame velocity in m/s, got {velocity!r}")
        self.wind = wind.copy()
        self._backend.set_wind(self.wind)

    def set_tree_density_scale(self, scale: float) -> None:
        """Multiply the tree density by ``scale`` (> 0; 1.25–2.5 for the dense-forest shift) from
        the next reset."""
        if not (isinstance(scale, (int, float)) and math.isfinite(scale) and 0 < scale <= 4):
            raise ValueError(f"tree density scale must be in (0, 4], got {scale!r}")
        self.tree_density_scale = float(scale)

    @property
    def backend(self) -> DroneBackend:
        return self._backend

    @property
    def expert(self) -> DroneExpert | None:
        return self._expert

    # --- helpers -----------------------------------------------------------------------------------
    def _observation(self, state: DroneState) -> dict[str, np.ndarray]:
        obs = {"image": self._backend.render_camera()}
        if self.include_velocity:
            velocity = np.clip(state.heading_velocity, -VELOCITY_LIMIT, VELOCITY_LIMIT)
            for name, value in zip(("vx", "vy", "vz"), velocity):
                obs[name] = np.array([value], np.float32)
        return obs
