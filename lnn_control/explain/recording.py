"""What the analysis reads: one episode's frames, their clean twins, masks, extras, dt and signals.

:func:`record_episode` drives the policy closed-loop in simulation (as ``eval`` / ``demo`` do: the
streaming ``act`` with the measured dt, frames only when delivered) under a condition spec. A thin
tap between the bare env and the condition wrappers keeps, per simulator tick, the **clean** camera
frame and the env's privileged camera masks, so every frame the policy saw has a clean twin of the
same instant (under ``framedrop`` the twin of the frame's capture tick). With ``onset_s`` > 0 the
image corruptions start at that time: before it the policy is given the clean twin (dynamics shifts
such as wind or a wet road act from the start).

:func:`recording_from_log` reads the same fields from an MCAP run log (``lnn-control run``); a log
has no clean twins and no masks.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, SupportsFloat

import numpy as np

TASK_SIGNALS: dict[str, tuple[tuple[str, str], ...]] = {
    "lane-keeping": (("lateral_offset", "m"), ("heading_error", "rad"), ("curvature", "1/m")),
    "drone-forest": (("clearance", "m"), ("bearing_to_target", "rad"), ("distance_to_target", "m")),
}
"""Per task: the ``(signal, unit)`` pairs plotted under the neuron traces (from the env's info;
``curvature`` is the road's curvature at the car's arclength)."""


@dataclass
class Recording:
    """One episode as the analysis reads it; ``T`` policy steps.

    frames: uint8 ``[T,H,W,3]`` the frames the policy was given; clean_frames: their clean twins (or
    None: a clean run or a run log); extras: float32 ``[T,E]`` observation extras (spec units);
    dt: ``[T]`` s elapsed before each step (the first: the nominal period); times: ``[T]`` s capture
    time since the episode start; actions: ``[T,A]`` the policy's actions in the run (action units);
    signals: name -> ``[T]`` task signals (units in ``signal_units``); masks: name -> bool
    ``[T,H,W]`` (or None); onsets: ``(time s, label)`` events for the time axis.
    """

    source: str
    condition: str
    frames: np.ndarray
    clean_frames: np.ndarray | None
    extras: np.ndarray
    dt: np.ndarray
    times: np.ndarray
    actions: np.ndarray
    action_names: tuple[str, ...]
    signals: dict[str, np.ndarray] = field(default_factory=dict)
    signal_units: dict[str, str] = field(default_factory=dict)
    masks: dict[str, np.ndarray] | None = None
    onsets: list[tuple[float, str]] = field(default_factory=list)
    outcome: str = ""

    @property
    def steps(self) -> int:
        return int(self.frames.shape[0])


MaskFunction = Callable[[Any], dict[str, np.ndarray]]


def mask_function(task: str) -> MaskFunction | None:
    """The env accessor giving the task's privileged camera masks (None if the task has none)."""
    if task == "lane-keeping":
        from lnn_control.envs.lane_keeping.camera_mask import camera_masks

        return camera_masks
    if task == "drone-forest":
        try:
            from lnn_control.envs.drone_forest.camera_mask import camera_masks as drone_masks
        except ImportError:
            return None
        return drone_masks
    return None


def _tap_class() -> type:
    import gymnasium as gym

    class CleanTap(gym.Wrapper):
        """Keeps the clean frame and camera masks of the last few ticks (read-only: passes everything on)."""

        def __init__(self, env: gym.Env, masks: MaskFunction | None, keep: int = 16) -> None:
            super().__init__(env)
            self._mask_fn, self._keep = masks, keep
            self.tick = 0
            self.history: dict[int, tuple[np.ndarray, dict[str, np.ndarray] | None]] = {}

        def _store(self, observation: Any) -> None:
            masks = self._mask_fn(self.env) if self._mask_fn is not None else None
            self.history[self.tick] = (np.array(observation["image"], copy=True), masks)
            self.history.pop(self.tick - self._keep, None)

        def reset(self, **kwargs: Any) -> tuple[Any, dict]:
            observation, info = self.env.reset(**kwargs)
            self.tick, self.history = 0, {}
            self._store(observation)
            return observation, info

        def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
            result = self.env.step(action)
            self.tick += 1
            self._store(result[0])
            return result

    return CleanTap


def _signals(task: str, env: Any, info: dict[str, Any]) -> dict[str, float]:
    values: dict[str, float] = {}
    for name, _unit in TASK_SIGNALS.get(task, ()):
        if name == "curvature" and "s" in info and getattr(env.unwrapped, "road", None) is not None:
            values[name] = float(env.unwrapped.road.curvature_at(float(info["s"])))
        elif name in info:
            values[name] = float(info[name])
        else:
            values[name] = math.nan
    return values


