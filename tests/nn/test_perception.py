"""Perception CNN: shapes, normalisation inside the model, config round trip, bad input."""

from __future__ import annotations

import pytest
import torch

from lnn_control.config import ConfigError, load_dataclass
from lnn_control.nn.perception import (
    FeatureNorm,
    ImageNormalization,
    PerceptionCNN,
    PerceptionConfig,
)


def _frames(*shape: int, seed: int = 0, low: int = 0, high: int = 256) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(low, high, shape, dtype=torch.uint8, generator=generator)


def test_default_frame_size_is_64_by_128_and_gives_32_features() -> None:
    torch.manual_seed(0)
    model = PerceptionCNN()
    assert (model.config.image_height, model.config.image_width) == (64, 128)
    out = model(_frames(2, 64, 128, 3))
    assert out.shape == (2, 32)
    assert out.dtype == torch.float32
    assert torch.isfinite(out).all()


def test_sequence_input_equals_frame_by_frame() -> None:
    torch.manual_seed(1)
    model = PerceptionCNN(PerceptionConfig(image_height=32, image_width=48, features=8)).eval()
    seq = _frames(2, 3, 32, 48, 3, seed=1)
    out = model(seq)
    assert out.shape == (2, 3, 8)
    for t in range(3):
        torch.testing.assert_close(out[:, t], model(seq[:, t]), rtol=0, atol=1e-5)


def test_per_image_normalisation_ignores_global_brightness_and_contrast() -> None:
    torch.manual_seed(2)
    model = PerceptionCNN(PerceptionConfig(image_height=32, image_width=32))
    frame = _frames(1, 32, 32, 3, seed=2, low=40, high=120)
    brighter = frame.to(torch.int16) * 2 + 10  # affine per channel, stays inside 0..255
    assert int(brighter.max()) <= 255
    # "nearly" for contrast: the +1 grey level² under the square root leaves a relative error of
    # about 1 / (2 · variance) ≈ 0.1 % for this frame's variance of ~530 grey levels²
    torch.testing.assert_close(model(frame), model(brighter.to(torch.uint8)), rtol=2e-3, atol=1e-3)


def test_fixed_normalisation_sees_brightness_and_uses_the_configured_mean_std() -> None:
    config = PerceptionConfig(image_height=32, image_width=32, normalization=ImageNormalization.FIXED)
    torch.manual_seed(3)
    model = PerceptionCNN(config)
    frame = _frames(1, 32, 32, 3, seed=3, low=40, high=120)
    assert not torch.allclose(model(frame), model(frame + 60), atol=1e-3)
    # A frame exactly at the configured mean normalises to zero: output = conv biases only.
    mid = torch.full((1, 32, 32, 3), 0, dtype=torch.uint8)
    zero_config = PerceptionConfig(
        image_height=32, image_width=32, normalization=ImageNormalization.FIXED, mean=(0.0, 0.0, 0.0)
    )
    torch.manual_seed(3)
    zero_model = PerceptionCNN(zero_config)
    with torch.no_grad():
        for layer in zero_model.convs:
            if isinstance(layer, torch.nn.Conv2d):
                layer.bias.zero_()
    torch.testing.assert_close(zero_model(mid), zero_model.head.bias.unsqueeze(0).detach())


def test_uniform_frame_stays_finite() -> None:
    model = PerceptionCNN(PerceptionConfig(image_height=16, image_width=16))
    black = torch.zeros(1, 16, 16, 3, dtype=torch.uint8)
    assert torch.isfinite(model(black)).all()


def test_gradients_reach_the_first_convolution() -> None:
    torch.manual_seed(4)
    model = PerceptionCNN(PerceptionConfig(image_height=32, image_width=32))
    model(_frames(2, 32, 32, 3, seed=4)).square().sum().backward()
    first = model.convs[0]
    assert first.weight.grad is not None and float(first.weight.grad.abs().sum()) > 0


