"""Which road / forest seeds are for training, which for model selection and which for testing.

=============  ===========  ==============================================================
seeds          split        used by
=============  ===========  ==============================================================
0 … 899        training     ``collect`` and DAgger rounds
900 … 999      validation   closed-loop model selection during ``train`` (never trained on)
1000 …         test         ``eval``, ``study``, ``demo``: held out from everything above
=============  ===========  ==============================================================

The envs and the pipeline both read this module (it imports nothing of either).
"""

from __future__ import annotations

VALIDATION_SEED_START = 900
"""Road / forest seeds from here up to HELD_OUT_SEED_START select models; below it they train."""
HELD_OUT_SEED_START = 1000
"""Road / forest seeds from here on are held out for testing."""


def training_seed(index: int, base_seed: int) -> int:
    """The ``index``-th training seed after ``base_seed``, always below VALIDATION_SEED_START."""
    return (base_seed + index) % VALIDATION_SEED_START


def validation_seed(index: int) -> int:
    """The ``index``-th validation seed (900 + index, below HELD_OUT_SEED_START)."""
    seed = VALIDATION_SEED_START + index
    if not 0 <= index or seed >= HELD_OUT_SEED_START:
        raise ValueError(
            f"validation seed index must be in [0, {HELD_OUT_SEED_START - VALIDATION_SEED_START}), got {index}"
        )
    return seed


def held_out_seed(index: int, base_seed: int = HELD_OUT_SEED_START) -> int:
    """The ``index``-th held-out seed (≥ HELD_OUT_SEED_START)."""
    if base_seed < HELD_OUT_SEED_START:
        raise ValueError(f"held-out seeds start at {HELD_OUT_SEED_START}, got base seed {base_seed}")
    return base_seed + index
