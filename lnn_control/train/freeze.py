"""Freezing part of a policy during training (launch key ``freeze``).

``perception`` freezes the CNN (``policy.perception``), ``core`` the recurrent core
(``policy.core``); ``none`` trains everything. The output gain and bias always train. Frozen
parameters have ``requires_grad`` off while training (no gradient is computed for them) and are
left out of the optimizer, so they stay bit-identical; :func:`frozen` restores the flags afterwards.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal, get_args

from torch import nn

FreezeKind = Literal["none", "perception", "core"]
FREEZE_KINDS: tuple[str, ...] = get_args(FreezeKind)


def frozen_modules(policy: nn.Module, freeze: str) -> list[nn.Module]:
    """The submodules ``freeze`` names (``[]`` for ``none``); an unknown value is a ``ValueError``."""
    if freeze not in FREEZE_KINDS:
        raise ValueError(f"freeze must be one of {list(FREEZE_KINDS)}, got {freeze!r}")
    if freeze == "none":
        return []
    module = getattr(policy, freeze, None)
    if not isinstance(module, nn.Module):
        raise ValueError(f"freeze: {freeze!r}: the policy has no {freeze} module to freeze")
    return [module]


@contextmanager
def frozen(policy: nn.Module, freeze: str) -> Iterator[list[nn.Parameter]]:
    """Turn gradients off for the frozen part; yields the parameters left to train, in
    ``policy.parameters()`` order (all of them for ``none``)."""
    modules = frozen_modules(policy, freeze)
    fixed = {id(p) for m in modules for p in m.parameters()}
    saved = [(p, p.requires_grad) for m in modules for p in m.parameters()]
    for parameter, _ in saved:
        parameter.requires_grad_(False)
    try:
        yield [p for p in policy.parameters() if id(p) not in fixed]
    finally:
        for parameter, flag in saved:
            parameter.requires_grad_(flag)
