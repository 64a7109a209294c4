"""`dataset from-bag`: ROS 2 bags (our export, and bags written with rosbags directly) -> episode datasets."""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import pytest
from lnn_data_testkit import SPEC, policy_steps, stop_steps, write_log
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore

from lnn_control.cli import main
from lnn_control.data.episodes import EpisodeDataset
from lnn_control.data.from_bag import FromBagConfig, convert_bag
from lnn_control.data.from_log import FromLogConfig, convert_logs
from lnn_control.runtime.logs.rosbag2 import export_rosbag2
from lnn_control.runtime.logs.runlog import read_run_log

STORE = get_typestore(Stores.ROS2_JAZZY)
T = STORE.types


@pytest.fixture
def exported(tmp_path: Path):
    """A run log (5 policy steps, a 2-step stop on a held frame, 4 policy steps) and its bag."""
    log = write_log(tmp_path / "run.mcap", policy_steps(5) + stop_steps(2) + policy_steps(4, start=0.5))
    export_rosbag2(log.path, tmp_path / "bag")
    return log, tmp_path / "bag"


@pytest.mark.parametrize("command", ["/lnn/action", "/cmd_vel"])
def test_round_trip_equals_from_log(tmp_path: Path, exported, command: str) -> None:
    log, bag = exported
    convert_logs([log.path], tmp_path / "from_log", FromLogConfig(spec=SPEC))
    config = FromBagConfig(camera_topic="/camera/image_raw", command_topic=command, odom_topic="/odom", spec=SPEC)
    report = convert_bag(bag, tmp_path / "from_bag", config, command="test")
    assert report.steps == 9 and report.logs[0]["excluded"] == {"repeated_frame": 2}
    reference, dataset = EpisodeDataset(tmp_path / "from_log"), EpisodeDataset(tmp_path / "from_bag")
    assert dataset.manifest.observation_spec == reference.manifest.observation_spec
    assert dataset.manifest.action_spec == reference.manifest.action_spec
    assert len(dataset) == len(reference) == 2  # the stop splits the episode, as from-log does
    offset = float(read_run_log(log.path).metadata["monotonic_to_unix_offset_s"])
    for ours, theirs in zip(dataset, reference):
        np.testing.assert_array_equal(ours.image, theirs.image)  # rgb8 Image: exact
        np.testing.assert_array_equal(ours.label, theirs.label)  # exact after float32, also through the Twist
        np.testing.assert_array_equal(ours.action, theirs.action)
        np.testing.assert_array_equal(ours.extras, theirs.extras)  # speed through nav_msgs/Odometry
    # header stamps are wall-clock (the run's monotonic capture times + its offset), kept in seconds
    # since the whole second of the first frame: every dt to the nanosecond
    origin = dataset.metadata(0)["stamp_origin_ns"]
    assert origin % 10**9 == 0 and origin == dataset.metadata(1)["stamp_origin_ns"]
    for ours, theirs in zip(dataset, reference):
        np.testing.assert_allclose(ours.timestamp + origin / 1e9 - offset, theirs.timestamp, atol=1e-6, rtol=0)
        np.testing.assert_allclose(np.diff(ours.timestamp), np.diff(theirs.timestamp), atol=2e-9, rtol=0)
    meta = dataset.metadata(1)
    assert meta["source"] == "bag" and meta["command_topic"] == command and meta["steps"] == 4


