"""``lnn_control/LaneKeeping-v0``: keep a 1/10-scale car in its lane from a front camera."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

import numpy as np
from gymnasium import spaces

from lnn_control.envs.base import RenderMode, StepResult, TaskEnv
from lnn_control.envs.common import BoundedCache, config_from
from lnn_control.envs.lane_keeping.backend import (
    BACKENDS,
    BackendName,
    LaneBackend,
    VehicleState,
    VisualVariation,
    appearance_from,
    make_backend,
)
from lnn_control.envs.lane_keeping.car import CarParams
from lnn_control.envs.lane_keeping.expert import PurePursuitConfig, expert_action
from lnn_control.envs.lane_keeping.road import Road, RoadConfig, generate_road
from lnn_control.envs.lane_keeping.rules import LaneRules, LaneRulesConfig
from lnn_control.spec import ActionFrame, ActionSpec, ObservationSpec

_REAL = (int, float, np.integer, np.floating)  # plain and NumPy numbers (bool excluded where used)
_OWNER = "LaneKeepingEnv"


class LaneKeepingEnv(TaskEnv):
    """Lane keeping on procedural two-lane roads, in PyBullet or MuJoCo.

    A 1/10-scale car (:class:`~.car.CarParams`: wheelbase 0.30 m, steering ±0.4 rad) drives in the
    right-hand lane (0.5 m wide) of a road generated from a seed (seeds < 900 train, 900–999
    select models, ≥ 1000 held out). A cruise controller holds the speed; the agent steers from the onboard camera.

    **Action space** ``Box(-1, 1, (1,), float32)``: normalised steering (+1 = full left,
    ``max_steering`` rad). With ``speed_action=True`` ``(2,)``: a second component maps [-1, 1] to a
    cruise target speed in [0, max_speed] m/s. Actions outside the box or non-finite raise
    ``ValueError`` and never reach the simulator.

    **Observation space** ``Dict``: ``"image"``: ``Box(0, 255, (64, 128, 3), uint8)`` onboard RGB camera
    (size from ``CarParams``); ``"speed"``: ``Box(-2·max_speed, 2·max_speed, (1,), float32)`` forward
    speed in m/s (omitted with ``include_speed=False``).

    **Reward**: Σ weight · term (:class:`~.rules.RewardWeights`): ``progress`` (m along the road this
    step), ``centering`` (−(offset/half lane)²), ``heading`` (−|heading error| rad), ``departure`` (−1 on
    failure). The terms are in ``info["reward_terms"]``.

    **Info** (every step): ``lateral_offset`` (m, signed, + = left of the lane centre),
    ``heading_error`` (rad, + = pointing left of the road), ``progress`` (m), ``s`` (m), ``speed``
    (m/s), ``steering_angle`` (rad), ``sim_time`` (s), ``lane_departure`` (bool), ``success`` (bool),
    ``end_reason`` (str, "" while running), ``road_seed`` (int), ``reward_terms`` (dict).

    **Termination**: lane departure (|lateral_offset| > lane_width/2 − track/2 = 0.15 m), wrong way,
    tipped over, or NaN physics. **Truncation**: end of the road (success) or the time limit.

    **Seeding**: ``reset(seed=s)`` drives road ``s`` (``options={"road_seed": n}`` overrides the road);
    without a seed the road is drawn from the env's RNG among training seeds. Visual domain
    randomisation (``domain_randomization=True``: colours, lighting, camera-mount jitter) and the
    start pose noise come from the env's RNG: same seed ⇒ identical trajectory. ``appearance`` fixes the
    look of the world instead: a name from :data:`~.backend.APPEARANCES` (``"default"``, ``"desert"``:
    pale concrete road on sand, a shifted world for fine-tuning) or a mapping of
    :class:`~.backend.VisualVariation` fields.

    **Rendering**: ``render_mode="rgb_array"`` returns a chase-camera frame (``chase_size`` = (W, H));
    ``"human"`` opens the simulator's own viewer.
    """

    world_seed_option = "road_seed"

    def __init__(
        self,
        backend: BackendName = "pybullet",
        render_mode: RenderMode | None = None,
        *,
        road_length: float | None = None,
        road_config: RoadConfig | Mapping[str, Any] | None = None,
        car: CarParams | Mapping[str, Any] | None = None,
        rules: LaneRulesConfig | Mapping[str, Any] | None = None,
        expert: PurePursuitConfig | Mapping[str, Any] | None = None,
        target_speed: float = 1.5,
        control_rate_hz: float = 20.0,
        physics_rate_hz: float = 200.0,
        include_speed: bool = True,
        speed_action: bool = False,
        domain_randomization: bool = False,
        appearance: str | VisualVariation | Mapping[str, Any] = "default",
        start_noise: bool = True,
        friction_scale: float = 1.0,
        chase_size: tuple[int, int] = (320, 240),
    ) -> None:
        super().__init__(BACKENDS.names(), backend, render_mode, chase_size)
        self.road_config: RoadConfig = config_from(RoadConfig, road_config, "road_config", _OWNER)
        if road_length is not None:
            self.road_config = dataclasses.replace(self.road_config, length=float(road_length))
        self.car: CarParams = config_from(CarParams, car, "car", _OWNER)
        self.rules_config: LaneRulesConfig = config_from(LaneRulesConfig, rules, "rules", _OWNER)
        self.expert_config: PurePursuitConfig = config_from(PurePursuitConfig, expert, "expert", _OWNER)
        if not (math.isfinite(target_speed) and 0 < target_speed <= self.car.max_speed):
            raise ValueError(f"target_speed must be in (0, {self.car.max_speed}] m/s, got {target_speed}")
        if not (math.isfinite(control_rate_hz) and 1 <= control_rate_hz <= 200):
            raise ValueError(f"control_rate_hz must be in [1, 200], got {control_rate_hz}")
        if not (math.isfinite(physics_rate_hz) and physics_rate_hz >= max(50.0, control_rate_hz)):
            raise ValueError(
                f"physics_rate_hz must be ≥ max(50, control_rate_hz={control_rate_hz}), got {physics_rate_hz}"
            )
        self.target_speed = float(target_speed)
        self.control_dt = 1.0 / float(control_rate_hz)
        self.physics_dt = 1.0 / float(physics_rate_hz)
        self.include_speed = bool(include_speed)
        self.speed_action = bool(speed_action)
        self.domain_randomization = bool(domain_randomization)
        self.appearance: VisualVariation = appearance_from(appearance)
        if self.domain_randomization and self.appearance != VisualVariation():
            raise ValueError(
                f"appearance={appearance!r} and domain_randomization=True both set the look of the world; "
                "choose one (domain randomisation samples around the default appearance)"
            )
        self.start_noise = bool(start_noise)
        self.metadata = {**self.metadata, "render_fps": int(round(control_rate_hz))}

        obs: dict[str, spaces.Space] = {"image": spaces.Box(0, 255, self.car.image_shape, np.uint8)}
        if self.include_speed:
            limit = 2.0 * self.car.max_speed
            obs["speed"] = spaces.Box(-limit, limit, (1,), np.float32)
        self.observation_space = spaces.Dict(obs)
        size = 2 if self.speed_action else 1
        self.action_space = spaces.Box(-1.0, 1.0, (size,), np.float32)
        names = ("steering", "target_speed")[:size]
        self.action_spec = ActionSpec(names, (-1.0,) * size, (1.0,) * size, ("normalized",) * size, ActionFrame.FLU)
        self.observation_spec = ObservationSpec(
            self.car.image_shape, ("speed",) if self.include_speed else (), ("m/s",) if self.include_speed else ()
        )

        self._backend: LaneBackend = make_backend(backend)
        self._attach_backend(self._backend)
        self.set_friction_scale(friction_scale)
        self._roads: BoundedCache[int, Road] = BoundedCache(lambda seed: generate_road(seed, self.road_config))
        self.road: Road | None = None
        self.road_seed: int | None = None
        self._rules: LaneRules | None = None
        self._target = self.target_speed
        self._info: dict[str, Any] = {}

    # --- the episode (TaskEnv supplies reset/step/render/close around these) ----------------------
    def _reset_episode(self, road_seed: int) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        self.road_seed = road_seed
        self.road = self._roads.get(road_seed)
        visuals = VisualVariation.sample(self.np_random) if self.domain_randomization else self.appearance
        lateral, heading = (
            (float(self.np_random.uniform(-0.05, 0.05)), float(self.np_random.uniform(-0.05, 0.05)))
            if self.start_noise else (0.0, 0.0)
        )
        self._backend.build(self.road, self.car, visuals, self.physics_dt)
        self._rules = LaneRules(self.road, self.car, self.rules_config, self.target_speed)
        self._target = self.target_speed
        self._backend.reset(self._rules.start_pose(lateral, heading), self.target_speed)
        self._backend.set_command(0.0, self.target_speed)
        state = self._backend.vehicle_state()
        self._info = {**self._rules.reset(state), "road_seed": road_seed}
        return self._observation(state.speed), dict(self._info)

    def _step_episode(self, action: np.ndarray) -> StepResult:
        assert self._rules is not None  # TaskEnv.step refuses a step before reset()
        steering = self.car.steering_from_normalized(float(action[0]))
        if self.speed_action:
            self._target = (float(action[1]) + 1.0) / 2.0 * self.car.max_speed
        self._backend.set_command(steering, self._target)
        self._backend.advance(self.control_dt)
        state = self._backend.vehicle_state()
        outcome = self._rules.step(state)
        self._info = {**outcome.info, "road_seed": self.road_seed}
        speed = state.speed if state.finite else 0.0
        return self._observation(speed), outcome.reward, outcome.terminated, outcome.truncated, dict(self._info)

    # --- extras used by the pipeline ----------------------------------------------------------------
    def expert_action(self) -> np.ndarray:
        """The privileged pure-pursuit expert's action for the current state (action-space units)."""
        if self._rules is None or self.road is None:
            raise RuntimeError("call reset() before expert_action()")
        state = self._backend.vehicle_state()
        steering = expert_action(state, self.road, self.car, self.expert_config, s_hint=self._info.get("s"))
        if self.speed_action:
            speed = 2.0 * self.target_speed / self.car.max_speed - 1.0
            return np.array([steering, speed], np.float32)
        return np.array([steering], np.float32)

    def vehicle_state(self) -> VehicleState:
        """The backend's current :class:`~.backend.VehicleState` (ground truth)."""
        return self._backend.vehicle_state()

    def set_friction_scale(self, scale: float) -> None:
        """Scale tyre–road friction (1 = dry, e.g. 0.5 = wet); persists across resets."""
        if not (isinstance(scale, _REAL) and not isinstance(scale, bool) and math.isfinite(scale) and 0 < scale <= 1):
            raise ValueError(f"friction_scale must be in (0, 1] (1 = dry road), got {scale!r}")
        self.friction_scale = float(scale)
        self._backend.set_friction_scale(self.friction_scale)

    @property
    def backend(self) -> LaneBackend:
        return self._backend

    # --- helpers -----------------------------------------------------------------------------------
    def _observation(self, speed: float) -> dict[str, np.ndarray]:
        obs = {"image": self._backend.render_camera()}
        if self.include_speed:
            limit = 2.0 * self.car.max_speed
            obs["speed"] = np.array([np.clip(speed, -limit, limit)], np.float32)
        return obs
