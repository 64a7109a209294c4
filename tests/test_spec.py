"""ActionSpec frames: stated once, validated, carried through JSON, compared where it matters."""

from __future__ import annotations

import pytest

from lnn_control.spec import ActionFrame, ActionSpec, check_compatible

DRONE = (("vx", "vy", "vz", "yaw_rate"), (-2.0, -1.0, -1.0, -1.0), (2.0, 1.0, 1.0, 1.0), ("m/s", "m/s", "m/s", "rad/s"))


def test_frame_round_trips_through_json_and_accepts_its_string():
    spec = ActionSpec(*DRONE, "flu")
    assert spec.frame is ActionFrame.FLU
    data = spec.to_dict()
    assert data["frame"] == "flu"
    assert ActionSpec.from_dict(data) == spec
    legacy = {k: v for k, v in data.items() if k != "frame"}  # a bundle saved before frames existed
    assert ActionSpec.from_dict(legacy).frame is None


def test_unknown_frame_names_what_is_allowed():
    with pytest.raises(ValueError, match=r"ActionSpec.frame 'ned' is not a known frame; allowed: \['flu'\]"):
        ActionSpec(*DRONE, "ned")


def test_simulators_accept_a_policy_that_states_no_frame_but_not_a_different_one():
    env = ActionSpec(*DRONE, ActionFrame.FLU)
    check_compatible(ActionSpec(*DRONE), env, "env action spec")  # legacy bundle in the simulator
    check_compatible(ActionSpec(*DRONE, ActionFrame.FLU), env, "env action spec")
    with pytest.raises(ValueError, match="frame: policy expects ActionFrame.FLU, got None"):
        check_compatible(ActionSpec(*DRONE, ActionFrame.FLU), ActionSpec(*DRONE), "env action spec")
