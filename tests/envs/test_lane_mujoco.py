"""MuJoCo lane backend: the car asset, car physics (cruise, steering sign, friction), cameras, determinism,
and the env on MuJoCo (check_env, expert drive)."""

from __future__ import annotations

import importlib.resources
import math
import os
import warnings

import numpy as np
import pytest

from lnn_control.envs.gl import ensure_mujoco_gl

ensure_mujoco_gl()  # before the first `import mujoco` of this process: headless EGL/OSMesa
pytest.importorskip("mujoco")

from lnn_control.envs.lane_keeping.backend import LaneBackend, Pose2D, VisualVariation, make_backend  # noqa: E402
from lnn_control.envs.lane_keeping.car import CarParams  # noqa: E402
from lnn_control.envs.lane_keeping.road import RoadConfig, generate_road  # noqa: E402

DT = 1 / 200


@pytest.fixture(scope="module")
def backend():
    backend = make_backend("mujoco")
    backend.build(generate_road(1, RoadConfig(length=10.0)), CarParams(), VisualVariation(), DT)
    yield backend
    backend.close()


def _drive(backend, steering: float, speed: float, seconds: float, friction: float = 1.0, start_speed=None):
    backend.set_friction_scale(friction)
    backend.reset(Pose2D(0.0, 0.0, 0.0), speed if start_speed is None else start_speed)
    for _ in range(int(round(seconds / 0.05))):
        backend.set_command(steering, speed)
        backend.advance(0.05)
    return backend.vehicle_state()


def test_car_asset_ships_as_package_data_and_loads_on_its_own():
    import mujoco

    text = importlib.resources.files("lnn_control.assets").joinpath("mujoco/lane_car.xml").read_text()
    model = mujoco.MjModel.from_xml_string(text)
    names = {model.joint(i).name for i in range(model.njnt)}
    assert {"front_left", "front_right", "rear_left", "rear_right", "front_left_steer", "front_right_steer"} <= names
    assert model.nu == 4 and model.ncam == 1


def test_implements_the_protocol_and_sizes_the_car_from_car_params(backend):
    assert isinstance(backend, LaneBackend)
    from lnn_control.envs.lane_keeping.mujoco_backend import build_model_spec

    car = CarParams(wheelbase=0.4, wheel_radius=0.06, camera_vertical_fov_deg=60.0, chassis_mass=3.0)
    model = build_model_spec(generate_road(2, RoadConfig(length=6.0)), car, VisualVariation(), DT).compile()
    assert model.body("front_left_knuckle").pos[0] == pytest.approx(0.2)
    assert model.body("rear_right").pos.tolist() == pytest.approx([-0.2, -0.1, 0.06])
    assert model.geom("rear_left_tyre").size[0] == pytest.approx(0.06)
    assert model.geom("chassis").size[0] == pytest.approx(car.chassis_length / 2)
    assert model.body("car").mass[0] == pytest.approx(3.0)
    assert model.cam("onboard").fovy[0] == pytest.approx(60.0)
    assert model.opt.timestep == pytest.approx(DT)
    assert model.actuator("rear_left").forcerange.tolist() == pytest.approx([-0.6, 0.6])


def test_builds_different_roads_for_different_seeds():
    import mujoco

    backend = make_backend("mujoco")
    try:
        sizes = []
        for seed in (3, 1004):
            road = generate_road(seed, RoadConfig(length=12.0))
            backend.build(road, CarParams(), VisualVariation(), DT)
            model = backend.model
            mesh = model.mesh("asphalt")
            assert int(mesh.vertnum[0]) == len(road.asphalt().vertices)
            dashes = model.mesh("centre_dashes")
            assert int(dashes.vertnum[0]) == len(road.centre_dashes().vertices)
            state = backend.vehicle_state()  # build places the car at the road's start, at rest
            assert state.x == pytest.approx(road.centerline[0, 0], abs=1e-3)
            assert state.speed == pytest.approx(0.0, abs=1e-6)
            sizes.append(tuple(model.geom("ground").size[:2]))
            for name in ("asphalt", "edge_lines", "centre_dashes"):  # visual only: nothing collides with the road
                assert model.geom(name).contype[0] == 0 and model.geom(name).conaffinity[0] == 0
            assert mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_GEOM, "ground") >= 0
        assert sizes[0] != sizes[1]
    finally:
        backend.close()


