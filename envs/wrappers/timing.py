"""Irregular camera timing: ``framedrop:s`` drops frames and delivers the others late, at random.

The simulation still advances one control period (``env.unwrapped.control_dt``, the *tick*) per
``step``, and the camera captures one frame per tick. Of those frames a share is lost (dropped);
each surviving frame reaches the policy 0..``max_late`` ticks after its capture (transport and
driver jitter); a frame that arrives after a newer one has been delivered is discarded, like a
camera driver that keeps only the newest frame. The wrapper reports per step, in ``info``:

- ``frame_delivered`` (bool): a new frame reached the policy at this tick;
- ``frame_timestamp`` (s): capture time of the frame in the observation (tick × ``control_dt``);
- ``frame_age`` (s): how long ago that frame was captured.

The observation is always the newest delivered frame (held between deliveries), so a policy
that runs only when ``frame_delivered`` sees intervals of 1, 2, 3 ... ticks between the capture
times of consecutive frames, and frames of varying age. The closed-loop evaluation (lnn_control.evaluate.closed_loop) does exactly that:
it calls the policy only on delivered frames, passes the measured elapsed time between their
capture timestamps as ``dt`` (or the nominal period in the nominal-dt ablation) and holds the last
command in between.

Limitation: times are multiples of the env's control period (the simulators render only at
step boundaries), so "jitter" here is whole-tick lateness, not sub-period timing noise.
Deterministic for a seed: the drop/lateness stream is re-seeded by ``reset(seed=...)``.
"""

from __future__ import annotations

from typing import Any, SupportsFloat

import gymnasium as gym

from lnn_control.envs.wrappers.corruptions import check_severity
from lnn_control.envs.wrappers.dynamics import control_period
from lnn_control.envs.wrappers.image import stream_rng

#: ``framedrop:s``: (probability a frame is lost, most ticks a surviving frame can arrive late).
FRAMEDROP_BY_SEVERITY = ((0.10, 0), (0.20, 1), (0.35, 1), (0.50, 2), (0.65, 2))


class FrameDrop(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """Drop camera frames with probability ``drop_prob`` and deliver survivors 0..``max_late``
    ticks late (uniform); see the module docstring for the info keys and the timing model."""

    def __init__(self, env: gym.Env, drop_prob: float, max_late: int, seed: int | None = None) -> None:
        gym.utils.RecordConstructorArgs.__init__(self, drop_prob=drop_prob, max_late=max_late, seed=seed)
        gym.Wrapper.__init__(self, env)
        if isinstance(drop_prob, bool) or not isinstance(drop_prob, (int, float)) or not 0 <= drop_prob < 1:
            raise ValueError(f"frame drop probability must be in [0, 1), got {drop_prob!r}")
        if isinstance(max_late, bool) or not isinstance(max_late, int) or max_late < 0:
            raise ValueError(f"max_late must be an integer ≥ 0 ticks, got {max_late!r}")
        self.drop_prob = float(drop_prob)
        self.max_late = int(max_late)
        self.tick_s = control_period(env)
        self._rng = stream_rng(seed, "framedrop")
        self._tick = 0
        self._pending: list[tuple[int, int, Any]] = []  # (arrival tick, capture tick, observation)
        self._delivered_tick = 0
        self._observation: Any = None

    @classmethod
    def from_severity(cls, env: gym.Env, severity: int, seed: int | None = None) -> FrameDrop:
        drop, late = FRAMEDROP_BY_SEVERITY[check_severity(severity) - 1]
        return cls(env, drop, late, seed)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict]:
        if seed is not None:
            self._rng = stream_rng(seed, "framedrop")
        observation, info = super().reset(seed=seed, options=options)
        self._tick, self._delivered_tick, self._pending = 0, 0, []
        self._observation = observation  # the first frame always arrives: the policy needs one
        return observation, self._stamp(info, delivered=True)

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        observation, reward, terminated, truncated, info = super().step(action)
        self._tick += 1
        if self._rng.random() >= self.drop_prob:
            late = int(self._rng.integers(0, self.max_late + 1)) if self.max_late else 0
            self._pending.append((self._tick + late, self._tick, observation))
        arrived = [p for p in self._pending if p[0] <= self._tick]
        self._pending = [p for p in self._pending if p[0] > self._tick]
        newest = max(arrived, key=lambda p: p[1], default=None)
        delivered = newest is not None and newest[1] > self._delivered_tick
        if newest is not None and delivered:
            self._delivered_tick, self._observation = newest[1], newest[2]
        return self._observation, reward, terminated, truncated, self._stamp(info, delivered)

    def _stamp(self, info: dict, delivered: bool) -> dict:
        return {
            **info,
            "frame_delivered": bool(delivered),
            "frame_timestamp": self._delivered_tick * self.tick_s,
            "frame_age": (self._tick - self._delivered_tick) * self.tick_s,
        }
