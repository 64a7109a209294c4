"""``ClockedSimRobot``: the simulator in its own process, stepping on the control loop's clock.

With :class:`~lnn_control.runtime.sim.lockstep.LockstepSimRobot` physics and rendering run inside ``read()``,
so every slow simulator step (PyBullet: median 6–8 ms, 0.1–0.5 % of steps 16–27 ms on a 2-core VM)
lands inside a control period and can make the loop miss its deadline. A real robot's camera does
not work that way: the frame is captured elsewhere and ``read()`` only fetches it. This robot
does the same with the simulator:

- ``connect()`` starts a child interpreter (``python -m lnn_control.runtime.sim.clocked``) that
  makes the env, resets it with ``seed`` and sends the first frame.
- ``read()`` returns the newest frame the child has sent and tells the child when the next read
  is due: now + the env's step period. If the frame of the step announced at the previous read
  is late it waits for it at most ``max_frame_wait_s`` (a quarter period), then returns the
  previous frame (the loop holds its command). The first read after ``connect()`` steps once
  with the neutral command and waits, so the loop does not start on a frame as old as the
  connection.
- The child steps the env once per read, with the latest command, starting ``lead`` seconds
  before that next read so the frame is fresh when the loop fetches it. ``lead`` follows the
  child's own step times: the 99.5th percentile of the last 400 steps + 1 ms, within
  [2 ms, 80 % of a period]. Sense→act latency stays a few milliseconds and a slow step delivers
  its frame late (the loop sees the previous frame again and holds its command) instead of
  stretching the period.
- ``write(action)`` sends the (clipped) command; ``stop()`` sends the neutral one.
- An episode that ends is reset with the next seed in the child (episode ``i`` uses
  ``seed + i``); ``episodes_finished`` and ``last_episode_info`` follow on the next ``read()``.

Messages are raw bytes on one socket pair (struct header + float64 values + image bytes; JSON
for specs and episode info): nothing is pickled. The child ignores SIGINT (the loop owns
shutdown) and exits when the pipe closes, when told to, or when its parent dies. A child that
fails sends its traceback; the next ``read()`` raises :class:`RobotError` with it.

Unlike ``LockstepSimRobot`` this is not deterministic: which command a step uses depends on timing. Use
``LockstepSimRobot`` (``robot.sim.pacing: lockstep``) to reproduce a run step for step.
"""

from __future__ import annotations

import json
import os
import signal
import struct
import time
import traceback
from collections import deque
from typing import Any

import numpy as np

from lnn_control.runtime.core.robot import Observation, RobotError
from lnn_control.runtime.sim.lockstep import SimulatedRobot
from lnn_control.spec import ActionSpec, ObservationSpec

_FRAME_HEADER = struct.Struct("<dddqqqI")  # capture time, step s, lead s, read tag, episode steps, episodes done, extras
_NEXT_READ_BODY = struct.Struct("<dq")  # when the next read is due (monotonic s), its tag
_READY, _FRAME, _EPISODE, _ERROR = b"S", b"F", b"E", b"X"  # child -> parent
_COMMAND, _NEXT_READ, _QUIT = b"C", b"R", b"Q"  # parent -> child
_START_TIMEOUT_S = 120.0  # making an env (imports, forest / road building) can take a while
_LEAD_WINDOW = 400  # steps the lead is computed over (8 s at 50 Hz)
_LEAD_QUANTILE = 0.995


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


