"""Run one demo episode: policy in the loop, frames composed with overlays, video or live viewer."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from lnn_control.demo.overlay import NeuronGroups, compose_frame
from lnn_control.demo.video import VideoWriter


@dataclass(frozen=True)
class DemoConfig:
    """task / policy (bundle path or shipped name) / backend / condition / seed; out: video path or None."""

    task: str
    policy: str
    backend: Literal["mujoco", "pybullet"] = "pybullet"
    condition: str = "clean"
    seed: int = 1000
    out: str | None = "demo.mp4"
    gui: bool = False
    max_steps: int | None = None
    scene_size: tuple[int, int] = (360, 480)
    saliency: bool = False  # blend the VisualBackProp saliency over the onboard camera inset


def neuron_groups(policy: Any) -> NeuronGroups | None:
    """Layer labels for the activity bars when the core is wired (motor, command, inter)."""
    wiring = getattr(policy.core, "wiring", None)
    if wiring is None or not hasattr(wiring, "neuron_type"):
        return None
    groups: list[tuple[str, int]] = []
    for neuron in range(wiring.units):
        kind = wiring.neuron_type(neuron)
        if groups and groups[-1][0] == kind:
            groups[-1] = (kind, groups[-1][1] + 1)
        else:
            groups.append((kind, 1))
    return NeuronGroups(tuple(groups))


def run_demo(config: DemoConfig) -> str:
    """Drive one episode; returns a one-line summary (outcome, distance, video path)."""
    import torch

    from lnn_control.data.collect import env_specs, make_env
    from lnn_control.policies.bundle import load_policy
    from lnn_control.runtime.launch import resolve_policy_path
    from lnn_control.spec import check_compatible
    from lnn_control.tasks import get_task

    torch.set_num_threads(1)  # batch-1 stepping: one thread is fastest (bench nn)
    task = get_task(config.task)
    policy = load_policy(resolve_policy_path(config.policy))
    render_mode = "human" if config.gui else "rgb_array"
    env = make_env(config.task, config.backend, config.condition, config.seed, render_mode=render_mode)
    video = VideoWriter(config.out, fps=1.0 / float(env.unwrapped.control_dt)) if config.out else None
    groups = neuron_groups(policy)
    try:
        obs_spec, act_spec = env_specs(env)
        check_compatible(policy.observation_spec, obs_spec, "env observation spec")
        check_compatible(policy.action_spec, act_spec, "env action spec")
        dt = float(env.unwrapped.control_dt)
        obs, info = env.reset(seed=config.seed)
        policy.reset()
        # tasks whose env draws a map (the drone's forest) get it beside the chase view
        draws_map = callable(getattr(env.unwrapped, "top_down_view", None)) and "x" in info and "y" in info
        path = [(float(info["x"]), float(info["y"]))] if draws_map else []
        steps, terminated, truncated = 0, False, False
        while not (terminated or truncated):
            action = policy.act(obs, dt)
            obs, _, terminated, truncated, info = env.step(action)
            steps += 1
            if draws_map:
                path.append((float(info["x"]), float(info["y"])))
            if video is not None:
                scene = _scene(env, config.gui, config.scene_size)
                if draws_map:
                    top_down = env.unwrapped.top_down_view(np.asarray(path), size=config.scene_size[0])
                    scene = np.concatenate([scene, top_down], axis=1)
                lines = [f"{task.name} | {config.backend} | {config.condition}"]
                lines += [f"{name} {value:+.2f}" for name, value in zip(policy.action_spec.names, action)]
                lines += [f"{key} {float(info[key]):+.2f} {unit}" for key, unit in task.overlay if key in info]
                onboard = obs["image"]
                if config.saliency:
                    from lnn_control.explain.inset import saliency_inset

                    onboard = saliency_inset(policy, onboard)
                    lines.append("camera: VisualBackProp saliency")
                video.write(compose_frame(scene, onboard, lines, policy.neuron_activity(), groups))
            if config.max_steps is not None and steps >= config.max_steps:
                break
        if video is not None:
            video.close()
    except BaseException:
        if video is not None:
            video.close(keep=False)
        raise
    finally:
        env.close()
    outcome = "success" if info.get("success") else ("failed" if terminated else "stopped")
    where = f", video {Path(config.out)}" if config.out else ""
    return f"{outcome} after {steps} steps ({steps * dt:.1f} s){where}"


def _scene(env: Any, gui: bool, size: tuple[int, int]) -> np.ndarray:
    """The chase view at ``size`` (H, W); in GUI mode the viewer shows it, the video gets the env's frame."""
    import cv2

    frame = env.render() if not gui else None
    if frame is None:
        frame = np.zeros((*size, 3), np.uint8)
    if frame.shape[:2] != size:
        frame = cv2.resize(frame, (size[1], size[0]), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(frame[..., :3]).astype(np.uint8)