def _bag_with_rates(path: Path, storage: StoragePlugin, frames: list[np.ndarray], frame_ns: list[int],
                    commands: list[tuple[int, float, float]], *, compressed: bool = False) -> None:
    """A bag written with rosbags alone: bgr8 Image (or PNG CompressedImage) frames and TwistStamped commands."""
    writer = Writer(path, version=8, storage_plugin=storage)
    with writer:
        image_type = "sensor_msgs/msg/CompressedImage" if compressed else "sensor_msgs/msg/Image"
        camera = writer.add_connection("/front/image", image_type, typestore=STORE)
        cmd = writer.add_connection("/cmd_vel", "geometry_msgs/msg/TwistStamped", typestore=STORE)
        items = []
        for frame, ns in zip(frames, frame_ns):
            head = T["std_msgs/msg/Header"](stamp=T["builtin_interfaces/msg/Time"](sec=ns // 10**9, nanosec=ns % 10**9),
                                            frame_id="cam")
            if compressed:
                data = np.frombuffer(cv2.imencode(".png", frame[:, :, ::-1])[1].tobytes(), np.uint8)
                msg = T[image_type](header=head, format="png", data=data)
            else:
                bgr = np.ascontiguousarray(frame[:, :, ::-1])
                msg = T[image_type](header=head, height=frame.shape[0], width=frame.shape[1], encoding="bgr8",
                                    is_bigendian=0, step=frame.shape[1] * 3, data=bgr.reshape(-1))
            items.append((ns + 1000, camera, STORE.serialize_cdr(msg, image_type)))
        v3 = T["geometry_msgs/msg/Vector3"]
        for ns, v, wz in commands:
            head = T["std_msgs/msg/Header"](stamp=T["builtin_interfaces/msg/Time"](sec=ns // 10**9, nanosec=ns % 10**9),
                                            frame_id="base_link")
            msg = T["geometry_msgs/msg/TwistStamped"](header=head, twist=T["geometry_msgs/msg/Twist"](
                linear=v3(v, 0.0, 0.0), angular=v3(0.0, 0.0, wz)))
            items.append((ns + 1000, cmd, STORE.serialize_cdr(msg, "geometry_msgs/msg/TwistStamped")))
        for record_ns, connection, data in sorted(items, key=lambda item: item[0]):
            writer.write(connection, record_ns, data)


@pytest.mark.parametrize(("storage", "compressed"), [(StoragePlugin.SQLITE3, False), (StoragePlugin.MCAP, True)])
def test_labelling_rule_on_a_foreign_bag(tmp_path: Path, storage: StoragePlugin, compressed: bool) -> None:
    """Camera at 20 Hz, commands at 10 Hz 30 ms after every other frame: a frame takes the first command
    within the tolerance after it; frames with none, and a parked car's command, are left out."""
    rng = np.random.default_rng(5)
    t0 = 1_700_000_000 * 10**9
    frames = [rng.integers(0, 256, (24, 32, 3), dtype=np.uint8) for _ in range(8)]
    frame_ns = [t0 + k * 50_000_000 for k in range(8)]
    steering = [0.5, -0.25, 0.75, 0.0]
    commands = []
    for j, s in enumerate(steering):
        v = 0.0 if j == 2 else 1.2  # the third command comes from a parked car: steering not observable
        commands.append((frame_ns[2 * j] + 30_000_000, v, v * math.tan(s * 0.4) / 0.30))
    bag = tmp_path / "foreign"
    _bag_with_rates(bag, storage, frames, frame_ns, commands, compressed=compressed)
    config = FromBagConfig(camera_topic="/front/image", command_topic="/cmd_vel", actions=("steering",),
                           image_size=(12, 16), tolerance_s=0.04)
    report = convert_bag(bag, tmp_path / "data", config)
    # frames 0, 2, 6 have a command 30 ms later; odd frames' next command is 80 ms later (> 40 ms);
    # frame 4's command is the parked car's
    assert report.logs[0]["excluded"] == {"no_command": 4, "no_label": 1}
    dataset = EpisodeDataset(tmp_path / "data")
    assert [len(e) for e in dataset] == [1, 1, 1]  # every left-out frame ends an episode
    assert dataset.manifest.observation_spec.image_shape == (12, 16, 3)
    for episode, k, s in zip(dataset, (0, 2, 6), (0.5, -0.25, 0.0)):
        assert episode.label[0, 0] == pytest.approx(s, abs=1e-6)
        assert episode.timestamp[0] == (frame_ns[k] - t0) / 1e9  # t0 is a whole second: the origin
        expected = cv2.resize(frames[k], (16, 12), interpolation=cv2.INTER_AREA)
        np.testing.assert_array_equal(episode.image[0], expected)
    assert dataset.metadata(0)["resized_from"] == [24, 32]
    # a wider tolerance lets every odd frame take the next even frame's command (80 ms later)
    wide = FromBagConfig(camera_topic="/front/image", command_topic="/cmd_vel", tolerance_s=0.09, max_gap_s=1.0)
    report = convert_bag(bag, tmp_path / "wide", wide)
    assert report.steps == 5 and report.logs[0]["excluded"] == {"no_command": 1, "no_label": 2}
    wide_labels = [e.label[:, 0] for e in EpisodeDataset(tmp_path / "wide")]
    assert len(wide_labels) == 2  # frames 0-2, then (the parked car's frames 3-4 left out) frames 5-6
    np.testing.assert_allclose(wide_labels[0], [0.5, -0.25, -0.25], atol=1e-6)
    np.testing.assert_allclose(wide_labels[1], [0.0, 0.0], atol=1e-6)


def test_errors_name_the_problem(tmp_path: Path, exported, capsys: pytest.CaptureFixture[str]) -> None:
    _, bag = exported
    with pytest.raises(ValueError, match=r"no camera topic '/front'; the bag's topics: /camera/image_raw "
                                         r"\(sensor_msgs/msg/Image, 11\), /cmd_vel"):
        convert_bag(bag, tmp_path / "d", FromBagConfig(camera_topic="/front", command_topic="/cmd_vel"))
    with pytest.raises(ValueError, match=r"command topic /lnn/source has type std_msgs/msg/String"):
        convert_bag(bag, tmp_path / "d", FromBagConfig(camera_topic="/camera/image_raw", command_topic="/lnn/source"))
    with pytest.raises(ValueError, match=r"needs the extras \['speed'\]: pass --odom"):
        convert_bag(bag, tmp_path / "d", FromBagConfig(camera_topic="/camera/image_raw", command_topic="/cmd_vel",
                                                       spec=SPEC))
    with pytest.raises(ValueError, match="drone's velocity limits come from its policy"):
        convert_bag(bag, tmp_path / "d", FromBagConfig(camera_topic="/camera/image_raw", command_topic="/cmd_vel",
                                                       actions=("vx", "vy", "vz", "yaw_rate")))
    with pytest.raises(ValueError, match=r"carries \['steering'\], the dataset's actions are \['steering', 'throttle'\]"):
        convert_bag(bag, tmp_path / "d", FromBagConfig(camera_topic="/camera/image_raw", command_topic="/lnn/action",
                                                       actions=("steering", "throttle")))
    assert not (tmp_path / "d").exists() and not list(tmp_path.glob(".d.partial-*"))
    args = ["dataset", "from-bag", "--camera", "/camera/image_raw", "--command", "/cmd_vel"]
    assert main([*args[:2], str(tmp_path / "no_such_bag"), *args[2:], "--out", str(tmp_path / "d")]) == 2
    assert f"bag {tmp_path / 'no_such_bag'} does not exist" in capsys.readouterr().err
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "keep").write_text("x")
    assert main([*args[:2], str(bag), *args[2:], "--out", str(tmp_path / "d")]) == 2
    assert "already exists and is not an empty folder" in capsys.readouterr().err


def test_cli_without_spec(tmp_path: Path, exported, capsys: pytest.CaptureFixture[str]) -> None:
    _, bag = exported
    out = tmp_path / "data"
    assert main(["dataset", "from-bag", str(bag), "--camera", "/camera/image_raw", "--command", "/cmd_vel",
                 "--odom", "/odom", "--image-size", "32x64", "--out", str(out)]) == 0
    assert "2 episodes, 9 steps from 11 frames and 11 commands" in capsys.readouterr().out
    dataset = EpisodeDataset(out)
    spec = dataset.manifest.observation_spec
    assert spec.image_shape == (32, 64, 3) and spec.extras == ("speed",)
    assert dataset.manifest.action_spec.names == ("steering",)
    assert dataset.manifest.created_by.startswith("lnn-control dataset from-bag ")
