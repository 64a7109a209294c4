"""MuJoCo drone-forest backend: quadrotor physics against QuadParams, controller tracking, camera,
frustum culling, collisions, determinism, and agreement with the PyBullet backend."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lnn_control.envs.drone_forest import mujoco_backend
from lnn_control.envs.drone_forest.backend import (
    DroneBackend,
    DroneState,
    VisualVariation,
    yaw_quaternion,
)
from lnn_control.envs.drone_forest.controller import CascadedController
from lnn_control.envs.drone_forest.forest import generate_forest
from lnn_control.envs.drone_forest.mujoco_backend import MujocoDroneBackend, frustum_visible
from lnn_control.envs.drone_forest.quad import GRAVITY, QuadParams, motor_response

PHYSICS_DT = 1.0 / 240.0
QUAD = QuadParams()


@pytest.fixture(scope="module")
def forest():
    return generate_forest(7)


@pytest.fixture(scope="module")
def sparse():
    """Two trees: open sky for the physics tests."""
    return generate_forest(7, density_scale=0.02)


@pytest.fixture()
def backend(forest):
    sim = MujocoDroneBackend()
    sim.build(forest, QUAD, VisualVariation(), PHYSICS_DT)
    yield sim
    sim.close()


def _state(position, yaw=0.0, velocity=(0.0, 0.0, 0.0), rates=(0.0, 0.0, 0.0)) -> DroneState:
    return DroneState(0.0, np.asarray(position, float), yaw_quaternion(yaw), np.asarray(velocity, float),
                      np.asarray(rates, float))


def _open_spot(forest, clearance=4.0) -> np.ndarray:
    """The grid point (2 m altitude) farthest from every trunk, at least ``clearance`` m away."""
    grid = np.stack(np.meshgrid(np.linspace(-20, 20, 81), np.linspace(-20, 20, 81)), -1).reshape(-1, 2)
    best = grid[int(np.argmax(forest.clearance(grid)))]
    assert forest.clearance(best) >= clearance
    return np.array([best[0], best[1], 2.0])


def fly(sim, action, seconds: float) -> list[DroneState]:
    """Closed loop as the env runs it: controller → motor lag → thrusts → one physics step. Returns
    the state after every physics step."""
    controller = CascadedController(QUAD)
    thrusts = np.full(4, QUAD.hover_thrust)
    states = []
    for _ in range(int(round(seconds / PHYSICS_DT))):
        command = controller.update(np.asarray(action, float), sim.drone_state(), PHYSICS_DT)
        thrusts = motor_response(thrusts, command, PHYSICS_DT, QUAD.motor_time_constant)
        sim.set_rotor_thrusts(thrusts)
        sim.advance(PHYSICS_DT)
        states.append(sim.drone_state())
    return states


def test_is_a_drone_backend(backend):
    assert isinstance(backend, DroneBackend)
    assert backend.model.nu == 4


def test_hover_thrust_balances_weight(backend, sparse):
    backend.build(sparse, QUAD, VisualVariation(), PHYSICS_DT)
    start = _open_spot(sparse, 15.0)
    backend.reset(_state(start))
    backend.set_rotor_thrusts(np.full(4, QUAD.hover_thrust))
    backend.advance(2.0)
    state = backend.drone_state()
    assert state.time == pytest.approx(2.0)
    np.testing.assert_allclose(state.position, start, atol=1e-6)
    np.testing.assert_allclose(state.velocity, 0.0, atol=1e-6)
    assert not backend.collided()
    # 10 % more thrust: a = 0.1 g up against linear drag c: v(t) = a m/c (1 − exp(−c t/m))
    backend.set_rotor_thrusts(np.full(4, 1.1 * QUAD.hover_thrust))
    backend.advance(0.2)
    c, m = QUAD.linear_drag[2], QUAD.mass
    expected = 0.1 * GRAVITY * m / c * (1 - math.exp(-c * 0.2 / m))
    assert backend.drone_state().velocity[2] == pytest.approx(expected, rel=0.005)


@pytest.mark.parametrize("delta", [(0.4, -0.4, -0.4, 0.4), (0.3, 0.3, -0.3, -0.3), (0.2, -0.2, 0.2, -0.2)])
def test_rotor_wrench_matches_quadparams_mixer(backend, sparse, delta):
    """Body angular acceleration from differential thrust = I⁻¹ τ with τ from QuadParams.mixer
    (rotor positions, spin directions and the yaw-torque coefficient all sized from QuadParams)."""
    backend.build(sparse, QUAD, VisualVariation(), PHYSICS_DT)
    backend.reset(_state(_open_spot(sparse, 15.0), yaw=0.7))
    thrusts = QUAD.hover_thrust + np.asarray(delta)
    backend.set_rotor_thrusts(thrusts)
    dt = 3 * PHYSICS_DT
    backend.advance(dt)
    _, torque = QUAD.body_wrench(thrusts)
    expected = torque / np.asarray(QUAD.inertia) * dt
    np.testing.assert_allclose(backend.drone_state().angular_velocity, expected, rtol=0.02, atol=1e-6)


def test_linear_drag_against_wind(backend, sparse):
    backend.build(sparse, QUAD, VisualVariation(), PHYSICS_DT)
    backend.reset(_state(_open_spot(sparse, 15.0), yaw=math.pi / 2))
    backend.set_wind(np.array([3.0, 0.0, 0.0]))
    backend.set_rotor_thrusts(np.full(4, QUAD.hover_thrust))
    backend.advance(0.1)
    # heading +y: world x is the body's −y axis, drag coefficient c = linear_drag[1]; the air drags
    # the drone towards the wind speed: v(t) = w (1 − exp(−c t/m))
    expected = 3.0 * (1 - math.exp(-QUAD.linear_drag[1] * 0.1 / QUAD.mass))
    assert backend.drone_state().velocity[0] == pytest.approx(expected, rel=0.005)
    backend.set_wind(np.zeros(3))


def test_bad_inputs_are_refused(backend):
    with pytest.raises(ValueError, match="4 thrusts"):
        backend.set_rotor_thrusts(np.ones(3))
    with pytest.raises(ValueError, match="set_wind"):
        backend.set_wind(np.array([np.nan, 0.0, 0.0]))
    with pytest.raises(ValueError, match="physics_dt"):
        backend.build(generate_forest(7), QUAD, VisualVariation(), 0.05)
    with pytest.raises(ValueError, match="render"):
        backend.render_chase(0, 100)
    with pytest.raises(ValueError, match="advance"):
        backend.advance(float("nan"))
    # NaN thrusts never reach the simulator: they become 0 (free fall)
    backend.set_rotor_thrusts(np.array([np.nan, 1.0, 1.0, 1.0]))
    assert np.all(np.isfinite(backend.data.ctrl)) and backend.data.ctrl[0] == 0.0
    with pytest.raises(RuntimeError, match="build"):
        MujocoDroneBackend().drone_state()


def test_controller_tracks_vx_step(backend, sparse):
    """The shared cascaded controller on MuJoCo meets its documented vx step response
    (10→90 % rise ≤ 1.5 s, overshoot ≤ 20 %) and holds altitude and heading."""
    backend.build(sparse, QUAD, VisualVariation(), PHYSICS_DT)
    start = _open_spot(sparse, 15.0)
    backend.reset(_state(start, yaw=0.3))
    states = fly(backend, (1.0, 0.0, 0.0, 0.0), 4.0)
    vx = np.array([s.heading_velocity[0] for s in states])
    t = np.arange(1, len(vx) + 1) * PHYSICS_DT
    rise = t[np.argmax(vx >= 0.9)] - t[np.argmax(vx >= 0.1)]
    assert 0.2 < rise <= 1.5
    assert vx.max() <= 1.2
    assert vx[-1] == pytest.approx(1.0, abs=0.05)
    assert abs(states[-1].position[2] - start[2]) < 0.1
    assert abs(states[-1].yaw - 0.3) < 0.02


def test_onboard_camera_sees_trunk_and_target(backend, forest):
    # 3 m in front of the trunk nearest the origin, facing it at 1.5 m altitude
    index = int(np.argmin(np.linalg.norm(forest.trunk_xy, axis=1)))
    trunk = forest.trunk_xy[index]
    eye = trunk - np.array([3.0 + forest.trunk_radius[index], 0.0])
    backend.reset(_state([eye[0], eye[1], 1.5], yaw=0.0))
    frame = backend.render_camera()
    assert frame.shape == QUAD.image_shape and frame.dtype == np.uint8
    h, w, _ = frame.shape
    centre = frame[h // 2 - 2:h // 2 + 2, w // 2 - 1:w // 2 + 1].reshape(-1, 3).mean(0)
    colour = np.asarray(forest.trunk_color)
    cosine = centre @ colour / (np.linalg.norm(centre) * np.linalg.norm(colour))
    assert cosine > 0.99, (centre, colour)
    # the target: face it from 4 m away, the centre is target-red
    target = forest.target_position
    rise = 4.0 * math.tan(QUAD.camera_pitch) - QUAD.camera_up  # the optical axis hits the cube's centre
    backend.reset(_state([target[0] - 4.0, target[1], target[2] + rise], yaw=0.0))
    centre = backend.render_camera()[h // 2 - 1:h // 2 + 1, w // 2 - 1:w // 2 + 1].reshape(-1, 3).mean(0)
    assert centre[0] > 2 * centre[1] and centre[0] > 2 * centre[2], centre


def test_frustum_culling_changes_no_pixel(backend, forest, monkeypatch):
    """Hiding trees outside the view frustum only skips work: frames are bit-identical to drawing all."""
    backend.reset(_state(_open_spot(forest, 2.0), yaw=0.4))
    data, model, trees = backend.data, backend.model, backend._tree_geoms
    frame = data.cam_xmat[0].reshape(3, 3)
    visible = frustum_visible(data.geom_xpos[trees], model.geom_rbound[trees], data.cam_xpos[0], -frame[:, 2],
                              frame[:, 1], QUAD.camera_vertical_fov_deg, QUAD.image_width / QUAD.image_height,
                              QUAD.camera_far)
    depth = (data.geom_xpos[trees] - data.cam_xpos[0]) @ -frame[:, 2]
    behind = depth < -model.geom_rbound[trees] - 1.0
    assert behind.sum() > 10 and not visible[behind].any()  # everything behind the camera is culled
    assert visible.sum() > 10
    backend.set_rotor_thrusts(np.array([3.0, 2.0, 2.5, 2.4]))  # tumble a little: roll, pitch and yaw
    backend.advance(0.3)
    culled_camera, culled_chase = backend.render_camera(), backend.render_chase(160, 120)
    monkeypatch.setattr(mujoco_backend, "frustum_visible", lambda centres, *args: np.ones(len(centres), bool))
    np.testing.assert_array_equal(backend.render_camera(), culled_camera)
    np.testing.assert_array_equal(backend.render_chase(160, 120), culled_chase)


def test_collision_with_trunk_and_ground(backend, forest):
    index = int(np.argmin(np.linalg.norm(forest.trunk_xy, axis=1)))
    trunk = forest.trunk_xy[index]
    backend.reset(_state([trunk[0] - 1.5, trunk[1], 1.5], velocity=(2.0, 0.0, 0.0)))
    backend.set_rotor_thrusts(np.full(4, QUAD.hover_thrust))
    backend.advance(0.4)
    assert not backend.collided()  # 0.8 m travelled, still short of the trunk
    backend.advance(0.6)
    assert backend.collided()
    assert backend.drone_state().position[0] < trunk[0]  # stopped by the trunk, not through it
    # reset clears the flag; a free fall from 1 m hits the ground
    backend.reset(_state(_open_spot(forest, 2.0) * [1, 1, 0.5]))
    assert not backend.collided()
    backend.set_rotor_thrusts(np.zeros(4))
    backend.advance(1.0)
    assert backend.collided()


def test_viewer_without_a_display_says_what_to_do(backend, monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    with pytest.raises(RuntimeError, match="rgb_array"):
        backend.open_viewer()
    backend.sync_viewer()  # no viewer: a no-op


def test_wind_persists_across_reset_and_rebuild(backend, sparse):
    backend.set_wind(np.array([0.0, 2.0, 0.0]))
    backend.build(sparse, QUAD, VisualVariation(), PHYSICS_DT)
    backend.reset(_state(_open_spot(sparse, 15.0)))
    backend.set_rotor_thrusts(np.full(4, QUAD.hover_thrust))
    backend.advance(0.5)
    assert backend.drone_state().velocity[1] > 0.1  # pushed along +y by the wind


def test_same_inputs_same_states_and_frames(forest):
    runs = []
    for _ in range(2):
        sim = MujocoDroneBackend()
        sim.build(forest, QUAD, VisualVariation(), PHYSICS_DT)
        sim.reset(_state(forest.start_position, yaw=forest.start_yaw))
        sim.set_wind(np.array([0.5, -0.3, 0.0]))
        states = fly(sim, (1.5, 0.3, 0.2, 0.4), 1.0)
        runs.append((np.concatenate([states[-1].position, states[-1].quaternion]), sim.render_camera()))
        sim.close()
    np.testing.assert_array_equal(runs[0][0], runs[1][0])
    np.testing.assert_array_equal(runs[0][1], runs[1][1])


def test_rebuild_with_new_forest_and_visuals(backend):
    other = generate_forest(1001, density_scale=0.05)
    backend.build(other, QUAD, VisualVariation(sky_color=(0.2, 0.2, 0.2)), PHYSICS_DT)
    np.testing.assert_allclose(backend.drone_state().position, other.start_position)
    assert backend.model.ngeom == QUAD_GEOMS + 2 * other.num_trees + 3
    top = backend.render_chase(64, 48)[0]
    sky = np.all(np.abs(top.astype(int) - round(0.2 * 255)) <= 1, axis=1)  # the new flat grey sky
    assert sky.mean() > 0.5


QUAD_GEOMS = 7  # hull, two arms, four rotor discs (+ ground, target cube, target pole)


def test_agrees_with_pybullet_on_hover_and_step(sparse):
    """Both backends fly the same closed loop from the same start: hover holds and a step response
    (vx + vz, in a side wind) agree within tolerance (same QuadParams, controller and motor model).
    Measured: identical hover, ≤ 3e-5 m/s velocity and ≤ 1e-5 m position difference."""
    pybullet_backend = pytest.importorskip("lnn_control.envs.drone_forest.pybullet_backend")
    start = _open_spot(sparse, 15.0)
    results = {}
    for name, cls in (("mujoco", MujocoDroneBackend), ("pybullet", pybullet_backend.PyBulletDroneBackend)):
        sim = cls()
        sim.build(sparse, QUAD, VisualVariation(), PHYSICS_DT)
        sim.reset(_state(start, yaw=0.3))
        hover = fly(sim, (0.0, 0.0, 0.0, 0.0), 1.0)
        sim.set_wind(np.array([1.0, -2.0, 0.5]))
        step = fly(sim, (1.0, 0.0, 0.3, 0.0), 3.0)
        results[name] = (hover, step)
        sim.close()
    (hover_m, step_m), (hover_p, step_p) = results["mujoco"], results["pybullet"]
    np.testing.assert_allclose(hover_m[-1].position, start, atol=1e-4)
    np.testing.assert_allclose(hover_m[-1].position, hover_p[-1].position, atol=1e-3)
    vel_m = np.array([s.heading_velocity for s in step_m])
    vel_p = np.array([s.heading_velocity for s in step_p])
    assert vel_m[-1, 0] == pytest.approx(1.0, abs=0.05) and vel_m[-1, 2] == pytest.approx(0.3, abs=0.05)
    assert np.max(np.abs(vel_m - vel_p)) < 0.005
    np.testing.assert_allclose(step_m[-1].position, step_p[-1].position, atol=0.005)
    np.testing.assert_allclose(step_m[-1].quaternion, step_p[-1].quaternion, atol=1e-3)


def test_diverging_simulation_gives_a_nan_state_not_a_restart(backend, sparse, tmp_path, monkeypatch):
    """MuJoCo's auto-reset is off: a blow-up reads as a non-finite state (the env ends the episode
    with a failure flag) until the next reset, instead of the drone teleporting to the model origin."""
    monkeypatch.chdir(tmp_path)  # MuJoCo logs the instability warning to ./MUJOCO_LOG.TXT
    backend.build(sparse, QUAD, VisualVariation(), PHYSICS_DT)
    start = _open_spot(sparse, 15.0)
    backend.reset(_state(start, rates=(0.0, 0.0, 1e155)))
    backend.set_rotor_thrusts(np.full(4, QUAD.hover_thrust))
    backend.advance(0.1)
    state = backend.drone_state()
    assert not state.finite and state.time == pytest.approx(0.1)
    backend.advance(0.1)  # stepping on is harmless
    backend.reset(_state(start))
    backend.set_rotor_thrusts(np.full(4, QUAD.hover_thrust))
    backend.advance(0.1)
    assert backend.drone_state().finite
    np.testing.assert_allclose(backend.drone_state().position, start, atol=1e-3)


@pytest.mark.slow
def test_expert_flies_a_held_out_forest_like_on_pybullet():
    """The privileged expert reaches the target on a held-out forest in the MuJoCo env, along the
    same path as in the PyBullet env (same forest, start, controller and physics parameters)."""
    from lnn_control.envs.drone_forest.env import DroneForestEnv

    tracks = {}
    for name in ("mujoco", "pybullet"):
        if name == "pybullet":
            pytest.importorskip("lnn_control.envs.drone_forest.pybullet_backend")
        env = DroneForestEnv(backend=name)
        try:
            env.reset(seed=1000)
            track = []
            while True:
                *_, terminated, truncated, info = env.step(env.expert_action().astype(np.float32))
                track.append((info["x"], info["y"], info["z"]))
                if terminated or truncated:
                    break
        finally:
            env.close()
        assert info["end_reason"] == "success" and info["success"] and not info["collision"], (name, info)
        tracks[name] = np.array(track)
    assert len(tracks["mujoco"]) == len(tracks["pybullet"])
    np.testing.assert_allclose(tracks["mujoco"], tracks["pybullet"], atol=0.02)
