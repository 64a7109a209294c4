"""Domain shift: image corruptions, spec strings, image/dynamics wrappers, the contact sheet command."""

from __future__ import annotations

import json
import warnings

import cv2
import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces
from gymnasium.utils.env_checker import check_env
from hypothesis import given, settings
from hypothesis import strategies as st

import lnn_control.envs  # noqa: F401  (registers the env ids)
from lnn_control.cli import main
from lnn_control.cli.conditions import lane_frame
from lnn_control.envs.wrappers import (
    CONDITION_NAMES,
    CORRUPTIONS,
    ActionDelay,
    Condition,
    CorruptImage,
    apply_conditions,
    corrupt,
    format_conditions,
    parse_conditions,
)
from lnn_control.envs.wrappers.contact_sheet import contact_sheet, sheet_size, synthetic_road_frame
from lnn_control.envs.wrappers.dynamics import (
    DELAY_STEPS_BY_SEVERITY,
    DENSITY_SCALE_BY_SEVERITY,
    FRICTION_SCALE_BY_SEVERITY,
    GUST_TIME_CONSTANT,
    WIND_BY_SEVERITY,
)
from lnn_control.envs.wrappers.image import stream_rng

FRAME = synthetic_road_frame(64, 128)
NAMES = list(CORRUPTIONS)
STOCHASTIC = [n for n, c in CORRUPTIONS.items() if c.stochastic]
DETERMINISTIC = [n for n, c in CORRUPTIONS.items() if not c.stochastic]


