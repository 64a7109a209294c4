"""PyBullet drone backend + cascaded controller: rotor physics, drag/wind, contacts, step responses.

Documented bounds (controller module docstring), hover start, 240 Hz physics, 20 Hz commands:
vx 0 → 1 m/s: 10–90 % rise ≤ 1.5 s, overshoot ≤ 20 %; vz 0 → 0.5 m/s: rise ≤ 1.0 s, overshoot ≤ 20 %.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

pytest.importorskip("pybullet")

from lnn_control.envs.drone_forest.backend import DroneState, VisualVariation, yaw_quaternion  # noqa: E402
from lnn_control.envs.drone_forest.env import DroneForestEnv  # noqa: E402
from lnn_control.envs.drone_forest.forest import generate_forest  # noqa: E402
from lnn_control.envs.drone_forest.pybullet_backend import PyBulletDroneBackend  # noqa: E402
from lnn_control.envs.drone_forest.quad import ROTOR_SPIN, QuadParams  # noqa: E402


@pytest.fixture(scope="module")
def open_env():
    """An empty forest (no trees), no start noise: pure flight dynamics."""
    env = DroneForestEnv(forest_density=0.0, start_noise=False, include_velocity=True)
    yield env
    env.close()


def _fly(env: DroneForestEnv, action, seconds: float) -> np.ndarray:
    """Heading-frame velocity [N, 3] sampled after each env step, starting from hover at reset."""
    env.reset(seed=0)
    out = []
    for _ in range(int(round(seconds / env.control_dt))):
        env.step(np.asarray(action, np.float32))
        out.append(env.drone_state().heading_velocity)
    return np.array(out)


def _rise_and_overshoot(signal: np.ndarray, target: float, dt: float) -> tuple[float, float]:
    t10 = np.argmax(signal >= 0.1 * target) * dt
    t90 = np.argmax(signal >= 0.9 * target) * dt
    assert signal.max() >= 0.9 * target, "never reached 90 % of the command"
    return float(t90 - t10), float(signal.max() / target - 1.0)


def test_hover_holds_position(open_env: DroneForestEnv) -> None:
    open_env.reset(seed=0)
    start = open_env.drone_state().position
    for _ in range(40):
        open_env.step(np.zeros(4, np.float32))
    state = open_env.drone_state()
    assert np.linalg.norm(state.position - start) < 0.05
    assert state.tilt < 0.01


def test_vx_step_response(open_env: DroneForestEnv) -> None:
    v = _fly(open_env, [1.0, 0.0, 0.0, 0.0], 4.0)
    rise, overshoot = _rise_and_overshoot(v[:, 0], 1.0, open_env.control_dt)
    assert rise <= 1.5 and overshoot <= 0.20
    assert abs(v[-1, 0] - 1.0) < 0.05  # settles
    assert np.abs(v[:, 1]).max() < 0.05 and np.abs(v[:, 2]).max() < 0.1  # no cross-coupling


def test_vz_step_response(open_env: DroneForestEnv) -> None:
    v = _fly(open_env, [0.0, 0.0, 0.5, 0.0], 2.0)
    rise, overshoot = _rise_and_overshoot(v[:, 2], 0.5, open_env.control_dt)
    assert rise <= 1.0 and overshoot <= 0.20
    assert abs(v[-1, 2] - 0.5) < 0.05


def test_lateral_and_yaw_rate_tracking(open_env: DroneForestEnv) -> None:
    v = _fly(open_env, [0.0, -0.8, 0.0, 0.0], 3.0)
    assert abs(v[-1, 1] + 0.8) < 0.05
    open_env.reset(seed=0)
    yaw0 = open_env.drone_state().yaw
    for _ in range(20):  # 1 s at 0.5 rad/s
        open_env.step(np.array([0, 0, 0, 0.5], np.float32))
    state = open_env.drone_state()
    assert state.angular_velocity[2] == pytest.approx(0.5, abs=0.03)
    assert math.remainder(state.yaw - yaw0, 2 * math.pi) == pytest.approx(0.5, abs=0.08)


@pytest.fixture()
def backend():
    b = PyBulletDroneBackend()
    b.build(generate_forest(0), QuadParams(), VisualVariation(), 1 / 240)
    yield b
    b.close()


def _place(b: PyBulletDroneBackend, position, velocity=(0, 0, 0), yaw=0.0) -> None:
    b.reset(DroneState(0.0, np.asarray(position, float), yaw_quaternion(yaw), np.asarray(velocity, float), np.zeros(3)))


def test_rotor_forces_gravity_drag_and_reaction_torque(backend: PyBulletDroneBackend) -> None:
    quad = QuadParams()
    _place(backend, [0, 0, 3.0])
    backend.set_rotor_thrusts(np.full(4, quad.hover_thrust))
    backend.advance(0.5)
    state = backend.drone_state()
    assert np.linalg.norm(state.velocity) < 1e-3 and state.time == pytest.approx(0.5)
    # fall with rotors off against vertical drag c: vz(t) = −(m g / c)(1 − exp(−c t / m))
    _place(backend, [0, 0, 3.0])
    backend.set_rotor_thrusts(np.zeros(4))
    backend.advance(0.25)
    c, m = quad.linear_drag[2], quad.mass
    assert backend.drone_state().velocity[2] == pytest.approx(-(m * 9.81 / c) * (1 - math.exp(-c * 0.25 / m)), rel=2e-3)
    # linear drag: v(t) = v0 exp(−c t / m) along body x at hover thrust
    _place(backend, [0, 0, 3.0], velocity=[2.0, 0, 0])
    backend.set_rotor_thrusts(np.full(4, quad.hover_thrust))
    backend.advance(0.2)
    assert backend.drone_state().velocity[0] == pytest.approx(2.0 * math.exp(-quad.linear_drag[0] * 0.2 / quad.mass), rel=1e-3)
    # more thrust on the counter-clockwise rotors yaws the body clockwise (−z); no roll/pitch torque
    _place(backend, [0, 0, 3.0])
    spin = np.asarray(ROTOR_SPIN)
    backend.set_rotor_thrusts(quad.hover_thrust + 0.3 * spin)
    backend.advance(0.1)
    omega = backend.drone_state().angular_velocity
    expected = -quad.yaw_torque_coefficient * 0.3 * 4 / quad.inertia[2] * 0.1
    assert omega[2] == pytest.approx(expected, rel=0.02)
    assert np.abs(omega[:2]).max() < 1e-6


def test_wind_pushes_through_drag(backend: PyBulletDroneBackend) -> None:
    quad = QuadParams()
    backend.set_wind(np.array([3.0, 0.0, 0.0]))
    _place(backend, [0, 0, 3.0])
    backend.set_rotor_thrusts(np.full(4, quad.hover_thrust))
    backend.advance(0.2)
    vx = backend.drone_state().velocity[0]
    assert vx == pytest.approx(3.0 * (1 - math.exp(-quad.linear_drag[0] * 0.2 / quad.mass)), rel=1e-3)
    with pytest.raises(ValueError, match="wind"):
        backend.set_wind(np.array([np.nan, 0, 0]))


def test_contacts_with_ground_and_trunk(backend: PyBulletDroneBackend) -> None:
    forest = generate_forest(0)
    _place(backend, [0, 0, 0.5])
    backend.set_rotor_thrusts(np.zeros(4))
    assert not backend.collided()
    backend.advance(0.6)
    assert backend.collided()
    # fly into the nearest trunk at 3 m/s from 0.6 m away
    centre, radius = forest.trunk_xy[0], forest.trunk_radius[0]
    _place(backend, [centre[0] - radius - 0.6, centre[1], 2.0], velocity=[3.0, 0, 0])
    backend.set_rotor_thrusts(np.full(4, QuadParams().hover_thrust))
    assert not backend.collided()
    backend.advance(0.4)
    assert backend.collided()


def test_camera_sees_trees_sky_and_ground(backend: PyBulletDroneBackend) -> None:
    forest = generate_forest(0)
    centre = forest.trunk_xy[0]
    _place(backend, [centre[0] - 3.0, centre[1], 1.5])  # facing +x, a trunk 3 m ahead
    image = backend.render_camera()
    assert image.shape == (64, 128, 3) and image.dtype == np.uint8
    sky = np.round(np.asarray(VisualVariation().sky_color) * 255)
    is_sky = np.all(image == sky, axis=2)
    assert is_sky[:20].mean() > 0.05  # sky (between canopies) in the upper part
    assert not is_sky[-10:].any()  # ground at the bottom
    # the trunk dead ahead fills the centre column with trunk colour (brownish: red > blue)
    column = image[20:44, 62:66].reshape(-1, 3).astype(int)
    assert np.mean(column[:, 0] > column[:, 2]) > 0.9
    chase = backend.render_chase(96, 64)
    assert chase.shape == (64, 96, 3)
