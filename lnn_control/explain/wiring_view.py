"""The live wiring: the core's graph drawn with OpenCV, node colour = a neuron's current activity.

Columns left to right as in :func:`lnn_control.nn.plot.plot_wiring`: sensory features (grey), then
the wiring's layers in signal-flow order (NCP: inter, command, motor); synapses green (excitatory) or
red (inhibitory). Each neuron's fill goes from blue (its lowest state in the episode) through white to
red (its highest), so every neuron's own swing is visible. Cores without a wiring (LSTM, GRU, dense
CfC, ...) get their state units as one column of nodes without synapses.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from lnn_control.nn.contract import RecurrentCore

EXCITATORY = (42, 157, 63)
INHIBITORY = (214, 39, 40)
BACKGROUND = (250, 250, 250)


class WiringView:
    """Precomputed layout; :meth:`draw` renders one frame ``[height, width, 3]`` uint8 RGB."""

    def __init__(self, core: RecurrentCore, low: np.ndarray, high: np.ndarray, width: int = 360, height: int = 384,
                 labels: bool = True) -> None:
        wiring = getattr(core, "wiring", None)
        self.width, self.height = int(width), int(height)
        self.low = np.asarray(low, np.float32)
        self.high = np.asarray(high, np.float32)
        self.labels = labels
        top, bottom = 34, self.height - 14
        if wiring is not None and getattr(wiring, "is_built", False):
            layers = [np.asarray(group, np.int64) for group in wiring.layers]
            self.sensory = np.asarray(wiring.sensory_adjacency)
            self.adjacency = np.asarray(wiring.adjacency)
            self.names = ["sensory"] + (["inter", "command", "motor"] if len(layers) == 3 else
                                        [f"layer {i}" for i in range(len(layers))])
        else:
            layers = [np.arange(int(core.state_size))]
            self.sensory = np.zeros((0, int(core.state_size)), np.int8)
            self.adjacency = np.zeros((int(core.state_size),) * 2, np.int8)
            self.names = ["", "state"]
        columns = len(layers) + 1
        xs = np.linspace(24, self.width - 24, columns)

        def column(count: int) -> np.ndarray:
            if count == 1:
                return np.array([(top + bottom) / 2.0])
            return np.linspace(top, bottom, count)

        self.sensory_xy = np.stack([np.full(self.sensory.shape[0], xs[0]), column(self.sensory.shape[0])], 1) \
            if self.sensory.shape[0] else np.zeros((0, 2))
        self.neuron_xy = np.zeros((int(core.state_size), 2))
        for c, group in enumerate(layers, start=1):
            self.neuron_xy[group] = np.stack([np.full(len(group), xs[c]), column(len(group))], 1)
        self.column_x = xs
        self.radius = int(max(4, min(11, (bottom - top) / (2.6 * max(len(g) for g in layers)))))
        self._base = self._draw_static()

    def _draw_static(self) -> np.ndarray:
        import cv2

        image = np.full((self.height, self.width, 3), BACKGROUND, np.uint8)
        for (src, dst), sign in ((pair, self.sensory[pair]) for pair in zip(*np.nonzero(self.sensory))):
            a, b = self.sensory_xy[src], self.neuron_xy[dst]
            colour = EXCITATORY if sign > 0 else INHIBITORY
            cv2.line(image, _pt(a), _pt(b), tuple(int(0.35 * c + 0.65 * 250) for c in colour), 1, cv2.LINE_AA)
        for src, dst in zip(*np.nonzero(self.adjacency)):
            a, b = self.neuron_xy[src], self.neuron_xy[dst]
            colour = EXCITATORY if self.adjacency[src, dst] > 0 else INHIBITORY
            if a[0] == b[0]:  # recurrent synapse inside a layer: an arc to the right
                mid = ((a + b) / 2 + np.array([18.0 + abs(a[1] - b[1]) * 0.25, 0.0]))
                curve = np.array([_bezier(a, mid, b, t) for t in np.linspace(0, 1, 12)], np.int32)
                cv2.polylines(image, [curve], False, colour, 1, cv2.LINE_AA)
            else:
                cv2.arrowedLine(image, _pt(a), _pt(b), colour, 1, cv2.LINE_AA, tipLength=0.04)
        for x, y in self.sensory_xy:
            cv2.circle(image, (int(x), int(y)), 3, (158, 158, 158), -1, cv2.LINE_AA)
        for x, name in zip(self.column_x, self.names):
            cv2.putText(image, name, (max(2, min(self.width - 8 * len(name), int(x) - 4 * len(name))), 16), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (40, 40, 40), 1,
                        cv2.LINE_AA)
        return image

    def colours(self, activity: np.ndarray) -> np.ndarray:
        """RGB ``[N,3]`` uint8 fills for ``activity [N]``: blue (episode low) - white - red (episode high)."""
        span = np.maximum(self.high - self.low, 1e-6)
        level = np.clip((np.asarray(activity, np.float32) - self.low) / span, 0.0, 1.0) * 2.0 - 1.0
        white = np.array([255.0, 255.0, 255.0])
        red, blue = np.array([200.0, 30.0, 30.0]), np.array([30.0, 70.0, 200.0])
        out = np.where(level[:, None] >= 0, white + level[:, None] * (red - white), white - level[:, None] * (blue - white))
        return out.astype(np.uint8)

    def draw(self, activity: np.ndarray, caption: str = "") -> np.ndarray:
        import cv2

        image = self._base.copy()
        for neuron, ((x, y), colour) in enumerate(zip(self.neuron_xy, self.colours(activity))):
            cv2.circle(image, (int(x), int(y)), self.radius, tuple(int(c) for c in colour), -1, cv2.LINE_AA)
            cv2.circle(image, (int(x), int(y)), self.radius, (20, 20, 20), 1, cv2.LINE_AA)
            if self.labels and self.radius >= 7:
                text = str(neuron)
                cv2.putText(image, text, (int(x) - 3 * len(text), int(y) + 3), cv2.FONT_HERSHEY_SIMPLEX, 0.28,
                            (20, 20, 20), 1, cv2.LINE_AA)
        if caption:
            cv2.putText(image, caption, (6, self.height - 3), cv2.FONT_HERSHEY_SIMPLEX, 0.38, (40, 40, 40), 1,
                        cv2.LINE_AA)
        return image


def _pt(point: np.ndarray) -> tuple[int, int]:
    return int(round(point[0])), int(round(point[1]))


def _bezier(a: np.ndarray, control: np.ndarray, b: np.ndarray, t: float) -> np.ndarray:
    return (1 - t) ** 2 * a + 2 * (1 - t) * t * control + t**2 * b
