"""Wirings: which neuron talks to which, with what polarity (sparse connectivity of a liquid network).

A :class:`Wiring` holds

- ``units`` neurons, of which the first ``output_dim`` are **motor** neurons (the outputs);
- ``adjacency`` ``int8 [units, units]``: entry ``[i, j]`` is the polarity (+1 excitatory, -1 inhibitory)
  of the synapse from neuron ``i`` to neuron ``j``, 0 where there is none;
- ``sensory_adjacency`` ``int8 [input_dim, units]``: synapses from input features to neurons;
- ``layers``: neuron index groups in **signal-flow order**. For an NCP: ``[inter, command, motor]``
  (like ``ncps``' ``get_neurons_of_layer``); for dense / random wirings one layer with every neuron.

Neuron numbering follows ``ncps``: motor ``0..motor-1``, then command, then inter.

Generators (:class:`FullyConnected`, :class:`Random`, :class:`NCP`, :class:`AutoNCP`) draw the
recurrent synapses at construction and the sensory synapses in :meth:`Wiring.build` once the
number of input features is known (``NCP(...).build(32)``; ``build`` returns the wiring itself).
The two draws use independent streams derived from ``seed``, so the recurrent structure does not
depend on the input size. Same seed and sizes => same matrices.

``to_dict()`` stores the matrices themselves (not only the seed); ``Wiring.from_dict`` rebuilds
them exactly, and ``from_dict(w.to_dict()).to_dict() == w.to_dict()``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import numpy as np

_FORMAT_VERSION = 1
_W = TypeVar("_W", bound="Wiring")  # build() returns the wiring it was called on


def _check_int(name: str, value: Any, minimum: int, maximum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    value = int(value)
    if value < minimum or (maximum is not None and value > maximum):
        allowed = f">= {minimum}" if maximum is None else f"in [{minimum}, {maximum}]"
        raise ValueError(f"{name} must be {allowed}, got {value}")
    return value


def _check_fraction(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating)):
        raise ValueError(f"{name} must be a number in [0, 1), got {value!r}")
    value = float(value)
    if not 0.0 <= value < 1.0:
        raise ValueError(f"{name} must be in [0, 1), got {value}")
    return value


def _polarity_matrix(value: Any, shape: tuple[int, int] | None, name: str) -> np.ndarray:
    array = np.asarray(value)
    if array.ndim != 2:
        raise ValueError(f"{name} must be a 2-D matrix, got shape {array.shape}")
    if shape is not None and array.shape != shape:
        raise ValueError(f"{name} must have shape {shape}, got {array.shape}")
    if array.size and not np.isin(array, (-1, 0, 1)).all():
        raise ValueError(f"{name} entries must be -1, 0 or +1 (synapse polarity or none)")
    return array.astype(np.int8)


class Wiring:
    """Connectivity of ``units`` neurons with ``output_dim`` motor neurons; see the module docstring."""

    kind = "custom"

    def __init__(
        self,
        units: int,
        output_dim: int,
        adjacency: np.ndarray | None = None,
        layers: Sequence[Sequence[int] | np.ndarray] | None = None,
        seed: int = 0,
    ) -> None:
        self.units = _check_int("units", units, 1)
        self.output_dim = _check_int("output_dim", output_dim, 1, self.units)
        self.seed = _check_int("seed", seed, 0)
        if adjacency is None:
            adjacency = np.zeros((self.units, self.units), dtype=np.int8)
        self.adjacency = _polarity_matrix(adjacency, (self.units, self.units), "adjacency")
        self.sensory_adjacency: np.ndarray | None = None
        self.layers = self._check_layers(layers)
        self._stored_params: dict[str, Any] = {}  # generator arguments of a wiring read back by from_dict

    # ----------------------------------------------------------------- structure
    def _check_layers(self, layers: Sequence[Sequence[int] | np.ndarray] | None) -> list[np.ndarray]:
        if layers is None:
            return [np.arange(self.units, dtype=np.int64)]
        groups = [np.asarray(group, dtype=np.int64).reshape(-1) for group in layers]
        flat = np.concatenate(groups) if groups else np.zeros(0, dtype=np.int64)
        if sorted(flat.tolist()) != list(range(self.units)):
            raise ValueError(f"layers must partition the neurons 0..{self.units - 1} (each exactly once)")
        return groups

    @property
    def input_dim(self) -> int | None:
        """Number of sensory features, ``None`` until :meth:`build`."""
        return None if self.sensory_adjacency is None else int(self.sensory_adjacency.shape[0])

    @property
    def is_built(self) -> bool:
        return self.sensory_adjacency is not None

    @property
    def synapse_count(self) -> int:
        """Neuron-to-neuron synapses."""
        return int(np.count_nonzero(self.adjacency))

    @property
    def sensory_synapse_count(self) -> int:
        """Feature-to-neuron synapses (0 before :meth:`build`)."""
        return 0 if self.sensory_adjacency is None else int(np.count_nonzero(self.sensory_adjacency))

    @property
    def total_synapse_count(self) -> int:
        return self.synapse_count + self.sensory_synapse_count

    def neuron_type(self, neuron: int) -> str:
        """``"motor"``, ``"command"`` or ``"inter"`` (NCP); ``"motor"`` / ``"inter"`` otherwise."""
        _check_int("neuron", neuron, 0, self.units - 1)
        if neuron < self.output_dim:
            return "motor"
        if len(self.layers) == 3 and neuron in set(self.layers[1].tolist()):
            return "command"
        return "inter"

    def build(self: _W, input_dim: int) -> _W:
        """Draw the sensory synapses for ``input_dim`` features (idempotent for the same size); returns self."""
        input_dim = _check_int("input_dim", input_dim, 1)
        if self.sensory_adjacency is not None:
            if input_dim != self.input_dim:
                raise ValueError(
                    f"input_dim: this wiring was built for {self.input_dim} features, got {input_dim}; "
                    "create a new wiring for a different input size"
                )
            return self
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, 1]))
        sensory = np.zeros((input_dim, self.units), dtype=np.int8)
        self._draw_sensory(sensory, rng)
        self.sensory_adjacency = sensory
        return self

    def _draw_sensory(self, sensory: np.ndarray, rng: np.random.Generator) -> None:
        raise ValueError(
            f"{type(self).__name__} has no generator for sensory synapses; "
            "pass sensory_adjacency to Wiring.from_adjacency"
        )

    def _recurrent_rng(self) -> np.random.Generator:
        return np.random.default_rng(np.random.SeedSequence([self.seed, 0]))

    # ------------------------------------------------------------ serialisation
    def params(self) -> dict[str, Any]:
        """Generator arguments (for display / provenance; the matrices are the source of truth)."""
        return dict(self._stored_params)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable dict with the exact matrices; requires a built wiring."""
        if self.sensory_adjacency is None:
            raise ValueError("wiring is not built: call wiring.build(input_dim) before to_dict()")
        return {
            "format": _FORMAT_VERSION,
            "kind": self.kind,
            "params": self.params(),
            "units": self.units,
            "input_dim": self.input_dim,
            "output_dim": self.output_dim,
            "seed": self.seed,
            "adjacency": self.adjacency.astype(int).tolist(),
            "sensory_adjacency": self.sensory_adjacency.astype(int).tolist(),
            "layers": [group.astype(int).tolist() for group in self.layers],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Wiring:
        """Rebuild the exact wiring stored by :meth:`to_dict` (a plain :class:`Wiring` carrying the kind)."""
        if not isinstance(data, Mapping):
            raise ValueError(f"wiring dict must be a mapping, got {type(data).__name__}")
        required = {"format", "kind", "params", "units", "input_dim", "output_dim", "seed", "adjacency",
                    "sensory_adjacency", "layers"}
        missing = sorted(required - set(data))
        unknown = sorted(set(data) - required)
        if missing or unknown:
            raise ValueError(f"wiring dict: missing keys {missing}, unknown keys {unknown}; expected {sorted(required)}")
        if data["format"] != _FORMAT_VERSION:
            raise ValueError(f"wiring dict format {data['format']!r} is not supported (expected {_FORMAT_VERSION})")
        units = _check_int("units", data["units"], 1)
        input_dim = _check_int("input_dim", data["input_dim"], 1)
        wiring = Wiring.from_adjacency(
            np.asarray(data["adjacency"]),
            _polarity_matrix(data["sensory_adjacency"], (input_dim, units), "sensory_adjacency"),
            data["output_dim"],
            layers=data["layers"],
        )
        wiring.seed = _check_int("seed", data["seed"], 0)
        wiring.kind = str(data["kind"])
        if not isinstance(data["params"], Mapping):
            raise ValueError(f"wiring dict 'params' must be a mapping, got {type(data['params']).__name__}")
        wiring._stored_params = dict(data["params"])
        return wiring

    @staticmethod
    def from_adjacency(
        adjacency: np.ndarray,
        sensory_adjacency: np.ndarray,
        output_dim: int,
        layers: Sequence[Sequence[int] | np.ndarray] | None = None,
    ) -> Wiring:
        """A built wiring from explicit polarity matrices (``[N,N]`` and ``[F,N]``, entries -1/0/+1)."""
        adjacency = _polarity_matrix(adjacency, None, "adjacency")
        if adjacency.shape[0] != adjacency.shape[1]:
            raise ValueError(f"adjacency must be square [N,N], got shape {adjacency.shape}")
        units = adjacency.shape[0]
        sensory = _polarity_matrix(sensory_adjacency, None, "sensory_adjacency")
        if sensory.shape[1] != units or sensory.shape[0] < 1:
            raise ValueError(f"sensory_adjacency must have shape [F>=1, {units}], got {sensory.shape}")
        wiring = Wiring(units, output_dim, adjacency, layers)
        wiring.sensory_adjacency = sensory
        return wiring

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(kind={self.kind!r}, units={self.units}, input_dim={self.input_dim}, "
            f"output_dim={self.output_dim}, synapses={self.synapse_count}, "
            f"sensory_synapses={self.sensory_synapse_count})"
        )


def _excitatory_biased(rng: np.random.Generator, size: int) -> np.ndarray:
    """Polarities with 2/3 excitatory, like ``ncps``' dense and random wirings."""
    return rng.choice(np.array([-1, 1, 1], dtype=np.int8), size=size)


def _balanced(rng: np.random.Generator, size: int | None = None) -> Any:
    """Polarities with 1/2 excitatory, like ``ncps``' NCP."""
    return rng.choice(np.array([-1, 1], dtype=np.int8), size=size)


class FullyConnected(Wiring):
    """Every neuron connects to every neuron (optionally without self-synapses) and every feature to every neuron."""

    kind = "fully_connected"

    def __init__(
        self, units: int, output_dim: int | None = None, self_connections: bool = True, seed: int = 1111
    ) -> None:
        units = _check_int("units", units, 1)
        super().__init__(units, units if output_dim is None else output_dim, seed=seed)
        if not isinstance(self_connections, bool):
            raise ValueError(f"self_connections must be True or False, got {self_connections!r}")
        self.self_connections = self_connections
        rng = self._recurrent_rng()
        adjacency = _excitatory_biased(rng, units * units).reshape(units, units)
        if not self_connections:
            np.fill_diagonal(adjacency, 0)
        self.adjacency = adjacency

    def params(self) -> dict[str, Any]:
        return {"self_connections": self.self_connections}

    def _draw_sensory(self, sensory: np.ndarray, rng: np.random.Generator) -> None:
        sensory[:] = _excitatory_biased(rng, sensory.size).reshape(sensory.shape)


class Random(Wiring):
    """A fraction ``1 - sparsity`` of all possible synapses (recurrent and sensory), chosen at random."""

    kind = "random"

    def __init__(self, units: int, output_dim: int | None = None, sparsity: float = 0.5, seed: int = 1111) -> None:
        units = _check_int("units", units, 1)
        super().__init__(units, units if output_dim is None else output_dim, seed=seed)
        self.sparsity = _check_fraction("sparsity", sparsity)
        self.adjacency = self._draw(self._recurrent_rng(), (units, units))

    def _draw(self, rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
        size = shape[0] * shape[1]
        count = int(round(size * (1.0 - self.sparsity)))
        matrix = np.zeros(size, dtype=np.int8)
        chosen = rng.choice(size, size=count, replace=False)
        matrix[chosen] = _excitatory_biased(rng, count)
        return matrix.reshape(shape)

    def params(self) -> dict[str, Any]:
        return {"sparsity": self.sparsity}

    def _draw_sensory(self, sensory: np.ndarray, rng: np.random.Generator) -> None:
        sensory[:] = self._draw(rng, sensory.shape)


class NCP(Wiring):
    """Neural Circuit Policy: sensory -> inter -> command (recurrent) -> motor, sparse and seeded.

    - each input feature synapses onto ``sensory_fanout`` distinct inter neurons (an inter neuron left
      without input then gets ``max(1, F*sensory_fanout // inter)`` random features);
    - each inter neuron synapses onto ``inter_fanout`` distinct command neurons (orphan command
      neurons get inputs the same way);
    - ``recurrent_command_synapses`` random command->command synapses (duplicates collapse);
    - each motor neuron receives ``motor_fanin`` distinct command neurons (command neurons with no
      motor target get at least one).

    Polarity is +1 or -1 with equal probability (as in ``ncps``).
    """

    kind = "ncp"

    def __init__(
        self,
        inter_neurons: int,
        command_neurons: int,
        motor_neurons: int,
        sensory_fanout: int,
        inter_fanout: int,
        recurrent_command_synapses: int,
        motor_fanin: int,
        seed: int = 22222,
    ) -> None:
        self.inter_neurons = _check_int("inter_neurons", inter_neurons, 1)
        self.command_neurons = _check_int("command_neurons", command_neurons, 1)
        self.motor_neurons = _check_int("motor_neurons", motor_neurons, 1)
        self.sensory_fanout = _check_int("sensory_fanout", sensory_fanout, 1, self.inter_neurons)
        self.inter_fanout = _check_int("inter_fanout", inter_fanout, 1, self.command_neurons)
        self.recurrent_command_synapses = _check_int("recurrent_command_synapses", recurrent_command_synapses, 0)
        self.motor_fanin = _check_int("motor_fanin", motor_fanin, 1, self.command_neurons)
        motor = np.arange(0, motor_neurons)
        command = np.arange(motor_neurons, motor_neurons + command_neurons)
        inter = np.arange(motor_neurons + command_neurons, motor_neurons + command_neurons + inter_neurons)
        units = inter_neurons + command_neurons + motor_neurons
        super().__init__(units, motor_neurons, layers=[inter, command, motor], seed=seed)
        self._motor, self._command, self._inter = motor, command, inter
        self._draw_recurrent(self._recurrent_rng())

    def params(self) -> dict[str, Any]:
        return {
            "inter_neurons": self.inter_neurons,
            "command_neurons": self.command_neurons,
            "motor_neurons": self.motor_neurons,
            "sensory_fanout": self.sensory_fanout,
            "inter_fanout": self.inter_fanout,
            "recurrent_command_synapses": self.recurrent_command_synapses,
            "motor_fanin": self.motor_fanin,
        }

    @staticmethod
    def _fan(
        matrix: np.ndarray,
        rng: np.random.Generator,
        sources: np.ndarray,
        targets: np.ndarray,
        fanout: int,
    ) -> None:
        """Each source -> ``fanout`` distinct targets; targets left unreached get ``mean fan-in`` sources."""
        reached = np.zeros(matrix.shape[1], dtype=bool)
        for src in sources:
            for dest in rng.choice(targets, size=fanout, replace=False):
                matrix[src, dest] = _balanced(rng)
                reached[dest] = True
        fanin = int(np.clip(len(sources) * fanout // len(targets), 1, len(sources)))
        for dest in targets:
            if not reached[dest]:
                for src in rng.choice(sources, size=fanin, replace=False):
                    matrix[src, dest] = _balanced(rng)

    def _draw_recurrent(self, rng: np.random.Generator) -> None:
        adjacency = np.zeros((self.units, self.units), dtype=np.int8)
        self._fan(adjacency, rng, self._inter, self._command, self.inter_fanout)
        for _ in range(self.recurrent_command_synapses):
            src, dest = rng.choice(self._command, size=2, replace=True)
            adjacency[src, dest] = _balanced(rng)
        # command -> motor is drawn by fan-in: each motor neuron picks motor_fanin command neurons.
        reached = np.zeros(self.units, dtype=bool)
        for dest in self._motor:
            for src in rng.choice(self._command, size=self.motor_fanin, replace=False):
                adjacency[src, dest] = _balanced(rng)
                reached[src] = True
        fanout = int(np.clip(self.motor_neurons * self.motor_fanin // self.command_neurons, 1, self.motor_neurons))
        for src in self._command:
            if not reached[src]:
                for dest in rng.choice(self._motor, size=fanout, replace=False):
                    adjacency[src, dest] = _balanced(rng)
        self.adjacency = adjacency

    def _draw_sensory(self, sensory: np.ndarray, rng: np.random.Generator) -> None:
        self._fan(sensory, rng, np.arange(sensory.shape[0]), self._inter, self.sensory_fanout)


class AutoNCP(NCP):
    """An NCP sized from ``units`` and ``output_size`` alone (40 % of the non-motor neurons are command).

    ``sparsity_level`` in [0, 1): 0 = as dense as an NCP gets.
    """

    kind = "auto_ncp"

    def __init__(self, units: int, output_size: int, sparsity_level: float = 0.5, seed: int = 22222) -> None:
        units = _check_int("units", units, 3)
        output_size = _check_int("output_size", output_size, 1, units - 2)
        self.sparsity_level = _check_fraction("sparsity_level", sparsity_level)
        density = 1.0 - self.sparsity_level
        non_motor = units - output_size
        command = max(int(0.4 * non_motor), 1)
        inter = non_motor - command
        super().__init__(
            inter_neurons=inter,
            command_neurons=command,
            motor_neurons=output_size,
            sensory_fanout=max(int(inter * density), 1),
            inter_fanout=max(int(command * density), 1),
            recurrent_command_synapses=max(int(command * density * 2), 1),
            motor_fanin=max(int(command * density), 1),
            seed=seed,
        )

    def params(self) -> dict[str, Any]:
        return {"units": self.units, "output_size": self.output_dim, "sparsity_level": self.sparsity_level,
                **super().params()}


# --------------------------------------------------------------------------- presets
CAR_SENSORY_FEATURES = 32
DRONE_SENSORY_FEATURES = 32


def ncp19_car(input_dim: int = CAR_SENSORY_FEATURES, seed: int = 22222) -> NCP:
    """The NCP paper's lane-keeping network: 12 inter, 6 command, 1 motor neuron on 32 features."""
    return NCP(12, 6, 1, sensory_fanout=6, inter_fanout=4, recurrent_command_synapses=6, motor_fanin=6,
               seed=seed).build(input_dim)


def ncp19_drone(input_dim: int = DRONE_SENSORY_FEATURES, seed: int = 22222) -> NCP:
    """19-neuron flight network: 9 inter, 6 command, 4 motor neurons (one per flight command)."""
    return NCP(9, 6, 4, sensory_fanout=4, inter_fanout=4, recurrent_command_synapses=6, motor_fanin=4,
               seed=seed).build(input_dim)


def ncp34_drone(input_dim: int = DRONE_SENSORY_FEATURES, seed: int = 22222) -> NCP:
    """34-neuron flight network: 18 inter, 12 command, 4 motor neurons."""
    return NCP(18, 12, 4, sensory_fanout=6, inter_fanout=4, recurrent_command_synapses=12, motor_fanin=6,
               seed=seed).build(input_dim)


WIRING_PRESETS: dict[str, Callable[..., Wiring]] = {
    "ncp19_car": ncp19_car,
    "ncp19_drone": ncp19_drone,
    "ncp34_drone": ncp34_drone,
}


def wiring_from_name(name: str, input_dim: int | None = None, seed: int = 22222) -> Wiring:
    """A built preset wiring by name; ``input_dim`` defaults to the preset's 32 features."""
    if name not in WIRING_PRESETS:
        raise ValueError(f"unknown wiring {name!r}; valid names: {sorted(WIRING_PRESETS)}")
    if input_dim is None:
        return WIRING_PRESETS[name](seed=seed)
    return WIRING_PRESETS[name](input_dim, seed=seed)