def test_reset_places_the_car_at_the_pose_moving_at_the_speed(backend):
    backend.set_friction_scale(1.0)
    backend.reset(Pose2D(1.0, 2.0, 0.7), 1.5)
    state = backend.vehicle_state()
    assert (state.x, state.y, state.yaw, state.speed, state.time) == pytest.approx((1.0, 2.0, 0.7, 1.5, 0.0))
    assert state.steering_angle == 0.0 and all(state.wheel_contacts)
    backend.advance(0.02)  # wheels already spin at the ground speed: no launch transient
    assert backend.vehicle_state().speed == pytest.approx(1.5, abs=0.01)


def test_reported_pose_and_camera_are_the_integrated_state_not_one_physics_step_behind(backend):
    backend.set_friction_scale(1.0)
    backend.reset(Pose2D(0.0, 0.0, 0.0), 2.0)
    backend.set_command(0.0, 2.0)
    backend.advance(0.05)
    state = backend.vehicle_state()
    # 2 m/s for 0.05 s: 0.10 m (one 5 ms physics step behind would read 0.09 m)
    assert state.x == pytest.approx(0.10, abs=0.002) and state.time == pytest.approx(0.05)
    frame = backend.render_camera()
    backend.reset(Pose2D(state.x, state.y, state.yaw), 2.0)  # the same pose, placed directly
    # the frames differ only by the driving car's sag (4 px measured); the pose 1 cm back: 55 px
    assert np.count_nonzero(np.any(frame != backend.render_camera(), axis=2)) < 20


def test_drives_straight_at_cruise_speed(backend):
    state = _drive(backend, 0.0, 1.5, 2.0)
    assert state.speed == pytest.approx(1.5, abs=0.03)
    assert state.x == pytest.approx(3.0, abs=0.06)
    assert abs(state.y) < 0.005 and abs(state.yaw) < 0.005 and abs(state.yaw_rate) < 0.01
    assert all(state.wheel_contacts) and state.finite
    assert abs(state.roll) < 0.01 and abs(state.pitch) < 0.01
    assert state.time == pytest.approx(2.0)


def test_cruise_control_reaches_and_holds_the_target_speed(backend):
    backend.set_friction_scale(1.0)
    backend.reset(Pose2D(0.0, 0.0, 0.0), 0.0)
    backend.set_command(0.0, 2.0)
    backend.advance(0.05)
    assert 0.0 < backend.vehicle_state().speed < 1.0
    backend.advance(1.0)
    assert backend.vehicle_state().speed == pytest.approx(2.0, abs=0.05)
    backend.set_command(0.0, 0.0)  # target 0: the motors brake to a stop
    backend.advance(1.5)
    assert abs(backend.vehicle_state().speed) < 0.05


def test_all_wheel_drive_gets_front_motors_and_holds_speed():
    backend = make_backend("mujoco")
    try:
        backend.build(generate_road(1, RoadConfig(length=10.0)), CarParams(drive="all"), VisualVariation(), DT)
        motors = {backend.model.actuator(i).name for i in range(backend.model.nu)}
        assert {"front_left", "front_right", "rear_left", "rear_right"} <= motors
        state = _drive(backend, 0.2, 2.0, 1.5, start_speed=0.0)
        assert state.speed == pytest.approx(2.0, abs=0.05)
        assert state.yaw_rate == pytest.approx(2.0 * math.tan(0.2) / 0.3, rel=0.05)
    finally:
        backend.close()


