"""End to end: `lnn-control run` (shipped lane policy, PyBullet sim, real loop and MCAP writer) ->
`dataset from-log` -> behaviour cloning with the existing trainer; and a run killed with SIGKILL."""

from __future__ import annotations

import base64
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from lnn_control.cli import main
from lnn_control.data.episodes import EpisodeDataset
from lnn_control.runtime.logs.runlog import decode_image, read_run_log


def _logged(log_path: Path) -> tuple[dict[int, np.ndarray], dict[int, float], dict[int, float]]:
    """Frames, labels (applied, else sent) and frame times by step, straight from the log."""
    log = read_run_log(log_path)
    frames = {m.sequence: decode_image(base64.b64decode(m.payload["data"])) for m in log.topic("/camera/image")}
    labels = {m.sequence: m.payload["values"]["steering"] for m in log.topic("/commands/sent")}
    labels.update({m.sequence: m.payload["values"]["steering"] for m in log.topic("/commands/applied")})
    times = {m.sequence: m.payload["frame_timestamp_s"] for m in log.topic("/loop/timing")}
    return frames, labels, times


def _check_against_log(data: Path, log_path: Path) -> int:
    frames, labels, times = _logged(log_path)
    dataset = EpisodeDataset(data)
    total = 0
    for index in range(len(dataset)):
        episode = dataset[index]
        steps = range(episode.metadata["first_step"], episode.metadata["last_step"] + 1)
        kept = [k for k in steps if k in frames and k in labels]
        kept = [k for i, k in enumerate(kept) if i == 0 or times[k] > times[kept[i - 1]]]  # holds re-use a frame
        assert len(kept) == len(episode)
        for i, k in enumerate(kept):
            assert np.array_equal(episode.image[i], frames[k])
        np.testing.assert_array_equal(episode.label[:, 0], np.float32([labels[k] for k in kept]))
        np.testing.assert_array_equal(episode.timestamp, [times[k] for k in kept])
        total += len(episode)
    return total


@pytest.mark.slow
def test_sim_run_log_converts_and_trains(tmp_path: Path, capsys) -> None:
    import torch

    from lnn_control.nn.baselines import BASELINE_CORES
    from lnn_control.nn.perception import PerceptionConfig
    from lnn_control.policies.policy import Policy, PolicyConfig
    from lnn_control.train.bc import TrainConfig, train_behaviour_cloning

    log_path = tmp_path / "run.mcap"
    assert main(["run", "--launch", "sim_lane_keeping", "--duration", "2", "--log", str(log_path), "--quiet"]) == 0
    assert main(["dataset", "from-log", str(log_path), "--out", str(tmp_path / "data")]) == 0
    assert "hash" in capsys.readouterr().out
    dataset = EpisodeDataset(tmp_path / "data")
    assert len(dataset) >= 1 and dataset.metadata(0)["policy"].endswith("lane_keeping_ncp19")
    assert _check_against_log(tmp_path / "data", log_path) >= 10
    manifest = dataset.manifest
    torch.manual_seed(0)
    height, width, _ = manifest.observation_spec.image_shape
    core = BASELINE_CORES["ctrnn"](5, 6, 1)  # 4 image features + speed
    policy = Policy(PolicyConfig(
        perception=PerceptionConfig(image_height=height, image_width=width, conv_channels=(4, 4),
                                    kernel_sizes=(5, 3), strides=(4, 2), features=4),
        core=core.config(), observation_spec=manifest.observation_spec, action_spec=manifest.action_spec,
        control_rate_hz=20.0,
    ), core=core)
    config = TrainConfig(epochs=2, batch_size=4, seq_len=8, stride=8, threads=1, val_fraction=0.0)
    result = train_behaviour_cloning(policy, dataset, config, tmp_path / "train", progress=False)
    assert len(result.history) == 2 and all(np.isfinite(r["train_loss"]) for r in result.history)
    assert (tmp_path / "train" / "best.safetensors").is_file()


@pytest.mark.slow
def test_run_killed_with_sigkill_converts_up_to_its_last_complete_chunk(tmp_path: Path) -> None:
    log_path = tmp_path / "killed.mcap"
    proc = subprocess.Popen(
        [sys.executable, "-m", "lnn_control", "run", "--launch", "sim_lane_keeping", "--duration", "60",
         "--log", str(log_path), "--quiet"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            if log_path.is_file() and log_path.stat().st_size > 200_000:  # a few chunks of steps
                break
            time.sleep(0.2)
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert not read_run_log(log_path).complete
    assert main(["dataset", "from-log", str(log_path), "--out", str(tmp_path / "data")]) == 0
    dataset = EpisodeDataset(tmp_path / "data")
    assert all(dataset.metadata(i)["log_complete"] is False for i in range(len(dataset)))
    assert _check_against_log(tmp_path / "data", log_path) >= 10
