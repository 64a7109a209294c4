"""Ros2Robot over real Zenoh sessions on loopback: frames in, TwistStamped out, the ROS graph, errors.

The camera is our CameraPublisher on its own Zenoh session (a thread here; a process in
test_ros2_run.py); a Recorder node on a third session sees what a ROS 2 subscriber would."""

from __future__ import annotations

import math
import threading
import time

import numpy as np
import pytest
from lnn_hw_testkit import wait_until
from lnn_ros2_testkit import CameraThread, Recorder, peer, ports

from lnn_control.bench.ros2 import start_camera_process, stop_process
from lnn_control.runtime.core.robot import RobotError
from lnn_control.runtime.ros2 import messages
from lnn_control.runtime.ros2.camera_publisher import (
    CameraPublisherConfig,
    synthetic_frame,
    synthetic_index,
)
from lnn_control.runtime.ros2.config import CameraTopicConfig, OdometryTopicConfig, Ros2RobotConfig
from lnn_control.runtime.ros2.liveliness import EntityKind, entity_gid
from lnn_control.runtime.ros2.node import Ros2Node
from lnn_control.runtime.ros2.robot import Ros2Robot
from lnn_control.runtime.ros2.twist import Twist, action_from_twist
from lnn_control.runtime.ros2.zenoh_wire import SENSOR_DATA_QOS

RATE = 50.0


def robot_config(camera_port: int, recorder_port: int | None = None, **overrides) -> Ros2RobotConfig:
    connect = (camera_port,) if recorder_port is None else (camera_port, recorder_port)
    overrides.setdefault("camera", CameraTopicConfig(rate_hz=RATE, first_frame_timeout_s=5.0))
    return Ros2RobotConfig(zenoh=peer(connect=connect), **overrides)


@pytest.fixture
def rig():
    """Camera (50 Hz synthetic 64x128 + odometry at 1.5 m/s) listening on one port, a recorder on another."""
    camera_port, recorder_port = ports(2)
    camera = CameraThread(peer(listen=(camera_port,)), CameraPublisherConfig(
        rate_hz=RATE, odometry_topic="/odom", odometry_linear=(1.5, 0.0, 0.0))).start()
    recorder = Recorder(peer(listen=(recorder_port,), connect=(camera_port,)))
    yield camera, recorder, camera_port, recorder_port
    recorder.close()
    camera.close()


def recorder_subscribed(robot: Ros2Robot) -> None:
    """Wait until the robot's session has the recorder's /cmd_vel subscription (its liveliness token is
    declared after the subscriber, on the same link)."""
    wait_until(lambda: any(e.kind == EntityKind.SUBSCRIPTION and e.node.name == "test_recorder" and e.topic is not None
                           and e.topic.name == "/cmd_vel" for e in robot._node.graph(0.2)), what="the recorder's subscription")


def commands_received(recorder: Recorder, count: int) -> None:
    wait_until(lambda: len(recorder.snapshot()[0]) >= count, what=f"{count} commands at the recorder")


def test_frames_arrive_exactly_with_their_header_capture_time(rig):
    camera, _, camera_port, _ = rig
    robot = Ros2Robot(robot_config(camera_port), (64, 128))
    robot.preflight(RATE)
    with robot:
        observations = []
        for _ in range(25):
            observations.append((robot.read(), time.monotonic(), time.time_ns()))
            time.sleep(0.02)
    stamps = camera.publisher.stats.stamps_ns
    indices = [synthetic_index(obs.image) for obs, _, _ in observations]
    assert indices == sorted(indices) and len(set(indices)) >= 20  # new frames, in order
    for obs, mono, wall in observations:
        index = synthetic_index(obs.image)
        assert np.array_equal(obs.image, synthetic_frame(index, (64, 128)))  # rgb8 end to end, pixel exact
        # capture time = the header stamp (wall) moved onto the monotonic clock
        assert obs.timestamp == pytest.approx(mono - (wall - stamps[index]) / 1e9, abs=1e-3)
        assert 0 <= mono - obs.timestamp < 0.05


