"""Export a :class:`~lnn_control.policies.policy.Policy` as a single-step ONNX model.

The graph is one control step of the whole policy (normalisation + CNN + core + output scaling):

=========  ===================  ==========================================================
inputs     ``image``            uint8 ``[1, H, W, 3]`` - the camera frame as it comes
           ``extras``           float32 ``[1, E]`` - the spec's extras, in their units
           ``dt``               float32 ``[1]`` - measured seconds since the previous step
           ``state``            float32 ``[1, S]`` - the core state (start from ``initial_state``)
outputs    ``action``           float32 ``[1, A]`` - in action units, inside ``[low, high]``
           ``next_state``       float32 ``[1, S]``
=========  ===================  ==========================================================

Inputs the network does not use (``dt`` for the discrete-time LSTM/GRU, ``extras`` when
``E = 0``) are left out of the graph by the exporter; :class:`OnnxPolicy` feeds only what the
graph declares. The model's metadata holds the policy config (specs, units, limits, control
rate), the initial state and the bundle provenance, so the ONNX file is self-describing.
"""

from __future__ import annotations

import io
import json
import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from lnn_control.atomic import atomic_write_bytes
from lnn_control.export.onnx_policy import ONNX_FORMAT, ONNX_FORMAT_VERSION, OnnxPolicy

if TYPE_CHECKING:
    from lnn_control.policies.policy import Policy

DEFAULT_OPSET = 18
INPUT_NAMES = ("image", "extras", "dt", "state")
OUTPUT_NAMES = ("action", "next_state")


@runtime_checkable
class _CompiledSwitch(Protocol):
    """A module with a compiled (Numba) kernel and its ``compiled`` on/off switch (LTC)."""

    compiled: bool


def _step_module(policy: Policy) -> Any:
    import torch

    class PolicyStep(torch.nn.Module):
        """One control step of ``policy`` with explicit state, for tracing."""

        def __init__(self) -> None:
            super().__init__()
            self.policy = policy

        def forward(self, image, extras, dt, state):  # noqa: ANN001, ANN202 - traced graph inputs
            p = self.policy
            features = p.perception._encode(image)
            x = torch.cat([features, extras * p.extras_scale], dim=1)
            y, next_state = p.core.step(x, state, dt * float(p.config.control_rate_hz))
            return p.squash(y), next_state

    return PolicyStep().eval()


def example_inputs(policy: Policy) -> tuple[Any, Any, Any, Any]:
    """Zero frame, zero extras, one nominal period and the initial state (torch tensors)."""
    import torch

    height, width, _ = policy.observation_spec.image_shape
    extras = len(policy.observation_spec.extras)
    return (
        torch.zeros(1, height, width, 3, dtype=torch.uint8),
        torch.zeros(1, extras, dtype=torch.float32),
        torch.full((1,), 1.0 / float(policy.config.control_rate_hz), dtype=torch.float32),
        policy.core.initial_state(1).detach().to(torch.float32),
    )


def export_onnx(policy: Policy, path: str | os.PathLike[str], opset: int = DEFAULT_OPSET) -> Path:
    """Write ``policy`` as a single-step ONNX model (opset >= 17) to ``path`` atomically."""
    import onnx
    import torch

    from lnn_control.policies.policy import Policy

    if not isinstance(policy, Policy):
        raise ValueError(f"export_onnx needs a Policy, got {type(policy).__name__}")
    if isinstance(opset, bool) or not isinstance(opset, int) or opset < 17:
        raise ValueError(f"opset must be an integer >= 17, got {opset!r}")
    was_training = policy.training
    policy.eval()
    # Cores with a compiled (Numba) kernel expose a boolean ``compiled`` switch; the tracer must
    # see their torch ops, so it is turned off while tracing and restored afterwards.
    switched = [m for m in policy.modules()
                if isinstance(m, _CompiledSwitch) and isinstance(m.compiled, bool) and m.compiled]
    for module in switched:
        module.compiled = False
    buffer = io.BytesIO()
    try:
        with warnings.catch_warnings(), torch.no_grad():
            # Input checks inside the torch modules are evaluated once at trace time (the
            # ONNX engine's inputs are checked in NumPy by OnnxPolicy instead).
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            # The graph is batch 1 by design; the exporter's batch-size advice does not apply.
            warnings.filterwarnings("ignore", message="Exporting a model to ONNX with a batch_size")
            # Wired cores gather synapses with fixed, non-negative index lists: the caveat is moot.
            warnings.filterwarnings("ignore", message="Exporting aten::index operator")
            torch.onnx.export(
                _step_module(policy),
                example_inputs(policy),
                buffer,  # type: ignore[arg-type]  # stub says path; the TorchScript exporter takes a file object
                input_names=list(INPUT_NAMES),
                output_names=list(OUTPUT_NAMES),
                opset_version=opset,
                dynamo=False,
                do_constant_folding=True,
            )
    finally:
        policy.train(was_training)
        for module in switched:
            module.compiled = True
    model = onnx.load_from_string(buffer.getvalue())
    if "image" not in {value.name for value in model.graph.input}:
        raise ValueError(
            f"export_onnx: the traced graph does not read the image; part of the policy "
            f"({type(policy.core).__name__}) ran outside torch ops during tracing and was frozen to a constant"
        )
    metadata = {
        "lnn_control.format": ONNX_FORMAT,
        "lnn_control.format_version": str(ONNX_FORMAT_VERSION),
        "lnn_control.policy_config": json.dumps(policy.config.to_dict(), sort_keys=True),
        "lnn_control.initial_state": json.dumps(policy.core.initial_state(1)[0].tolist()),
        "lnn_control.provenance": json.dumps(getattr(policy, "provenance", {}), sort_keys=True, default=str),
    }
    for key, value in metadata.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    model.producer_name = "lnn-control"
    onnx.checker.check_model(model)
    return atomic_write_bytes(path, model.SerializeToString())


def verify_onnx(policy: Policy, path: str | os.PathLike[str], steps: int = 8, seed: int = 0) -> float:
    """Largest |difference| in actions and states between ``policy.act`` and the ONNX engine
    over a ``steps``-long rollout of random frames with irregular dt (same seed => same inputs)."""
    import numpy as np

    engine = OnnxPolicy(path)
    rng = np.random.default_rng(seed)
    spec = policy.observation_spec
    period = 1.0 / float(policy.config.control_rate_hz)
    policy.reset()
    engine.reset()
    worst = 0.0
    for _ in range(steps):
        observation: dict[str, np.ndarray] = {name: rng.normal(size=1).astype(np.float32) for name in spec.extras}
        observation["image"] = rng.integers(0, 256, spec.image_shape, dtype=np.uint8)
        dt = float(rng.uniform(0.5, 2.0) * period)
        reference = policy.act(observation, dt)
        exported = engine.act(observation, dt)
        worst = max(
            worst,
            float(np.abs(reference - exported).max()),
            float(np.abs(policy.neuron_activity() - engine.neuron_activity()).max()),
        )
    policy.reset()
    return worst
