"""ONNX export: single-step graph with state in/out, ONNX Runtime == torch, torch-free OnnxPolicy, CLI."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from lnn_control.cli import main
from lnn_control.export.onnx import export_onnx, verify_onnx
from lnn_control.export.onnx_policy import OnnxPolicy, OnnxPolicyError
from lnn_control.nn.baselines import BASELINE_CORES
from lnn_control.nn.perception import FeatureNorm, PerceptionConfig
from lnn_control.policies.bundle import pack_policy, save_policy
from lnn_control.policies.policy import Policy, PolicyConfig
from lnn_control.spec import ActionSpec, ObservationSpec

H, W = 32, 48


def make_policy(kind: str = "ctrnn", extras: tuple[str, ...] = ("speed",), seed: int = 0,
                feature_norm: FeatureNorm = FeatureNorm.NONE) -> Policy:
    perception = PerceptionConfig(
        image_height=H, image_width=W, conv_channels=(8, 8, 8), kernel_sizes=(5, 3, 3), strides=(2, 2, 2),
        features=8, feature_norm=feature_norm,
    )
    torch.manual_seed(seed)
    core = BASELINE_CORES[kind](8 + len(extras), 6, 2)
    config = PolicyConfig(
        perception=perception,
        core=core.config(),
        observation_spec=ObservationSpec((H, W, 3), extras, tuple("m/s" for _ in extras)),
        action_spec=ActionSpec(("vx", "yaw_rate"), (-2.0, -1.0), (2.0, 1.0), ("m/s", "rad/s")),
        control_rate_hz=25.0,
        extras_scale=(0.5,) * len(extras),
    )
    return Policy(config, core=core).eval()


def rollout(engine, extras: tuple[str, ...], steps: int = 6) -> tuple[np.ndarray, np.ndarray]:  # noqa: ANN001
    rng = np.random.default_rng(1)
    engine.reset()
    actions, states = [], []
    for _ in range(steps):
        observation = {name: rng.uniform(0, 3, 1).astype(np.float32) for name in extras}
        observation["image"] = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
        actions.append(engine.act(observation, float(rng.uniform(0.01, 0.1))))
        states.append(engine.neuron_activity())
    return np.stack(actions), np.stack(states)


@pytest.mark.parametrize("kind", sorted(BASELINE_CORES))
def test_onnx_runtime_matches_torch_step_by_step(kind: str, tmp_path: Path) -> None:
    policy = make_policy(kind)
    path = export_onnx(policy, tmp_path / "policy.onnx")
    engine = OnnxPolicy(path)
    torch_actions, torch_states = rollout(policy, ("speed",))
    onnx_actions, onnx_states = rollout(engine, ("speed",))
    assert onnx_actions.dtype == np.float32 and onnx_actions.shape == (6, 2)
    np.testing.assert_allclose(onnx_actions, torch_actions, rtol=0, atol=1e-5)
    np.testing.assert_allclose(onnx_states, torch_states, rtol=0, atol=1e-5)
    assert verify_onnx(policy, path) <= 1e-5


def test_bounded_features_export(tmp_path: Path) -> None:
    """feature_norm layer_tanh (layer norm + tanh after the CNN head) is part of the exported graph."""
    policy = make_policy("gru", feature_norm=FeatureNorm.LAYER_TANH)
    path = export_onnx(policy, tmp_path / "policy.onnx")
    torch_actions, _ = rollout(policy, ("speed",))
    onnx_actions, _ = rollout(OnnxPolicy(path), ("speed",))
    np.testing.assert_allclose(onnx_actions, torch_actions, rtol=0, atol=1e-5)


def test_policy_without_extras_exports(tmp_path: Path) -> None:
    policy = make_policy("gru", extras=())
    path = export_onnx(policy, tmp_path / "p.onnx")
    np.testing.assert_allclose(rollout(OnnxPolicy(path), ())[0], rollout(policy, ())[0], rtol=0, atol=1e-5)


def test_graph_inputs_outputs_and_metadata(tmp_path: Path) -> None:
    policy = make_policy("ctrnn")
    path = export_onnx(policy, tmp_path / "p.onnx", opset=17)
    model = onnx.load(str(path))
    assert model.opset_import[0].version == 17

    def signature(values) -> dict:  # noqa: ANN001
        return {
            v.name: (v.type.tensor_type.elem_type, [d.dim_value for d in v.type.tensor_type.shape.dim])
            for v in values
        }

    assert signature(model.graph.input) == {
        "image": (onnx.TensorProto.UINT8, [1, H, W, 3]),
        "extras": (onnx.TensorProto.FLOAT, [1, 1]),
        "dt": (onnx.TensorProto.FLOAT, [1]),
        "state": (onnx.TensorProto.FLOAT, [1, 6]),
    }
    assert signature(model.graph.output) == {
        "action": (onnx.TensorProto.FLOAT, [1, 2]),
        "next_state": (onnx.TensorProto.FLOAT, [1, 6]),
    }
    engine = OnnxPolicy(path)
    assert engine.observation_spec == policy.observation_spec
    assert engine.action_spec == policy.action_spec
    assert engine.control_rate_hz == 25.0 and engine.state_size == 6
    np.testing.assert_array_equal(engine.neuron_activity(), np.zeros(6, np.float32))


def test_dt_input_is_seconds(tmp_path: Path) -> None:
    policy = make_policy("ctrnn")
    engine = OnnxPolicy(export_onnx(policy, tmp_path / "p.onnx"))
    observation = {"image": np.full((H, W, 3), 90, np.uint8), "speed": np.ones(1, np.float32)}
    results = []
    for dt in (0.02, 0.2):
        engine.reset()
        policy.reset()
        engine.act(observation, dt)
        policy.act(observation, dt)
        np.testing.assert_allclose(engine.neuron_activity(), policy.neuron_activity(), rtol=0, atol=1e-5)
        results.append(engine.neuron_activity())
    assert np.abs(results[0] - results[1]).max() > 1e-3


def test_onnx_policy_needs_no_torch(tmp_path: Path) -> None:
    path = export_onnx(make_policy("lstm"), tmp_path / "p.onnx")
    script = (
        "import sys, numpy as np\n"
        "from lnn_control.export.onnx_policy import OnnxPolicy\n"
        f"p = OnnxPolicy({str(path)!r})\n"
        f"a = p.act({{'image': np.zeros(({H}, {W}, 3), np.uint8), 'speed': np.ones(1, np.float32)}}, 0.04)\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
        "print(a.shape)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "(2,)"


@pytest.mark.parametrize(
    ("observation", "dt", "match"),
    [
        ({"image": np.zeros((H, W, 3), np.uint8)}, 0.04, r"missing \['speed'\]"),
        ({"image": np.zeros((H, W, 3), np.float32), "speed": np.ones(1)}, 0.04, "uint8"),
        ({"image": np.zeros((H, W, 3), np.uint8), "speed": np.array([np.inf])}, 0.04, "finite"),
        ({"image": np.zeros((H, W, 3), np.uint8), "speed": np.ones(1)}, -0.04, "dt_seconds"),
    ],
)
def test_onnx_policy_rejects_bad_input_like_the_torch_policy(tmp_path: Path, observation, dt, match: str) -> None:
    policy = make_policy("feedforward")
    engine = OnnxPolicy(export_onnx(policy, tmp_path / "p.onnx"))
    for runner in (policy, engine):
        with pytest.raises(ValueError, match=match):
            runner.act(observation, dt)


def test_onnx_policy_file_errors(tmp_path: Path) -> None:
    with pytest.raises(OnnxPolicyError, match="no such ONNX file"):
        OnnxPolicy(tmp_path / "missing.onnx")
    (tmp_path / "garbage.onnx").write_bytes(b"not a model at all")
    with pytest.raises(OnnxPolicyError, match="not a loadable ONNX model"):
        OnnxPolicy(tmp_path / "garbage.onnx")
    node = onnx.helper.make_node("Identity", ["x"], ["y"])
    value = onnx.helper.make_tensor_value_info
    graph = onnx.helper.make_graph(
        [node], "plain", [value("x", onnx.TensorProto.FLOAT, [1])], [value("y", onnx.TensorProto.FLOAT, [1])]
    )
    onnx.save(onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 17)]), tmp_path / "plain.onnx")
    with pytest.raises(OnnxPolicyError, match="not an lnn-control policy export"):
        OnnxPolicy(tmp_path / "plain.onnx")
    with pytest.raises(ValueError, match="threads"):
        OnnxPolicy(tmp_path / "plain.onnx", threads=0)


def test_export_rejects_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="opset"):
        export_onnx(make_policy(), tmp_path / "p.onnx", opset=16)
    with pytest.raises(ValueError, match="needs a Policy"):
        export_onnx(torch.nn.Linear(1, 1), tmp_path / "p.onnx")  # type: ignore[arg-type]
    assert not (tmp_path / "p.onnx").exists()


def test_cli_exports_a_bundle_and_reports_the_difference(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    policy = make_policy("gru")
    save_policy(policy, tmp_path / "car", {"command": "test"})
    assert main(["export", str(tmp_path / "car"), "--format", "onnx", "--out", str(tmp_path / "car.onnx")]) == 0
    assert "max |torch - onnxruntime|" in capsys.readouterr().out
    engine = OnnxPolicy(tmp_path / "car.onnx")
    assert engine.provenance["command"] == "test"
    np.testing.assert_allclose(rollout(engine, ("speed",))[0], rollout(policy, ("speed",))[0], rtol=0, atol=1e-5)
    (tmp_path / "car.onnx").unlink()
    assert main(["export", str(tmp_path / "car")]) == 0  # default output: next to the bundle
    assert (tmp_path / "car.onnx").is_file()
    pack_policy(tmp_path / "car", tmp_path / "zipped" / "car.zip")
    assert main(["export", str(tmp_path / "zipped" / "car.zip")]) == 0
    assert OnnxPolicy(tmp_path / "zipped" / "car.onnx").provenance["command"] == "test"


def test_cli_names_a_broken_bundle(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["export", str(tmp_path / "nothing"), "--out", str(tmp_path / "x.onnx")]) == 2
    assert "no such policy bundle" in capsys.readouterr().err
    assert not (tmp_path / "x.onnx").exists()