@pytest.fixture
def camera_process():
    """Our camera (50 Hz synthetic 64x128) in a process of its own, as on a robot: no GIL shared with us."""
    port, = ports(1)
    process = start_camera_process(port, RATE)
    yield port
    stop_process(process)


def test_read_waits_for_a_due_frame_instead_of_acting_on_an_old_one(camera_process):
    config = robot_config(camera_process, camera=CameraTopicConfig(rate_hz=RATE, first_frame_timeout_s=60.0))
    robot = Ros2Robot(config, (64, 128))
    robot.preflight(RATE)  # frame_wait_s = 0.75 * 20 ms = 15 ms
    with robot:
        time.sleep(0.2)
        first = robot.read().timestamp
        ages = []
        for k in range(1, 60):
            # a 50 Hz loop whose slots come 12 ms after each capture: the newest frame is 12 ms old
            # at every slot, and the next one is due 8 ms later
            slot = first + 0.012 + k / RATE
            time.sleep(max(0.0, slot - time.monotonic()))
            obs = robot.read()
            ages.append(time.monotonic() - obs.timestamp)
    # acting on the newest frame would give 12 ms; waiting for the due one gives transport + wake-up
    assert np.median(ages) < 0.004


def test_write_publishes_rep103_twist_stamped_and_stop_publishes_zero(rig):
    _, recorder, camera_port, recorder_port = rig
    robot = Ros2Robot(robot_config(camera_port, recorder_port), (64, 128))
    with robot:
        recorder_subscribed(robot)
        applied = [robot.write(np.array([0.5])), robot.write(np.array([-2.0]))]
        robot.stop()
        publisher_token = robot._publisher.token_key
    commands_received(recorder, 4)
    commands, _ = recorder.snapshot()
    assert [c.zero for c in commands] == [False, False, True, True]  # stop(), then leaving the with block
    assert np.allclose(applied, [[0.5], [-1.0]])  # clipped to the action bounds
    car = robot.config.car
    first, second = commands[0].twist, commands[1].twist
    # kinematic bicycle: linear.x = cruise speed, angular.z = v tan(s * max_steering) / wheelbase, + = left
    assert first.linear == (1.5, 0.0, 0.0)
    assert first.angular == pytest.approx((0.0, 0.0, 1.5 * math.tan(0.5 * car.max_steering) / car.wheelbase))
    assert second.angular[2] < 0 and action_from_twist(second, ("steering",))[0] == pytest.approx(-1.0)
    assert {c.frame_id for c in commands} == {"base_link"}
    # the attachment: sequence from 1, wall-clock source time = the header stamp's clock, the publisher's GID
    assert [c.attachment.sequence_number for c in commands] == [1, 2, 3, 4]
    for command in commands:
        assert command.attachment.gid == entity_gid(publisher_token)
        assert abs(command.attachment.source_timestamp_ns - command.stamp_ns) < 5_000_000
    assert commands[0].key_expr == f"0/cmd_vel/geometry_msgs::msg::dds_::TwistStamped_/{messages.type_hash(messages.TWIST_STAMPED)}"


def test_drone_actions_go_out_one_to_one(rig):
    _, recorder, camera_port, recorder_port = rig
    robot = Ros2Robot(robot_config(camera_port, recorder_port, actions=("vx", "vy", "vz", "yaw_rate")), (64, 128))
    with robot:
        recorder_subscribed(robot)
        robot.write(np.array([1.0, -0.5, 0.25, 0.3]))
        with pytest.raises(ValueError, match="finite"):
            robot.write(np.array([np.nan, 0, 0, 0]))
    commands_received(recorder, 2)
    commands, _ = recorder.snapshot()
    assert commands[0].twist == Twist((1.0, -0.5, 0.25), (0.0, 0.0, 0.3))
    assert commands[-1].zero  # disconnect while moving sends the zero twist


