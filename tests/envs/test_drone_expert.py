"""The privileged drone expert: a gap-seeking velocity field that reaches the target on held-out forests."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from lnn_control.envs.drone_forest.backend import DroneState, yaw_quaternion
from lnn_control.envs.drone_forest.expert import DroneExpert, ExpertConfig, free_distance
from lnn_control.envs.drone_forest.forest import Forest, generate_forest


def _forest_with(trunks: list[tuple[float, float, float]], start=(0.0, 0.0), target=(20.0, 0.0)) -> Forest:
    """A generated forest re-planted with ``trunks`` [(x, y, radius)], start and target at 1.5 m."""
    base = generate_forest(1000)
    k = len(trunks)
    xy = np.array([t[:2] for t in trunks], float).reshape(k, 2)
    return dataclasses.replace(
        base, trunk_xy=xy, trunk_radius=np.array([t[2] for t in trunks], float),
        trunk_height=np.full(k, 9.0), canopy_radius=np.full(k, 1.2), canopy_base=np.full(k, 5.0),
        start_position=np.array([*start, 1.5]), start_yaw=0.0, target_position=np.array([*target, 1.5]),
    )


def _state(x: float, y: float, yaw: float = 0.0, z: float = 1.5) -> DroneState:
    return DroneState(0.0, np.array([x, y, z]), yaw_quaternion(yaw), np.zeros(3), np.zeros(3))


def test_free_distance_against_one_trunk() -> None:
    offsets = np.array([[4.0, 0.0]])  # a trunk 4 m ahead, grown radius 1 m
    directions = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [math.cos(0.2), math.sin(0.2)]])
    free = free_distance(offsets, directions, np.array([1.0]), horizon=6.0)
    assert free[0] == pytest.approx(3.0)  # straight at it: hits the grown circle 1 m early
    assert free[1] == 6.0 and free[2] == 6.0  # sideways and away: nothing in the way, capped
    # 0.2 rad off: passes 4 sin(0.2) = 0.79 m from the centre, inside the 1 m circle
    assert free[3] == pytest.approx(4 * math.cos(0.2) - math.sqrt(1 - (4 * math.sin(0.2)) ** 2))
    inside = free_distance(np.array([[0.5, 0.0]]), directions, np.array([1.0]), horizon=6.0)
    assert inside[0] == 0.0 and inside[2] == 6.0  # inside the margin: towards the trunk is blocked, away is free
    assert free_distance(np.zeros((0, 2)), directions, np.zeros(0), horizon=5.0).tolist() == [5.0] * 4


def test_open_forest_flies_straight_at_the_target() -> None:
    expert = DroneExpert(_forest_with([]))
    vx, vy, vz, yaw_rate = expert.act(_state(0.0, 0.0, z=1.0))
    assert vx == pytest.approx(1.6) and vy == pytest.approx(0.0, abs=1e-6) and yaw_rate == pytest.approx(0.0, abs=1e-6)
    assert vz == pytest.approx(0.5)  # climbs back to the target's 1.5 m at altitude_gain 1/s
    # looking 0.5 rad left of the target: yaw back (clockwise), and the velocity still points at it
    vx, vy, _, yaw_rate = expert.act(_state(0.0, 0.0, yaw=0.5))
    assert yaw_rate == pytest.approx(-0.75, abs=1e-6)
    assert math.atan2(vy, vx) == pytest.approx(-0.5, abs=1e-6)


def test_sidesteps_a_trunk_in_the_way_and_keeps_to_one_side() -> None:
    expert = DroneExpert(_forest_with([(3.0, 0.05, 0.25)]))  # just left of the line to the target
    vx, vy, _, _ = expert.act(_state(0.0, 0.0))
    assert vy < -0.3 and vx > 0  # passes on the right, the side with more room
    heading, free = expert.choose_direction(np.array([0.0, 0.0]))
    grown = 0.25 + expert.config.margin
    # the chosen line misses the grown trunk and is the one closest to the target bearing
    assert free == expert.config.horizon
    assert abs(3.0 * math.sin(heading) - 0.05 * math.cos(heading)) >= grown - 1e-9
    closer = heading + expert.config.direction_step
    assert abs(3.0 * math.sin(closer) - 0.05 * math.cos(closer)) < grown
    # hysteresis: a small drift to the other side does not flip the choice
    assert expert.choose_direction(np.array([0.0, 0.12]))[0] < 0


def test_boxed_in_takes_the_direction_with_the_most_room() -> None:
    angles = np.linspace(-1.6, 1.6, 13)  # a cup of trunks 3 m around the drone, open behind it
    cup = [(3.0 * math.cos(a), 3.0 * math.sin(a), 0.3) for a in angles] + [(2.5, 1.2, 0.12)]
    expert = DroneExpert(_forest_with(cup))
    heading, free = expert.choose_direction(np.array([0.0, 0.0]))
    headings = expert.detours  # the target lies straight ahead (bearing 0)
    directions = np.stack([np.cos(headings), np.sin(headings)], axis=1)
    forest = expert.forest
    room = free_distance(forest.trunk_xy, directions, forest.trunk_radius + expert.config.margin, expert.config.horizon)
    assert free < expert.config.horizon and free == pytest.approx(room.max())


def test_actions_are_bounded_and_bad_input_is_refused() -> None:
    forest = generate_forest(1001)
    expert = DroneExpert(forest)
    rng = np.random.default_rng(0)
    for _ in range(200):
        xy = rng.uniform(-20, 20, 2)
        action = expert.act(_state(*xy, yaw=rng.uniform(-math.pi, math.pi), z=rng.uniform(0.3, 3.5)))
        assert action.dtype == np.float32 and action.shape == (4,)
        assert np.all(action >= [-2, -1, -1, -1]) and np.all(action <= [2, 1, 1, 1])
    with pytest.raises(ValueError, match="finite"):
        expert.act(DroneState(0.0, [np.nan, 0, 1], [1, 0, 0, 0], np.zeros(3), np.zeros(3)))
    with pytest.raises(ValueError, match="cruise_speed"):
        ExpertConfig(cruise_speed=3.0)
    with pytest.raises(ValueError, match="max_detour"):
        ExpertConfig(max_detour=2.0)
    with pytest.raises(ValueError, match="margin"):
        ExpertConfig(margin=-0.1)


def test_velocity_feedback_adds_k_times_what_the_autopilot_has_not_reached() -> None:
    """Heading frame: the drone yawed 0.5 rad, drifting; the correction is k (v_cmd - v_measured)."""
    forest = _forest_with([])
    plain = DroneExpert(forest).act(_state(0.0, 0.0, yaw=0.5))
    drift = np.array([0.3, -0.4, 0.0])  # world-frame velocity: pushed downwind
    state = DroneState(0.0, np.array([0.0, 0.0, 1.5]), yaw_quaternion(0.5), drift, np.zeros(3))
    corrected = DroneExpert(forest, ExpertConfig(velocity_feedback=0.5)).act(state)
    c, s = math.cos(0.5), math.sin(0.5)
    measured = np.array([c * 0.3 + s * -0.4, -s * 0.3 + c * -0.4])
    assert corrected[:2] == pytest.approx(plain[:2] + 0.5 * (plain[:2] - measured), abs=1e-6)
    assert corrected[2:] == pytest.approx(plain[2:])  # altitude and yaw untouched
    assert DroneExpert(forest).act(state)[:2] == pytest.approx(plain[:2])  # k = 0: the geometric field alone
    with pytest.raises(ValueError, match=r"velocity_feedback must be a finite number in \[0, 2\], got -0.1"):
        ExpertConfig(velocity_feedback=-0.1)


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1000, 1007])
def test_expert_reaches_the_target_on_held_out_forests(seed: int) -> None:
    from lnn_control.envs.drone_forest.env import DroneForestEnv

    env = DroneForestEnv(domain_randomization=True)
    try:
        env.reset(seed=seed)
        min_clearance = np.inf
        for _ in range(int(60 / env.control_dt)):
            _, _, terminated, truncated, info = env.step(env.expert_action())
            min_clearance = min(min_clearance, info["clearance"])
            if terminated or truncated:
                break
        assert info["success"] and info["end_reason"] == "success"
        assert info["distance_to_target"] <= 1.0 and not info["collision"]
        assert min_clearance > 0.4  # keeps well clear of the trunks (collision radius 0.25 m)
        assert info["sim_time"] < 30.0
    finally:
        env.close()
