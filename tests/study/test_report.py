"""Study report helpers: how an evaluation condition relates to what the policy saw in training."""

from __future__ import annotations

import pytest

from lnn_control.study.cells import NOMINAL_DT_SUFFIX
from lnn_control.study.report import training_exposure

SEEN = ["clean", "fog:2", "rain:2"]


@pytest.mark.parametrize(
    ("label", "expected"),
    [
        ("clean", "same"),
        ("fog:2", "same"),
        ("rain:5", "milder"),
        ("fog:3+rain:4", "milder"),
        ("glare:3", "unseen"),
        ("rain:3+glare:1", "unseen"),
        ("wind:3", "unseen"),
        (f"framedrop:4{NOMINAL_DT_SUFFIX}", "unseen"),
    ],
)
def test_training_exposure(label: str, expected: str) -> None:
    assert training_exposure(label, SEEN) == expected


def test_nothing_but_clean_leaves_every_shift_unseen() -> None:
    assert training_exposure("clean", ["clean"]) == "same"
    assert training_exposure("noise:1", ["clean"]) == "unseen"
