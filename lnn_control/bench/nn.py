"""``lnn-control bench nn``: liquid-network speed, ours against ``ncps``, in one process.

Figures (CPU, ``torch.set_num_threads(1)`` for everything so runs are comparable):

- single-step latency at batch 1 (median and p99, microseconds) for each core on the ``ncp19_car``
  wiring (32 features): our compiled stepper, our torch ``step`` (inference mode), and the ``ncps``
  cell called eagerly;
- training throughput: one ``forward + backward + Adam step`` on ``B x T`` sequences (default
  64 x 64), median milliseconds, ours and ``ncps``;
- a full policy step (perception CNN on the default camera frame + core), compiled and torch paths.

Every figure and the ``ncps / ours`` ratios (> 1: we are faster) go into one dict (JSON).
A core is added by one :class:`CoreCase` entry in :data:`CORE_CASES`.
"""

from __future__ import annotations

import importlib.metadata
import platform
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from lnn_control.policies.presets import CoreType

FEATURES = 32
WIRING = "ncp19_car"


@dataclass(frozen=True)
class BenchSettings:
    """Sizes and repetitions. ``quick()`` is for smoke tests (numbers not meaningful)."""

    latency_repeats: int = 2000
    train_repeats: int = 5
    batch: int = 64
    steps: int = 64
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("latency_repeats", "train_repeats", "batch", "steps"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")

    @classmethod
    def quick(cls) -> BenchSettings:
        return cls(latency_repeats=20, train_repeats=1, batch=4, steps=8)


@dataclass(frozen=True)
class CoreCase:
    """How to build one core kind: ours (torch module), its compiled stepper, and the ncps equivalent."""

    build_ours: Callable[[], Any]
    build_stepper: Callable[[Any], Any]
    build_ncps: Callable[[], Any]  # raises ImportError without ncps


def _ltc_ours() -> Any:
    from lnn_control.nn.ltc import LTC
    from lnn_control.nn.wirings import wiring_from_name

    return LTC(wiring_from_name(WIRING, input_dim=FEATURES), seed=0)


def _ltc_stepper(core: Any) -> Any:
    from lnn_control.nn.ltc_stepper import LTCStepper

    return LTCStepper(core)


def _ltc_ncps() -> Any:
    from ncps.torch import LTC
    from ncps.wirings import NCP

    # ncps' LTC defaults to implicit (softplus) constraints, like ours.
    return LTC(FEATURES, NCP(12, 6, 1, 6, 4, 6, 6, seed=22222))


def _cfc_ours() -> Any:
    from lnn_control.nn.cfc import CfC
    from lnn_control.nn.wirings import wiring_from_name

    return CfC(FEATURES, wiring_from_name(WIRING, input_dim=FEATURES))


def _cfc_stepper(core: Any) -> Any:
    from lnn_control.nn.cfc_stepper import CfCStepper

    return CfCStepper.from_module(core)


def _cfc_ncps() -> Any:
    from ncps.torch import CfC
    from ncps.wirings import NCP

    return CfC(FEATURES, NCP(12, 6, 1, 6, 4, 6, 6, seed=22222))


CORE_CASES: dict[CoreType, CoreCase] = {
    "ltc": CoreCase(_ltc_ours, _ltc_stepper, _ltc_ncps),
    "cfc": CoreCase(_cfc_ours, _cfc_stepper, _cfc_ncps),
}


def _stats_us(samples_ns: list[int]) -> dict[str, float]:
    values = np.asarray(samples_ns, dtype=np.float64) / 1000.0
    return {"median": float(np.median(values)), "p99": float(np.percentile(values, 99)), "n": int(values.size)}


def _time_calls(call: Callable[[], Any], repeats: int) -> dict[str, float]:
    """Per-call latency in microseconds after ``max(3, repeats // 10)`` warm-up calls."""
    for _ in range(max(3, repeats // 10)):
        call()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter_ns()
        call()
        samples.append(time.perf_counter_ns() - start)
    return _stats_us(samples)


def _latency(case: CoreCase, settings: BenchSettings, notes: list[str], name: str) -> dict[str, Any]:
    import torch

    generator = torch.Generator().manual_seed(settings.seed)
    x = torch.randn(1, FEATURES, generator=generator)
    out: dict[str, Any] = {}
    core = case.build_ours().eval()
    stepper = case.build_stepper(core)
    x_np = x[0].numpy().astype(np.float64)
    stepper.step(x_np, 1.0)  # compile / load the kernel outside the timing
    out["ours_compiled"] = _time_calls(lambda: stepper.step(x_np, 1.0), settings.latency_repeats)
    state = core.initial_state(1)
    with torch.inference_mode():
        out["ours_torch"] = _time_calls(lambda: core.step(x, state, 1.0), settings.latency_repeats)
    try:
        reference = case.build_ncps().eval()
    except ImportError:
        notes.append(f"{name}: ncps is not installed; only our figures are reported")
        return out
    h = torch.zeros(1, reference.state_size)
    with torch.inference_mode():
        out["ncps_eager"] = _time_calls(lambda: reference.rnn_cell(x, h, 1.0), settings.latency_repeats)
    return out


def _train_step_ms(model: Any, call: Callable[[Any], Any], x: Any, repeats: int) -> dict[str, float]:
    import torch

    optimiser = torch.optim.Adam(model.parameters(), lr=1e-3)

    def one() -> None:
        y = call(x)
        loss = y.square().mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()

    one()  # warm-up (kernel compilation / cache load)
    samples = []
    for _ in range(repeats):
        start = time.perf_counter_ns()
        one()
        samples.append(time.perf_counter_ns() - start)
    stats = _stats_us(samples)
    return {"median": stats["median"] / 1000.0, "min": float(np.min(samples)) / 1e6, "n": stats["n"]}


def _training(case: CoreCase, settings: BenchSettings) -> dict[str, Any]:
    import torch

    generator = torch.Generator().manual_seed(settings.seed)
    x = torch.randn(settings.batch, settings.steps, FEATURES, generator=generator)
    out: dict[str, Any] = {}
    ours = case.build_ours()
    out["ours"] = _train_step_ms(ours, lambda v: ours(v)[0], x, settings.train_repeats)
    try:
        reference = case.build_ncps()
    except ImportError:
        return out
    out["ncps"] = _train_step_ms(reference, lambda v: reference(v)[0], x, settings.train_repeats)
    return out


def _policy_step(core: CoreType, settings: BenchSettings, notes: list[str]) -> dict[str, Any] | None:
    try:
        from lnn_control.policies.presets import build_policy
    except ImportError as exc:
        notes.append(f"policy step skipped: {exc}")
        return None
    policy = build_policy(WIRING, core=core, seed=settings.seed)
    spec = policy.observation_spec
    rng = np.random.default_rng(settings.seed)
    observation: dict[str, Any] = {"image": rng.integers(0, 256, spec.image_shape, dtype=np.uint8)}
    for extra in spec.extras:
        observation[extra] = np.zeros(1, dtype=np.float32)
    period = 1.0 / float(policy.config.control_rate_hz)
    repeats = max(5, settings.latency_repeats // 4)
    out: dict[str, Any] = {"image_shape": list(spec.image_shape)}
    for label, compiled in (("compiled", True), ("torch", False)):
        policy.use_compiled_stepper = compiled
        policy.reset()
        out[label] = _time_calls(lambda: policy.act(observation, period), repeats)
    return out


def _ratio(numerator: dict[str, Any] | None, denominator: dict[str, Any] | None) -> float | None:
    if not numerator or not denominator:
        return None
    return float(numerator["median"] / denominator["median"])


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def run_nn_bench(settings: BenchSettings, progress: Callable[[str], None] = lambda _: None) -> dict[str, Any]:
    """Run every figure; returns the JSON-ready report (see the module docstring)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    notes: list[str] = []
    report: dict[str, Any] = {
        "settings": asdict(settings),
        "wiring": WIRING,
        "features": FEATURES,
        "torch_threads": 1,
        "machine": {"python": platform.python_version(), "processor": platform.machine(),
                    "torch": torch.__version__, "numba": _version("numba"), "ncps": _version("ncps")},
        "latency_us": {},
        "train_ms": {},
        "policy_step_us": {},
        "ratios": {},
        "notes": notes,
    }
    try:
        torch.manual_seed(settings.seed)
        for name, case in CORE_CASES.items():
            progress(f"{name}: single-step latency")
            latency = _latency(case, settings, notes, name)
            report["latency_us"][name] = latency
            progress(f"{name}: training step B={settings.batch} T={settings.steps}")
            train = _training(case, settings)
            report["train_ms"][name] = train
            report["ratios"][name] = {
                "latency_ncps_over_ours_compiled": _ratio(latency.get("ncps_eager"), latency["ours_compiled"]),
                "latency_ncps_over_ours_torch": _ratio(latency.get("ncps_eager"), latency["ours_torch"]),
                "train_ncps_over_ours": _ratio(train.get("ncps"), train["ours"]),
            }
            progress(f"{name}: policy step")
            policy = _policy_step(name, settings, notes)
            if policy is not None:
                report["policy_step_us"][name] = policy
    finally:
        torch.set_num_threads(threads)
    return report


def format_table(report: dict[str, Any]) -> str:
    """Readable summary of :func:`run_nn_bench`'s report."""
    settings = report["settings"]
    lines = [f"lnn-control bench nn  (wiring {report['wiring']}, {report['features']} features, 1 torch thread)"]
    lines.append("")
    lines.append(f"{'single step, batch 1':<34}{'median us':>12}{'p99 us':>12}")
    for core, figures in report["latency_us"].items():
        for label, stats in figures.items():
            lines.append(f"  {core + ' ' + label:<32}{stats['median']:>12.1f}{stats['p99']:>12.1f}")
    lines.append("")
    title = f"training B={settings['batch']} T={settings['steps']} fwd+bwd+Adam"
    lines.append(f"{title:<34}{'median ms':>12}")
    for core, figures in report["train_ms"].items():
        for label, stats in figures.items():
            lines.append(f"  {core + ' ' + label:<32}{stats['median']:>12.1f}")
    if report["policy_step_us"]:
        lines.append("")
        lines.append(f"{'policy act (CNN + core)':<34}{'median us':>12}{'p99 us':>12}")
        for core, figures in report["policy_step_us"].items():
            for label in ("compiled", "torch"):
                stats = figures[label]
                lines.append(f"  {core + ' ' + label:<32}{stats['median']:>12.1f}{stats['p99']:>12.1f}")
    lines.append("")
    lines.append("ncps / ours (> 1: ours faster)")
    for core, ratios in report["ratios"].items():
        for label, value in ratios.items():
            shown = "n/a" if value is None else f"{value:.1f}x"
            lines.append(f"  {core + ' ' + label:<44}{shown:>8}")
    for note in report["notes"]:
        lines.append(f"note: {note}")
    return "\n".join(lines)
