"""``framedrop``: frames reach the policy at irregular times, the policy sees the measured dt, same seed ⇒ same pattern."""

from __future__ import annotations

import numpy as np
import pytest

from lnn_control.data.collect import make_env
from lnn_control.envs.wrappers import parse_conditions
from lnn_control.envs.wrappers.timing import FRAMEDROP_BY_SEVERITY
from lnn_control.evaluate.closed_loop import run_episode
from lnn_control.tasks import get_task

ROAD = {"road_length": 8.0}


def _delivery(seed: int, severity: int = 4, steps: int = 60) -> tuple[list[dict], list[np.ndarray]]:
    env = make_env("lane-keeping", "pybullet", f"framedrop:{severity}", seed, **ROAD)
    try:
        obs, info = env.reset(seed=seed)
        infos, images = [info], [obs["image"]]
        for _ in range(steps):
            obs, _, terminated, truncated, info = env.step(np.zeros(1, np.float32))
            infos.append(info)
            images.append(obs["image"])
            if terminated or truncated:
                break
    finally:
        env.close()
    return infos, images


def test_framedrop_is_a_condition_with_five_severities() -> None:
    assert [c.name for c in parse_conditions("framedrop:3+rain:2")] == ["framedrop", "rain"]
    assert len(FRAMEDROP_BY_SEVERITY) == 5
    drops = [d for d, _ in FRAMEDROP_BY_SEVERITY]
    assert drops == sorted(drops)


def test_delivered_frames_are_irregular_held_between_and_deterministic_per_seed() -> None:
    infos, images = _delivery(1000)
    tick = 0.05  # the lane env's control period
    delivered = [i for i, info in enumerate(infos) if info["frame_delivered"]]
    stamps = np.array([infos[i]["frame_timestamp"] for i in delivered])
    gaps = np.round(np.diff(stamps) / tick).astype(int)
    assert infos[0]["frame_delivered"] and stamps[0] == 0.0
    assert len(delivered) < len(infos) * 0.85  # frames were lost
    assert gaps.min() >= 1 and gaps.max() >= 2 and len(set(gaps.tolist())) >= 2  # irregular intervals
    assert np.all(np.diff(stamps) > 0)  # never an older frame after a newer one
    ages = {round(info["frame_age"] / tick) for info in infos if info["frame_delivered"]}
    assert len(ages) >= 2  # some frames arrive late (jitter), some on time
    for i, info in enumerate(infos[1:], start=1):
        if not info["frame_delivered"]:  # no new frame: the observation is the last delivered one
            assert np.array_equal(images[i], images[i - 1])
            assert info["frame_timestamp"] == infos[i - 1]["frame_timestamp"]
    again, _ = _delivery(1000)
    other, _ = _delivery(1001)
    pattern = [info["frame_delivered"] for info in infos]
    assert [info["frame_delivered"] for info in again] == pattern
    assert [info["frame_timestamp"] for info in again] == [info["frame_timestamp"] for info in infos]
    assert [info["frame_delivered"] for info in other][: len(pattern)] != pattern


class _Recorder:
    """A controller that steers a little differently on every call and records what it was given."""

    def __init__(self) -> None:
        self.dts: list[float] = []

    def __call__(self, env, observation, dt):  # noqa: ANN001, ANN204
        self.dts.append(dt)
        return np.array([0.01 * (len(self.dts) % 3)], np.float32)


@pytest.mark.parametrize("dt_mode", ["measured", "nominal"])
def test_the_runner_calls_the_policy_on_delivered_frames_with_the_measured_dt(dt_mode: str) -> None:
    env = make_env("lane-keeping", "pybullet", "framedrop:5", 1002, **ROAD)
    log: list[dict] = []

    original_step = env.step  # records what the runner sent and saw, without changing it

    def step(action):  # noqa: ANN001, ANN202
        result = original_step(action)
        log.append({"action": float(np.asarray(action)[0]), **{k: result[4][k] for k in ("frame_delivered", "frame_timestamp")}})
        return result

    env.step = step
    recorder = _Recorder()
    try:
        summary = run_episode(env, recorder, 1002, get_task("lane-keeping").metrics(), dt_mode=dt_mode)
    finally:
        env.close()
    delivered = [entry for entry in log[:-1] if entry["frame_delivered"]]  # the last step ends the episode
    assert summary["policy_steps"] == len(recorder.dts) == 1 + len(delivered)
    assert len(recorder.dts) < len(log)
    stamps = [0.0] + [entry["frame_timestamp"] for entry in delivered]
    measured = np.diff(stamps)
    if dt_mode == "measured":
        assert np.allclose(recorder.dts[1:], measured)
        assert len(set(np.round(recorder.dts, 6))) >= 2  # irregular dt reached the policy
    else:
        assert np.allclose(recorder.dts, 0.05)
    # between deliveries the command is held: the action changes only on a step after a delivery
    for before, after in zip(log, log[1:]):
        if not before["frame_delivered"]:
            assert after["action"] == before["action"]
