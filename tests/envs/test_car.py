"""Geometry both backends share: Ackermann wheel angles, per-wheel ground speeds, the chase view."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lnn_control.envs.common import check_render_size
from lnn_control.envs.lane_keeping.backend import VehicleState, chase_camera
from lnn_control.envs.lane_keeping.car import WHEEL_NAMES, CarParams


@pytest.mark.parametrize("steering", [0.4, 0.15, -0.05, -0.4])
def test_front_wheels_point_at_the_turn_centre_and_wheels_roll_at_their_radius(steering):
    car = CarParams()
    radius = car.wheelbase / math.tan(steering)  # of the rear-axle centre, + = turning left
    centre = np.array([-0.5 * car.wheelbase, radius])  # on the rear axle line, car frame
    for name in WHEEL_NAMES[:2]:
        wheel = car.wheel_position(name)[:2]
        angle = car.ackermann_angle(name, steering)
        rolling = np.array([math.cos(angle), math.sin(angle)])
        # a wheel rolling without side slip moves perpendicular to the line to the turn centre
        assert float(np.dot(rolling, wheel - centre)) == pytest.approx(0.0, abs=1e-12)
        assert math.copysign(1.0, angle) == math.copysign(1.0, steering)
    inner, outer = ("front_left", "front_right") if steering > 0 else ("front_right", "front_left")
    assert abs(car.ackermann_angle(inner, steering)) > abs(steering) > abs(car.ackermann_angle(outer, steering))
    for name in WHEEL_NAMES:
        distance = float(np.linalg.norm(car.wheel_position(name)[:2] - centre))
        assert car.wheel_ground_speed(name, 2.0, steering) == pytest.approx(2.0 * distance / abs(radius), rel=1e-12)


def test_straight_ahead_and_bad_wheel_names():
    car = CarParams()
    assert car.ackermann_angle("front_left", 0.0) == 0.0
    assert all(car.wheel_ground_speed(name, 1.5, 0.0) == pytest.approx(1.5) for name in WHEEL_NAMES)
    with pytest.raises(ValueError, match="front wheel"):
        car.ackermann_angle("rear_left", 0.2)
    with pytest.raises(ValueError, match="unknown wheel"):
        car.wheel_ground_speed("spare", 1.0, 0.0)


def test_chase_view_looks_over_the_car_from_behind():
    state = VehicleState(
        time=0.0, x=2.0, y=-1.0, yaw=math.pi / 2, roll=0.0, pitch=0.0, speed=1.0, lateral_speed=0.0,
        yaw_rate=0.0, steering_angle=0.0, wheel_contacts=(True,) * 4,
    )
    eye, target = chase_camera(state)  # the car faces +y: the eye is at -y, the target at +y
    np.testing.assert_allclose(eye, [2.0, -2.2, 0.8], atol=1e-12)
    np.testing.assert_allclose(target, [2.0, -0.4, 0.0], atol=1e-12)
    check_render_size(320, 240)
    for size in ((0, 240), (320.0, 240), (320, -1), (True, 240)):
        with pytest.raises(ValueError, match="positive int width/height"):
            check_render_size(*size)
    with pytest.raises(ValueError, match="exceeds the largest frame 1920x1080"):
        check_render_size(1921, 240)


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("wheelbase", float("nan"), "wheelbase must be a finite number > 0"),
        ("camera_pitch", float("nan"), "camera_pitch must be a finite number"),
        ("rolling_friction", float("nan"), "rolling_friction must be a finite number"),
        ("chassis_clearance", -0.01, "must be ≥ 0"),
        ("max_steering", 1.2, "max_steering must be < 1 rad"),
        ("image_width", 64.0, "image_width must be an int"),
    ],
)
def test_bad_car_params_name_the_field(field, value, message):
    with pytest.raises(ValueError, match=message):
        CarParams(**{field: value})
