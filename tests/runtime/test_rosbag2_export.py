"""`export-log --format rosbag2`: run logs (real MCAP writer) -> ROS 2 bags, read back with rosbags' own reader."""

from __future__ import annotations

import base64
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from rosbags.rosbag2 import Reader
from rosbags.typesys import Stores, get_typestore

from lnn_control.cli import main
from lnn_control.runtime.core.loop import StepRecord
from lnn_control.runtime.logs.rosbag2 import BagExportConfig, export_rosbag2
from lnn_control.runtime.logs.runlog import LogConfig, RunLogWriter, read_run_log

STORE = get_typestore(Stores.ROS2_JAZZY)  # rosbags' own typestore: independent of our messages module
TWIST_STAMPED_RIHS01 = "RIHS01_5f0fcd4f81d5d06ad9b4c4c63e3ea51b82d6ae4d0558f1d475229b1121db6f64"
T0, PERIOD = 200.0, 0.02


def _write_log(path: Path, names: tuple[str, ...], commands: list[list[float] | None], *,
               image_format: str = "png", extras: dict[str, float] | None = None,
               neurons: bool = True) -> list[np.ndarray]:
    """A run log with one step per command (None = a stop step); returns the frames."""
    rng = np.random.default_rng(7)
    frames = []
    with RunLogWriter(path, names, LogConfig(image_format=image_format), {"rate_hz": 50.0}) as log:
        for k, command in enumerate(commands):
            t = T0 + PERIOD * k
            stop = command is None
            values = np.zeros(len(names), np.float32) if stop else np.array(command, np.float32)
            image = rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)
            frames.append(image)
            log.write_step(StepRecord(
                step=k, slot_time=t, wake_time=t + 1e-4, frame_timestamp=t - 3e-3, frame_index=k, state="run",
                dt=PERIOD, command=None if stop else values, sent=values, applied=None if stop else values,
                write_time=t + 2e-3, latency=5e-3, compute_time=1.9e-3,
                neurons=np.arange(19, dtype=np.float32) * k if neurons else None, image=image,
                extras=extras if extras is not None else {"speed": 1.0 + 0.1 * k}, source="stop" if stop else "policy",
            ))
    return frames


def _read_bag(bag: Path) -> tuple[dict[str, tuple[str, str]], dict[str, list[tuple[int, object]]]]:
    """({topic: (type, RIHS01 digest)}, {topic: [(record ns, message)]}) through rosbags' Reader."""
    with Reader(bag) as reader:
        topics = {c.topic: (c.msgtype, c.digest) for c in reader.connections}
        messages: dict[str, list[tuple[int, object]]] = {}
        order = []
        for connection, record_ns, raw in reader.messages():
            messages.setdefault(connection.topic, []).append((record_ns, STORE.deserialize_cdr(raw, connection.msgtype)))
            order.append(record_ns)
        assert order == sorted(order)  # written in record-time order
    return topics, messages


def _ns(stamp: object) -> int:
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)  # type: ignore[attr-defined]


