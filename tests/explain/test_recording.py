"""Recording: clean twins belong to the frame's own capture tick; the onset switches the corruption on."""

from __future__ import annotations

import numpy as np
import pytest


def test_clean_twins_follow_delivered_frames_under_framedrop(lane_policy) -> None:
    from lnn_control.explain.recording import record_episode

    rec = record_episode(lane_policy, "lane-keeping", "pybullet", "noise:2+framedrop:5", 1000, duration_s=4.0)
    assert rec.clean_frames is not None and rec.steps >= 10
    assert len(set(np.round(rec.dt, 3))) > 1  # frames were dropped: irregular dt
    np.testing.assert_allclose(np.diff(rec.times), rec.dt[1:], atol=1e-9)  # dt = time between captures
    to_twin = np.abs(rec.frames.astype(int) - rec.clean_frames.astype(int)).mean()
    to_previous_twin = np.abs(rec.frames[1:].astype(int) - rec.clean_frames[:-1].astype(int)).mean()
    assert to_twin < to_previous_twin  # each frame is compared with the clean frame of its own tick
    assert rec.masks is not None and rec.masks["road"].shape == rec.frames.shape[:3]


def test_onset_gives_clean_frames_before_it(lane_policy) -> None:
    from lnn_control.explain.recording import record_episode

    rec = record_episode(lane_policy, "lane-keeping", "pybullet", "rain:3", 1000, duration_s=2.0, onset_s=1.0)
    before, after = rec.times < 1.0, rec.times >= 1.0
    assert before.any() and after.any()
    assert np.array_equal(rec.frames[before], rec.clean_frames[before])
    assert all(not np.array_equal(f, c) for f, c in zip(rec.frames[after], rec.clean_frames[after]))
    assert rec.onsets == [(0.0, "start"), (1.0, "rain:3 on")]
    assert set(rec.signals) == {"lateral_offset", "heading_error", "curvature"}


@pytest.mark.parametrize(("core", "figure"), [("cfc", "gates.png"), ("lstm", None)])
def test_explain_a_trained_bundle_of_another_core(tmp_path, core: str, figure: str | None) -> None:
    """A saved CfC / LSTM bundle through the CLI: CfC gets its gates figure, LSTM its hidden/cell traces."""
    import json

    from lnn_control.cli import main
    from lnn_control.policies.bundle import save_policy
    from lnn_control.policies.presets import build_policy
    from lnn_control.spec import ObservationSpec

    policy = build_policy("ncp19_car", core=core, seed=2,
                          observation_spec=ObservationSpec((64, 128, 3), ("speed",), ("m/s",)))
    save_policy(policy, tmp_path / "bundle", {"command": "test"})
    out = tmp_path / "out"
    assert main(["explain", str(tmp_path / "bundle"), "--duration", "1", "--samples", "2", "--no-video",
                 "--out", str(out)]) == 0
    names = {p.name for p in out.iterdir()}
    summary = json.loads((out / "explain.json").read_text())
    if figure:
        assert figure in names and "gate" in summary["series"]
        assert summary["files"]["gates"] == "gates.png"
    else:
        assert not names & {"gates.png", "time_constants.png"}
        assert sorted(summary["groups"]) == ["cell", "hidden"]