def mad(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


# --- a small real env the wrappers are tested against ---------------------------------------------
class RecordingEnv(gym.Env):
    """A tiny camera env: the frame is the synthetic road shifted by the step count and the reset
    seed; it records every action it receives and every dynamics hook call."""

    metadata = {"render_modes": [], "render_fps": 20}

    def __init__(self, hooks: tuple[str, ...] = ("friction",)) -> None:
        self.observation_space = spaces.Dict(
            {"image": spaces.Box(0, 255, (64, 128, 3), np.uint8), "speed": spaces.Box(-5.0, 5.0, (1,), np.float32)}
        )
        self.action_space = spaces.Box(-1.0, 1.0, (1,), np.float32)
        self.control_dt = 0.05
        self.received: list[np.ndarray] = []
        self.friction_calls: list[float] = []
        self.wind_calls: list[np.ndarray] = []
        self.density_calls: list[float] = []
        self._hooks = hooks
        self._t = 0
        self._offset = 0

    def __getattr__(self, name: str):
        hooks = {
            "set_friction_scale": ("friction", self.friction_calls.append),
            "set_wind": ("wind", self.wind_calls.append),
            "set_tree_density_scale": ("dense", self.density_calls.append),
        }
        if name in hooks and hooks[name][0] in self.__dict__.get("_hooks", ()):
            return hooks[name][1]
        raise AttributeError(name)

    def _obs(self) -> dict:
        image = np.roll(FRAME, self._offset + 3 * self._t, axis=1)
        return {"image": image, "speed": np.array([1.5], np.float32)}

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self._t = 0
        self._offset = int(self.np_random.integers(0, 40))
        self.received.clear()
        return self._obs(), {}

    def step(self, action):
        action = np.asarray(action, np.float32)
        assert self.action_space.contains(action), action
        self.received.append(action.copy())
        self._t += 1
        return self._obs(), 0.0, False, self._t >= 50, {}


# --- corruptions ----------------------------------------------------------------------------------
@pytest.mark.parametrize("name", NAMES)
def test_corruption_changes_image_keeps_dtype_shape_and_input(name):
    original = FRAME.copy()
    for severity in range(1, 6):
        out = corrupt(FRAME, name, severity, np.random.default_rng(severity))
        assert out.dtype == np.uint8 and out.shape == FRAME.shape
        assert mad(out, FRAME) > 0.5, (name, severity)
    np.testing.assert_array_equal(FRAME, original)


@pytest.fixture(scope="module")
def lane_camera_frame() -> np.ndarray:
    """A real onboard camera frame of LaneKeeping-v0 (PyBullet, held-out road 1000)."""
    return lane_frame(1000)


@pytest.mark.parametrize("source", ["synthetic", "lane"])
@pytest.mark.parametrize("name", NAMES)
def test_corruption_grows_with_severity(name, source, request):
    frame = FRAME if source == "synthetic" else request.getfixturevalue("lane_camera_frame")
    assert frame.shape == (64, 128, 3)
    distances = [
        np.mean([mad(corrupt(frame, name, s, np.random.default_rng(seed)), frame) for seed in range(4)])
        for s in range(1, 6)
    ]
    assert distances[0] > 0.5, (name, distances)
    assert all(b > a for a, b in zip(distances, distances[1:])), (name, distances)
    assert distances[4] > 1.5 * distances[0], (name, distances)


@pytest.mark.parametrize("name", STOCHASTIC)
def test_stochastic_corruption_is_seeded(name):
    a = corrupt(FRAME, name, 3, np.random.default_rng(7))
    b = corrupt(FRAME, name, 3, np.random.default_rng(7))
    c = corrupt(FRAME, name, 3, np.random.default_rng(8))
    np.testing.assert_array_equal(a, b)
    assert mad(a, c) > 0.05


@pytest.mark.parametrize("name", DETERMINISTIC)
def test_deterministic_corruption_ignores_the_generator(name):
    np.testing.assert_array_equal(
        corrupt(FRAME, name, 3, np.random.default_rng(1)), corrupt(FRAME, name, 3, np.random.default_rng(2))
    )


def test_corruptions_work_on_other_frame_sizes():
    big = cv2.resize(FRAME, (320, 240))
    for name in NAMES:
        out = corrupt(big, name, 4, np.random.default_rng(0))
        assert out.shape == big.shape and mad(out, big) > 0.5, name


@settings(max_examples=40, deadline=None)
@given(
    name=st.sampled_from(NAMES),
    severity=st.integers(1, 5),
    height=st.integers(8, 70),
    width=st.integers(8, 140),
    seed=st.integers(0, 2**32 - 1),
    strided=st.booleans(),
)
def test_any_frame_size_and_content(name, severity, height, width, seed, strided):
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, (height * (2 if strided else 1), width, 3), dtype=np.uint8)
    if strided:
        image = image[::2]  # a non-contiguous view, as a cropped camera buffer would be
    out = corrupt(image, name, severity, rng)
    assert out.dtype == np.uint8 and out.shape == image.shape


def test_rain_streaks_are_bright_and_night_is_dark():
    rng = np.random.default_rng(0)
    gray = np.full((64, 128, 3), 100, np.uint8)
    rained = corrupt(gray, "rain", 5, rng)
    assert (rained.max(axis=2) > 140).mean() > 0.02  # streaks
    assert np.median(rained) < 100  # darker overall
    assert corrupt(FRAME, "night", 3, rng).mean() < 0.5 * FRAME.mean()
    # fog veils the frame in its colour, thicker near the horizon (top) than near the car (bottom)
    fog_color = np.array([205.0, 208.0, 212.0])
    before = np.abs(FRAME.astype(float) - fog_color).mean(axis=(1, 2))
    after = np.abs(corrupt(FRAME, "fog", 3, rng).astype(float) - fog_color).mean(axis=(1, 2))
    veiled = 1.0 - after / before  # per row: fraction of the way to the fog colour
    assert np.all(veiled > 0.15) and veiled[:8].mean() > 0.4 and veiled[-8:].mean() < 0.35
    season = corrupt(FRAME, "season", 5, rng)
    grass = (FRAME == (70, 128, 52)).all(axis=2)
    assert season[grass][:, 0].mean() > FRAME[grass][:, 0].mean() + 20  # green grass turned red/orange
    road = (FRAME == (96, 96, 100)).all(axis=2)
    assert mad(season[road], FRAME[road]) < 2  # grey road unchanged