def test_car_log_to_bag_read_back_independently(tmp_path: Path) -> None:
    commands: list[list[float] | None] = [[0.5, 0.4], [-0.25, 0.2], [1.0, -0.3], None, [0.1, math.nan], [0.0, 0.5]]
    log_path = tmp_path / "run.mcap"
    frames = _write_log(log_path, ("steering", "throttle"), commands)
    report = export_rosbag2(log_path, tmp_path / "bag")
    assert sorted(p.name for p in (tmp_path / "bag").iterdir()) == ["bag.mcap", "metadata.yaml"]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # staging removed
    assert report.counts == {"/camera/image_raw": 6, "/cmd_vel": 5, "/lnn/action": 6, "/lnn/source": 6,
                             "/lnn/neurons": 6, "/odom": 6}
    topics, messages = _read_bag(tmp_path / "bag")
    info = yaml.safe_load((tmp_path / "bag" / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    assert info["version"] == 8 and info["storage_identifier"] == "mcap" and info["message_count"] == 35
    assert info["relative_file_paths"] == ["bag.mcap"]
    assert {topic: msgtype for topic, (msgtype, _) in topics.items()} == {"/camera/image_raw": "sensor_msgs/msg/Image", "/cmd_vel": "geometry_msgs/msg/TwistStamped",
                     "/lnn/action": "std_msgs/msg/Float32MultiArray", "/lnn/source": "std_msgs/msg/String",
                     "/lnn/neurons": "std_msgs/msg/Float32MultiArray", "/odom": "nav_msgs/msg/Odometry"}
    assert topics["/cmd_vel"][1] == TWIST_STAMPED_RIHS01
    log = read_run_log(log_path)
    offset_ns = round(float(log.metadata["monotonic_to_unix_offset_s"]) * 1e9)
    for k, (record_ns, image) in enumerate(messages["/camera/image_raw"]):
        assert image.encoding == "rgb8" and (image.height, image.width, image.step) == (12, 16, 48)
        assert np.array_equal(image.data.reshape(12, 16, 3), frames[k])  # PNG logged: exact
        capture_ns = round((T0 + PERIOD * k - 3e-3) * 1e9) + offset_ns  # every dt exact to the ns
        assert _ns(image.header.stamp) == capture_ns and record_ns == capture_ns
        assert abs(capture_ns - log.topic("/camera/image")[k].log_time_ns) < 300  # the log's own stamp, 2^-22 s
    twists = messages["/cmd_vel"]
    expected_steps = [0, 1, 2, 3, 5]  # step 4 sent a non-finite throttle: not on /cmd_vel
    for (record_ns, msg), k in zip(twists, expected_steps):
        assert msg.header.frame_id == "base_link"
        assert _ns(msg.header.stamp) == round((T0 + PERIOD * k + 2e-3) * 1e9) + offset_ns == record_ns
        command = commands[k]
        if command is None:  # the stop step: the zero twist
            v = wz = 0.0
        else:
            v = float(np.float32(command[1])) * 3.0
            wz = v * math.tan(float(np.float32(command[0])) * 0.4) / 0.30
        assert (msg.twist.linear.x, msg.twist.linear.y, msg.twist.linear.z) == pytest.approx((v, 0.0, 0.0))
        assert (msg.twist.angular.x, msg.twist.angular.y, msg.twist.angular.z) == pytest.approx((0.0, 0.0, wz))
    action = [msg for _, msg in messages["/lnn/action"]]
    assert all(msg.layout.dim[0].label == "steering,throttle" for msg in action)
    assert action[2].data.tolist() == pytest.approx([1.0, -0.3]) and action[3].data.tolist() == [0.0, 0.0]
    assert math.isnan(action[4].data[1])
    assert [msg.data for _, msg in messages["/lnn/source"]] == ["policy"] * 3 + ["stop"] + ["policy"] * 2
    assert messages["/lnn/neurons"][2][1].data.tolist() == (np.arange(19) * 2.0).tolist()
    odom = messages["/odom"][1][1]
    assert odom.twist.twist.linear.x == pytest.approx(1.1) and odom.child_frame_id == "base_link"
    assert _ns(odom.header.stamp) == _ns(messages["/camera/image_raw"][1][1].header.stamp)


def test_drone_log_maps_one_to_one_and_compressed_frames_pass_through(tmp_path: Path) -> None:
    names = ("vx", "vy", "vz", "yaw_rate")
    log_path = tmp_path / "drone.mcap"
    _write_log(log_path, names, [[1.0, -0.5, 0.25, 0.75], [0.0, 0.0, -1.0, -0.5]], image_format="jpeg",
               extras={"vx": 0.9, "vy": -0.4, "vz": 0.2}, neurons=False)
    export_rosbag2(log_path, tmp_path / "bag", BagExportConfig(camera="compressed"))
    _, messages = _read_bag(tmp_path / "bag")
    assert "/lnn/neurons" not in messages and "/camera/image_raw" not in messages
    twist = messages["/cmd_vel"][0][1].twist
    assert (twist.linear.x, twist.linear.y, twist.linear.z, twist.angular.z) == (1.0, -0.5, 0.25, 0.75)
    logged = read_run_log(log_path).topic("/camera/image")
    for (_, compressed), frame in zip(messages["/camera/image_raw/compressed"], logged):
        assert compressed.format == "jpeg" and compressed.data.tobytes() == base64.b64decode(frame.payload["data"])
    linear = messages["/odom"][0][1].twist.twist.linear
    assert (linear.x, linear.y, linear.z) == pytest.approx((0.9, -0.4, 0.2))


def test_unmapped_actions_export_without_cmd_vel(tmp_path: Path) -> None:
    log_path = tmp_path / "run.mcap"
    _write_log(log_path, ("a", "b"), [[0.1, 0.2]])
    report = export_rosbag2(log_path, tmp_path / "bag")
    assert "/cmd_vel" not in report.counts and "/lnn/action" in report.counts
    assert any("have no Twist mapping" in note for note in report.notes)


def test_refuses_to_overwrite_and_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log_path = tmp_path / "run.mcap"
    _write_log(log_path, ("steering",), [[0.1], [0.2]])
    existing = tmp_path / "bag"
    existing.mkdir()
    (existing / "keep.txt").write_text("mine")
    with pytest.raises(ValueError, match="already exists; the export never overwrites"):
        export_rosbag2(log_path, existing)
    assert [p.name for p in existing.iterdir()] == ["keep.txt"]
    assert main(["export-log", str(log_path), "--format", "rosbag2", "--out", str(tmp_path / "new"),
                 "--cruise-speed", "2.0"]) == 0
    assert "wrote" in capsys.readouterr().out
    _, messages = _read_bag(tmp_path / "new")
    assert messages["/cmd_vel"][0][1].twist.linear.x == 2.0  # steering-only car: the cruise speed
    assert main(["export-log", str(tmp_path / "missing.mcap"), "--out", str(tmp_path / "x")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["export-log", str(log_path), "--out", str(tmp_path / "no" / "such" / "bag")]) == 2
    assert "create it first" in capsys.readouterr().err


def test_without_the_ros2_extra_the_commands_say_what_to_install(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    log_path = tmp_path / "run.mcap"
    _write_log(log_path, ("steering",), [[0.1]])
    for name in [n for n in sys.modules if n == "rosbags" or n.startswith("rosbags.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "rosbags", None)  # as if not installed: import raises ModuleNotFoundError
    assert main(["export-log", str(log_path), "--out", str(tmp_path / "bag")]) == 2
    assert "the [ros2] extra installs: pip install 'lnn-control[ros2]'" in capsys.readouterr().err
    assert main(["dataset", "from-bag", str(tmp_path), "--camera", "/c", "--command", "/cmd_vel",
                 "--out", str(tmp_path / "data")]) == 2
    assert "the [ros2] extra installs" in capsys.readouterr().err
    assert not (tmp_path / "bag").exists() and not (tmp_path / "data").exists()
