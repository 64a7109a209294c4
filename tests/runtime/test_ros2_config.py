"""``robot.kind: ros2`` launch files: the typed ``robot.ros2`` section, its errors, and the robot it builds."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from lnn_control.config import ConfigError
from lnn_control.runtime.launch import load_launch
from lnn_control.runtime.ros2.config import CameraTopicConfig, Ros2RobotConfig, ZenohConfig
from lnn_control.runtime.ros2.robot import Ros2Robot
from lnn_control.runtime.session import check_robot_matches_policy, make_robot
from lnn_control.spec import ActionFrame, ActionSpec, ObservationSpec


def launch_file(tmp_path: Path, robot: dict, name: str = "ros2.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump({"policy": "lane_keeping_ncp19", "rate_hz": 50, "robot": robot,
                                    "watchdog": {"max_frame_age_s": 0.1}}))
    return path


def test_a_ros2_launch_file_loads_with_typed_sections(tmp_path):
    config = load_launch(launch_file(tmp_path, {"kind": "ros2", "ros2": {
        "domain_id": 5, "namespace": "/robot1",
        "zenoh": {"connect": ["tcp/192.168.1.20:7447"], "listen": []},
        "camera": {"topic": "camera/image_raw", "type": "CompressedImage", "rate_hz": 30},
        "odometry": {"topic": "/odom"}, "extras": ["speed"],
        "command": {"topic": "cmd_vel", "reliability": "best_effort"},
        "car": {"wheelbase": 0.26, "cruise_speed": 1.0},
    }}))
    ros2 = config.robot.ros2
    assert ros2 is not None and ros2.domain_id == 5
    assert ros2.zenoh == ZenohConfig(connect=("tcp/192.168.1.20:7447",), listen=())
    assert ros2.topic(ros2.camera.topic) == "/robot1/camera/image_raw"
    assert ros2.camera.msgtype == "sensor_msgs/msg/CompressedImage"
    assert ros2.command.qos.key() == "2::,10:,:,:,,"
    assert ros2.car.wheelbase == 0.26
    assert ros2.camera.stale_s == pytest.approx(1 / 30 + 0.002)


def test_defaults_are_rmw_zenohs(tmp_path):
    ros2 = load_launch(launch_file(tmp_path, {"kind": "ros2", "ros2": {}})).robot.ros2
    assert ros2 == Ros2RobotConfig()
    assert ros2.zenoh.connect == ("tcp/localhost:7447",) and ros2.zenoh.listen == ("tcp/localhost:0",)
    assert not ros2.zenoh.multicast_scouting
    assert ros2.command.topic == "/cmd_vel" and ros2.command.frame_id == "base_link"


@pytest.mark.parametrize(("robot", "message"), [
    ({"kind": "ros2"}, "add a robot.ros2 section"),
    ({"kind": "ros2", "ros2": {}, "camera": {"kind": "opencv", "source": 0}}, "drop robot.camera"),
    ({"kind": "serial_car", "ros2": {}, "camera": {"kind": "opencv", "source": 0}}, "only for kind ros2"),
    ({"kind": "ros2", "ros2": {"camera": {"fps": 30}}}, r"unknown key\(s\) \['fps'\] at robot.ros2.camera"),
    ({"kind": "ros2", "ros2": {"extras": ["speed"]}}, "add an odometry section"),
    ({"kind": "ros2", "ros2": {"actions": ["throttle"]}}, "no Twist mapping"),
    ({"kind": "ros2", "ros2": {"zenoh": {"connect": ["7447"]}}}, "tcp/HOST:PORT"),
    ({"kind": "ros2", "ros2": {"camera": {"rate_hz": 50, "stale_after_s": 0.01}}}, "longer than one camera period"),
    ({"kind": "ros2", "ros2": {"camera": {"topic": "/camera image"}}}, "not a ROS 2 topic name"),
    ({"kind": "ros2", "ros2": {"camera": {"capture_time": "now"}}}, "allowed values"),
    ({"kind": "ros2", "ros2": {"domain_id": 300}}, r"\[0, 232\]"),
])
def test_bad_ros2_sections_name_the_key(tmp_path, robot, message):
    with pytest.raises(ConfigError, match=message):
        load_launch(launch_file(tmp_path, robot))


def test_car_and_drone_action_specs():
    car = Ros2Robot(Ros2RobotConfig(actions=("steering", "throttle")), (64, 128))
    assert car.action_spec == ActionSpec(("steering", "throttle"), (-1.0, -1.0), (1.0, 1.0),
                                         ("normalized", "normalized"), ActionFrame.FLU)
    drone = Ros2Robot(Ros2RobotConfig(actions=("vx", "vy", "vz", "yaw_rate"), velocity_limits=(2.0, 1.0, 0.5, 1.5)))
    assert drone.action_spec.high == (2.0, 1.0, 0.5, 1.5) and drone.action_spec.low == (-2.0, -1.0, -0.5, -1.5)
    assert drone.action_spec.units == ("m/s", "m/s", "m/s", "rad/s")


def test_preflight_keeps_the_frame_wait_inside_the_loop_period():
    robot = Ros2Robot(Ros2RobotConfig(camera=CameraTopicConfig(rate_hz=30)), (64, 128))
    robot.preflight(50.0)
    assert robot.frame_wait_s == pytest.approx(0.75 * 0.02)  # the loop's period is the shorter one
    slow_loop = Ros2Robot(Ros2RobotConfig(camera=CameraTopicConfig(rate_hz=30, frame_wait_s=0.03)), (64, 128))
    with pytest.raises(ValueError, match="shorter than the loop period"):
        slow_loop.preflight(50.0)


class _LanePolicySpecs:
    observation_spec = ObservationSpec((64, 128, 3), ("speed",), ("m/s",))
    action_spec = ActionSpec(("steering",), (-1.0,), (1.0,), ("normalized",), ActionFrame.FLU)


def test_make_robot_builds_a_ros2_robot_that_fits_the_lane_policy(tmp_path):
    config = load_launch(launch_file(tmp_path, {"kind": "ros2", "ros2": {"odometry": {}, "extras": ["speed"]}}))
    robot = make_robot(config, (64, 128), "test")
    assert isinstance(robot, Ros2Robot) and not robot.is_connected
    check_robot_matches_policy(robot, _LanePolicySpecs())  # strict, like every hardware robot
    no_speed = make_robot(load_launch(launch_file(tmp_path, {"kind": "ros2", "ros2": {}}, "b.yaml")), (64, 128), "t")
    with pytest.raises(ValueError, match="extras"):
        check_robot_matches_policy(no_speed, _LanePolicySpecs())
