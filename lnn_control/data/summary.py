"""``lnn-control dataset show``: what an episode dataset holds, without loading its frames.

Per episode: steps, duration (last − first frame timestamp, s), source (``source`` of a converted
run log; ``mode`` — expert / dagger — of simulated data), the run log and time range it came from.
Per source: episodes, steps, seconds. Per action component over every step: label mean, standard
deviation (population), min, max, in action units. The content hash, and whether it still matches
the one recorded at conversion (``conversion.json``).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from lnn_control.data.episodes import DatasetError, EpisodeDataset
from lnn_control.data.from_log import CONVERSION_RECORD


def episode_length(path: Path) -> int:
    """Steps in one episode file, from its header (no array is read)."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="numpy") as handle:
            return int(handle.get_slice("image").get_shape()[0])
    except (OSError, SafetensorError, ValueError) as exc:
        raise DatasetError(f"{path}: unreadable episode file: {exc}") from exc


def _labels_and_times(path: Path, actions: int) -> tuple[np.ndarray, np.ndarray]:
    """``label`` [T, A] and ``timestamp`` [T] of one episode file (the frames are not read)."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="numpy") as handle:
            names = set(handle.keys())
            missing = {"image", "label", "timestamp"} - names
            if missing:
                raise DatasetError(f"{path}: episode is missing arrays {sorted(missing)}")
            steps = int(handle.get_slice("image").get_shape()[0])
            label = handle.get_tensor("label")
            timestamp = handle.get_tensor("timestamp")
    except (OSError, SafetensorError, ValueError) as exc:
        if isinstance(exc, DatasetError):
            raise
        raise DatasetError(f"{path}: unreadable episode file: {exc}") from exc
    if label.shape != (steps, actions) or timestamp.shape != (steps,):
        raise DatasetError(
            f"{path}: label {label.shape} / timestamp {timestamp.shape} do not fit {steps} steps of {actions} actions"
        )
    return np.asarray(label, np.float64), np.asarray(timestamp, np.float64)


def _source(metadata: dict[str, Any]) -> str:
    return str(metadata.get("source") or metadata.get("mode") or "unknown")


def summarize_dataset(root: str | Path) -> dict[str, Any]:
    """The summary as a JSON-ready dict (see the module docstring); DatasetError names a bad file."""
    dataset = EpisodeDataset(root)
    spec = dataset.manifest.action_spec
    obs = dataset.manifest.observation_spec
    episodes, labels = [], []
    sources: dict[str, dict[str, float]] = {}
    for index, path in enumerate(dataset.paths):
        metadata = dataset.metadata(index)
        label, timestamp = _labels_and_times(path, spec.size)
        duration = float(timestamp[-1] - timestamp[0]) if len(timestamp) else 0.0
        source = _source(metadata)
        entry: dict[str, Any] = {"index": index, "file": path.name, "steps": len(label),
                                 "duration_s": duration, "source": source}
        if "log" in metadata:
            entry.update(log=metadata["log"], start_s=metadata.get("start_s"), end_s=metadata.get("end_s"))
        episodes.append(entry)
        labels.append(label)
        totals = sources.setdefault(source, {"episodes": 0, "steps": 0, "duration_s": 0.0})
        totals["episodes"] += 1
        totals["steps"] += len(label)
        totals["duration_s"] += duration
    stacked = np.concatenate(labels) if labels else np.zeros((0, spec.size))
    label_stats = {}
    for i, name in enumerate(spec.names):
        column = stacked[:, i]
        label_stats[name] = {
            "unit": spec.units[i],
            "mean": float(column.mean()) if column.size else math.nan,
            "std": float(column.std()) if column.size else math.nan,
            "min": float(column.min()) if column.size else math.nan,
            "max": float(column.max()) if column.size else math.nan,
        }
    content_hash = dataset.content_hash()
    record_path = dataset.root / CONVERSION_RECORD
    recorded = None
    if record_path.is_file():
        try:
            recorded = json.loads(record_path.read_text(encoding="utf-8")).get("dataset_hash")
        except (OSError, ValueError) as exc:
            raise DatasetError(f"{record_path}: unreadable conversion record: {exc}") from exc
    return {
        "dataset": str(dataset.root),
        "dataset_hash": content_hash,
        "recorded_hash": recorded,
        "hash_matches_record": None if recorded is None else recorded == content_hash,
        "created_by": dataset.manifest.created_by,
        "image_shape": list(obs.image_shape),
        "extras": {name: unit for name, unit in zip(obs.extras, obs.extra_units)},
        "actions": {name: unit for name, unit in zip(spec.names, spec.units)},
        "episodes": episodes,
        "total": {"episodes": len(episodes), "steps": int(stacked.shape[0]),
                  "duration_s": float(sum(e["duration_s"] for e in episodes))},
        "sources": sources,
        "labels": label_stats,
    }


def format_summary(summary: dict[str, Any]) -> str:
    """The summary as a terminal table."""
    height, width, _ = summary["image_shape"]
    total = summary["total"]
    extras = ", ".join(f"{n} [{u}]" for n, u in summary["extras"].items()) or "none"
    lines = [
        f"dataset {summary['dataset']}: {total['episodes']} episodes, {total['steps']} steps, "
        f"{total['duration_s']:.1f} s",
        f"frames {height}x{width}; extras {extras}; actions "
        + ", ".join(f"{n} [{u}]" for n, u in summary["actions"].items()),
    ]
    match = summary["hash_matches_record"]
    note = "" if match is None else (" (matches conversion.json)" if match else " (CHANGED since conversion.json was written)")
    lines.append(f"hash {summary['dataset_hash']}{note}")
    lines.append("")
    lines.append(f"{'#':>4} {'steps':>6} {'seconds':>8}  {'source':<8} from")
    for e in summary["episodes"]:
        origin = ""
        if "log" in e:
            origin = f"{Path(e['log']).name} {e['start_s']:.2f}-{e['end_s']:.2f} s"
        lines.append(f"{e['index']:>4} {e['steps']:>6} {e['duration_s']:>8.2f}  {e['source']:<8} {origin}")
    lines.append("")
    lines.append("sources: " + "; ".join(
        f"{name} {s['episodes']} episodes, {s['steps']} steps, {s['duration_s']:.1f} s"
        for name, s in sorted(summary["sources"].items())
    ))
    lines.append(f"labels over all steps ({total['steps']}):")
    lines.append(f"  {'action':<12} {'unit':<11} {'mean':>9} {'std':>9} {'min':>9} {'max':>9}")
    for name, s in summary["labels"].items():
        lines.append(
            f"  {name:<12} {s['unit']:<11} {s['mean']:>9.4f} {s['std']:>9.4f} {s['min']:>9.4f} {s['max']:>9.4f}"
        )
    return "\n".join(lines)
