"""MCAP run logs: round trip, Foxglove schemas, image rate, and survival of a SIGKILL."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from mcap.reader import NonSeekingReader, make_reader

from lnn_control.runtime.core.loop import StepRecord
from lnn_control.runtime.core.safety import SafetyEvent, SafetyEventKind
from lnn_control.runtime.logs.runlog import LogConfig, RunLogWriter, decode_image, read_run_log


def record(step: int, t: float, image: np.ndarray) -> StepRecord:
    return StepRecord(
        step=step, slot_time=t, wake_time=t + 1e-4, frame_timestamp=t - 2e-3, frame_index=step,
        state="run", dt=0.02, command=np.array([2.0 * step, -1.0], np.float32),
        sent=np.array([0.1 * step, -0.5], np.float32), applied=np.array([0.1 * step, -0.5], np.float32),
        write_time=t + 3e-3, latency=5e-3, compute_time=2.9e-3,
        neurons=np.arange(19, dtype=np.float32) * step, image=image, extras={"speed": 1.25},
    )


def test_round_trip_with_foxglove_schemas(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (16, 24, 3), dtype=np.uint8) for _ in range(6)]
    path = tmp_path / "run.mcap"
    with RunLogWriter(path, ("steering", "throttle"), LogConfig(image_format="png"), {"rate_hz": 50.0}) as log:
        for k, image in enumerate(images):
            log.write_step(record(k, 100.0 + 0.02 * k, image))
        log.write_event(SafetyEvent(100.05, SafetyEventKind.WATCHDOG_TRIP, "frame age 60 ms"))
    # mcap's own seeking reader (summary present after a clean close)
    with open(path, "rb") as f:
        reader = make_reader(f)
        summary = reader.get_summary()
        schemas = {s.name for s in summary.schemas.values()}
        assert "foxglove.CompressedImage" in schemas
        assert all(s.encoding == "jsonschema" for s in summary.schemas.values())
        counts = {summary.channels[cid].topic: n for cid, n in summary.statistics.channel_message_counts.items()}
    assert counts["/camera/image"] == 6 and counts["/commands/sent"] == 6 and counts["/safety/events"] == 1
    log = read_run_log(path)
    assert log.complete and log.action_names == ("steering", "throttle")
    assert json.loads(log.metadata["rate_hz"]) == 50.0
    frames = log.topic("/camera/image")
    assert frames[0].payload["format"] == "png"
    for k, frame in enumerate(frames):
        assert frame.sequence == k
        assert np.array_equal(decode_image(base64.b64decode(frame.payload["data"])), images[k])  # lossless
    sent = log.topic("/commands/sent")
    assert sent[3].payload["values"] == pytest.approx({"steering": 0.3, "throttle": -0.5})
    assert log.topic("/commands/policy")[2].payload["values"]["steering"] == 4.0
    assert log.topic("/policy/neurons")[2].payload["activity"][3] == 6.0
    timing = log.topic("/loop/timing")[1].payload
    assert timing["dt_s"] == 0.02 and timing["frame_timestamp_s"] == pytest.approx(100.018)
    assert timing["extras"] == {"speed": 1.25} and timing["lateness_s"] == pytest.approx(1e-4)
    event = log.topic("/safety/events")[0].payload
    assert event["kind"] == "watchdog_trip" and event["time_s"] == 100.05
    # message times are wall-clock ns derived from the monotonic stamp + stored offset
    offset = float(log.metadata["monotonic_to_unix_offset_s"])
    assert frames[0].log_time_ns == pytest.approx((99.998 + offset) * 1e9, abs=1e3)


def test_image_rate_limits_logged_frames(tmp_path: Path) -> None:
    path = tmp_path / "run.mcap"
    image = np.zeros((8, 8, 3), np.uint8)
    with RunLogWriter(path, ("steering", "throttle"), LogConfig(image_rate_hz=10.0, jpeg_quality=50)) as log:
        for k in range(50):  # 1 s at 50 Hz
            log.write_step(record(k, 10.0 + 0.02 * k, image))
    log = read_run_log(path)
    assert len(log.topic("/camera/image")) == 10
    assert len(log.topic("/loop/timing")) == 50
    logged = [m.payload["image_logged"] for m in log.topic("/loop/timing")]
    assert sum(logged) == 10 and logged[0] and logged[5] and not logged[1]


def test_bad_config_and_bad_file(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="jpeg_quality"):
        LogConfig(jpeg_quality=0)
    with pytest.raises(ValueError, match="image_rate_hz"):
        LogConfig(image_rate_hz=-1.0)
    junk = tmp_path / "junk.mcap"
    junk.write_bytes(b"definitely not mcap")
    with pytest.raises(ValueError, match="not a readable MCAP run log"):
        read_run_log(junk)


WRITER = """
import sys, time
import numpy as np
sys.path.insert(0, sys.argv[2])
from test_runlog import record
from lnn_control.runtime.logs.runlog import LogConfig, RunLogWriter
log = RunLogWriter(sys.argv[1], ("steering", "throttle"), LogConfig(chunk_size_bytes=4096))
rng = np.random.default_rng(1)
k = 0
while True:
    log.write_step(record(k, time.monotonic(), rng.integers(0, 256, (32, 48, 3), dtype=np.uint8)))
    k += 1
    if k == 200:
        print("written", flush=True)
"""


@pytest.mark.slow
def test_killed_writer_leaves_a_readable_log(tmp_path: Path) -> None:
    path = tmp_path / "crash.mcap"
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    proc = subprocess.Popen(
        [sys.executable, str(script), str(path), str(Path(__file__).parent)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout.readline().strip() == "written"
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    # mcap's reader, record by record, until the half-written tail
    count = 0
    with open(path, "rb") as f:
        try:
            for _schema, _channel, _message in NonSeekingReader(f).iter_messages(log_time_order=False):
                count += 1
        except Exception:  # noqa: BLE001 - the killed process left a partial record at the end
            pass
    assert count > 0
    log = read_run_log(path)
    assert not log.complete
    timing = log.topic("/loop/timing")
    assert len(timing) >= 150  # 4 KiB chunks: at most a few steps lost
    assert [m.sequence for m in timing] == list(range(len(timing)))
