"""Which road / forest seeds are for training and which are held out for testing.

Seeds below :data:`HELD_OUT_SEED_START` generate training worlds; seeds from there on are never
trained on. The envs and the pipeline both read this module (it imports nothing of either).
"""

from __future__ import annotations

HELD_OUT_SEED_START = 1000
"""Road / forest seeds below this are for training; seeds from here on are held out."""


def training_seed(index: int, base_seed: int) -> int:
    """The ``index``-th training seed after ``base_seed``, always below HELD_OUT_SEED_START."""
    return (base_seed + index) % HELD_OUT_SEED_START


def held_out_seed(index: int, base_seed: int = HELD_OUT_SEED_START) -> int:
    """The ``index``-th held-out seed (≥ HELD_OUT_SEED_START)."""
    if base_seed < HELD_OUT_SEED_START:
        raise ValueError(f"held-out seeds start at {HELD_OUT_SEED_START}, got base seed {base_seed}")
    return base_seed + index
