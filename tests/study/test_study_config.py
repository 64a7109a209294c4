"""Study files: the shipped ones load; a bad one fails before any work, naming the key, the file and what is allowed."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from lnn_control.cli import main
from lnn_control.config import ConfigError
from lnn_control.study.config import load_study

SMOKE = {
    "name": "t",
    "task": "lane-keeping",
    "training_launch": "lane_keeping",
    "architectures": ["ltc_ncp19"],
    "seeds": [0],
    "eval": {"conditions": {"rain": [3]}},
}


@pytest.mark.parametrize("name", ["study_smoke", "study_bench", "study_lane_keeping", "study_drone_forest"])
def test_shipped_study_files_load(name: str) -> None:
    study, path = load_study(name)
    assert path.name == f"{name}.yaml"
    assert study.condition_specs()[0] == "clean"
    if name not in ("study_smoke", "study_bench"):
        assert len(study.seeds) >= 5
        assert {"ltc_ncp19", "cfc_ncp19", "ctrnn_ncp19", "lstm_matched", "gru_matched", "cnn_feedforward", "lstm64"} <= set(study.architectures)


def _edit(path: str, value: object) -> dict:
    data = yaml.safe_load(yaml.safe_dump(SMOKE))
    *parents, last = path.split(".")
    node = data
    for key in parents:
        node = node.setdefault(key, {})
    node[last] = value
    return data


@pytest.mark.parametrize(
    "data, message",
    [
        ({**SMOKE, "architecture": ["lstm"]}, r"unknown key\(s\) \['architecture'\] at top level; allowed keys: \['architectures'"),
        (_edit("seeds", "0"), r"'seeds' must be a list"),
        (_edit("eval.episodes", "ten"), r"'eval.episodes' must be an integer"),
        (_edit("eval.conditions", {"hail": [3]}), r"'eval.conditions.hail' is not a condition; allowed: \['rain'"),
        (_edit("eval.conditions", {"rain": [7]}), r"'eval.conditions.rain\[0\]' is 7; severities are 1..5"),
        (_edit("architectures", ["ltc_ncp19", "transformer"]), r"'architectures\[1\]' is 'transformer'; allowed values: \["),
        (_edit("eval.backends", ["gazebo"]), r"'eval.backends\[0\]' is 'gazebo'; allowed values: \['mujoco', 'pybullet'\]"),
        (_edit("training_launch", "drone_forest"), r"trains task 'drone-forest', but the study's task is 'lane-keeping'"),
        (_edit("train.per_model_dagger", "off"), r"'train.per_model_dagger' must be true or false"),
        (_edit("eval.seed", 5), r"'eval.seed' is 5; held-out seeds start at 1000"),
        (_edit("seeds", [1, 1]), r"'seeds' lists \['1'\] more than once"),
    ],
)
def test_a_bad_study_file_fails_before_any_work_and_names_the_key(tmp_path: Path, capsys, data: dict, message: str) -> None:
    study_file = tmp_path / "bad.yaml"
    study_file.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match=message):
        load_study(study_file)
    out = tmp_path / "out"
    assert main(["study", "--launch", str(study_file), "--out", str(out)]) == 2
    error = capsys.readouterr().err
    assert str(study_file) in error
    assert not out.exists()  # nothing was started


def test_resume_needs_a_study_to_resume(tmp_path: Path, capsys) -> None:
    study_file = tmp_path / "ok.yaml"
    study_file.write_text(yaml.safe_dump(SMOKE))
    assert main(["study", "--launch", str(study_file), "--out", str(tmp_path / "out"), "--resume"]) == 2
    assert "holds no study" in capsys.readouterr().err


def test_study_with_ray_missing_names_the_extra_before_any_work(tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    out = tmp_path / "out"
    assert main(["study", "--launch", "study_smoke", "--out", str(out), "--executor", "ray"]) == 2
    assert "pip install 'lnn-control[ray]'" in capsys.readouterr().err
    assert not out.exists()


def test_values_equal_to_their_defaults_do_not_change_the_study_digest(tmp_path: Path) -> None:
    plain, explicit = tmp_path / "plain.yaml", tmp_path / "explicit.yaml"
    plain.write_text(yaml.safe_dump(SMOKE))
    explicit.write_text(yaml.safe_dump(_edit("train.per_model_dagger", False) | {"env_kwargs": {}}))
    changed = tmp_path / "changed.yaml"
    changed.write_text(yaml.safe_dump(_edit("eval.episodes", 3)))
    digests = [load_study(p)[0].digest() for p in (plain, explicit, changed)]
    assert digests[0] == digests[1] != digests[2]


def test_a_study_folder_goes_on_with_the_recipe_it_started_with(tmp_path: Path) -> None:
    """study.json keeps the recipe's text: after the training launch file changes, a resumed folder
    trains (and rebuilds its report) with the recorded recipe and says so; a folder whose recipe is
    unchanged, or that differs only in worker and thread counts, gets no note; a folder without the
    record (started before 2026-12-07) reads the launch file as it is now."""
    import json

    from lnn_control.study.scheduler import check_study_folder, recipe_digest, study_recipe
    from lnn_control.train.recipe import load_train_launch

    study, study_path = load_study("study_smoke")
    launch, text = load_train_launch(study.training_launch)
    assert "  lr: 0.005" in text
    older_text = text.replace("  lr: 0.005", "  lr: 0.001").replace("  threads: 2", "  threads: 1")
    started_then = tmp_path / "then"
    started_then.mkdir()
    check_study_folder(started_then, study, study_path, False, load_train_launch(study.training_launch)[0], older_text)
    recorded, recorded_text, note = study_recipe(started_then, study)
    assert recorded.train.lr == 0.001 and launch.train.lr == 0.005 and recorded_text == older_text
    assert note is not None and "'lane_keeping' now trains differently" in note

    unchanged = tmp_path / "unchanged"
    unchanged.mkdir()
    check_study_folder(unchanged, study, study_path, False, launch, text.replace("  threads: 2", "  threads: 1"))
    same, _, note = study_recipe(unchanged, study)
    assert note is None and recipe_digest(same) == recipe_digest(launch) and same.train.threads == 1

    state = json.loads((started_then / "study.json").read_text())
    del state["training_launch_file"], state["training_recipe_digest"]
    (started_then / "study.json").write_text(json.dumps(state))
    current, current_text, note = study_recipe(started_then, study)
    assert current == launch and current_text == text and note is None
    check_study_folder(started_then, study, study_path, True, current, current_text)  # the study matches: accepted


@pytest.mark.parametrize("feature_norm", ["none", "layer_tanh"])
def test_every_architecture_gets_the_training_launch_files_perception(feature_norm: str) -> None:
    """A study compares cores, not perceptions: the launch file's policy.feature_norm reaches every one."""
    from lnn_control.policies.presets import PRESETS
    from lnn_control.study.architectures import ARCHITECTURES, build_architecture

    preset = PRESETS["ncp19_drone"]
    for name in ARCHITECTURES:
        policy = build_architecture(name, "ncp19_drone", 0, preset.observation_spec, preset.action_spec,
                                    preset.control_rate_hz, feature_norm)
        assert policy.config.perception.feature_norm.value == feature_norm, name
