"""Across processes, as on a robot: ``lnn-control ros2 camera-pub`` in one process feeds ``lnn-control
run`` (robot.kind ros2, the shipped lane policy) in another; a recorder node here sees the commands
a ROS 2 subscriber would. Real Zenoh sessions, peers on loopback ports, no multicast."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from lnn_hw_testkit import wait_until
from lnn_ros2_testkit import Recorder, endpoint, package_logging_kept, peer, ports

from lnn_control.bench.ros2 import start_camera_process, stop_process
from lnn_control.cli import main
from lnn_control.runtime.logs.runlog import decode_image, read_run_log
from lnn_control.runtime.ros2.camera_publisher import synthetic_frame, synthetic_index
from lnn_control.runtime.ros2.liveliness import EntityKind, entity_gid
from lnn_control.runtime.ros2.twist import action_from_twist

RATE = 50.0


def write_launch(tmp_path: Path, camera_port: int, recorder_port: int, odometry_timeout_s: float = 0.5) -> Path:
    launch = {
        "policy": "lane_keeping_ncp19", "rate_hz": RATE,
        "robot": {"kind": "ros2", "ros2": {
            "zenoh": {"connect": [endpoint(camera_port), endpoint(recorder_port)], "listen": []},
            "camera": {"topic": "/camera/image_raw", "type": "Image", "rate_hz": RATE, "first_frame_timeout_s": 60},
            "odometry": {"topic": "/odom", "timeout_s": odometry_timeout_s},
            "extras": ["speed"],
        }},
        "watchdog": {"max_frame_age_s": 0.1},
        "loop": {"live_stats_interval_s": 0.0},
        "log": {"dir": str(tmp_path / "runs"), "image_format": "png"},
    }
    path = tmp_path / "ros2_launch.yaml"
    path.write_text(yaml.safe_dump(launch))
    return path


def start_run(launch: Path, tmp_path: Path, duration_s: float) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "lnn_control", "run", "--launch", str(launch), "--duration", str(duration_s),
         "--quiet", "--log", str(tmp_path / "run.mcap"), "--stats-json", str(tmp_path / "stats.json")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )


def wait_for_drive_commands(recorder: Recorder, run: subprocess.Popen[bytes], count: int, timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while sum(not c.zero for c in recorder.snapshot()[0]) < count:
        if run.poll() is not None:
            pytest.fail(f"lnn-control run ended early ({run.returncode}): {run.stderr.read().decode()[-3000:]}")
        assert time.monotonic() < deadline, "no commands from lnn-control run"
        time.sleep(0.02)


def finish(run: subprocess.Popen[bytes]) -> str:
    out, err = run.communicate(timeout=120)
    assert run.returncode == 0, err.decode()[-3000:]
    return out.decode()


@pytest.fixture
def camera_and_recorder():
    camera_port, recorder_port = ports(2)
    camera = start_camera_process(camera_port, RATE)
    recorder = Recorder(peer(listen=(recorder_port,), connect=(camera_port,)))
    yield camera, recorder, camera_port, recorder_port
    recorder.close()
    stop_process(camera)


@pytest.mark.slow
def test_lnn_control_run_drives_a_ros2_robot_end_to_end(tmp_path, camera_and_recorder):
    camera, recorder, camera_port, recorder_port = camera_and_recorder
    run = start_run(write_launch(tmp_path, camera_port, recorder_port), tmp_path, 3.0)
    try:
        wait_for_drive_commands(recorder, run, 10)
        graph = [e for e in recorder.node.graph(1.0) if e.node.name == "lnn_control"]  # what `ros2 topic list` reads
    finally:
        summary = finish(run)
    wait_until(lambda: (seen := recorder.snapshot()[0]) and seen[-1].zero, what="the run's final stop command")
    commands, _ = recorder.snapshot()
    stats = json.loads((tmp_path / "stats.json").read_text())
    assert "steps at 50 Hz" in summary and stats["deadline_misses"] < 0.1 * stats["steps"]  # a loaded CI box

    # the graph: our node, its /cmd_vel publisher and both subscriptions, with rmw_zenoh's type names
    topics = {(e.kind, e.topic.name, e.ros_type) for e in graph if e.topic}
    assert topics == {(EntityKind.PUBLISHER, "/cmd_vel", "geometry_msgs/msg/TwistStamped"),
                      (EntityKind.SUBSCRIPTION, "/camera/image_raw", "sensor_msgs/msg/Image"),
                      (EntityKind.SUBSCRIPTION, "/odom", "nav_msgs/msg/Odometry")}
    publisher = next(e for e in graph if e.kind == EntityKind.PUBLISHER)
    from lnn_control.runtime.ros2.liveliness import token

    publisher_gid = entity_gid(token(publisher.node, publisher.entity_id, publisher.kind, publisher.topic))

    # rate: one TwistStamped per control step, 50 Hz; sequence numbers from 1 without gaps; our GID
    drive = [c for c in commands if not c.zero]
    intervals = np.diff([c.arrival for c in drive])
    assert np.median(intervals) == pytest.approx(1 / RATE, abs=0.002)
    assert [c.attachment.sequence_number for c in commands] == list(range(1, len(commands) + 1))
    assert {c.attachment.gid for c in commands} == {publisher_gid}
    assert commands[-1].zero  # the stop command at the end of the run

    # values: REP-103, the lane car at cruise speed, steering = the log's applied command, step for step.
    # A frame that came late made the robot send the zero twist instead (and report zeros as applied):
    # those steps are the exact zeros of the log; on a loaded machine a few happen
    log = read_run_log(tmp_path / "run.mcap")
    applied_all = [m.payload["values"]["steering"] for m in log.topic("/commands/applied")]
    assert len(applied_all) == stats["steps"]
    applied = [a for a in applied_all if a != 0.0]
    assert len(drive) == len(applied) > 0.9 * stats["steps"]
    assert {c.twist.linear for c in drive} == {(1.5, 0.0, 0.0)}
    assert {c.twist.angular[:2] for c in drive} == {(0.0, 0.0)}
    steering = [float(action_from_twist(c.twist, ("steering",))[0]) for c in drive]
    assert np.allclose(steering, applied, atol=1e-5)

    # frames: what the policy saw is the camera's frames, pixel for pixel, new ones in order, ~20 ms apart
    images = [decode_image(base64.b64decode(m.payload["data"])) for m in log.topic("/camera/image")]
    indices = [synthetic_index(image) for image in images]
    for image, index in zip(images, indices, strict=True):
        assert np.array_equal(image, synthetic_frame(index, (64, 128)))
    assert all(b >= a for a, b in zip(indices, indices[1:], strict=False)) and len(set(indices)) > 0.9 * len(indices)
    dts = [m.payload["dt_s"] for m in log.topic("/loop/timing") if m.payload["state"] == "run"][1:]
    assert np.median(dts) == pytest.approx(1 / RATE, abs=0.002)
    assert stats["latency_s"]["median"] < 0.015


def test_ros2_graph_command_lists_the_camera(capsys):
    camera_port, = ports(1)
    camera = start_camera_process(camera_port, RATE)
    try:
        deadline = time.monotonic() + 60
        while True:
            with package_logging_kept():
                assert main(["ros2", "graph", "--connect", endpoint(camera_port), "--listen", "tcp/127.0.0.1:0"]) == 0
            out = capsys.readouterr().out
            if "/odom" in out or time.monotonic() > deadline:  # the camera process is up, all declared
                break
            time.sleep(0.5)
    finally:
        stop_process(camera)
    assert out == ("domain 0: 1 node(s)\n  /lnn_camera\n2 topic(s)\n"
                   "  /camera/image_raw [sensor_msgs/msg/Image]  (pub)\n  /odom [nav_msgs/msg/Odometry]  (pub)\n")
