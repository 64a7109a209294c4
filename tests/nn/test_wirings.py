"""Wirings: structure of the generators, presets, exact round trip, validation, plot."""

from __future__ import annotations

import json

import numpy as np
import pytest

from lnn_control.nn.wirings import (
    NCP,
    WIRING_PRESETS,
    AutoNCP,
    FullyConnected,
    Random,
    Wiring,
    ncp19_car,
    ncp19_drone,
    ncp34_drone,
    wiring_from_name,
)


def test_ncp19_car_matches_the_paper_sizes_and_seeded_synapse_count():
    wiring = ncp19_car()
    assert (wiring.units, wiring.input_dim, wiring.output_dim) == (19, 32, 1)
    assert [len(layer) for layer in wiring.layers] == [12, 6, 1]
    # Paper: ~253 synapses including sensory ones; 32 features x fan-out 6 = 192 sensory synapses.
    assert wiring.sensory_synapse_count == 192
    assert wiring.synapse_count == 60
    assert wiring.total_synapse_count == 252


def test_ncp_layers_follow_ncps_numbering_and_signal_flow():
    wiring = NCP(5, 4, 2, sensory_fanout=3, inter_fanout=2, recurrent_command_synapses=3, motor_fanin=2,
                 seed=3).build(7)
    inter, command, motor = wiring.layers
    assert motor.tolist() == [0, 1] and command.tolist() == [2, 3, 4, 5] and inter.tolist() == [6, 7, 8, 9, 10]
    assert [wiring.neuron_type(i) for i in (0, 2, 6)] == ["motor", "command", "inter"]
    adjacency, sensory = wiring.adjacency, wiring.sensory_adjacency
    # sensory only onto inter neurons, each feature onto exactly 3 of them
    assert not sensory[:, :6].any()
    assert (np.count_nonzero(sensory, axis=1) >= 3).all()
    # inter -> command only (no inter -> inter / motor), each inter neuron feeds >= 2 command neurons
    assert not adjacency[np.ix_(inter, inter)].any() and not adjacency[np.ix_(inter, motor)].any()
    assert (np.count_nonzero(adjacency[np.ix_(inter, command)], axis=1) >= 2).all()
    # command -> motor: each motor neuron has >= 2 command inputs; every command neuron reaches a motor
    assert (np.count_nonzero(adjacency[np.ix_(command, motor)], axis=0) >= 2).all()
    assert (np.count_nonzero(adjacency[np.ix_(command, motor)], axis=1) >= 1).all()
    # motor neurons send nothing; every inter and command neuron gets an input
    assert not adjacency[motor].any()
    assert (np.count_nonzero(sensory[:, inter], axis=0) >= 1).all()
    assert (np.count_nonzero(adjacency[:, command], axis=0) >= 1).all()
    # polarities are the allowed values and both signs occur
    assert set(np.unique(adjacency).tolist()) == {-1, 0, 1}


def test_generators_are_seeded_and_recurrent_part_does_not_depend_on_input_size():
    a, b = ncp19_car(seed=5), ncp19_car(seed=5)
    assert np.array_equal(a.adjacency, b.adjacency) and np.array_equal(a.sensory_adjacency, b.sensory_adjacency)
    assert not np.array_equal(ncp19_car(seed=6).sensory_adjacency, a.sensory_adjacency)
    assert np.array_equal(ncp19_car(input_dim=8, seed=5).adjacency, a.adjacency)


def test_fully_connected_and_random_densities():
    full = FullyConnected(6, output_dim=2, self_connections=False, seed=1).build(4)
    assert full.synapse_count == 30 and full.sensory_synapse_count == 24
    assert not np.diag(full.adjacency).any()
    excitatory = np.mean(FullyConnected(40, seed=2).adjacency == 1)
    assert 0.6 < excitatory < 0.73  # 2/3 excitatory like ncps
    rand = Random(10, output_dim=3, sparsity=0.75, seed=4).build(8)
    assert rand.synapse_count == 25 and rand.sensory_synapse_count == 20


def test_auto_ncp_sizes_like_ncps():
    wiring = AutoNCP(19, 4, sparsity_level=0.5, seed=1).build(10)
    assert [len(layer) for layer in wiring.layers] == [9, 6, 4]
    assert wiring.output_dim == 4


