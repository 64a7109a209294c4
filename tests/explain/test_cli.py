"""``lnn-control explain`` end to end on short real episodes: files, numbers, atomic writes, errors."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from lnn_control.cli import main


def test_explain_writes_every_file_atomically(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every output file arrives by an atomic rename of a finished temporary file (a spy on
    os.replace records the targets; the writes themselves are real), and no temporary file is left."""
    renamed: list[Path] = []
    real_replace = os.replace

    def spy(source, target):  # noqa: ANN001, ANN202
        renamed.append(Path(target).resolve())
        return real_replace(source, target)

    monkeypatch.setattr(os, "replace", spy)
    out = tmp_path / "explain"
    code = main(["explain", "lane_keeping_ncp19", "--condition", "rain:3", "--onset", "0.5", "--duration", "1.5",
                 "--samples", "2", "--out", str(out)])
    assert code == 0
    files = sorted(p.name for p in out.iterdir())
    assert files == ["explain.json", "saliency.mp4", "saliency_strip.png", "time_constants.png", "traces.png",
                     "wiring.png"]
    assert {(out / name).resolve() for name in files} <= set(renamed)
    summary = json.loads((out / "explain.json").read_text())
    assert summary["core_type"] == "ltc" and summary["condition"] == "rain:3"
    steps = summary["steps"]
    assert steps == len(summary["series"]["time_s"]) >= 29
    assert summary["series"]["actions_in_run_minus_replayed_max"] < 1e-4  # the analysis replays the run
    assert set(summary["series"]["tau_s"]) == {str(n) for n in range(19)}
    assert all(v > 0 for v in summary["series"]["tau_s"]["0"])
    assert summary["groups"] == {"motor": [0], "command": list(range(1, 7)), "inter": list(range(7, 19))}
    assert {"time_s": 0.5, "label": "rain:3 on"} in summary["onsets"]
    assert 0.0 <= summary["perception"]["ltc_sensory_saturated_share_median"] <= 1.0
    assert summary["perception"]["feature_abs_median"] > 0.0
    smoothgrad = summary["saliency"]["smoothgrad"]
    assert smoothgrad["vanished_below"] == 1e-8 and 0 <= smoothgrad["vanished_frames"] <= steps
    assert smoothgrad["peak_gradient_median_frames"] >= 0.0 and "vanished_clean" in smoothgrad
    onset = 10  # 0.5 s at 20 Hz
    for method in ("visualbackprop", "smoothgrad"):
        entry = summary["attention"][method]
        ssim = entry["per_frame"]["ssim_clean_vs_condition"]
        assert len(ssim) == steps
        # before the onset the policy saw the clean twin itself; a frame whose gradients vanished has no score
        assert all(s == pytest.approx(1.0) for s in ssim[:onset] if s is not None)
        if method == "visualbackprop":
            assert None not in ssim and 0.0 < entry["ssim_clean_vs_condition"] < 1.0
        else:
            assert ssim.count(None) >= smoothgrad["vanished_frames"]
        if entry["mass_share"]["road"]["condition"] is not None or method == "visualbackprop":
            assert entry["mass_share"]["road"]["condition"] > entry["mass_share"]["sky"]["condition"]
    assert 0.5 < summary["attention"]["mask_area"]["road"] < 0.9


def test_bad_condition_names_the_allowed_ones(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["explain", "lane_keeping_ncp19", "--condition", "snow:3", "--out", str(tmp_path / "x")])
    assert code == 2
    err = capsys.readouterr().err
    assert "unknown condition 'snow'" in err and "rain" in err and "fog" in err
    assert not (tmp_path / "x").exists()


def test_unknown_neuron_group_names_the_allowed_ones(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["explain", "lane_keeping_ncp19", "--neurons", "motor,sensory", "--out", str(tmp_path / "x")])
    assert code == 2
    err = capsys.readouterr().err
    assert "unknown neuron group(s) ['sensory']" in err and "['command', 'inter', 'motor']" in err
    assert not (tmp_path / "x").exists()


def test_explain_a_run_log(tmp_path: Path, lane_policy, lane_frames) -> None:
    """A run log (PNG frames, every step) written from real frames and the policy's own commands:
    explain replays it exactly and reports no clean twins."""
    from lnn_control.runtime.core.loop import StepRecord
    from lnn_control.runtime.logs.runlog import LogConfig, RunLogWriter

    log_path = tmp_path / "run.mcap"
    lane_policy.reset()
    with RunLogWriter(log_path, ("steering",), LogConfig(image_format="png"), {"policy": "lane_keeping_ncp19"}) as log:
        for k, (frame, speed) in enumerate(zip(lane_frames.frames, lane_frames.speeds)):
            command = lane_policy.act({"image": frame, "speed": speed}, 0.05)
            t = 10.0 + 0.05 * k
            log.write_step(StepRecord(
                step=k, slot_time=t, wake_time=t, frame_timestamp=t - 0.002, frame_index=k, state="run",
                dt=0.05, command=command, sent=command, applied=command, write_time=t + 0.003, latency=0.005,
                compute_time=0.003, neurons=lane_policy.neuron_activity(), image=frame,
                extras={"speed": float(speed[0])},
            ))
    out = tmp_path / "out"
    assert main(["explain", "lane_keeping_ncp19", "--log", str(log_path), "--no-video", "--out", str(out)]) == 0
    summary = json.loads((out / "explain.json").read_text())
    assert summary["steps"] == len(lane_frames.frames) and summary["condition"] == "log"
    assert summary["series"]["actions_in_run_minus_replayed_max"] < 1e-4
    assert "ssim_clean_vs_condition" not in summary["attention"]["visualbackprop"]
    assert np.allclose(summary["series"]["dt_s"], 0.05)
    assert sorted(p.name for p in out.iterdir()) == ["explain.json", "saliency_strip.png", "time_constants.png",
                                                     "traces.png", "wiring.png"]
