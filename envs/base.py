"""What every task env shares: Gymnasium plumbing around a task-specific episode.

A task env (lane keeping, drone forest) subclasses :class:`TaskEnv` and supplies three things:
its world (``_reset_episode``: build the world for a seed, place the robot, first observation),
its dynamics (``_step_episode``: apply one validated action for one control period) and its
backend. The base class owns the rest, the same for every task, so a third task gets it for free:

- argument checks for ``render_mode`` and ``chase_size``;
- ``reset(seed=…, options={<world_seed_option>: n})``: the world seed from the option, else the
  seed, else drawn from the env's RNG among training seeds (< :data:`VALIDATION_SEED_START`);
- action validation against ``action_space`` (shape, finite, bounds; errors name each axis);
- ``render()`` (chase-camera frame or viewer sync), real-time pacing in ``"human"`` mode, ``close()``.

The tests in ``tests/envs/test_env_contract.py`` run over every registered env × backend.
"""

from __future__ import annotations

import abc
import time
from typing import Any, ClassVar, Literal

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from lnn_control.seeds import HELD_OUT_SEED_START, VALIDATION_SEED_START
from lnn_control.spec import ActionSpec

RenderMode = Literal["rgb_array", "human"]
StepResult = tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]


class TaskEnv(gym.Env, abc.ABC):
    """Base of the task envs; see the module docstring for the split of work.

    Subclasses set ``world_seed_option`` (e.g. ``"road_seed"``), ``observation_space``,
    ``action_space`` (a ``Box``), ``action_spec`` and ``control_dt`` (s), and call
    :meth:`_attach_backend` once in ``__init__``.
    """

    metadata: dict[str, Any] = {"render_modes": ["rgb_array", "human"], "render_fps": 20}
    world_seed_option: ClassVar[str] = "world_seed"
    action_space: spaces.Box
    action_spec: ActionSpec
    control_dt: float

    def __init__(self, backend_names: list[str], backend: str, render_mode: RenderMode | None,
                 chase_size: tuple[int, int]) -> None:
        if backend not in backend_names:
            raise ValueError(f"backend must be one of {sorted(backend_names)}, got {backend!r}")
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be None or one of {self.metadata['render_modes']}, got {render_mode!r}")
        if not (
            len(chase_size) == 2
            and all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v > 0 for v in chase_size)
        ):
            raise ValueError(f"chase_size must be (width, height) in positive integer pixels, got {chase_size!r}")
        self.backend_name = backend
        self.render_mode = render_mode
        self.chase_size = (int(chase_size[0]), int(chase_size[1]))
        self._backend: Any = None
        self._episode_ready = False
        self._last_wall = 0.0

    def _attach_backend(self, backend: Any) -> None:
        """Own ``backend`` (its ``close`` runs in :meth:`close`); open its viewer in ``"human"`` mode."""
        self._backend = backend
        if self.render_mode == "human":
            backend.open_viewer()

    # --- what a task supplies ------------------------------------------------------------------------
    @abc.abstractmethod
    def _reset_episode(self, world_seed: int) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Build world ``world_seed``, start an episode: (first observation, info)."""

    @abc.abstractmethod
    def _step_episode(self, action: np.ndarray) -> StepResult:
        """Apply ``action`` (float64, validated and clipped to the box) for one control period."""

    # --- Gymnasium API -----------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[dict, dict]:
        super().reset(seed=seed)
        world_seed = self._world_seed(seed, dict(options or {}))
        self._episode_ready = False
        observation, info = self._reset_episode(world_seed)
        self._episode_ready = True
        if self.render_mode == "human":
            self._backend.sync_viewer()
        return observation, info

    def step(self, action: Any) -> StepResult:
        if not self._episode_ready:
            raise RuntimeError("call reset() before step()")
        result = self._step_episode(self._validate_action(action))
        if self.render_mode == "human":
            self._backend.sync_viewer()
            self._pace()
        return result

    def render(self) -> np.ndarray | None:
        if self.render_mode == "rgb_array":
            frame: np.ndarray = self._backend.render_chase(*self.chase_size)
            return frame
        if self.render_mode == "human":
            self._backend.sync_viewer()
        return None

    def close(self) -> None:
        backend = getattr(self, "_backend", None)
        if backend is not None:
            backend.close()

    # --- shared helpers ----------------------------------------------------------------------------
    def _world_seed(self, seed: int | None, options: dict[str, Any]) -> int:
        key = self.world_seed_option
        unknown = sorted(set(options) - {key})
        if unknown:
            raise ValueError(f"unknown reset option(s) {unknown}; allowed: [{key!r}]")
        if options.get(key) is not None:
            raw = options[key]
        elif seed is not None:
            raw = seed
        else:
            return int(self.np_random.integers(0, VALIDATION_SEED_START))
        if isinstance(raw, bool) or not isinstance(raw, (int, np.integer)) or raw < 0:
            what = key.replace("_", " ")
            raise ValueError(
                f"{what} must be an integer ≥ 0 (< {VALIDATION_SEED_START} training, {VALIDATION_SEED_START}–"
                f"{HELD_OUT_SEED_START - 1} validation, ≥ {HELD_OUT_SEED_START} held out), got {raw!r}"
            )
        return int(raw)

    def _validate_action(self, action: Any) -> np.ndarray:
        """``action`` as float64 clipped to the box; ``ValueError`` naming each axis's bounds otherwise."""
        low, high = self.action_space.low.astype(np.float64), self.action_space.high.astype(np.float64)
        shape = self.action_space.shape
        bounds = ", ".join(f"{n} in [{float(lo)}, {float(hi)}]" for n, lo, hi in zip(self.action_spec.names, low, high))
        try:
            array = np.asarray(action, dtype=np.float64)
        except (TypeError, ValueError):
            raise ValueError(f"action must be a numeric array of shape {shape} ({bounds}), got {action!r}") from None
        if array.shape != shape:
            raise ValueError(f"action has shape {array.shape}; expected {shape} ({bounds})")
        if not np.all(np.isfinite(array)):
            raise ValueError(f"action {array.tolist()} contains NaN/inf; expected finite values ({bounds})")
        if np.any(array < low - 1e-6) or np.any(array > high + 1e-6):
            raise ValueError(f"action {array.tolist()} is outside the action space bounds ({bounds})")
        clipped: np.ndarray = np.clip(array, low, high)
        return clipped

    def _pace(self) -> None:
        """Human mode runs in real time: wait until one control period has passed since the last step."""
        now = time.monotonic()
        deadline = self._last_wall + self.control_dt
        if now < deadline:
            time.sleep(deadline - now)
        self._last_wall = max(now, deadline)
