"""Cut episodes into fixed-length training windows for truncated BPTT, and batch them.

Each window is ``seq_len`` consecutive steps of one episode; the recurrent state starts at
zero at the window's first step (truncated back-propagation through time). Episodes are split
into training and validation sets *by episode*, so no frame of a validation road is trained on.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lnn_control.data.episodes import Episode


@dataclass(frozen=True)
class Window:
    """Steps ``start .. start+length-1`` of episode ``episode``."""

    episode: int
    start: int
    length: int


@dataclass
class Batch:
    """A batch of windows as NumPy arrays (B windows, T steps).

    images uint8 [B,T,H,W,3]; extras float32 [B,T,E]; dt float32 [B,T] seconds;
    labels float32 [B,T,A]; mask float32 [B,T] (1 for real steps, 0 for padding).
    """

    images: np.ndarray
    extras: np.ndarray
    dt: np.ndarray
    labels: np.ndarray
    mask: np.ndarray


def split_episodes(count: int, val_fraction: float, rng: np.random.Generator) -> tuple[list[int], list[int]]:
    """Shuffle episode indices and hold out ``val_fraction`` of them (at least one when count ≥ 2)."""
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    order = rng.permutation(count).tolist()
    n_val = int(round(count * val_fraction))
    if val_fraction > 0 and count >= 2:
        n_val = max(1, n_val)
    return sorted(order[n_val:]), sorted(order[:n_val])


def make_windows(lengths: dict[int, int], seq_len: int, stride: int) -> list[Window]:
    """Windows of ``seq_len`` steps every ``stride`` steps; a short episode gives one shorter window."""
    if seq_len < 1 or stride < 1:
        raise ValueError(f"seq_len and stride must be ≥ 1, got seq_len={seq_len} stride={stride}")
    windows = []
    for episode, length in lengths.items():
        if length <= seq_len:
            windows.append(Window(episode, 0, length))
            continue
        starts = list(range(0, length - seq_len + 1, stride))
        if starts[-1] != length - seq_len:
            starts.append(length - seq_len)  # cover the episode's end too
        windows.extend(Window(episode, s, seq_len) for s in starts)
    return windows


def assemble_batch(episodes: dict[int, Episode], windows: list[Window], nominal_dt: float) -> Batch:
    """Stack windows into padded arrays (padding is masked out of the loss)."""
    t_max = max(w.length for w in windows)
    first = episodes[windows[0].episode]
    b = len(windows)
    images = np.zeros((b, t_max, *first.image.shape[1:]), np.uint8)
    extras = np.zeros((b, t_max, first.extras.shape[1]), np.float32)
    dt = np.full((b, t_max), nominal_dt, np.float32)
    labels = np.zeros((b, t_max, first.label.shape[1]), np.float32)
    mask = np.zeros((b, t_max), np.float32)
    for i, window in enumerate(windows):
        episode = episodes[window.episode]
        sl = slice(window.start, window.start + window.length)
        n = window.length
        images[i, :n] = episode.image[sl]
        extras[i, :n] = episode.extras[sl]
        dt[i, :n] = episode.elapsed(nominal_dt)[sl]
        labels[i, :n] = episode.label[sl]
        mask[i, :n] = 1.0
    # The first step of a window has no predecessor inside the window: use the nominal period.
    dt[:, 0] = nominal_dt
    return Batch(images, extras, dt, labels, mask)