def test_positive_steering_turns_left_like_the_bicycle_model(backend):
    car = CarParams()
    left = _drive(backend, 0.2, 1.0, 2.0)
    assert left.yaw_rate == pytest.approx(1.0 * math.tan(0.2) / car.wheelbase, rel=0.05)
    assert left.steering_angle == pytest.approx(0.2, abs=0.02)
    assert left.speed == pytest.approx(1.0, abs=0.05)
    # the reference point sits half a wheelbase ahead of the rear axle: it slides outwards-left
    assert left.lateral_speed == pytest.approx(left.yaw_rate * car.wheelbase / 2, abs=0.03)
    full_lock = _drive(backend, car.max_steering, 1.0, 1.5)  # the inner wheel's Ackermann angle is not clipped
    assert full_lock.yaw_rate == pytest.approx(math.tan(car.max_steering) / car.wheelbase, rel=0.02)
    right = _drive(backend, -0.2, 1.0, 1.0)
    assert right.yaw_rate == pytest.approx(-left.yaw_rate, rel=0.05)
    assert right.y < -0.1 and right.yaw < -0.3  # a right turn: heading and position go clockwise


def test_steering_is_clipped_and_rate_limited(backend):
    car = CarParams()
    backend.set_friction_scale(1.0)
    backend.reset(Pose2D(0.0, 0.0, 0.0), 1.0)
    backend.set_command(5.0, 1.0)
    backend.advance(0.02)
    early = backend.vehicle_state().steering_angle
    assert 0.0 < early <= car.steering_rate * 0.02 * 1.05
    backend.advance(0.5)
    assert backend.vehicle_state().steering_angle == pytest.approx(car.max_steering, abs=0.02)


def test_low_friction_makes_the_car_slide(backend):
    kinematic_yaw = 2.0 * math.tan(0.3) / CarParams().wheelbase * 1.2  # bicycle model, no slip
    dry = _drive(backend, 0.3, 2.0, 1.2, friction=1.0)
    wet = _drive(backend, 0.3, 2.0, 1.2, friction=0.15)
    assert dry.yaw == pytest.approx(kinematic_yaw, abs=0.15)
    assert abs(wet.yaw) < 0.7 * abs(kinematic_yaw)  # understeer: the car ploughs wide
    assert wet.lateral_speed < -0.3  # sliding sideways, outwards (to the right in a left turn)
    assert all(dry.wheel_contacts) and all(wet.wheel_contacts) and wet.finite
    backend.set_friction_scale(1.0)


def test_commands_and_arguments_are_validated(backend):
    with pytest.raises(ValueError, match="finite"):
        backend.set_command(float("nan"), 1.0)
    with pytest.raises(ValueError, match="friction scale"):
        backend.set_friction_scale(0.0)
    with pytest.raises(ValueError, match="duration"):
        backend.advance(0.0)
    with pytest.raises(ValueError, match="render_chase"):
        backend.render_chase(0, 10)
    fresh = make_backend("mujoco")
    with pytest.raises(ValueError, match="physics_dt"):
        fresh.build(generate_road(1, RoadConfig(length=10.0)), CarParams(), VisualVariation(), 0.05)
    with pytest.raises(RuntimeError, match="build"):
        fresh.vehicle_state()


def _grey(pixels: np.ndarray) -> np.ndarray:
    return np.ptp(pixels.astype(int), axis=-1) < 12


def test_onboard_camera_sees_asphalt_grass_and_sky(backend):
    road = backend.road
    s = 3.0
    x, y = road.lane_center(s)
    backend.reset(Pose2D(float(x), float(y), float(road.heading_at(s))), 0.0)
    image = backend.render_camera()
    assert image.shape == (64, 128, 3) and image.dtype == np.uint8
    sky = np.round(np.asarray(VisualVariation().sky_color) * 255)
    np.testing.assert_allclose(image[0].reshape(-1, 3), np.broadcast_to(sky, (128, 3)), atol=2)
    bottom = image[-8:, 40:88].reshape(-1, 3)  # just ahead of the car: asphalt of the driving lane
    assert np.mean(_grey(bottom)) > 0.95 and 40 < bottom.mean() < 200
    # the road is flanked by grass (green dominates)
    pixels = image.reshape(-1, 3).astype(int)
    green = (pixels[:, 1] > pixels[:, 0] + 30) & (pixels[:, 1] > pixels[:, 2] + 30)
    assert green.mean() > 0.1
    lower = image[32:].reshape(-1, 3).astype(int)
    # white edge line and yellow centre dashes are visible
    assert np.any(np.all(lower > 200, axis=1))
    assert np.any((lower[:, 0] > 180) & (lower[:, 1] > 160) & (lower[:, 2] < 120))


