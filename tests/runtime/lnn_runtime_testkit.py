"""Real parts for runtime tests: a tiny image env, a pixel-reading policy, a camera-backed robot.

The lane-keeping env renders with MuJoCo/PyBullet (tens of ms per frame on these machines), so
the loop's timing tests use this 32x48 env instead: a bright column whose position the action
moves. It is a real gymnasium env run through LockstepSimRobot, not a stand-in for the loop.
"""

from __future__ import annotations

import time

import gymnasium
import numpy as np
from gymnasium import spaces

from lnn_control.runtime.core.robot import LinkLostError, Observation, Robot
from lnn_control.runtime.hardware.cameras import Camera
from lnn_control.spec import ActionSpec, ObservationSpec

DOT_ENV_ID = "lnn_test/Dot-v0"
H, W = 32, 48


class DotEnv(gymnasium.Env):
    """A column at x in [-1, 1]; action[0] (steering in [-1, 1]) moves it by 0.2 * action per step;
    ``step_delay_s`` makes every step that slow."""

    metadata = {"render_modes": []}
    dt = 0.02

    def __init__(self, episode_steps: int = 10_000, step_delay_s: float = 0.0) -> None:
        self.observation_space = spaces.Dict(
            {
                "image": spaces.Box(0, 255, (H, W, 3), np.uint8),
                "speed": spaces.Box(-10.0, 10.0, (1,), np.float32),
            }
        )
        self.action_space = spaces.Box(-1.0, 1.0, (1,), np.float32)
        self.episode_steps = episode_steps
        self.step_delay_s = step_delay_s  # a slow simulator: each step sleeps this long
        self.x = 0.0
        self.t = 0

    def _obs(self) -> dict[str, np.ndarray]:
        image = np.zeros((H, W, 3), np.uint8)
        col = int(round((self.x + 1) / 2 * (W - 1)))
        image[:, col, :] = 255
        return {"image": image, "speed": np.array([1.5], np.float32)}

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.x = float(self.np_random.uniform(-0.8, 0.8))
        self.t = 0
        return self._obs(), {}

    def step(self, action):
        if self.step_delay_s:
            time.sleep(self.step_delay_s)
        self.x = float(np.clip(self.x + 0.2 * float(action[0]), -1, 1))
        self.t += 1
        return self._obs(), -abs(self.x), False, self.t >= self.episode_steps, {"x": self.x}


if DOT_ENV_ID not in gymnasium.registry:
    gymnasium.register(DOT_ENV_ID, entry_point=DotEnv)


def dot_position(image: np.ndarray) -> float:
    col = int(np.argmax(image[0, :, 0]))
    return col / (W - 1) * 2 - 1


class CenteringPolicy:
    """steering = -gain * x read from the image; optional injected faults at a given call."""

    def __init__(self, gain: float = 2.0, fault: str | None = None, fault_at: int = 5, fault_s: float = 0.0):
        self.gain = gain
        self.fault = fault
        self.fault_at = fault_at
        self.fault_s = fault_s
        self.calls = 0
        self.dts: list[float] = []
        self.resets = 0
        self._state = np.zeros(2, np.float32)

    def reset(self) -> None:
        self.calls = 0
        self.resets += 1
        self._state[:] = 0

    def act(self, observation: dict[str, np.ndarray], dt: float) -> np.ndarray:
        assert observation["image"].dtype == np.uint8
        assert observation["speed"].shape == (1,) and observation["speed"].dtype == np.float32
        self.calls += 1
        self.dts.append(dt)
        x = dot_position(observation["image"])
        self._state[:] = (x, dt)
        if self.calls == self.fault_at:
            if self.fault == "raise":
                raise RuntimeError("injected policy failure")
            if self.fault == "nan":
                return np.array([np.nan], np.float32)
            if self.fault == "slow":
                end = time.monotonic() + self.fault_s
                while time.monotonic() < end:  # a policy step that overruns the deadline
                    pass
        return np.array([-self.gain * x], np.float32)

    def neuron_activity(self) -> np.ndarray:
        return self._state.copy()


class CameraRobot(Robot):
    """A robot whose sensor is a real Camera and whose actuator records every command it gets."""

    def __init__(self, camera: Camera, image_shape=(H, W, 3), lose_link_at_write: int | None = None,
                 failed_reconnects: int = 0) -> None:
        self.camera = camera
        self.observation_spec = ObservationSpec(tuple(image_shape))
        self.action_spec = ActionSpec(("steering",), (-1.0,), (1.0,), ("normalized",))
        self.writes: list[np.ndarray] = []
        self.stops: list[float] = []
        self.connects = 0
        self.lose_link_at_write = lose_link_at_write
        self.failed_reconnects = failed_reconnects
        self.estop_flag = False
        self._connected = False

    def connect(self) -> None:
        self.connects += 1
        if self.connects > 1 and self.connects - 1 <= self.failed_reconnects:
            raise LinkLostError(f"reconnect {self.connects - 1} refused")
        if not self.camera.is_open:
            self.camera.open()
        self._connected = True

    def read(self) -> Observation:
        frame = self.camera.read()
        return Observation(frame.image, frame.timestamp, {"speed": 1.0})

    def write(self, action: np.ndarray) -> np.ndarray:
        if not self._connected:
            raise LinkLostError("not connected")
        if self.lose_link_at_write is not None and len(self.writes) == self.lose_link_at_write:
            self.lose_link_at_write = None
            self._connected = False
            raise LinkLostError("serial port vanished")
        self.writes.append(np.array(action, np.float32))
        return np.array(action, np.float32)

    def stop(self) -> None:
        self.stops.append(time.monotonic())

    def estop_requested(self) -> bool:
        return self.estop_flag

    def disconnect(self) -> None:
        self._connected = False

    @property
    def is_connected(self) -> bool:
        return self._connected