def record_episode(
    policy: Any,
    task: str,
    backend: str,
    condition: str,
    seed: int,
    duration_s: float | None = None,
    onset_s: float = 0.0,
    with_masks: bool = True,
    env_kwargs: dict[str, Any] | None = None,
) -> Recording:
    """Drive ``policy`` for one episode (or ``duration_s`` of it) and record it (see the module docstring).
    ``env_kwargs``: keyword arguments of the env (e.g. ``road_length``)."""
    import gymnasium as gym

    import lnn_control.envs  # noqa: F401  (registers the env ids)
    from lnn_control.data.collect import env_specs
    from lnn_control.envs.wrappers import apply_conditions, parse_conditions
    from lnn_control.spec import check_compatible
    from lnn_control.tasks import get_task

    conditions = parse_conditions(condition)  # a bad spec fails here, naming what is allowed
    has_images = any(c.is_image for c in conditions)
    base = gym.make(get_task(task).env_id, backend=backend, **dict(env_kwargs or {}))
    tap = _tap_class()(base, mask_function(task) if with_masks else None)
    env = apply_conditions(tap, conditions, seed=seed)
    frames, clean, extras, dts, times, actions, masks = [], [], [], [], [], [], []
    signals: dict[str, list[float]] = {}
    try:
        obs_spec, act_spec = env_specs(env)
        check_compatible(policy.observation_spec, obs_spec, "env observation spec")
        check_compatible(policy.action_spec, act_spec, "env action spec")
        task_env: Any = env.unwrapped  # a task env: control_dt, expert_action() (lnn_control.tasks)
        nominal = float(task_env.control_dt)
        extra_names = tuple(policy.observation_spec.extras)
        obs, info = env.reset(seed=seed)
        policy.reset()
        last_stamp = info.get("frame_timestamp")
        dt, terminated, truncated = nominal, False, False
        limit = math.inf if duration_s is None else float(duration_s)
        while True:
            stamp = info.get("frame_timestamp")
            tick = int(round(float(stamp) / nominal)) if stamp is not None else tap.tick
            clean_image, tick_masks = tap.history.get(tick, tap.history[tap.tick])
            capture = tick * nominal
            shown = obs if (capture >= onset_s or not has_images) else {**obs, "image": clean_image}
            action = policy.act(shown, dt)
            frames.append(np.array(shown["image"], copy=True))
            clean.append(clean_image)
            extras.append([float(np.asarray(obs[name]).reshape(-1)[0]) for name in extra_names])
            dts.append(dt)
            times.append(capture)
            actions.append(np.asarray(action, np.float32))
            if tick_masks is not None:
                masks.append(tick_masks)
            for key, value in _signals(task, env, info).items():
                signals.setdefault(key, []).append(value)
            while True:  # hold the command until the next delivered frame
                obs, _, terminated, truncated, info = env.step(action)
                if terminated or truncated or info.get("frame_delivered", True):
                    break
            if terminated or truncated or tap.tick * nominal >= limit:
                break
            stamp = info.get("frame_timestamp")
            dt = float(stamp) - float(last_stamp) if stamp is not None and last_stamp is not None else nominal
            last_stamp = stamp
    finally:
        env.close()
    outcome = "success" if info.get("success") else (str(info.get("end_reason") or "failed") if terminated else "stopped")
    onsets = [(0.0, "start")]
    if has_images:
        onsets.append((float(onset_s), f"{condition} on"))
    mask_arrays = None
    if masks:
        mask_arrays = {name: np.stack([m[name] for m in masks]) for name in masks[0]}
    return Recording(
        source=f"{task}/{backend} seed {seed}",
        condition=condition,
        frames=np.stack(frames),
        clean_frames=np.stack(clean) if has_images else None,
        extras=np.asarray(extras, np.float32).reshape(len(frames), len(extra_names)),
        dt=np.asarray(dts, np.float64),
        times=np.asarray(times, np.float64),
        actions=np.stack(actions),
        action_names=tuple(policy.action_spec.names),
        signals={k: np.asarray(v) for k, v in signals.items()},
        signal_units=dict(TASK_SIGNALS.get(task, ())),
        masks=mask_arrays,
        onsets=onsets,
        outcome=outcome,
    )


def recording_from_log(log: Any, policy: Any) -> Recording:
    """The policy steps of a run log (``read_run_log``) that have a logged frame, as a :class:`Recording`."""
    from lnn_control.runtime.logs.runlog import decode_image

    images = {m.sequence: m.payload for m in log.topic("/camera/image")}
    commands = {m.sequence: m.payload["values"] for m in log.topic("/commands/policy")}
    steps = [m for m in log.topic("/loop/timing") if m.payload.get("state") == "run" and m.sequence in images]
    if not steps:
        raise ValueError(
            f"{log.path}: no policy step has a logged frame; record with log.image_rate_hz: null to explain a run"
        )
    names = tuple(policy.action_spec.names)
    extra_names = tuple(policy.observation_spec.extras)
    frames, extras, dts, times, actions = [], [], [], [], []
    previous: float | None = None
    every = len(steps) == len([m for m in log.topic("/loop/timing") if m.payload.get("state") == "run"])
    nominal = 1.0 / float(policy.config.control_rate_hz)
    for message in steps:
        timing = message.payload
        stamp = float(timing["frame_timestamp_s"])
        if every and timing.get("dt_s"):
            dt = float(timing["dt_s"])
        else:
            dt = nominal if previous is None else stamp - previous
        previous = stamp
        frames.append(decode_image(base64.b64decode(images[message.sequence]["data"])))
        logged = timing.get("extras", {})
        missing = [name for name in extra_names if name not in logged]
        if missing:
            raise ValueError(f"{log.path}: step {message.sequence} lacks the extras {missing} the policy reads")
        extras.append([float(logged[name]) for name in extra_names])
        dts.append(dt)
        times.append(stamp)
        values = commands.get(message.sequence, {})
        actions.append([math.nan if values.get(n) is None else float(values[n]) for n in names])
    times_arr = np.asarray(times) - times[0]
    return Recording(
        source=f"run log {log.path}",
        condition="log",
        frames=np.stack(frames),
        clean_frames=None,
        extras=np.asarray(extras, np.float32).reshape(len(frames), len(extra_names)),
        dt=np.asarray(dts, np.float64),
        times=times_arr,
        actions=np.asarray(actions, np.float32),
        action_names=names,
        onsets=[(0.0, "start")],
        outcome="complete" if log.complete else "log ends early (crashed run)",
    )