def test_camera_mount_and_visual_variation_change_the_picture():
    road = generate_road(5, RoadConfig(length=8.0))
    backend = make_backend("mujoco")
    try:
        def frame(car: CarParams, visuals: VisualVariation) -> np.ndarray:
            backend.build(road, car, visuals, DT)
            x, y = road.lane_center(2.0)
            backend.reset(Pose2D(float(x), float(y), float(road.heading_at(2.0))), 0.0)
            return backend.render_camera()

        sky = np.round(np.asarray(VisualVariation().sky_color) * 255)

        def sky_rows(image: np.ndarray) -> int:
            return int(np.sum(np.all(np.abs(image[:, 64].astype(int) - sky) <= 2, axis=1)))

        level, steep = frame(CarParams(camera_pitch=0.2), VisualVariation()), frame(CarParams(camera_pitch=0.5), VisualVariation())
        assert sky_rows(level) > sky_rows(steep) + 5  # looking further down shows less sky
        wide = frame(CarParams(image_width=96, image_height=48), VisualVariation())
        assert wide.shape == (48, 96, 3)

        plain = frame(CarParams(), VisualVariation())
        varied = VisualVariation.sample(np.random.default_rng(7))
        assert not np.array_equal(plain, frame(CarParams(), varied))
        speckled = frame(CarParams(), VisualVariation(texture_strength=0.3, texture_seed=1))

        def roughness(image: np.ndarray) -> float:  # mean neighbour difference on the asphalt ahead
            return float(np.abs(np.diff(image[-12:, 30:90].astype(int), axis=1)).mean())

        assert roughness(plain) < 0.1 and roughness(speckled) > 0.6  # speckle texture on the asphalt
    finally:
        backend.close()


def test_chase_camera_shows_the_car_from_behind(backend):
    backend.reset(Pose2D(0.0, 0.0, 0.0), 0.0)
    frame = backend.render_chase(160, 120)
    assert frame.shape == (120, 160, 3) and frame.dtype == np.uint8
    red = frame[60:, 50:110].reshape(-1, 3).astype(int)
    assert np.mean((red[:, 0] > 120) & (red[:, 1] < 80)) > 0.05  # the red car in the lower centre
    big = backend.render_chase(800, 600)  # larger than the initial offscreen buffer: it grows
    assert big.shape == (600, 800, 3)


def _episode(seed: int) -> tuple[list, np.ndarray]:
    backend = make_backend("mujoco")
    try:
        road = generate_road(seed, RoadConfig(length=8.0))
        backend.build(road, CarParams(), VisualVariation.sample(np.random.default_rng(seed)), DT)
        backend.reset(Pose2D(float(road.lane_center(0.5)[0]), float(road.lane_center(0.5)[1]), 0.0), 1.0)
        states = []
        for k in range(20):
            backend.set_command(0.3 * math.sin(k / 3), 1.5)
            backend.advance(0.05)
            states.append(backend.vehicle_state())
        return states, backend.render_camera()
    finally:
        backend.close()


def test_same_inputs_give_identical_states_and_frames():
    states_a, image_a = _episode(4)
    states_b, image_b = _episode(4)
    assert states_a == states_b
    np.testing.assert_array_equal(image_a, image_b)