def test_the_ros_graph_lists_our_node_publisher_and_subscriptions(rig):
    _, recorder, camera_port, _ = rig
    config = robot_config(camera_port, odometry=OdometryTopicConfig(topic="/odom"), extras=("speed",),
                          namespace="/robot1", node_name="driver")
    with Ros2Robot(config, (64, 128)):
        ours = wait_until(lambda: (found := [e for e in recorder.node.graph(0.5) if e.node.name == "driver"])
                          and len(found) == 4 and found, what="the robot's four graph entities")
    found = {(e.kind, e.topic.name if e.topic else None, e.ros_type, e.topic.qos if e.topic else None) for e in ours}
    assert found == {
        (EntityKind.NODE, None, None, None),
        (EntityKind.PUBLISHER, "/cmd_vel", "geometry_msgs/msg/TwistStamped", "::,10:,:,:,,"),
        (EntityKind.SUBSCRIPTION, "/camera/image_raw", "sensor_msgs/msg/Image", "2::,5:,:,:,,"),
        (EntityKind.SUBSCRIPTION, "/odom", "nav_msgs/msg/Odometry", "2::,5:,:,:,,"),
    }
    assert {e.node.namespace for e in ours} == {"/robot1"}
    wait_until(lambda: not [e for e in recorder.node.graph(0.5) if e.node.name == "driver"],
               what="the robot's tokens withdrawn")


def test_odometry_gives_extras_and_stale_odometry_fails_the_read(rig):
    camera, _, camera_port, _ = rig
    config = robot_config(camera_port, odometry=OdometryTopicConfig(topic="/odom", timeout_s=0.2), extras=("speed",))
    robot = Ros2Robot(config, (64, 128))
    robot.preflight(RATE)
    with robot:
        assert robot.read().extras == {"speed": 1.5}
        camera.stop()  # frames and odometry stop
        time.sleep(0.3)
        with pytest.raises(RobotError, match=r"odometry on /odom is 0\.\d+ s old"):
            robot.read()


def test_connect_says_what_is_missing():
    camera_port, = ports(1)
    lonely = Ros2Node(peer(listen=(camera_port,)), 0, "bystander")
    lonely.open()
    try:
        robot = Ros2Robot(robot_config(camera_port, camera=CameraTopicConfig(first_frame_timeout_s=0.5)), (64, 128))
        with pytest.raises(RobotError, match=r"no frame on /camera/image_raw within 0.5 s: publishers on domain 0: none"):
            robot.connect()
        assert not robot.is_connected
    finally:
        lonely.close()


def test_connect_names_a_camera_of_another_type(rig):
    _, _, camera_port, _ = rig
    config = robot_config(camera_port, camera=CameraTopicConfig(type="CompressedImage", first_frame_timeout_s=0.5))
    with pytest.raises(RobotError, match=r"/camera/image_raw \[sensor_msgs/msg/Image\]"):
        Ros2Robot(config, (64, 128)).connect()


@pytest.mark.parametrize(("stamp_offset_ns", "message"), [
    (None, "header.stamp is 0"),
    (2_000_000_000, "in the future"),
    (-2_000_000_000, "first frame .* 2.0\\d* s old"),
])
def test_bad_stamps_are_refused_with_the_clock_problem(stamp_offset_ns, message):
    camera_port, = ports(1)
    node = Ros2Node(peer(listen=(camera_port,)), 0, "bad_clock_camera")
    node.open()
    publisher = node.publisher("/camera/image_raw", messages.IMAGE, SENSOR_DATA_QOS)
    robot = Ros2Robot(robot_config(camera_port, camera=CameraTopicConfig(first_frame_timeout_s=3.0)), (64, 128))
    try:
        done = threading.Event()

        def publish() -> None:
            while not done.wait(0.02):
                stamp = 0 if stamp_offset_ns is None else time.time_ns() + stamp_offset_ns
                publisher.publish(messages.image_message(synthetic_frame(0), stamp))

        thread = threading.Thread(target=publish, daemon=True)
        thread.start()
        with pytest.raises(RobotError, match=message):
            robot.connect()
        if stamp_offset_ns is None:  # the way out the error names: arrival times instead of header stamps
            config = robot_config(camera_port, camera=CameraTopicConfig(capture_time="arrival"))
            with Ros2Robot(config, (64, 128)) as by_arrival:
                assert 0 <= time.monotonic() - by_arrival.read().timestamp < 0.05
        done.set()
        thread.join()
    finally:
        node.close()