class ClockedSimRobot(SimulatedRobot):
    """A simulated robot whose env runs in a child process; see the module docstring.

    env_id / env_kwargs / seed / neutral_action: see :class:`~lnn_control.runtime.sim.lockstep.SimulatedRobot`.
    start_timeout_s: how long ``connect()`` waits for the child's first frame.
    max_frame_wait_s: how long ``read()`` waits for a frame that is due but late (default: a
        quarter of the env's step period).
    """

    def __init__(
        self,
        env_id: str,
        env_kwargs: dict[str, Any] | None = None,
        seed: int = 0,
        neutral_action: tuple[float, ...] | None = None,
        start_timeout_s: float = _START_TIMEOUT_S,
        max_frame_wait_s: float | None = None,
    ) -> None:
        super().__init__(env_id, env_kwargs, seed, neutral_action)
        self.start_timeout_s = float(start_timeout_s)
        self._max_frame_wait_arg = max_frame_wait_s
        self._process: Any = None
        self._conn: Any = None
        self._period: float | None = None
        self._latest: Observation | None = None
        self._latest_tag = -1  # which announced read the newest frame answers (-1: the reset frame)
        self._announced = -1  # tag of the last read announced to the child
        self.step_durations: deque[float] = deque(maxlen=10_000)
        """Seconds the child took per env step (recent ones), for benchmarks."""
        self.lead_s: float | None = None
        """How early before a read the child last started its step (s)."""

    @property
    def control_period_s(self) -> float | None:
        """Simulated seconds per env step (``control_dt`` or ``dt`` of the env), None if it states none."""
        return self._period

    @property
    def max_frame_wait_s(self) -> float:
        """How long ``read()`` waits for a due frame (s)."""
        if self._max_frame_wait_arg is not None:
            return float(self._max_frame_wait_arg)
        return 0.25 * (self._period if self._period is not None else 0.05)

    @property
    def is_connected(self) -> bool:
        return self._process is not None

    # -- life cycle -----------------------------------------------------------------------------
    def connect(self) -> None:
        if self._process is not None:
            return
        import socket
        import subprocess
        import sys
        from multiprocessing.connection import Connection

        # A fresh interpreter started with `python -m` (not multiprocessing's spawn, which re-imports
        # the caller's __main__ and fails in scripts without a main guard); the pipe is a socket pair.
        parent_socket, child_socket = socket.socketpair()
        setup = {"env_id": self.env_id, "env_kwargs": self.env_kwargs, "seed": self.seed,
                 "parent_pid": os.getpid(), "sys_path": sys.path}
        try:
            process = subprocess.Popen(
                [sys.executable, "-m", "lnn_control.runtime.sim.clocked", str(child_socket.fileno()), json.dumps(setup)],
                pass_fds=(child_socket.fileno(),),
            )
        except (OSError, TypeError) as exc:
            parent_socket.close()
            raise RobotError(f"cannot start the simulator process: {exc!r}") from exc
        finally:
            child_socket.close()
        self._process, self._conn = process, Connection(parent_socket.detach())
        try:
            ready = self._await_ready()
            self._set_specs((ObservationSpec.from_dict(ready["observation_spec"]),
                             ActionSpec.from_dict(ready["action_spec"])))
            self._period = ready["control_period_s"]
            self._send(_COMMAND + self._require_neutral().astype("<f8").tobytes())
            self._latest, self._latest_tag, self._announced = None, -1, -1
            deadline = time.monotonic() + self.start_timeout_s
            while self._latest is None:  # the reset frame
                if not self._receive(max(deadline - time.monotonic(), 0.0)):
                    raise RobotError(f"the simulator process sent no first frame within {self.start_timeout_s:g} s")
        except BaseException:
            self.disconnect()
            raise

    def _await_ready(self) -> dict[str, Any]:
        deadline = time.monotonic() + self.start_timeout_s
        while True:
            remaining = deadline - time.monotonic()
            try:
                arrived = self._conn.poll(max(remaining, 0.0))
            except (EOFError, OSError):
                arrived = True
            if not arrived:
                raise RobotError(
                    f"the simulator process for {self.env_id!r} did not start within {self.start_timeout_s:g} s"
                )
            try:
                message = self._conn.recv_bytes()
            except (EOFError, OSError) as exc:
                raise RobotError(
                    f"the simulator process for {self.env_id!r} exited while starting "
                    f"(exit code {self._process.poll()})"
                ) from exc
            kind, body = message[:1], message[1:]
            if kind == _READY:
                return json.loads(body)
            if kind == _ERROR:
                raise RobotError(body.decode())

    def disconnect(self) -> None:
        process, conn = self._process, self._conn
        self._process = self._conn = None
        if conn is not None:
            try:
                conn.send_bytes(_QUIT)
            except (OSError, ValueError):
                pass
        if process is not None:
            import subprocess

            try:
                process.wait(timeout=5.0)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5.0)
        if conn is not None:
            conn.close()

    # -- robot interface ------------------------------------------------------------------------
    def read(self) -> Observation:
        if self._conn is None:
            raise RobotError("ClockedSimRobot is not connected; call connect() first")
        while self._receive(0.0):
            pass
        if self._process.poll() is not None:
            raise RobotError(f"the simulator process for {self.env_id!r} exited (exit code {self._process.returncode})")
        if self._announced < 0:  # the reset frame is as old as connect(): step once now and wait for it
            self._announce(time.monotonic())
            self._await_frame(self.start_timeout_s, required=True)
        else:  # the frame of the step announced last read is due: wait a little for it if late
            self._await_frame(self.max_frame_wait_s, required=False)
        period = self._period if self._period is not None else 0.05
        self._announce(time.monotonic() + period)
        if self._latest is None:
            raise RobotError("the simulator process has sent no frame yet")
        return self._latest

    def _announce(self, due: float) -> None:
        self._announced += 1
        self._send(_NEXT_READ + _NEXT_READ_BODY.pack(due, self._announced))

    def _await_frame(self, timeout: float, required: bool) -> None:
        """Take frames until the one answering the last announced read arrives or ``timeout`` s pass."""
        deadline = time.monotonic() + timeout
        while self._latest_tag < self._announced:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not self._receive(remaining):
                if required:
                    raise RobotError(f"the simulator process sent no frame within {timeout:g} s")
                return

    def _receive(self, timeout: float) -> bool:
        """Handle one message from the child if one arrives within ``timeout`` s; False if none did."""
        try:
            if not self._conn.poll(timeout):
                return False
            message = self._conn.recv_bytes()
        except (EOFError, OSError) as exc:
            raise RobotError(
                f"the simulator process for {self.env_id!r} is gone (exit code {self._process.poll()})"
            ) from exc
        self._handle(message)
        return True

    def _handle(self, message: bytes) -> None:
        kind, body = message[:1], message[1:]
        if kind == _FRAME:
            stamp, step_s, lead_s, tag, steps, finished, extras_count = _FRAME_HEADER.unpack_from(body)
            offset = _FRAME_HEADER.size
            values = np.frombuffer(body, "<f8", extras_count, offset)
            offset += 8 * extras_count
            # a writable copy of its own (frombuffer views of bytes are read-only; consumers keep frames)
            obs_spec = self._require_specs()[0]
            image = np.frombuffer(body, np.uint8, offset=offset).reshape(obs_spec.image_shape).copy()
            names = obs_spec.extras
            self._latest = Observation(image, stamp, {name: float(v) for name, v in zip(names, values)})
            self.episode_steps, self.episodes_finished, self._latest_tag = int(steps), int(finished), int(tag)
            if step_s > 0:
                self.step_durations.append(step_s)
                self.lead_s = lead_s
        elif kind == _EPISODE:
            self.last_episode_info = json.loads(body)
        elif kind == _ERROR:
            raise RobotError(f"the simulator process failed:\n{body.decode()}")

    def write(self, action: np.ndarray) -> np.ndarray:
        applied = self._hold(action)
        self._send(_COMMAND + applied.astype("<f8").tobytes())
        return applied

    def stop(self) -> None:
        if self._conn is not None and self._neutral is not None:
            self._held = self._neutral.copy()
            self._send(_COMMAND + self._held.astype("<f8").tobytes())

    def _send(self, message: bytes) -> None:
        try:
            self._conn.send_bytes(message)
        except (OSError, ValueError) as exc:
            raise RobotError(f"the simulator process for {self.env_id!r} is gone: {exc!r}") from exc