@pytest.mark.parametrize("severity", [0, 6, -1, 2.5, True, "3"])
def test_bad_severity_is_rejected(severity):
    with pytest.raises(ValueError, match="severity must be an integer in 1..5"):
        corrupt(FRAME, "fog", severity, np.random.default_rng(0))


def test_bad_image_and_name_are_rejected():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match=r"uint8 of shape \(H, W, 3\)"):
        corrupt(FRAME.astype(np.float32), "fog", 1, rng)
    with pytest.raises(ValueError, match=r"uint8 of shape \(H, W, 3\)"):
        corrupt(FRAME[:, :, 0], "fog", 1, rng)
    with pytest.raises(ValueError, match="unknown image corruption 'smoke'; allowed: rain, fog"):
        corrupt(FRAME, "smoke", 1, rng)


# --- spec strings -------------------------------------------------------------------------------
def test_parse_conditions():
    assert parse_conditions("rain:3+noise:2") == [Condition("rain", 3), Condition("noise", 2)]
    assert parse_conditions(" Fog:1 + delay:5 ") == [Condition("fog", 1), Condition("delay", 5)]
    assert parse_conditions("clean") == [] and parse_conditions("") == []
    assert format_conditions(parse_conditions("rain:3+wet:1")) == "rain:3+wet:1"
    assert format_conditions([]) == "clean"
    for name in CONDITION_NAMES:
        assert parse_conditions(f"{name}:4") == [Condition(name, 4)]


@pytest.mark.parametrize(
    "spec, message",
    [
        ("smoke:3", r"unknown condition 'smoke' in 'smoke:3'; allowed: rain, fog, .*wet, delay, wind"),
        ("rain:0", r"severity 0 of 'rain' in 'rain:0' is outside 1..5"),
        ("rain:6", r"severity 6 of 'rain' in 'rain:6' is outside 1..5"),
        ("rain:x", r"severity 'x' of 'rain' .* must be an integer in 1..5"),
        ("rain", r"must be name:severity .* e.g. 'rain:3'"),
        ("rain:2+rain:3", r"'rain' appears twice"),
        ("clean+fog:2", r"'clean' cannot be combined"),
        ("fog:2++noise:1", r"must be name:severity"),
    ],
)
def test_parse_conditions_errors(spec, message):
    with pytest.raises(ValueError, match=message):
        parse_conditions(spec)


def test_condition_validates_itself():
    with pytest.raises(ValueError, match="unknown condition 'hail'"):
        Condition("hail", 1)
    with pytest.raises(ValueError, match="severity of 'fog' must be an integer in 1..5, got 9"):
        Condition("fog", 9)


# --- image wrapper ------------------------------------------------------------------------------
def rollout(env: gym.Env, seed: int, steps: int = 5) -> list[np.ndarray]:
    obs, _ = env.reset(seed=seed)
    frames = [obs["image"]]
    for _ in range(steps):
        obs, *_ = env.step(np.zeros(1, np.float32))
        frames.append(obs["image"])
    return frames


def test_clean_returns_the_env_itself():
    env = RecordingEnv()
    assert apply_conditions(env, "clean") is env


def test_image_wrappers_keep_spaces_and_pass_check_env():
    env = apply_conditions(RecordingEnv(), "rain:3+noise:2+occlusion:4", seed=3)
    assert env.observation_space == RecordingEnv().observation_space
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(env, skip_render_check=True)
    problems = [str(w.message) for w in caught if "different from the unwrapped version" not in str(w.message)]
    assert problems == []


def test_wrapped_frame_is_the_corruption_seeded_from_the_reset_seed():
    base = RecordingEnv()
    clean, _ = base.reset(seed=11)
    env = CorruptImage(RecordingEnv(), "noise", 2)
    obs, _ = env.reset(seed=11)
    rng = stream_rng(11, "noise")
    rng.integers(2**63)  # the per-episode draw made at reset
    np.testing.assert_array_equal(obs["image"], corrupt(clean["image"], "noise", 2, rng))
    np.testing.assert_array_equal(obs["speed"], clean["speed"])


