"""PyBullet lane backend: physics of the car (kinematics, cruise control, friction) and cameras."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from lnn_control.envs.lane_keeping.backend import LaneBackend, Pose2D, VisualVariation, make_backend
from lnn_control.envs.lane_keeping.car import CarParams
from lnn_control.envs.lane_keeping.road import RoadConfig, generate_road

pytest.importorskip("pybullet")


@pytest.fixture(scope="module")
def backend():
    backend = make_backend("pybullet")
    backend.build(generate_road(1, RoadConfig(length=10.0)), CarParams(), VisualVariation(), 1 / 200)
    yield backend
    backend.close()


def _drive(backend, steering: float, speed: float, seconds: float, friction: float = 1.0):
    backend.set_friction_scale(friction)
    backend.reset(Pose2D(0.0, 0.0, 0.0), speed)
    for _ in range(int(round(seconds / 0.05))):
        backend.set_command(steering, speed)
        backend.advance(0.05)
    return backend.vehicle_state()


def test_implements_the_protocol(backend):
    assert isinstance(backend, LaneBackend)


def test_steady_turn_matches_bicycle_kinematics(backend):
    car = CarParams()
    state = _drive(backend, 0.2, 1.0, 2.0)
    assert state.yaw_rate == pytest.approx(1.0 * math.tan(0.2) / car.wheelbase, rel=0.05)
    assert state.steering_angle == pytest.approx(0.2, abs=0.02)
    assert state.speed == pytest.approx(1.0, abs=0.05)
    # the reference point sits half a wheelbase ahead of the rear axle: it slides outwards-left
    assert state.lateral_speed == pytest.approx(state.yaw_rate * car.wheelbase / 2, abs=0.03)
    assert all(state.wheel_contacts) and state.finite
    assert state.time == pytest.approx(2.0)


def test_steering_is_clipped_and_rate_limited(backend):
    car = CarParams()
    backend.reset(Pose2D(0.0, 0.0, 0.0), 1.0)
    backend.set_command(5.0, 1.0)
    backend.advance(0.02)
    early = backend.vehicle_state().steering_angle
    assert 0.0 < early <= car.steering_rate * 0.02 * 1.3
    backend.advance(0.5)
    assert backend.vehicle_state().steering_angle == pytest.approx(car.max_steering, abs=0.02)


def test_cruise_control_reaches_and_holds_the_target_speed(backend):
    backend.set_friction_scale(1.0)
    backend.reset(Pose2D(0.0, 0.0, 0.0), 0.0)
    backend.set_command(0.0, 2.0)
    backend.advance(0.05)
    assert backend.vehicle_state().speed < 1.0
    backend.advance(1.0)
    state = backend.vehicle_state()
    assert state.speed == pytest.approx(2.0, abs=0.05)
    assert state.x == pytest.approx(2.0 * 1.05 - 0.0, abs=0.6)  # moved forward along +x
    assert abs(state.y) < 0.01 and abs(state.yaw) < 0.01


def test_low_friction_makes_the_car_slide(backend):
    dry = _drive(backend, 0.4, 2.5, 2.0, friction=1.0)
    wet = _drive(backend, 0.4, 2.5, 2.0, friction=0.15)
    kinematic = 2.5 * math.tan(0.4) / CarParams().wheelbase
    assert dry.yaw_rate > 0.85 * kinematic
    assert wet.yaw_rate < 0.5 * kinematic
    backend.set_friction_scale(1.0)


def test_bad_commands_and_friction_are_rejected(backend):
    with pytest.raises(ValueError, match="must be finite"):
        backend.set_command(float("nan"), 1.0)
    with pytest.raises(ValueError, match="friction scale"):
        backend.set_friction_scale(0.0)
    with pytest.raises(ValueError, match="duration"):
        backend.advance(0.0)
    with pytest.raises(ValueError, match="positive int"):
        backend.render_chase(0, 10)


def test_camera_sees_the_road_lines_and_the_sky(backend):
    car = CarParams()
    road = generate_road(1, RoadConfig(length=10.0))
    lane = road.lane_center(1.0)
    backend.reset(Pose2D(float(lane[0]), float(lane[1]), float(road.heading_at(1.0))), 0.0)
    image = backend.render_camera()
    assert image.shape == car.image_shape and image.dtype == np.uint8
    sky = np.round(np.asarray(VisualVariation().sky_color) * 255)
    assert np.all(image[0, :] == sky)  # top row is above the horizon
    # straight ahead at the bottom: grey asphalt (not grass green, not sky)
    ahead = image[-8:, car.image_width // 2 - 4 : car.image_width // 2 + 4].reshape(-1, 3).astype(int)
    assert np.all(ahead.max(axis=1) - ahead.min(axis=1) < 25) and np.all(ahead.mean(axis=1) < 160)
    # lower half: the white edge line on the right, the yellow dashed centre line on the left
    lower = image[car.image_height // 2 :].astype(int)
    white_cols = np.nonzero(lower.min(axis=2) > 200)[1]
    yellow_cols = np.nonzero((lower[..., 0] > 180) & (lower[..., 1] > 150) & (lower[..., 2] < 120))[1]
    assert white_cols.size > 10 and yellow_cols.size > 3
    assert white_cols.min() > car.image_width // 2 > yellow_cols.max()


def test_chase_view_and_visual_variation_change_the_image():
    road = generate_road(2, RoadConfig(length=10.0))
    images = []
    for visuals in (VisualVariation(), VisualVariation.sample(np.random.default_rng(3))):
        backend = make_backend("pybullet")
        try:
            backend.build(road, CarParams(), visuals, 1 / 200)
            lane = road.lane_center(1.0)
            backend.reset(Pose2D(float(lane[0]), float(lane[1]), 0.0), 0.0)
            chase = backend.render_chase(96, 64)
            assert chase.shape == (64, 96, 3) and chase.dtype == np.uint8
            # the car (≈ 65 px of its body colour at 96×64) sits just below the centre of the chase view
            body = np.round(np.asarray(visuals.car_color) * 255)
            centre = chase[28:52, 36:60].astype(int)
            assert np.count_nonzero(np.all(np.abs(centre - body) < 40, axis=2)) > 40
            images.append(backend.render_camera())
        finally:
            backend.close()
    assert np.mean(np.abs(images[0].astype(int) - images[1].astype(int))) > 10


def test_unbuilt_backend_says_what_to_do():
    backend = make_backend("pybullet")
    with pytest.raises(RuntimeError, match="call build"):
        backend.vehicle_state()


def test_unknown_backend_name():
    with pytest.raises(ValueError, match="choose one of"):
        make_backend("gazebo")


def test_missing_backend_module_names_the_alternative(monkeypatch):
    from lnn_control.envs.lane_keeping import backend as backend_module
    from lnn_control.registry import LazyRegistry

    monkeypatch.setattr(backend_module, "BACKENDS", LazyRegistry("lane-keeping backend", {
        "pybullet": backend_module.BACKENDS.target("pybullet"),
        "mujoco": "lnn_control.envs.lane_keeping.no_such_module:X",
    }))
    with pytest.raises(RuntimeError, match="choose backend='pybullet'"):
        make_backend("mujoco")


def test_asphalt_textures_do_not_pile_up_on_disk():
    import os

    road = generate_road(2, RoadConfig(length=10.0))
    backend = make_backend("pybullet")
    try:
        frames = []
        for seed in (1, 2, 3):  # domain randomisation: a new texture every episode
            visuals = dataclasses.replace(VisualVariation(), texture_seed=seed, texture_strength=0.15)
            backend.build(road, CarParams(), visuals, 1 / 200)
            lane = road.lane_center(1.0)
            backend.reset(Pose2D(float(lane[0]), float(lane[1]), 0.0), 0.0)
            frames.append(backend.render_camera())
        assert os.listdir(backend._texture_dir.name) == []  # each file is deleted once PyBullet loaded it
        # ...and the loaded textures are still drawn: the asphalt ahead is speckled (untextured it is
        # one flat colour), differently per seed
        ahead = [f[-16:, 40:88].astype(int) for f in frames]
        assert all(len(np.unique(a.reshape(-1, 3), axis=0)) > 5 for a in ahead)
        assert np.abs(ahead[0] - ahead[1]).mean() > 2
    finally:
        backend.close()
