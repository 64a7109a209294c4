"""Policy bundles: round trip, atomic writes, every documented failure, and a fuzz test."""

from __future__ import annotations

import copy
import hashlib
import json
import shutil
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lnn_control.nn.baselines import BASELINE_CORES
from lnn_control.nn.perception import PerceptionConfig
from lnn_control.policies.bundle import (
    BUNDLE_FORMAT_VERSION,
    CONFIG_FILE,
    MODEL_FILE,
    PolicyBundleError,
    load_policy,
    pack_policy,
    read_bundle_config,
    save_policy,
)
from lnn_control.policies.policy import Policy, PolicyConfig
from lnn_control.spec import ActionFrame, ActionSpec, ObservationSpec

H, W = 16, 24
PROVENANCE = {
    "command": "lnn-control train --task lane-keeping",
    "seed": 3,
    "dataset_hash": "abc123",
    "git_commit": "deadbeef",
    "metrics": {"val_loss": 0.01},
}


def make_policy(kind: str = "ctrnn", seed: int = 0) -> Policy:
    perception = PerceptionConfig(
        image_height=H, image_width=W, conv_channels=(4, 4), kernel_sizes=(3, 3), strides=(2, 2), features=4
    )
    torch.manual_seed(seed)
    core = BASELINE_CORES[kind](5, 3, 1)
    config = PolicyConfig(
        perception=perception,
        core=core.config(),
        observation_spec=ObservationSpec((H, W, 3), ("speed",), ("m/s",)),
        action_spec=ActionSpec(("steering",), (-1.0,), (1.0,), ("normalized",), ActionFrame.FLU),
        control_rate_hz=20.0,
        extras_scale=(0.5,),
    )
    return Policy(config, core=core).eval()


def observations(steps: int = 5) -> list[dict[str, np.ndarray]]:
    rng = np.random.default_rng(0)
    return [
        {"image": rng.integers(0, 256, (H, W, 3), dtype=np.uint8), "speed": rng.uniform(0, 2, 1).astype(np.float32)}
        for _ in range(steps)
    ]


def rollout(policy: Policy) -> np.ndarray:
    policy.reset()
    return np.stack([policy.act(obs, 0.05) for obs in observations()])


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_policy(make_policy(), tmp_path_factory.mktemp("bundles") / "car", PROVENANCE)


def copy_of(bundle: Path, tmp_path: Path) -> Path:
    target = tmp_path / "copy"
    shutil.copytree(bundle, target)
    return target


def edit_config(directory: Path, change) -> None:  # noqa: ANN001 - a callable editing the dict in place
    data = json.loads((directory / CONFIG_FILE).read_text())
    change(data)
    (directory / CONFIG_FILE).write_text(json.dumps(data))


@pytest.mark.parametrize("kind", sorted(BASELINE_CORES))
def test_round_trip_reproduces_actions_and_config(kind: str, tmp_path: Path) -> None:
    policy = make_policy(kind, seed=1)
    save_policy(policy, tmp_path / "b", PROVENANCE)
    loaded = load_policy(tmp_path / "b")
    assert loaded.config == policy.config
    assert not loaded.training
    np.testing.assert_array_equal(rollout(loaded), rollout(policy))


def test_config_json_holds_architecture_specs_and_provenance(bundle: Path) -> None:
    data = json.loads((bundle / CONFIG_FILE).read_text())
    assert data["format"] == "lnn-control-policy" and data["format_version"] == BUNDLE_FORMAT_VERSION
    assert data["image_size"] == [H, W]
    assert data["policy"]["core"] == {"type": "ctrnn", "input_size": 5, "units": 3, "output_size": 1, "unfolds": 1}
    assert data["policy"]["action_spec"] == {
        "names": ["steering"], "low": [-1.0], "high": [1.0], "units": ["normalized"], "frame": "flu"
    }
    assert data["policy"]["observation_spec"]["extra_units"] == ["m/s"]
    assert data["policy"]["control_rate_hz"] == 20.0
    assert data["model_sha256"] == hashlib.sha256((bundle / MODEL_FILE).read_bytes()).hexdigest()
    provenance = data["provenance"]
    assert {k: provenance[k] for k in PROVENANCE} == PROVENANCE
    assert provenance["created"].endswith("+00:00")
    assert load_policy(bundle).provenance == provenance


def test_missing_provenance_keys_are_recorded_as_null(tmp_path: Path) -> None:
    save_policy(make_policy(), tmp_path / "b", {"command": "test"})
    provenance = read_bundle_config(tmp_path / "b")["provenance"]
    assert provenance["seed"] is None and provenance["git_commit"] is None and provenance["metrics"] == {}