def test_same_reset_seed_gives_same_corrupted_frames():
    spec = "rain:3+noise:2+glare:2"
    a = rollout(apply_conditions(RecordingEnv(), spec, seed=0), seed=5)
    b = rollout(apply_conditions(RecordingEnv(), spec, seed=99), seed=5)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    env = apply_conditions(RecordingEnv(), spec)
    c = rollout(env, seed=6)
    d = rollout(env, seed=5)  # re-seeding mid-life reproduces the fresh env
    for x, y in zip(a, d):
        np.testing.assert_array_equal(x, y)
    assert mad(a[0], c[0]) > 1
    # unseeded resets continue the stream: a new episode gets new noise
    env.reset()
    first, _ = env.reset()
    assert mad(first["image"], d[0]) > 1


def test_per_episode_corruptions_stay_put_within_an_episode():
    constant = RecordingEnv()
    constant._obs = lambda: {"image": FRAME.copy(), "speed": np.array([0.0], np.float32)}
    env = CorruptImage(constant, "occlusion", 4)
    frames = rollout(env, seed=2)
    for frame in frames[1:]:
        np.testing.assert_array_equal(frame, frames[0])  # dirt stays on the lens
    other = rollout(env, seed=3)
    assert mad(other[0], frames[0]) > 1  # another episode, other dirt
    noisy = rollout(CorruptImage(constant, "noise", 4), seed=2)
    assert mad(noisy[0], noisy[1]) > 5  # per-frame noise changes every frame


def test_image_wrapper_rejects_a_space_without_an_image():
    env = RecordingEnv()
    env.observation_space = spaces.Dict({"speed": spaces.Box(-1, 1, (1,), np.float32)})
    with pytest.raises(ValueError, match=r"need an observation space Dict\(\{'image'"):
        CorruptImage(env, "fog", 1)


# --- dynamics wrappers --------------------------------------------------------------------------
@pytest.mark.parametrize("k", [1, 2, 4])
def test_action_delay_delays_by_exactly_k_steps(k):
    base = RecordingEnv()
    env = ActionDelay(base, k)
    for episode in range(2):  # the queue restarts at reset
        env.reset(seed=episode)
        sent = [np.array([0.1 * (t + 1) * (-1) ** episode], np.float32) for t in range(8)]
        for action in sent:
            env.step(action)
        received = np.array(base.received)[:, 0]
        np.testing.assert_allclose(received[:k], 0.0)
        np.testing.assert_allclose(received[k:], np.array(sent)[: 8 - k, 0])


def test_delay_severity_table_and_bad_input():
    base = RecordingEnv()
    env = apply_conditions(base, "delay:3")
    assert isinstance(env, ActionDelay) and env.steps == DELAY_STEPS_BY_SEVERITY[2] == 3
    env.reset(seed=0)
    with pytest.raises(ValueError, match="outside the action space"):
        env.step(np.array([1.5], np.float32))
    with pytest.raises(ValueError, match="must be finite"):
        env.step(np.array([np.nan], np.float32))
    assert base.received == []  # nothing bad was queued or delivered
    with pytest.raises(ValueError, match="delay steps must be an integer ≥ 1"):
        ActionDelay(base, 0)


@pytest.mark.parametrize("severity", [1, 3, 5])
def test_wet_road_sets_the_documented_friction_scale(severity):
    base = RecordingEnv()
    env = apply_conditions(base, f"wet:{severity}")
    assert base.friction_calls == [FRICTION_SCALE_BY_SEVERITY[severity - 1]]
    env.reset(seed=0)
    assert base.friction_calls[-1] == FRICTION_SCALE_BY_SEVERITY[severity - 1] and len(base.friction_calls) == 2