@pytest.mark.parametrize("name", sorted(WIRING_PRESETS))
def test_round_trip_is_exact_through_json(name):
    wiring = wiring_from_name(name)
    data = json.loads(json.dumps(wiring.to_dict()))
    rebuilt = Wiring.from_dict(data)
    assert rebuilt.to_dict() == wiring.to_dict()
    assert np.array_equal(rebuilt.adjacency, wiring.adjacency)
    assert np.array_equal(rebuilt.sensory_adjacency, wiring.sensory_adjacency)
    assert rebuilt.adjacency.dtype == np.int8
    assert [g.tolist() for g in rebuilt.layers] == [g.tolist() for g in wiring.layers]


def test_presets_sizes():
    assert (ncp19_drone().units, ncp19_drone().output_dim) == (19, 4)
    drone34 = ncp34_drone()
    assert [len(layer) for layer in drone34.layers] == [18, 12, 4]


def test_from_adjacency_and_its_validation():
    adjacency = np.array([[0, 1], [-1, 0]])
    wiring = Wiring.from_adjacency(adjacency, np.array([[1, 0]]), output_dim=1)
    assert wiring.synapse_count == 2 and wiring.input_dim == 1
    with pytest.raises(ValueError, match="adjacency must be square"):
        Wiring.from_adjacency(np.zeros((2, 3)), np.zeros((1, 3)), 1)
    with pytest.raises(ValueError, match="-1, 0 or \\+1"):
        Wiring.from_adjacency(np.array([[0, 2], [0, 0]]), np.zeros((1, 2)), 1)
    with pytest.raises(ValueError, match="sensory_adjacency"):
        Wiring.from_adjacency(adjacency, np.zeros((1, 3)), 1)
    with pytest.raises(ValueError, match="output_dim"):
        Wiring.from_adjacency(adjacency, np.zeros((1, 2)), 3)
    with pytest.raises(ValueError, match="layers must partition"):
        Wiring.from_adjacency(adjacency, np.zeros((1, 2)), 1, layers=[[0], [0]])


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"inter_neurons": 0}, "inter_neurons"),
        ({"sensory_fanout": 13}, "sensory_fanout"),
        ({"inter_fanout": 7}, "inter_fanout"),
        ({"motor_fanin": 0}, "motor_fanin"),
        ({"recurrent_command_synapses": -1}, "recurrent_command_synapses"),
        ({"seed": -3}, "seed"),
        ({"command_neurons": 2.5}, "command_neurons"),
    ],
)
def test_impossible_ncp_sizes_name_the_argument(kwargs, argument):
    base = {"inter_neurons": 12, "command_neurons": 6, "motor_neurons": 1, "sensory_fanout": 6,
            "inter_fanout": 4, "recurrent_command_synapses": 6, "motor_fanin": 6}
    with pytest.raises(ValueError, match=argument):
        NCP(**{**base, **kwargs})


def test_other_validation_errors():
    with pytest.raises(ValueError, match="sparsity must be in \\[0, 1\\)"):
        Random(5, sparsity=1.0)
    with pytest.raises(ValueError, match="sparsity_level"):
        AutoNCP(10, 2, sparsity_level=-0.1)
    with pytest.raises(ValueError, match="output_size"):
        AutoNCP(5, 4)
    with pytest.raises(ValueError, match="units"):
        FullyConnected(0)
    with pytest.raises(ValueError, match="input_dim: this wiring was built for 32"):
        ncp19_car().build(16)
    with pytest.raises(ValueError, match="not built"):
        NCP(3, 2, 1, 2, 2, 1, 1).to_dict()
    with pytest.raises(ValueError, match="valid names: \\['ncp19_car'"):
        wiring_from_name("ncp20")
    data = ncp19_car().to_dict()
    data["extra"] = 1
    with pytest.raises(ValueError, match="unknown keys \\['extra'\\]"):
        Wiring.from_dict(data)


def test_plot_wiring_writes_a_png_with_both_polarities(tmp_path):
    import cv2

    from lnn_control.nn.plot import plot_wiring

    path = plot_wiring(ncp19_car(), tmp_path / "wiring.png")
    image = cv2.imread(str(path)).astype(int)  # BGR
    assert image.shape[0] > 300 and image.shape[1] > 600
    blue, green, red = image[..., 0], image[..., 1], image[..., 2]
    assert ((green > red + 50) & (green > blue + 50)).sum() > 500  # excitatory synapses
    assert ((red > green + 80) & (red > blue + 80)).sum() > 500  # inhibitory synapses
    with pytest.raises(ValueError, match="not built"):
        plot_wiring(NCP(3, 2, 1, 2, 2, 1, 1), tmp_path / "x.png")
    with pytest.raises(ValueError, match="must end in .png"):
        plot_wiring(ncp19_car(), tmp_path / "x.jpg")