# -- the child process ------------------------------------------------------------------------------
def serve(conn: Any, env_id: str, env_kwargs: dict[str, Any], seed: int, parent_pid: int) -> None:
    """Child-process main: make the env, then step it once per announced read (module docstring)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole process group; the parent decides
    try:
        _serve(conn, env_id, env_kwargs, seed, parent_pid)
    except (EOFError, BrokenPipeError, ConnectionResetError):
        pass  # the parent went away
    except RobotError as exc:  # an expected failure (bad env id or kwargs): its message says what to do
        try:
            conn.send_bytes(_ERROR + str(exc).encode())
        except OSError:
            pass
    except BaseException:
        try:
            conn.send_bytes(_ERROR + traceback.format_exc().encode())
        except OSError:
            pass
    finally:
        conn.close()


def _main(argv: list[str]) -> None:
    """``python -m lnn_control.runtime.sim.clocked FD SETUP_JSON``, started by :meth:`ClockedSimRobot.connect`."""
    import sys
    from multiprocessing.connection import Connection

    setup = json.loads(argv[1])
    sys.path[:0] = [p for p in setup["sys_path"] if p not in sys.path]  # the parent's, for envs registered by its modules
    serve(Connection(int(argv[0])), setup["env_id"], setup["env_kwargs"], int(setup["seed"]), int(setup["parent_pid"]))


def _serve(conn: Any, env_id: str, env_kwargs: dict[str, Any], seed: int, parent_pid: int) -> None:
    from lnn_control.runtime.sim.lockstep import env_control_period, make_env, specs_from_env

    env = make_env(env_id, env_kwargs)
    try:
        obs_spec, act_spec = specs_from_env(env)
        period = env_control_period(env)
        conn.send_bytes(_READY + json.dumps({
            "observation_spec": obs_spec.to_dict(), "action_spec": act_spec.to_dict(), "control_period_s": period,
        }).encode())
        period = 0.05 if period is None else period
        command = np.zeros(act_spec.size)
        episodes, steps = 0, 0
        durations: deque[float] = deque(maxlen=_LEAD_WINDOW)
        lead = 0.5 * period

        def send_frame(obs: dict[str, Any], step_s: float, tag: int) -> None:
            extras = np.array([float(np.asarray(obs[name]).reshape(-1)[0]) for name in obs_spec.extras], "<f8")
            header = _FRAME_HEADER.pack(time.monotonic(), step_s, lead, tag, steps, episodes, len(extras))
            conn.send_bytes(_FRAME + header + extras.tobytes() + np.ascontiguousarray(obs["image"], np.uint8).tobytes())

        obs, _ = env.reset(seed=seed)
        send_frame(obs, 0.0, -1)
        step_at: float | None = None  # when to start the next step (monotonic s)
        tag = -1  # the announced read that step answers
        while True:
            timeout = 0.5 if step_at is None else max(step_at - time.monotonic(), 0.0)
            if conn.poll(timeout):
                while conn.poll(0):  # every pending message: the step must use the newest command
                    message = conn.recv_bytes()
                    kind = message[:1]
                    if kind == _COMMAND:
                        command = np.frombuffer(message, "<f8", offset=1).astype(np.float32)
                    elif kind == _NEXT_READ:
                        next_read, tag = _NEXT_READ_BODY.unpack_from(message, 1)
                        step_at = next_read - lead
                    elif kind == _QUIT:
                        return
                if step_at is None or time.monotonic() < step_at:
                    continue
            if step_at is None:
                if os.getppid() != parent_pid:
                    return  # orphaned
                continue
            step_at = None
            started = time.monotonic()
            obs, _, terminated, truncated, info = env.step(command)
            steps += 1
            step_s = time.monotonic() - started
            durations.append(step_s)
            if len(durations) >= 10:
                lead = min(max(float(np.quantile(durations, _LEAD_QUANTILE)) + 1e-3, 2e-3), 0.8 * period)
            if terminated or truncated:
                episode = {**info, "steps": steps, "terminated": bool(terminated)}
                conn.send_bytes(_EPISODE + json.dumps(episode, default=_json_default).encode())
                episodes, steps = episodes + 1, 0
                obs, _ = env.reset(seed=seed + episodes)
            send_frame(obs, step_s, tag)
    finally:
        env.close()


__all__ = ["ClockedSimRobot", "serve"]

if __name__ == "__main__":
    import sys

    _main(sys.argv[1:])