def test_rain_wets_the_road_and_the_lens():
    base = RecordingEnv()
    env = apply_conditions(base, "rain:3", seed=0)
    assert base.friction_calls == [FRICTION_SCALE_BY_SEVERITY[2]] == [0.40]
    obs, _ = env.reset(seed=1)
    clean, _ = RecordingEnv().reset(seed=1)
    assert mad(obs["image"], clean["image"]) > 5
    base2 = RecordingEnv()
    apply_conditions(base2, "rain:1+wet:4")
    assert base2.friction_calls == [FRICTION_SCALE_BY_SEVERITY[3]]  # the wetter one wins
    no_friction = RecordingEnv(hooks=())
    apply_conditions(no_friction, "rain:3").reset(seed=0)  # drone-like env: rain is visual only


def test_missing_hooks_raise_clear_errors():
    env = RecordingEnv(hooks=())
    with pytest.raises(ValueError, match=r"'wet' needs env.unwrapped.set_friction_scale\(...\).*LaneKeeping-v0"):
        apply_conditions(env, "wet:2")
    with pytest.raises(ValueError, match=r"'wind' needs env.unwrapped.set_wind\(...\).*DroneForest-v0"):
        apply_conditions(env, "wind:2")
    with pytest.raises(ValueError, match=r"'dense' needs env.unwrapped.set_tree_density_scale"):
        apply_conditions(env, "dense:2")


def wind_series(seed: int, steps: int, severity: int = 4) -> np.ndarray:
    base = RecordingEnv(hooks=("wind",))
    env = apply_conditions(base, f"wind:{severity}")
    env.reset(seed=seed)
    for _ in range(steps):
        env.step(np.zeros(1, np.float32))
    return np.array(base.wind_calls)  # (steps + 1, 3): after reset, then before every step


def test_wind_gusts_are_seeded():
    a = wind_series(0, 30)
    assert a.shape == (31, 3) and a.dtype == np.float64
    np.testing.assert_array_equal(a, wind_series(0, 30))
    assert not np.array_equal(a, wind_series(1, 30))


def test_wind_gust_process_has_the_documented_statistics():
    mean_speed, gust_std = WIND_BY_SEVERITY[3]
    w = wind_series(3, 4000)  # 200 s at 20 Hz = 200 gust correlation times
    mean = w.mean(axis=0)
    assert abs(np.linalg.norm(mean[:2]) - mean_speed) < 0.15 * mean_speed
    assert abs(mean[2]) < 0.2
    std = w.std(axis=0)
    np.testing.assert_allclose(std, [gust_std, gust_std, gust_std / 3], rtol=0.25)
    gust = w[:, 0] - mean[0]
    lag1 = float(np.dot(gust[1:], gust[:-1]) / np.dot(gust, gust))
    assert abs(lag1 - np.exp(-0.05 / GUST_TIME_CONSTANT)) < 0.03  # 1 s correlation time at dt = 0.05 s


def test_denser_forest_hook():
    base = RecordingEnv(hooks=("dense",))
    env = apply_conditions(base, "dense:2")
    env.reset(seed=0)
    assert base.density_calls == [DENSITY_SCALE_BY_SEVERITY[1]] * 2


