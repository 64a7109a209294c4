"""`dataset from-log`: run logs (real MCAP writer) -> episode datasets, frame for frame and label for label."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from lnn_data_testkit import (
    SPEC,
    Step,
    WrittenLog,
    human_steps,
    policy_steps,
    stop_steps,
    write_log,
)

from lnn_control.cli import main
from lnn_control.data.episodes import EpisodeDataset
from lnn_control.data.from_log import FromLogConfig, convert_logs, parse_image_size
from lnn_control.data.log_selection import Selection, TimeRange
from lnn_control.runtime.logs.runlog import LogConfig, decode_image, read_run_log

SPEC_ONLY = FromLogConfig(spec=SPEC)


def _config(**selection) -> FromLogConfig:
    return FromLogConfig(selection=Selection(**selection), spec=SPEC)


def test_round_trip_frames_labels_timestamps_and_provenance(tmp_path: Path) -> None:
    hold = Step(sent=0.04, applied=0.04, state="hold", new_frame=False)  # re-sent on the same frame
    steps = policy_steps(5) + [hold] + stop_steps(2) + policy_steps(4, start=0.5)
    steps[2].applied = None  # robot reported nothing: the label is the sent command
    steps[3].applied = 0.025  # the robot applied less than was sent: the label is what it applied
    log = write_log(tmp_path / "run.mcap", steps, legacy=True)  # the format before source marking
    sent = read_run_log(log.path).topic("/commands/sent")
    assert len(sent) == 10 and not any("source" in m.payload for m in sent)  # stop steps: no message
    report = convert_logs([log.path], tmp_path / "data", SPEC_ONLY, command="test")
    dataset = EpisodeDataset(tmp_path / "data")
    assert len(dataset) == 2 and report.episodes == 2 and report.steps == 9
    assert report.logs[0]["excluded"] == {"repeated_frame": 1, "stop": 2}
    for episode, ks in zip(dataset, ([0, 1, 2, 3, 4], [8, 9, 10, 11])):
        assert len(episode) == len(ks)
        for i, k in enumerate(ks):
            assert np.array_equal(episode.image[i], log.images[k])  # PNG: lossless
        np.testing.assert_array_equal(episode.label[:, 0], np.float32([log.label(k) for k in ks]))
        np.testing.assert_array_equal(episode.action, episode.label)
        np.testing.assert_array_equal(episode.timestamp, [log.frame_times[k] for k in ks])
        np.testing.assert_array_equal(episode.extras[:, 0], 1.5)
    assert dataset[0].label[2, 0] == np.float32(0.02) and dataset[0].label[3, 0] == np.float32(0.025)
    meta = dataset.metadata(1)
    sha = hashlib.sha256(log.path.read_bytes()).hexdigest()
    assert meta["source"] == "policy" and meta["run_mode"] == "run" and meta["log_sha256"] == sha
    assert (meta["first_step"], meta["last_step"], meta["steps"]) == (8, 11, 4)
    assert meta["log"] == str(log.path.resolve()) and meta["log_complete"] is True
    assert meta["start_s"] == pytest.approx(0.16) and meta["frames_every_step"] is True
    manifest = json.loads((tmp_path / "data" / "dataset.json").read_text())
    assert manifest["from_log"]["sources"][0]["sha256"] == sha
    assert manifest["action_spec"]["names"] == ["steering"] and manifest["action_spec"]["frame"] == "flu"
    assert manifest["observation_spec"]["extras"] == ["speed"] and manifest["created_by"] == "test"
    record = json.loads((tmp_path / "data" / "conversion.json").read_text())
    assert record["dataset_hash"] == dataset.content_hash() == report.dataset_hash
    assert not any(p.name.startswith(".") for p in tmp_path.iterdir())  # no staging folder left


def test_frames_logged_below_the_loop_rate_keep_only_framed_steps(tmp_path: Path) -> None:
    config = LogConfig(image_rate_hz=10.0, image_format="jpeg", jpeg_quality=80)
    log = write_log(tmp_path / "run.mcap", policy_steps(25), config=config)
    logged = read_run_log(log.path)
    frames = {m.sequence: decode_image(base64.b64decode(m.payload["data"])) for m in logged.topic("/camera/image")}
    assert sorted(frames) == [0, 5, 10, 15, 20]
    report = convert_logs([log.path], tmp_path / "data", SPEC_ONLY)
    (episode,) = list(EpisodeDataset(tmp_path / "data"))
    assert report.logs[0]["excluded"] == {"no_frame": 20}
    for i, k in enumerate(sorted(frames)):
        assert np.array_equal(episode.image[i], frames[k])  # the JPEG as logged, decoded
    np.testing.assert_array_equal(episode.label[:, 0], np.float32([log.label(k) for k in sorted(frames)]))
    np.testing.assert_array_equal(episode.timestamp, [log.frame_times[k] for k in sorted(frames)])
    assert episode.metadata["frames_every_step"] is False and episode.metadata["image_format"] == "jpeg"
    assert any("only steps with a frame are kept" in note for note in report.notes)


def test_trim_and_drop_cut_time_ranges_and_split_episodes(tmp_path: Path) -> None:
    log = write_log(tmp_path / "run.mcap", policy_steps(50))  # 50 Hz: step k at t = 0.02 k
    config = _config(trim_start_s=0.09, trim_end_s=0.11, drop=(TimeRange.parse("0.29:0.41"),))
    report = convert_logs([log.path], tmp_path / "data", config)
    episodes = list(EpisodeDataset(tmp_path / "data"))
    assert [(e.metadata["first_step"], e.metadata["last_step"]) for e in episodes] == [(5, 14), (21, 43)]
    assert report.logs[0]["excluded"] == {"trimmed": 5 + 6, "dropped": 6}
    np.testing.assert_array_equal(episodes[1].label[:, 0], np.float32([log.label(k) for k in range(21, 44)]))
    assert np.array_equal(episodes[1].image[0], log.images[21])


def _takeover_run(path: Path, mode: str = "run") -> WrittenLog:
    steps = policy_steps(10) + human_steps(10) + policy_steps(10, 0.3) + human_steps(5, 0.2) + stop_steps(2) + human_steps(4, 0.1)
    return write_log(path, steps, mode=mode, takeover="gamepad" if mode == "run" else None, seed=3)


def test_sources_split_episodes_and_only_selects_human_segments(tmp_path: Path) -> None:
    log = _takeover_run(tmp_path / "run.mcap")
    logged = read_run_log(log.path)
    assert [m.payload["source"] for m in logged.topic("/commands/sent")][34:38] == ["human", "stop", "stop", "human"]
    assert len(logged.topic("/commands/human")) == 19 and logged.takeover == "gamepad"
    convert_logs([log.path], tmp_path / "all", SPEC_ONLY)
    every = EpisodeDataset(tmp_path / "all")
    spans = [(every.metadata(i)["source"], every.metadata(i)["first_step"], every.metadata(i)["last_step"])
             for i in range(len(every))]
    assert spans == [("policy", 0, 9), ("human", 10, 19), ("policy", 20, 29), ("human", 30, 34), ("human", 37, 40)]
    assert every.metadata(1)["takeover"] == "gamepad"
    human = convert_logs([log.path], tmp_path / "human", _config(only="human"))
    assert human.episodes == 3 and human.steps == 19 and human.logs[0]["excluded"]["not_selected"] == 20
    (first, *_), ks = list(EpisodeDataset(tmp_path / "human")), range(10, 20)
    np.testing.assert_array_equal(first.label[:, 0], np.float32([log.label(k) for k in ks]))  # what was applied
    assert log.label(10) != log.steps[10].sent
    interventions = convert_logs([log.path], tmp_path / "interventions", _config(only="interventions"))
    assert interventions.steps == 19


def test_interventions_leave_out_teleop_logs_and_old_logs_are_policy(tmp_path: Path) -> None:
    run = _takeover_run(tmp_path / "run.mcap")
    teleop = write_log(tmp_path / "teleop.mcap", human_steps(12), mode="teleop")
    old = write_log(tmp_path / "old.mcap", policy_steps(6), legacy=True)
    report = convert_logs([run.path, teleop.path, old.path], tmp_path / "data", _config(only="interventions"))
    assert [entry["kept_steps"] for entry in report.logs] == [19, 0, 0]
    assert any("teleop.mcap: no step selected" in note for note in report.notes)
    human = convert_logs([teleop.path, old.path], tmp_path / "teleop", _config(only="human"))
    assert [entry["kept_steps"] for entry in human.logs] == [12, 0]
    assert EpisodeDataset(tmp_path / "teleop").metadata(0)["run_mode"] == "teleop"
    with pytest.raises(ValueError, match="nothing selected from .*old.mcap"):
        convert_logs([old.path], tmp_path / "none", _config(only="human"))
    assert not (tmp_path / "none").exists()


def test_truncated_log_converts_up_to_its_last_complete_chunk(tmp_path: Path) -> None:
    log = write_log(tmp_path / "run.mcap", policy_steps(40), config=LogConfig(image_format="png", chunk_size_bytes=4096))
    cut = tmp_path / "killed.mcap"
    data = log.path.read_bytes()
    cut.write_bytes(data[: int(len(data) * 0.6)])  # a killed run: no summary, a half-written chunk
    readable = [m.sequence for m in read_run_log(cut).topic("/loop/timing")]
    assert 5 < len(readable) < 40 and readable == list(range(len(readable)))
    report = convert_logs([cut], tmp_path / "data", SPEC_ONLY)
    (episode,) = list(EpisodeDataset(tmp_path / "data"))
    assert len(episode) == len(readable) and episode.metadata["log_complete"] is False
    for k in readable:
        assert np.array_equal(episode.image[k], log.images[k])
    np.testing.assert_array_equal(episode.label[:, 0], np.float32([log.label(k) for k in readable]))
    assert any("ends early" in note for note in report.notes)


def test_log_without_frames_is_a_clear_error_naming_the_file(tmp_path: Path, capsys) -> None:
    log = write_log(tmp_path / "blind.mcap", policy_steps(5), frames=False)
    with pytest.raises(ValueError, match=r"blind\.mcap: the run log holds no camera frames"):
        convert_logs([log.path], tmp_path / "data", SPEC_ONLY)
    assert main(["dataset", "from-log", str(log.path), "--out", str(tmp_path / "data"), "--spec", SPEC]) == 2
    err = capsys.readouterr().err
    assert f"error: {log.path}: the run log holds no camera frames" in err and "image_rate_hz" in err
    assert not (tmp_path / "data").exists()


def test_frames_are_resized_to_the_dataset_size(tmp_path: Path) -> None:
    log = write_log(tmp_path / "small.mcap", policy_steps(3), size=(32, 64))
    convert_logs([log.path], tmp_path / "spec", SPEC_ONLY)  # the spec policy's 64x128
    episode = EpisodeDataset(tmp_path / "spec")[0]
    assert episode.image.shape == (3, 64, 128, 3) and episode.metadata["resized_from"] == [32, 64]
    convert_logs([log.path], tmp_path / "own", FromLogConfig(image_size=(32, 64), spec=SPEC))
    own = EpisodeDataset(tmp_path / "own")
    assert own.manifest.observation_spec.image_shape == (32, 64, 3)
    assert np.array_equal(own[0].image[1], log.images[1]) and own[0].metadata["resized_from"] is None


def test_bad_inputs_are_refused_with_what_to_do(tmp_path: Path, capsys) -> None:
    log = write_log(tmp_path / "run.mcap", policy_steps(3))
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("")
    with pytest.raises(ValueError, match="not an empty folder"):
        convert_logs([log.path], tmp_path / "full", SPEC_ONLY)
    with pytest.raises(ValueError, match="given twice"):
        convert_logs([log.path, log.path], tmp_path / "twice", SPEC_ONLY)
    with pytest.raises(ValueError, match=r"run\.mcap: logged actions \[.steering.\] differ from \[.vx., "):
        convert_logs([log.path], tmp_path / "drone", FromLogConfig(spec="drone_forest_ncp19"))
    elsewhere = write_log(tmp_path / "robot.mcap", policy_steps(3), policy="/home/pi/policy.onnx")
    with pytest.raises(ValueError, match=r"robot\.mcap: the policy this run log names cannot be read here.*--spec"):
        convert_logs([elsewhere.path], tmp_path / "x")
    nameless = write_log(tmp_path / "nameless.mcap", policy_steps(3), policy=None)
    with pytest.raises(ValueError, match="names no policy.*--spec"):
        convert_logs([nameless.path], tmp_path / "x")
    assert parse_image_size("64x128") == (64, 128)
    for args, message in (
        (["--drop", "5"], "expected START:END"),
        (["--drop", "5:2"], "0 <= start < end"),
        (["--image-size", "64"], "expected HEIGHTxWIDTH"),
        (["--trim-start", "-1"], "trim_start_s must be >= 0"),
        (["--min-steps", "0"], "min_steps must be an integer >= 1"),
    ):
        assert main(["dataset", "from-log", str(log.path), "--out", str(tmp_path / "d"), "--spec", SPEC, *args]) == 2
        assert message in capsys.readouterr().err
    assert main(["dataset", "from-log", str(tmp_path / "missing.mcap"), "--out", str(tmp_path / "d")]) == 2
    assert "missing.mcap does not exist" in capsys.readouterr().err
