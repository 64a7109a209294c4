"""``LockstepSimRobot``: a registered Gymnasium env behind the :class:`Robot` interface ("sim in the loop").

The same :class:`~lnn_control.runtime.core.loop.ControlLoop` that drives hardware drives the
simulator, in real time: the loop's clock paces it. Physics advances in ``read()``:

- ``write(action)`` stores the command (clipped to the action space) and returns it; it holds
  until the next write, like a servo holding its set-point.
- ``read()`` advances the env by one step with the held command — integrating the interval
  since the previous read, which at the loop's rate is the wall time that passed — then
  returns the freshly rendered camera image stamped with the time the render finished.
- ``stop()`` sets the held command to the neutral action (applied from the next step on).
- An episode that ends (terminated or truncated) is reset with the next seed; the observation
  of the new episode is returned and ``episodes_finished`` counts up.

Here a slow simulator step (a render spike) stretches the control period it lands in. For
timing runs use :class:`~lnn_control.runtime.sim.clocked.ClockedSimRobot` (the launch files'
default, ``robot.sim.pacing: clocked``), which steps the env in its own process just before each
read; this class stays for deterministic, single-process runs (``pacing: lockstep``) and tests.

The env must have a ``Dict`` observation space with an ``"image"`` uint8 (H, W, 3) entry and
scalar (shape (1,)) extras, and a ``Box`` action space. The simulator is imported only when the
env is made (``connect()``), never at import time.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from lnn_control.runtime.core.robot import Observation, Robot, RobotError
from lnn_control.spec import ActionSpec, ObservationSpec


def specs_from_env(env: Any) -> tuple[ObservationSpec, ActionSpec]:
    from gymnasium import spaces

    obs_space = env.observation_space
    if not isinstance(obs_space, spaces.Dict) or "image" not in obs_space.spaces:
        raise RobotError(
            f"a simulated robot needs a Dict observation space with an 'image' entry; {env.spec.id if env.spec else env} "
            f"has {obs_space}"
        )
    image = obs_space.spaces["image"]
    shape = tuple(int(v) for v in (image.shape or ()))
    if len(shape) != 3 or shape[2] != 3 or image.dtype != np.uint8:
        raise RobotError(f"observation 'image' must be uint8 (H, W, 3), got {image.dtype} {image.shape}")
    extras = tuple(k for k in obs_space.spaces if k != "image")
    for name in extras:
        if obs_space.spaces[name].shape != (1,):
            raise RobotError(f"observation extra '{name}' must have shape (1,), got {obs_space.spaces[name].shape}")
    unwrapped = env.unwrapped
    provided_obs = getattr(unwrapped, "observation_spec", None)
    if isinstance(provided_obs, ObservationSpec):
        obs_spec = provided_obs
    else:
        obs_spec = ObservationSpec((shape[0], shape[1], shape[2]), extras, tuple("" for _ in extras))
    provided_act = getattr(unwrapped, "action_spec", None)
    if isinstance(provided_act, ActionSpec):
        act_spec = provided_act
    else:
        act_space = env.action_space
        if not isinstance(act_space, spaces.Box) or len(act_space.shape) != 1:
            raise RobotError(f"a simulated robot needs a 1-D Box action space, got {act_space}")
        n = act_space.shape[0]
        act_spec = ActionSpec(
            tuple(f"action_{i}" for i in range(n)),
            tuple(float(v) for v in act_space.low),
            tuple(float(v) for v in act_space.high),
            tuple("" for _ in range(n)),
        )
    return obs_spec, act_spec


def env_control_period(env: Any) -> float | None:
    """Simulated seconds per step of ``env`` (its ``control_dt`` or ``dt``), None if it states neither."""
    for name in ("control_dt", "dt"):
        dt = getattr(env.unwrapped, name, None)
        if isinstance(dt, (int, float)) and dt > 0:
            return float(dt)
    return None


def make_env(env_id: str, env_kwargs: dict[str, Any]) -> Any:
    """``gymnasium.make`` with the project's ids registered; a RobotError that lists them on failure."""
    import gymnasium

    import lnn_control.envs  # noqa: F401  (registers the project's env ids)

    try:
        return gymnasium.make(env_id, **env_kwargs)
    except (gymnasium.error.Error, TypeError, ValueError) as exc:  # unknown id, bad kwargs
        raise RobotError(
            f"cannot make env {env_id!r} with {env_kwargs}: {exc}. "
            "List ids with: python -c 'import gymnasium, lnn_control.envs; "
            "print([k for k in gymnasium.registry if k.startswith(\"lnn_control\")])'"
        ) from exc


