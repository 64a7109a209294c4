"""The run log's layout: format version, topics and their JSON schemas (see
:mod:`lnn_control.runtime.logs.runlog` for what each topic holds)."""

from __future__ import annotations

from typing import Any

LOG_FORMAT_VERSION = 2
"""Run-log layout version: 1 (no key) = before teleop; 2 adds ``/commands/human``, ``source`` on
``/commands/sent`` (stop steps logged too) and ``mode`` / ``takeover`` in the ``run`` metadata. Version 2
logs may also carry ``episode`` on ``/loop/timing`` (simulated robots: the episode a frame belongs to; a
reset to a new road is a discontinuity that ``dataset from-log`` splits at); readers treat it as optional."""

COMPRESSED_IMAGE_SCHEMA = {
    "title": "foxglove.CompressedImage",
    "type": "object",
    "properties": {
        "timestamp": {
            "type": "object",
            "properties": {"sec": {"type": "integer"}, "nsec": {"type": "integer"}},
        },
        "frame_id": {"type": "string"},
        "data": {"type": "string", "contentEncoding": "base64"},
        "format": {"type": "string"},
    },
}


def _object_schema(title: str, properties: dict[str, Any]) -> dict[str, Any]:
    return {"title": title, "type": "object", "properties": properties}


_TIME = {"type": "object", "properties": {"sec": {"type": "integer"}, "nsec": {"type": "integer"}}}
_COMMAND_FIELDS: dict[str, Any] = {
    "timestamp": _TIME,
    "step": {"type": "integer"},
    "values": {"type": "object", "additionalProperties": {"type": ["number", "null"]}},
}
COMMAND_SCHEMA = _object_schema(
    "lnn_control.Command",
    {**_COMMAND_FIELDS, "source": {"type": "string", "enum": ["policy", "human", "stop"]}},
)
HUMAN_COMMAND_SCHEMA = _object_schema(
    "lnn_control.HumanCommand",
    {**_COMMAND_FIELDS, "deadman": {"type": "boolean"}, "takeover": {"type": "boolean"}},
)
NEURON_SCHEMA = _object_schema(
    "lnn_control.NeuronActivity",
    {"timestamp": _TIME, "step": {"type": "integer"}, "activity": {"type": "array", "items": {"type": ["number", "null"]}}},
)
TIMING_SCHEMA = _object_schema(
    "lnn_control.LoopTiming",
    {
        "timestamp": _TIME,
        "step": {"type": "integer"},
        "state": {"type": "string"},
        "dt_s": {"type": ["number", "null"]},
        "frame_timestamp_s": {"type": "number"},
        "wake_time_s": {"type": "number"},
        "slot_time_s": {"type": "number"},
        "write_time_s": {"type": "number"},
        "latency_s": {"type": "number"},
        "compute_s": {"type": "number"},
        "lateness_s": {"type": "number"},
        "image_logged": {"type": "boolean"},
        "episode": {"type": ["integer", "null"]},
        "extras": {"type": "object", "additionalProperties": {"type": "number"}},
    },
)
EVENT_SCHEMA = _object_schema(
    "lnn_control.SafetyEvent",
    {"timestamp": _TIME, "kind": {"type": "string"}, "detail": {"type": "string"}, "time_s": {"type": "number"}},
)

TOPICS = {
    "/camera/image": COMPRESSED_IMAGE_SCHEMA,
    "/commands/policy": COMMAND_SCHEMA,
    "/commands/sent": COMMAND_SCHEMA,
    "/commands/applied": COMMAND_SCHEMA,
    "/commands/human": HUMAN_COMMAND_SCHEMA,
    "/policy/neurons": NEURON_SCHEMA,
    "/loop/timing": TIMING_SCHEMA,
    "/safety/events": EVENT_SCHEMA,
}
