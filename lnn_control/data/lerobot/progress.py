"""A progress bar over episodes: tqdm where it is installed (and stderr is a terminal), else none."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")


def over_episodes(items: Iterable[T], total: int, description: str) -> Iterator[T]:
    """``items`` one by one, with a bar named ``description`` counting ``total`` episodes."""
    try:
        from tqdm import tqdm
    except ModuleNotFoundError:
        yield from items
        return
    yield from tqdm(items, total=total, desc=description, unit="episode", leave=False, disable=None)
