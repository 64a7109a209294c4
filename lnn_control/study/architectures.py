"""Named architectures for studies, all on the same perception CNN and output scaling.

=================  ==========================================================================
``ltc_ncp19``      LTC neurons on the launch file's NCP wiring (the shipped policy's network)
``cfc_ncp19``      CfC neurons on the same wiring
``ctrnn_ncp19``    CT-RNN neurons on the same wiring (additive synapses; the chemical-vs-electrical
                   synapse ablation of Farsang et al. 2024), :mod:`lnn_control.nn.wired_ctrnn`
``lstm_matched``   LSTM with the unit count whose core parameters come closest to ``ltc_ncp19``'s
``gru_matched``    GRU, parameter-matched the same way
``cnn_feedforward``  no memory: a one-hidden-layer MLP core, parameter-matched the same way
``lstm64``         a conventional net many times larger: a 64-unit LSTM
=================  ==========================================================================

Parameter counts are trainable tensor elements. The wired cores (LTC, CfC, CT-RNN) store dense
``[N, N]`` / ``[F, N]`` synapse matrices masked by the wiring, so their counts include entries
that never carry signal; :func:`parameter_counts` reports the wiring's synapse count beside them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from lnn_control.nn.perception import FeatureNorm
    from lnn_control.policies.presets import CoreType

Family = Literal["liquid", "wired_ablation", "conventional", "memoryless"]


@dataclass(frozen=True)
class Architecture:
    """core: the core type; units: hidden units (``None`` = the wiring, or parameter-matched when
    ``matched`` is true); family: how the report groups it."""

    name: str
    core: CoreType
    family: Family
    description: str
    units: int | None = None
    matched: bool = False


ARCHITECTURES: dict[str, Architecture] = {
    a.name: a
    for a in (
        Architecture("ltc_ncp19", "ltc", "liquid", "LTC neurons on the NCP wiring"),
        Architecture("cfc_ncp19", "cfc", "liquid", "CfC neurons on the NCP wiring"),
        Architecture("ctrnn_ncp19", "wired_ctrnn", "wired_ablation", "CT-RNN neurons on the NCP wiring"),
        Architecture("lstm_matched", "lstm", "conventional", "LSTM, core parameters matched to ltc_ncp19", matched=True),
        Architecture("gru_matched", "gru", "conventional", "GRU, core parameters matched to ltc_ncp19", matched=True),
        Architecture("cnn_feedforward", "feedforward", "memoryless", "memory-less MLP core, parameters matched to ltc_ncp19", matched=True),
        Architecture("lstm64", "lstm", "conventional", "64-unit LSTM (a conventional net several times larger)", units=64),
    )
}
REFERENCE = "ltc_ncp19"
"""The architecture the parameter-matched ones are matched to, and the report's 'NCP'."""


def core_parameter_count(module: Any) -> int:
    """Trainable tensor elements of a module."""
    return int(sum(p.numel() for p in module.parameters() if p.requires_grad))


def matched_units(core: str, target: int, input_size: int, output_size: int, limit: int = 512) -> int:
    """The unit count whose ``core`` has the parameter count closest to ``target`` (ties: fewer units)."""
    from lnn_control.nn.baselines import BASELINE_CORES

    best, best_gap = 1, None
    for units in range(1, limit + 1):
        count = core_parameter_count(BASELINE_CORES[core](input_size, units, output_size))
        gap = abs(count - target)
        if best_gap is None or gap < best_gap:
            best, best_gap = units, gap
        if count > target:
            break
    return best


def build_architecture(
    name: str,
    preset: str,
    seed: int,
    observation_spec: Any,
    action_spec: Any,
    control_rate_hz: float,
    feature_norm: FeatureNorm | str = "none",
) -> Any:
    """A freshly initialised :class:`~lnn_control.policies.policy.Policy` of architecture ``name``
    for the launch file's ``preset`` (camera, wiring), its ``policy.feature_norm`` (every architecture
    gets the same perception) and the env's specs (same seed ⇒ same weights)."""
    from lnn_control.policies.presets import build_policy

    arch = ARCHITECTURES[name]
    common = {
        "seed": seed,
        "observation_spec": observation_spec,
        "action_spec": action_spec,
        "control_rate_hz": control_rate_hz,
        "feature_norm": feature_norm,
    }
    if arch.core in ("ltc", "cfc", "wired_ctrnn"):
        return build_policy(preset, core=arch.core, **common)
    reference = build_policy(preset, core="ltc", **common)
    units = arch.units
    if arch.matched:
        units = matched_units(
            arch.core, core_parameter_count(reference.core), reference.core.input_size, reference.core.output_size
        )
    if units is None:
        raise ValueError(f"architecture {name!r}: a {arch.core} core needs units or matched=True")
    return build_policy(preset, core=arch.core, hidden_size=int(units), **common)


def parameter_counts(policy: Any) -> dict[str, Any]:
    """``{"core", "policy", "perception", "units", "synapses"}`` of a built policy (synapses: wired cores only)."""
    core = policy.core
    wiring = getattr(core, "wiring", None)
    synapses = None
    if wiring is not None:
        synapses = int(abs(wiring.adjacency).sum() + abs(wiring.sensory_adjacency).sum())
    return {
        "core": core_parameter_count(core),
        "policy": core_parameter_count(policy),
        "perception": core_parameter_count(policy.perception),
        "units": int(getattr(core, "units", 0) or getattr(core, "state_size", 0)),
        "synapses": synapses,
    }
