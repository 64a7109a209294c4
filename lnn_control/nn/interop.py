"""Import trained ``ncps`` (1.0.x, PyTorch) models as lnn_control cores, with identical outputs.

``from_ncps(module)`` dispatches on the module's class through ``_CONVERTERS`` (class name ->
converter); the wiring (adjacency with polarity, layers) and every parameter are copied. ``ncps`` is
only needed by the caller who has an ``ncps`` object; nothing here imports it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn

from lnn_control.nn.ltc import LTC, Mapping1D, Positivity
from lnn_control.nn.wirings import Wiring


def _wiring_from_ncps(ncps_wiring: Any) -> Wiring:
    """Our :class:`Wiring` with the exact matrices of a built ``ncps.wirings.Wiring``."""
    if not ncps_wiring.is_built():
        raise ValueError("the ncps wiring is not built; run the ncps model once or call wiring.build(input_dim)")
    layers = [list(ncps_wiring.get_neurons_of_layer(i)) for i in range(ncps_wiring.num_layers)]
    wiring = Wiring.from_adjacency(
        np.asarray(ncps_wiring.adjacency_matrix),
        np.asarray(ncps_wiring.sensory_adjacency_matrix),
        int(ncps_wiring.output_dim),
        layers=layers,
    )
    wiring.kind = f"ncps_{type(ncps_wiring).__name__.lower()}"
    return wiring


def _mapping(value: Any) -> Mapping1D:
    """ncps applies the affine / linear map for those two names and no map for anything else."""
    return Mapping1D(value) if value in ("affine", "linear") else Mapping1D.NONE


# The ncps modules are read through their (untyped) attributes, hence ``Any`` below.
def _ltc_from_ncps(module: Any) -> LTC:
    if getattr(module, "use_mixed", False):
        raise ValueError(
            "ncps LTC with mixed_memory=True (an LSTM next to the LTC) is not supported; "
            "convert a model built with mixed_memory=False"
        )
    if not getattr(module, "batch_first", True):
        raise ValueError("ncps LTC with batch_first=False is not supported; build it with batch_first=True")
    cell = module.rnn_cell
    positivity = Positivity.SOFTPLUS if cell._implicit_param_constraints else Positivity.CLAMP
    core = LTC(
        _wiring_from_ncps(cell._wiring),
        ode_unfolds=int(cell._ode_unfolds),
        epsilon=float(cell._epsilon),
        input_mapping=_mapping(cell._input_mapping),
        output_mapping=_mapping(cell._output_mapping),
        positivity=positivity,
    )
    source = cell._params
    with torch.no_grad():
        for name, parameter in core.named_parameters():
            if name not in source:
                raise ValueError(f"ncps LTC has no parameter {name!r}; is this ncps 1.0.x?")
            value = source[name].detach().to(parameter.dtype)
            if value.shape != parameter.shape:
                raise ValueError(f"ncps parameter {name!r} has shape {tuple(value.shape)}, expected {tuple(parameter.shape)}")
            parameter.copy_(value)
    return core


def _cfc_from_ncps(module: Any) -> nn.Module:
    from lnn_control.nn.interop_cfc import cfc_from_ncps  # CfC conversion lives with the CfC code

    return cfc_from_ncps(module)


_CONVERTERS: dict[str, Callable[[Any], nn.Module]] = {
    "LTC": _ltc_from_ncps,
    "CfC": _cfc_from_ncps,
}


def from_ncps(module: nn.Module) -> nn.Module:
    """Convert an ``ncps.torch`` sequence model (``LTC``, ``CfC``; see ``_CONVERTERS``) into our core, same outputs."""
    kind = type(module).__name__
    origin = type(module).__module__
    if not origin.startswith("ncps.") or kind not in _CONVERTERS:
        raise ValueError(
            f"from_ncps converts ncps.torch models {sorted(_CONVERTERS)}, got {origin}.{kind}; "
            "pass the sequence model (e.g. ncps.torch.LTC), not its cell"
        )
    return _CONVERTERS[kind](module)