@pytest.mark.skipif(bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")), reason="no-display path")
def test_viewer_without_display_raises_a_clear_error():
    with pytest.raises(RuntimeError, match="needs a display"):
        make_backend("mujoco").open_viewer()


def test_env_on_mujoco_passes_check_env():
    import gymnasium as gym
    from gymnasium.utils.env_checker import check_env

    import lnn_control.envs  # noqa: F401  (registers the ids)

    env = gym.make("lnn_control/LaneKeeping-v0", backend="mujoco", road_length=6.0, render_mode="rgb_array")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            check_env(env.unwrapped, skip_render_check=True)
        assert [str(w.message) for w in caught] == []
        obs, _ = env.reset(seed=9)
        assert obs["image"].shape == (64, 128, 3)
        frame = env.render()
        assert frame.shape == (240, 320, 3) and frame.dtype == np.uint8
    finally:
        env.close()


@pytest.mark.slow
def test_expert_drives_a_held_out_road_to_the_end_on_mujoco():
    from lnn_control.envs.lane_keeping.env import LaneKeepingEnv

    env = LaneKeepingEnv(backend="mujoco", road_length=15.0, domain_randomization=True, target_speed=1.5)
    try:
        obs, info = env.reset(seed=1001)
        offsets = []
        for _ in range(400):
            obs, _, terminated, truncated, info = env.step(env.expert_action())
            offsets.append(abs(info["lateral_offset"]))
            if terminated or truncated:
                break
        assert info["success"], info["end_reason"]
        assert max(offsets) < 0.1 and np.mean(offsets) < 0.04
    finally:
        env.close()


def test_the_same_road_looks_the_same_in_mujoco_and_pybullet():
    pytest.importorskip("pybullet")
    road = generate_road(7, RoadConfig(length=20.0))
    frames = {}
    for name in ("mujoco", "pybullet"):
        backend = make_backend(name)
        try:
            backend.build(road, CarParams(), VisualVariation(), DT)
            views = []
            for s in (1.0, 6.0, 12.0):
                x, y = road.lane_center(s)
                backend.reset(Pose2D(float(x), float(y), float(road.heading_at(s))), 0.0)
                views.append(backend.render_camera())
            frames[name] = np.concatenate(views, axis=1)
        finally:
            backend.close()
    mj, pb = frames["mujoco"].astype(int), frames["pybullet"].astype(int)
    assert np.abs(mj - pb).mean() < 15  # of 255

    def iou(mask) -> float:
        a, b = mask(mj), mask(pb)
        return float((a & b).sum() / max((a | b).sum(), 1))

    assert iou(lambda im: im[..., 1] > im[..., 0] + 30) > 0.85  # grass
    assert iou(lambda im: (im[..., 0] > 180) & (im[..., 2] < 120)) > 0.6  # yellow centre dashes
    assert iou(lambda im: np.all(im > 200, axis=-1)) > 0.45  # white edge lines (thin: aliasing differs)


@pytest.mark.slow
def test_env_on_mujoco_same_seed_same_episode_with_domain_randomization():
    from lnn_control.envs.lane_keeping.env import LaneKeepingEnv

    def rollout(seed: int):
        env = LaneKeepingEnv(backend="mujoco", road_length=8.0, domain_randomization=True)
        try:
            obs, _ = env.reset(seed=seed)
            images, offsets = [obs["image"]], []
            for _ in range(10):
                obs, _, _, _, info = env.step(env.expert_action())
                images.append(obs["image"])
                offsets.append(info["lateral_offset"])
            return np.stack(images), offsets
        finally:
            env.close()

    images_a, offsets_a = rollout(21)
    images_b, offsets_b = rollout(21)
    np.testing.assert_array_equal(images_a, images_b)
    assert offsets_a == offsets_b
    images_c, _ = rollout(22)
    assert not np.array_equal(images_a[0], images_c[0])


def test_frames_can_be_rendered_from_another_thread(backend):
    """The runtime may build the env in one thread and step it in its loop thread."""
    import threading

    backend.reset(Pose2D(0.0, 0.0, 0.0), 0.0)
    here = backend.render_camera()
    result = {}

    def worker() -> None:
        try:
            result["image"] = backend.render_camera()
        except Exception as error:  # reported below with its message
            result["error"] = repr(error)

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join(timeout=30)
    assert "error" not in result, result.get("error")
    np.testing.assert_array_equal(result["image"], here)
    np.testing.assert_array_equal(backend.render_camera(), here)  # and back on this thread