class SimulatedRobot(Robot):
    """What every simulated robot shares: construction arguments, specs known after
    ``connect()``, the held command (validated, clipped) and the neutral stop command.

    env_id: registered Gymnasium id, e.g. ``lnn_control/LaneKeeping-v0`` (``"module:id"`` imports
        ``module`` first, Gymnasium's syntax for envs registered outside the project).
    env_kwargs: passed to ``gymnasium.make`` (e.g. ``{"backend": "mujoco"}``).
    seed: seed of the first episode; episode ``i`` uses ``seed + i``.
    neutral_action: the stop command (default: 0 clipped into the action bounds).
    """

    episodes_finished: int

    def __init__(
        self,
        env_id: str,
        env_kwargs: dict[str, Any] | None = None,
        seed: int = 0,
        neutral_action: tuple[float, ...] | None = None,
    ) -> None:
        if not isinstance(env_id, str) or not env_id:
            raise ValueError(f"env_id must be a registered Gymnasium id string, got {env_id!r}")
        self.env_id = env_id
        self.env_kwargs = dict(env_kwargs or {})
        self.seed = int(seed)
        self._neutral_arg = neutral_action
        self.episodes_finished = 0
        self.episode_steps = 0
        self.last_episode_info: dict[str, Any] = {}
        self._held: np.ndarray | None = None
        self._neutral: np.ndarray | None = None
        self._specs: tuple[ObservationSpec, ActionSpec] | None = None

    @property
    def observation_spec(self) -> ObservationSpec:  # type: ignore[override]
        return self._require_specs()[0]

    @property
    def action_spec(self) -> ActionSpec:  # type: ignore[override]
        return self._require_specs()[1]

    def _require_specs(self) -> tuple[ObservationSpec, ActionSpec]:
        if self._specs is None:
            raise RobotError(f"{type(self).__name__} specs are known after connect(); call connect() first")
        return self._specs

    def _set_specs(self, specs: tuple[ObservationSpec, ActionSpec]) -> None:
        """Store the env's specs; derive the bounds and the neutral command, which is now held."""
        act = specs[1]
        low, high = np.asarray(act.low, np.float32), np.asarray(act.high, np.float32)
        if self._neutral_arg is None:
            neutral = np.clip(np.zeros(act.size, np.float32), low, high)
        else:
            if len(self._neutral_arg) != act.size:
                raise ValueError(f"neutral_action needs {act.size} entries for {act.names}, got {self._neutral_arg}")
            neutral = np.asarray(self._neutral_arg, np.float32)
        self._specs = specs
        self._low, self._high, self._neutral = low, high, neutral
        self._held = neutral.copy()

    def _require_neutral(self) -> np.ndarray:
        if self._neutral is None:
            raise RobotError(f"{type(self).__name__} has no action spec yet; call connect() first")
        return self._neutral

    def _hold(self, action: np.ndarray) -> np.ndarray:
        """Validate ``action``, clip it into the bounds and make it the held command (returned)."""
        if not self.is_connected:
            raise RobotError(f"{type(self).__name__} is not connected; call connect() first")
        held = self._held
        if held is None:
            raise RobotError(f"{type(self).__name__} has no action spec yet; call connect() first")
        command = np.asarray(action, np.float32).reshape(-1)
        if command.shape != held.shape:
            raise ValueError(f"action has shape {np.shape(action)}; expected {held.shape}")
        if not np.all(np.isfinite(command)):
            raise ValueError(f"action must be finite, got {command.tolist()}")
        self._held = np.clip(command, self._low, self._high)
        return self._held.copy()

    @property
    def held_action(self) -> np.ndarray | None:
        """The command the next simulator step will use."""
        return None if self._held is None else self._held.copy()


class LockstepSimRobot(SimulatedRobot):
    """A simulated robot stepped inside ``read()``; see the module docstring. Arguments: see
    :class:`SimulatedRobot`."""

    def __init__(
        self,
        env_id: str,
        env_kwargs: dict[str, Any] | None = None,
        seed: int = 0,
        neutral_action: tuple[float, ...] | None = None,
    ) -> None:
        super().__init__(env_id, env_kwargs, seed, neutral_action)
        self.env: Any = None
        self._frame_index = 0
        self._latest: Observation | None = None
        self.frame_listeners: list[Callable[[Any], None]] = []
        """Called with the env after every published frame, in the loop's thread, before ``read()``
        returns: privileged access for benchmarks (e.g. an expert at the gamepad), never for a policy."""

    @property
    def is_connected(self) -> bool:
        return self.env is not None

    @property
    def control_period_s(self) -> float | None:
        """Simulated seconds per env step if the env states it (``control_dt`` or ``dt``), else None."""
        return None if self.env is None else env_control_period(self.env)

    def connect(self) -> None:
        if self.env is not None:
            return
        env = make_env(self.env_id, self.env_kwargs)
        try:
            self._set_specs(specs_from_env(env))
        except (RobotError, ValueError):
            env.close()
            raise
        self.env = env
        self.episodes_finished = 0
        self._reset_episode()

    def _reset_episode(self) -> Observation:
        obs, _ = self.env.reset(seed=self.seed + self.episodes_finished)
        self.episode_steps = 0
        return self._publish(obs)

    def _publish(self, obs: dict[str, np.ndarray]) -> Observation:
        extras = {k: float(np.asarray(v).reshape(-1)[0]) for k, v in obs.items() if k != "image"}
        self._frame_index += 1
        self._latest = Observation(np.asarray(obs["image"]), time.monotonic(), extras, self._frame_index)
        for listener in self.frame_listeners:
            listener(self.env)
        return self._latest

    def read(self) -> Observation:
        if self.env is None:
            raise RobotError("LockstepSimRobot is not connected; call connect() first")
        obs, _, terminated, truncated, info = self.env.step(self._held)
        self.episode_steps += 1
        if terminated or truncated:
            self.last_episode_info = dict(info)
            self.last_episode_info.update(steps=self.episode_steps, terminated=bool(terminated))
            self.episodes_finished += 1
            return self._reset_episode()
        return self._publish(obs)

    def write(self, action: np.ndarray) -> np.ndarray:
        return self._hold(action)

    def stop(self) -> None:
        if self._neutral is not None:
            self._held = self._neutral.copy()

    def disconnect(self) -> None:
        if self.env is not None:
            self.env.close()
            self.env = None
