"""The expert at the gamepad: the inverse axis mapping, and `teleop --input expert` end to end on the
real lane env (PyBullet) through the FIFO gamepad path, with simulator resets splitting the dataset."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from lnn_control.config import ConfigError
from lnn_control.data.episodes import EpisodeDataset
from lnn_control.runtime.inputs.config import AxisBinding, GamepadConfig
from lnn_control.runtime.inputs.mapping import resolve_axes
from lnn_control.runtime.launch import load_launch
from lnn_control.runtime.logs.runlog import read_run_log
from lnn_control.runtime.teleop import expert_teleop_launch
from lnn_control.spec import ActionSpec

SPEC = ActionSpec(("a",), (-0.5,), (2.0,), ("",))


@given(
    value=st.floats(-0.5, 2.0),
    kind=st.sampled_from(["stick", "trigger"]),
    invert=st.booleans(),
    deadzone=st.floats(0.0, 0.3),
    scale=st.one_of(st.none(), st.floats(0.5, 3.0)),
)
def test_raw_for_inverts_value(value: float, kind: str, invert: bool, deadzone: float, scale: float | None) -> None:
    binding = AxisBinding("ABS_X", kind=kind, invert=invert, deadzone=deadzone, scale=scale, range=(-32768, 32767))
    (axis,) = resolve_axes(GamepadConfig(mapping="none", axes={"a": binding}), SPEC, {})
    reachable = axis.value(axis.raw_for(1e9)), axis.value(axis.raw_for(-1e9))
    target = float(np.clip(value, min(reachable), max(reachable)))
    # one raw step of a 16-bit axis, stretched by the dead zone and the action's scale
    step = 2.0 / 65535 / (1.0 - deadzone) * max(scale or 0.0, 2.0, 0.5) * (2 if kind == "trigger" else 1)
    assert abs(axis.value(axis.raw_for(target)) - target) <= step + 1e-9


def test_stream_range_gives_fifo_axes_their_range() -> None:
    config = GamepadConfig(mapping="none", axes={"a": AxisBinding("ABS_X")})
    with pytest.raises(ValueError, match="stream_range"):
        resolve_axes(config, SPEC, {})
    (axis,) = resolve_axes(replace(config, stream_range=(0, 255)), SPEC, {})
    assert (axis.raw_min, axis.raw_max) == (0, 255)
    with pytest.raises(ValueError, match="stream_range is \\[5, 5\\]"):
        GamepadConfig(stream_range=(5, 5))


def _short_road_launch(pacing: str = "lockstep"):
    config = load_launch("sim_lane_desert")
    assert config.robot.sim is not None
    sim = replace(config.robot.sim, pacing=pacing, env_kwargs={**config.robot.sim.env_kwargs, "road_length": 4.0})
    return replace(config, robot=replace(config.robot, sim=sim))


@pytest.mark.slow
def test_expert_teleop_drives_through_the_pad_and_resets_split_episodes(tmp_path: Path) -> None:
    from lnn_control.data.from_log import FromLogConfig, convert_logs

    log_path = tmp_path / "expert.mcap"
    result = expert_teleop_launch(_short_road_launch(), "test", max_steps=140, log_path=log_path, handle_signals=False)
    assert result.stats.human_steps >= 120  # the pad drove (a missed deadline may hold a step)
    assert result.sim_resets is not None and result.sim_resets >= 2  # 4 m roads at 1.5 m/s

    log = read_run_log(log_path)
    assert {m.payload["source"] for m in log.topic("/commands/sent")} == {"human"}
    human = [m.payload for m in log.topic("/commands/human")]
    assert all(h["deadman"] for h in human)
    steering = np.array([h["values"]["steering"] for h in human])
    assert steering.std() > 0.01  # the expert steers, it does not hold the stick still
    episodes_logged = sorted({m.payload["episode"] for m in log.topic("/loop/timing")})
    assert episodes_logged == list(range(result.sim_resets + 1))

    report = convert_logs([log_path], tmp_path / "data", FromLogConfig(spec="lane_keeping_ncp19"))
    dataset = EpisodeDataset(tmp_path / "data")
    assert report.episodes == len(dataset) == len(episodes_logged)  # one dataset episode per road


def test_expert_input_needs_a_lockstep_sim(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="pacing: lockstep"):
        expert_teleop_launch(_short_road_launch("clocked"), "test", max_steps=1, log_path=tmp_path / "x.mcap")


def test_expert_input_needs_a_task_with_an_expert(tmp_path: Path) -> None:
    from lnn_runtime_testkit import DOT_ENV_ID

    from lnn_control.runtime.launch import SimConfig
    from lnn_control.runtime.session import RobotConnectError

    config = _short_road_launch()
    config = replace(config, robot=replace(config.robot, sim=SimConfig(DOT_ENV_ID, pacing="lockstep")))
    with pytest.raises(RobotConnectError, match="has no expert_action"):
        expert_teleop_launch(config, "test", max_steps=1, log_path=tmp_path / "x.mcap", handle_signals=False)