# --- the real lane env ------------------------------------------------------------------------------
@pytest.mark.parametrize("backend", ["pybullet", pytest.param("mujoco", marks=pytest.mark.slow)])
def test_conditions_on_the_lane_env(backend):
    def make():
        return gym.make("lnn_control/LaneKeeping-v0", backend=backend, road_length=6.0)

    clean_env = make()
    env = apply_conditions(make(), "rain:3+delay:2", seed=0)
    try:
        assert env.unwrapped.friction_scale == FRICTION_SCALE_BY_SEVERITY[2]
        assert env.observation_space == clean_env.observation_space
        obs, _ = env.reset(seed=1000)
        clean, _ = clean_env.reset(seed=1000)
        assert obs["image"].shape == clean["image"].shape and mad(obs["image"], clean["image"]) > 5
        again, _ = env.reset(seed=1000)
        np.testing.assert_array_equal(obs["image"], again["image"])
        steering = []
        for _ in range(4):
            env.step(np.array([1.0], np.float32))
            steering.append(env.unwrapped.vehicle_state().steering_angle)
        # full left reaches the wheels only after the 2-step delay
        assert abs(steering[0]) < 0.05 and steering[3] > 0.1
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            check_env(apply_conditions(make(), "fog:2+wet:3", seed=0), skip_render_check=True)
        problems = [str(w.message) for w in caught if "different from the unwrapped version" not in str(w.message)]
        assert problems == []
    finally:
        env.close()
        clean_env.close()


# --- contact sheet and command -------------------------------------------------------------------
def test_contact_sheet_grid():
    sheet = contact_sheet(FRAME, ["rain", "fog"], seed=0, scale=1)
    assert sheet.shape == (*sheet_size(2, FRAME.shape, 1), 3)
    again = contact_sheet(FRAME, ["rain", "fog"], seed=0, scale=1)
    np.testing.assert_array_equal(sheet, again)
    with pytest.raises(ValueError, match="unknown image corruption 'hail'"):
        contact_sheet(FRAME, ["hail"])


def test_conditions_command_writes_png_of_expected_size(tmp_path, capsys):
    out = tmp_path / "sheet.png"
    assert main(["conditions", "--out", str(out), "--source", "synthetic", "--only", "rain,fog,night", "--scale", "1"]) == 0
    png = cv2.imread(str(out))
    assert png.shape == (*sheet_size(3, (64, 128, 3), 1), 3)
    assert "3 corruptions" in capsys.readouterr().out


def test_conditions_command_on_a_lane_frame_with_bench(tmp_path):
    out, bench = tmp_path / "all.png", tmp_path / "bench.json"
    assert main(["conditions", "--out", str(out), "--source", "lane", "--bench", str(bench), "--repeats", "3", "--scale", "1"]) == 0
    assert cv2.imread(str(out)).shape == (*sheet_size(len(NAMES), (64, 128, 3), 1), 3)
    report = json.loads(bench.read_text())
    assert report["frame_shape"] == [64, 128, 3] and set(report["corruptions"]) == set(NAMES)
    assert all(0 < row["max"] < 1000 for row in report["corruptions"].values())


def test_conditions_command_with_an_image_file_and_bad_input(tmp_path, capsys):
    photo = tmp_path / "photo.png"
    cv2.imwrite(str(photo), cv2.resize(FRAME, (96, 48)))
    out = tmp_path / "mine.png"
    assert main(["conditions", "--out", str(out), "--image", str(photo), "--only", "jpeg", "--scale", "1"]) == 0
    assert cv2.imread(str(out)).shape == (*sheet_size(1, (48, 96, 3), 1), 3)
    assert main(["conditions", "--out", str(out), "--image", str(tmp_path / "missing.png")]) == 2
    assert main(["conditions", "--out", str(out), "--source", "synthetic", "--only", "hail"]) == 2
    assert main(["conditions", "--out", str(tmp_path / "x.jpg"), "--source", "synthetic"]) == 2
    assert main(["conditions", "--out", str(out), "--source", "synthetic", "--scale", "0"]) == 2
    assert main(["conditions", "--out", str(out), "--source", "synthetic", "--seed", "-3"]) == 2
    err = capsys.readouterr().err
    assert "does not exist" in err and "unknown ['hail']" in err and "must end in .png" in err
    assert "--scale must be an integer in 1..8, got 0" in err and "--seed must be ≥ 0, got -3" in err


def test_wrappers_import_neither_torch_nor_a_simulator():
    import subprocess
    import sys

    code = (
        "import sys, lnn_control.envs.wrappers, lnn_control.cli.conditions\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('torch', 'pybullet', 'mujoco', 'albumentations')]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