def _scenes(count: int) -> torch.Tensor:
    """``count`` smooth 64 x 128 frames: a bright vertical bar at a different column in each
    (a trunk or a lane line moving across the view), on a soft horizontal gradient."""
    frames = torch.zeros(count, 64, 128, 3)
    frames += torch.linspace(40.0, 120.0, 64).view(1, 64, 1, 1)
    for i in range(count):
        left = 8 + i * (100 // count)
        frames[i, :, left : left + 12] = 220.0
    return frames.to(torch.uint8)


@pytest.mark.parametrize("seed", range(5))
def test_a_fresh_network_already_sees_the_image(seed: int) -> None:
    """He init: the features of a fresh CNN move with the scene by a standard deviation of at
    least 0.05 (PyTorch's default conv init gave about 0.003, a nearly blind core input)."""
    torch.manual_seed(seed)
    with torch.no_grad():
        features = PerceptionCNN()(_scenes(8))
    assert float(features.std(dim=0).mean()) > 0.05


def test_channels_last_convolutions_compute_the_nchw_features_and_gradients() -> None:
    """The conv stack runs on channels_last activations for speed; the features, and the weight
    gradients training follows, are the plain NCHW computation's up to float rounding."""
    torch.manual_seed(4)
    model = PerceptionCNN()
    frames = _frames(6, 64, 128, 3, seed=4)
    fast = model(frames)
    fast.square().sum().backward()
    fast_grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    x = frames.permute(0, 3, 1, 2).to(torch.float32)
    x = torch.nn.functional.layer_norm(x.reshape(6, 3, -1), (64 * 128,), eps=1.0).reshape(6, 3, 64, 128)
    reference = model.head(model.convs(x.contiguous()).flatten(1))
    reference.square().sum().backward()
    torch.testing.assert_close(fast, reference, rtol=1e-4, atol=1e-5)
    for fast_grad, parameter in zip(fast_grads, model.parameters()):
        assert parameter.is_contiguous() and fast_grad.is_contiguous()  # safetensors stores the weights as they are
        assert parameter.grad is not None
        torch.testing.assert_close(fast_grad, parameter.grad, rtol=1e-3, atol=1e-4)


def test_layer_tanh_features_stay_in_the_sensory_synapses_range_and_pass_gradients() -> None:
    """feature_norm layer_tanh: however far the head's weights drift (here 1000x, the unbounded
    features of stalled drone runs reached 6-100), each feature stays in (-1, 1), still differs
    between scenes, and the first convolution still gets a gradient."""
    torch.manual_seed(2)
    bounded = PerceptionCNN(PerceptionConfig(feature_norm=FeatureNorm.LAYER_TANH))
    torch.manual_seed(2)
    plain = PerceptionCNN()
    with torch.no_grad():
        for model in (bounded, plain):
            model.head.weight.mul_(1000.0)
            model.head.bias.fill_(50.0)
    scenes = _scenes(8)
    with torch.no_grad():
        assert float(plain(scenes).abs().max()) > 50.0
    features = bounded(scenes)
    assert float(features.detach().abs().max()) < 1.0
    assert float(features.detach().std(dim=0).mean()) > 0.05
    features[:, 0].sum().backward()
    first = bounded.convs[0].weight.grad
    assert first is not None and float(first.abs().sum()) > 0


def test_layer_tanh_is_layer_norm_then_tanh_of_the_head() -> None:
    torch.manual_seed(3)
    model = PerceptionCNN(PerceptionConfig(feature_norm=FeatureNorm.LAYER_TANH))
    frames = _scenes(4)
    with torch.no_grad():
        head = model.head
        model.config = PerceptionConfig()  # the same weights without the feature norm
        raw = model(frames)
        model.config = PerceptionConfig(feature_norm=FeatureNorm.LAYER_TANH)
        features = model(frames)
    centred = raw - raw.mean(dim=1, keepdim=True)
    expected = torch.tanh(centred / torch.sqrt(raw.var(dim=1, unbiased=False, keepdim=True) + 1e-5))
    torch.testing.assert_close(features, expected, rtol=1e-5, atol=1e-5)
    assert model.head is head


def test_same_seed_same_weights() -> None:
    torch.manual_seed(5)
    a = PerceptionCNN()
    torch.manual_seed(5)
    b = PerceptionCNN()
    for (name, pa), pb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(pa, pb), name


def test_config_round_trips_through_json_dict() -> None:
    config = PerceptionConfig(
        image_height=48, image_width=96, conv_channels=(8, 8), kernel_sizes=(3, 3), strides=(2, 2),
        features=16, normalization=ImageNormalization.FIXED, feature_norm=FeatureNorm.LAYER_TANH,
    )
    data = config.to_dict()
    assert data["normalization"] == "fixed" and data["feature_norm"] == "layer_tanh"
    assert load_dataclass(PerceptionConfig, data, "test") == config


def test_a_config_written_before_feature_norm_loads_without_it() -> None:
    data = PerceptionConfig().to_dict()
    del data["feature_norm"]  # bundles saved before 2026-12-07
    assert load_dataclass(PerceptionConfig, data, "policy.json").feature_norm is FeatureNorm.NONE


def test_config_loader_names_bad_key() -> None:
    data = PerceptionConfig().to_dict()
    data["normalization"] = "batch"
    with pytest.raises(ConfigError, match="normalization"):
        load_dataclass(PerceptionConfig, data, "policy.json")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"kernel_sizes": (5, 3)}, "kernel_sizes"),
        ({"strides": (2, 2, 2, 1, 0)}, "strides"),
        ({"features": 0}, "features"),
        ({"std": (0.2, 0.0, 0.2)}, "std"),
        ({"conv_channels": ()}, "conv_channels"),
        ({"feature_norm": "batch"}, "feature_norm must be one of"),
    ],
)
def test_bad_config_raises_value_error(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        PerceptionConfig(**kwargs)


@pytest.mark.parametrize(
    ("images", "match"),
    [
        (torch.zeros(1, 64, 128, 3), "uint8"),
        (torch.zeros(1, 128, 64, 3, dtype=torch.uint8), r"\[B,64,128,3\]"),
        (torch.zeros(64, 128, 3, dtype=torch.uint8), "shape"),
        (torch.zeros(1, 64, 128, 4, dtype=torch.uint8), "RGB"),
    ],
)
def test_bad_images_raise_value_error(images: torch.Tensor, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        PerceptionCNN()(images)