def test_model_file_is_plain_safetensors(bundle: Path) -> None:
    from safetensors import safe_open

    with safe_open(str(bundle / MODEL_FILE), framework="pt") as handle:
        names = set(handle.keys())
    assert names == set(make_policy().state_dict())
    assert "output_gain" in names and "perception.head.weight" in names


def test_save_refuses_to_overwrite_unless_asked(tmp_path: Path) -> None:
    first = make_policy(seed=1)
    second = make_policy(seed=2)
    save_policy(first, tmp_path / "b", PROVENANCE)
    with pytest.raises(PolicyBundleError, match="already exists"):
        save_policy(second, tmp_path / "b", PROVENANCE)
    save_policy(second, tmp_path / "b", PROVENANCE, overwrite=True)
    np.testing.assert_array_equal(rollout(load_policy(tmp_path / "b")), rollout(second))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b"]  # no staging or retired folders left


def test_save_does_not_overwrite_a_folder_that_is_not_a_bundle(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "notes.txt").write_text("keep me")
    with pytest.raises(PolicyBundleError, match="not a policy bundle"):
        save_policy(make_policy(), tmp_path / "data", PROVENANCE, overwrite=True)
    assert (tmp_path / "data" / "notes.txt").read_text() == "keep me"


def test_failed_save_leaves_nothing_behind(tmp_path: Path) -> None:
    with pytest.raises(PolicyBundleError, match="not plain JSON"):
        save_policy(make_policy(), tmp_path / "b", {"metrics": {"loss": float("nan")}})
    with pytest.raises(PolicyBundleError, match="not plain JSON"):
        save_policy(make_policy(), tmp_path / "b", {"command": object()})
    assert list(tmp_path.iterdir()) == []


def test_save_policy_rejects_non_policies(tmp_path: Path) -> None:
    with pytest.raises(PolicyBundleError, match="needs a Policy"):
        save_policy(torch.nn.Linear(1, 1), tmp_path / "b", {})  # type: ignore[arg-type]


def _error(directory: Path) -> str:
    with pytest.raises(PolicyBundleError) as info:
        load_policy(directory)
    return str(info.value)


def test_zip_archive_round_trip(bundle: Path, tmp_path: Path) -> None:
    archive = pack_policy(bundle, tmp_path / "car.zip")
    with zipfile.ZipFile(archive) as handle:
        assert sorted(handle.namelist()) == [CONFIG_FILE, MODEL_FILE]
    loaded = load_policy(archive)
    assert loaded.config == load_policy(bundle).config
    np.testing.assert_array_equal(rollout(loaded), rollout(load_policy(bundle)))
    assert read_bundle_config(archive)["provenance"]["seed"] == 3


def test_zip_archive_errors_name_the_member(bundle: Path, tmp_path: Path) -> None:
    with zipfile.ZipFile(tmp_path / "half.zip", "w") as handle:
        handle.write(bundle / CONFIG_FILE, CONFIG_FILE)
    message = _error(tmp_path / "half.zip")
    assert f"half.zip!{MODEL_FILE}: missing file" in message
    (tmp_path / "junk.zip").write_bytes(b"PK\x03\x04 definitely not a zip")
    assert "not a readable policy bundle archive" in _error(tmp_path / "junk.zip")
    broken = copy_of(bundle, tmp_path)
    edit_config(broken, lambda d: d.update(format_version=0))
    with pytest.raises(PolicyBundleError, match="format_version 0"):
        pack_policy(broken, tmp_path / "never.zip")
    assert not (tmp_path / "never.zip").exists()


def test_missing_directory_and_files(bundle: Path, tmp_path: Path) -> None:
    assert "no such policy bundle" in _error(tmp_path / "nope")
    for name in (CONFIG_FILE, MODEL_FILE):
        broken = copy_of(bundle, tmp_path / name)
        (broken / name).unlink()
        message = _error(broken)
        assert name in message and "missing file" in message


