"""A recorder node in a process of its own: ``python lnn_ros2_recorder.py OUT.json LISTEN_PORT CONNECT_PORT``.

Records the /cmd_vel commands and camera frames it receives (``time.monotonic()`` arrival times,
comparable across processes on Linux) and writes them to OUT.json on SIGINT / SIGTERM. A separate
process measures arrival times without sharing an interpreter lock with the robot it watches."""

from __future__ import annotations

import json
import signal
import sys
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from lnn_ros2_testkit import Recorder, peer  # noqa: E402


def main(out: str, listen_port: int, connect_port: int) -> None:
    done = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: done.set())
    recorder = Recorder(peer(listen=(listen_port,), connect=(connect_port,)))
    print("ready", flush=True)
    done.wait()
    commands, frames = recorder.snapshot()
    recorder.close()
    Path(out).write_text(json.dumps({
        "commands": [{"arrival": c.arrival, "zero": c.zero} for c in commands],
        "frames": [arrival for arrival, _ in frames],
    }))


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