def test_truncated_json(bundle: Path, tmp_path: Path) -> None:
    broken = copy_of(bundle, tmp_path)
    text = (broken / CONFIG_FILE).read_bytes()
    (broken / CONFIG_FILE).write_bytes(text[: len(text) // 2])
    message = _error(broken)
    assert CONFIG_FILE in message and "corrupt or truncated JSON" in message


def test_truncated_safetensors(bundle: Path, tmp_path: Path) -> None:
    broken = copy_of(bundle, tmp_path)
    raw = (broken / MODEL_FILE).read_bytes()
    (broken / MODEL_FILE).write_bytes(raw[:-10])
    message = _error(broken)
    assert MODEL_FILE in message and "corrupt or truncated safetensors" in message


def test_flipped_weight_byte_fails_the_checksum(bundle: Path, tmp_path: Path) -> None:
    broken = copy_of(bundle, tmp_path)
    raw = bytearray((broken / MODEL_FILE).read_bytes())
    raw[-3] ^= 0x01  # inside the tensor data: still parses, numbers silently differ
    (broken / MODEL_FILE).write_bytes(bytes(raw))
    assert "does not match model_sha256" in _error(broken)


def test_pickle_files_are_never_loaded(bundle: Path, tmp_path: Path) -> None:
    broken = copy_of(bundle, tmp_path)
    torch.save(make_policy().state_dict(), broken / MODEL_FILE)  # a pickle under the right name
    message = _error(broken)
    assert MODEL_FILE in message and "safetensors" in message


def test_wrong_format_and_version(bundle: Path, tmp_path: Path) -> None:
    cases = {
        "v2": (lambda d: d.update(format_version=2), "format_version 2 is not supported"),
        "bool": (lambda d: d.update(format_version=True), "format_version True"),
        "fmt": (lambda d: d.update(format="onnx"), "'format' is 'onnx'"),
        "list": (lambda d: d.update(policy=[]), "'policy' must be a JSON dict"),
    }
    for name, (change, expected) in cases.items():
        broken = copy_of(bundle, tmp_path / name)
        edit_config(broken, change)
        assert expected in _error(broken), name
    broken = copy_of(bundle, tmp_path / "array")
    (broken / CONFIG_FILE).write_text("[1, 2]")
    assert "JSON object" in _error(broken)


def test_unknown_architecture(bundle: Path, tmp_path: Path) -> None:
    broken = copy_of(bundle, tmp_path)
    edit_config(broken, lambda d: d["policy"]["core"].update(type="transformer"))
    message = _error(broken)
    assert "cannot build the architecture" in message and "transformer" in message


def test_architecture_that_does_not_fit_the_weights(bundle: Path, tmp_path: Path) -> None:
    broken = copy_of(bundle, tmp_path / "units")
    edit_config(broken, lambda d: d["policy"]["core"].update(units=4))
    message = _error(broken)
    assert MODEL_FILE in message and "(3,), the architecture needs torch.float32 (4,)" in message
    broken = copy_of(bundle, tmp_path / "kind")
    edit_config(broken, lambda d: d["policy"]["core"].update(type="gru") or d["policy"]["core"].pop("unfolds"))
    message = _error(broken)
    assert "missing ['core.rnn.bias_hh_l0'" in message and "unexpected ['core.input_map.bias'" in message


def test_extra_and_missing_tensors(bundle: Path, tmp_path: Path) -> None:
    from safetensors.torch import load_file, save_file

    for name, edit in {
        "extra": lambda t: t.update(bonus=torch.zeros(2)),
        "missing": lambda t: t.pop("output_gain"),
    }.items():
        broken = copy_of(bundle, tmp_path / name)
        tensors = load_file(broken / MODEL_FILE)
        edit(tensors)
        save_file(tensors, broken / MODEL_FILE)
        digest = hashlib.sha256((broken / MODEL_FILE).read_bytes()).hexdigest()
        edit_config(broken, lambda d, digest=digest: d.update(model_sha256=digest))
        message = _error(broken)
        assert ("unexpected ['bonus']" if name == "extra" else "missing ['output_gain']") in message


def test_non_finite_weights_are_rejected(bundle: Path, tmp_path: Path) -> None:
    from safetensors.torch import load_file, save_file

    broken = copy_of(bundle, tmp_path)
    tensors = load_file(broken / MODEL_FILE)
    tensors["output_bias"] = torch.tensor([float("nan")])
    save_file(tensors, broken / MODEL_FILE)
    digest = hashlib.sha256((broken / MODEL_FILE).read_bytes()).hexdigest()
    edit_config(broken, lambda d: d.update(model_sha256=digest))
    assert "'output_bias' contains NaN" in _error(broken)


def test_invalid_specs(bundle: Path, tmp_path: Path) -> None:
    cases = {
        "bounds": (lambda d: d["policy"]["action_spec"].update(low=[2.0]), "low=2.0 must be < high=1.0"),
        "image": (lambda d: d["policy"]["observation_spec"].update(image_shape=[16, 24, 4]), "3 (RGB) channels"),
        "units": (lambda d: d["policy"]["observation_spec"].update(extra_units=[]), "differ in length"),
        "rate": (lambda d: d["policy"].update(control_rate_hz=-5), "control_rate_hz"),
        "unknown": (lambda d: d["policy"].update(temperature=1.0), "unknown key(s) ['temperature']"),
    }
    for name, (change, expected) in cases.items():
        broken = copy_of(bundle, tmp_path / name)
        edit_config(broken, change)
        message = _error(broken)
        assert expected in message and CONFIG_FILE in message, (name, message)


# ------------------------------------------------------------------------------------- fuzz

def _key_paths(node, prefix=()):  # noqa: ANN001, ANN202
    if isinstance(node, dict):
        for key, value in node.items():
            yield (*prefix, key)
            yield from _key_paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield (*prefix, index)
            yield from _key_paths(value, (*prefix, index))


def _parent(data, path):  # noqa: ANN001, ANN202
    for key in path[:-1]:
        data = data[key]
    return data


REPLACEMENTS = [None, True, 0, -1, 7, 2.5, float("nan"), "x", "", [], [1], {}, {"a": 1}]

mutations = st.one_of(
    st.tuples(st.just("flip"), st.sampled_from([CONFIG_FILE, MODEL_FILE]), st.floats(0, 1, exclude_max=True),
              st.integers(1, 255)),
    st.tuples(st.just("truncate"), st.sampled_from([CONFIG_FILE, MODEL_FILE]), st.floats(0, 1, exclude_max=True)),
    st.tuples(st.just("delete"), st.floats(0, 1, exclude_max=True)),
    st.tuples(st.just("zip"), st.floats(0, 1, exclude_max=True), st.integers(0, 255)),
    st.tuples(st.just("retype"), st.floats(0, 1, exclude_max=True), st.sampled_from(range(len(REPLACEMENTS)))),
)


@pytest.fixture(scope="module")
def ltc_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A wired LTC (NCP19) bundle: the wiring's adjacency matrices get fuzzed too."""
    from lnn_control.policies.presets import build_policy

    perception = PerceptionConfig(
        image_height=H, image_width=W, conv_channels=(4, 4), kernel_sizes=(3, 3), strides=(2, 2), features=32
    )
    policy = build_policy(
        "ncp19_car", core="ltc", observation_spec=ObservationSpec((H, W, 3), ("speed",), ("m/s",)),
        perception=perception,
    )
    return save_policy(policy, tmp_path_factory.mktemp("bundles") / "ltc", PROVENANCE)


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(mutation=mutations)
def test_fuzzed_bundles_raise_only_policy_bundle_error(bundle: Path, mutation: tuple) -> None:
    fuzz_once(bundle, mutation)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(mutation=mutations)
def test_fuzzed_ltc_bundles_raise_only_policy_bundle_error(ltc_bundle: Path, mutation: tuple) -> None:
    fuzz_once(ltc_bundle, mutation)


def fuzz_once(bundle: Path, mutation: tuple) -> None:
    """Apply one mutation to a copy of ``bundle``; loading must succeed or raise PolicyBundleError."""
    original = json.loads((bundle / CONFIG_FILE).read_text())
    with tempfile.TemporaryDirectory() as scratch:
        broken = Path(scratch) / "b"
        shutil.copytree(bundle, broken)
        kind = mutation[0]
        if kind == "zip":  # flip a byte of the packed archive, or truncate it (xor 0)
            archive = pack_policy(bundle, Path(scratch) / "b.zip")
            raw = bytearray(archive.read_bytes())
            position = int(mutation[1] * len(raw))
            if mutation[2]:
                raw[position] ^= mutation[2]
            else:
                del raw[position:]
            archive.write_bytes(bytes(raw))
            broken = archive
        elif kind in ("flip", "truncate"):
            path = broken / mutation[1]
            raw = bytearray(path.read_bytes())
            position = int(mutation[2] * len(raw))
            if kind == "flip":
                raw[position] ^= mutation[3]
            else:
                del raw[position:]
            path.write_bytes(bytes(raw))
        else:
            data = copy.deepcopy(original)
            paths = list(_key_paths(data))
            path = paths[int(mutation[1] * len(paths))]
            parent = _parent(data, path)
            if kind == "delete":
                del parent[path[-1]]
            else:
                parent[path[-1]] = REPLACEMENTS[mutation[2]]
            (broken / CONFIG_FILE).write_text(json.dumps(data))
        try:
            policy = load_policy(broken)
        except PolicyBundleError:
            return
        # Mutations that leave a valid bundle (a provenance field, a renamed extra) load a working policy.
        spec = policy.observation_spec
        rng = np.random.default_rng(0)
        for _ in range(3):
            obs = {name: np.ones(1, np.float32) for name in spec.extras}
            obs["image"] = rng.integers(0, 256, spec.image_shape, dtype=np.uint8)
            action = policy.act(obs, 0.05)
            assert np.isfinite(action).all() and action.shape == (policy.action_spec.size,)
