"""``lnn-control explain POLICY``: where the policy looks and what its neurons do, as figures + JSON."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    from lnn_control.seeds import HELD_OUT_SEED_START
    from lnn_control.tasks import TASKS

    parser = subparsers.add_parser(
        "explain",
        help="saliency (VisualBackProp, SmoothGrad) clean vs a condition, neuron traces, liquid time "
        "constants / gates, live wiring, attention numbers",
        description="Drive POLICY for one simulated episode (or read a run log with --log) and write "
        "saliency_strip.png, saliency.mp4, traces.png, time_constants.png (LTC) or gates.png (CfC), "
        "wiring.png and explain.json to --out. Needs the [train] and [sim] extras.",
    )
    parser.add_argument("policy", metavar="POLICY", help="bundle folder/zip or shipped policy name")
    parser.add_argument("--task", choices=sorted(TASKS), default="lane-keeping")
    parser.add_argument("--backend", choices=["pybullet", "mujoco"], default="pybullet")
    parser.add_argument("--condition", default="rain:3",
                        help="domain shift spec compared with the clean twin frames, e.g. rain:3 or fog:2+noise:1")
    parser.add_argument("--seed", type=int, default=HELD_OUT_SEED_START, help="road/forest seed (held out ≥ 1000)")
    parser.add_argument("--log", metavar="RUN.mcap", help="explain a run log of 'lnn-control run' instead of a simulation")
    parser.add_argument("--duration", type=float, default=30.0, metavar="S",
                        help="seconds of the episode to explain (0: the whole episode)")
    parser.add_argument("--onset", type=float, default=0.0, metavar="S",
                        help="the image corruption starts at this time (clean frames before it)")
    parser.add_argument("--neurons", default="all",
                        help="comma-separated neuron groups to plot (motor,command,inter for NCP cores; 'all')")
    parser.add_argument("--samples", type=int, default=8, help="SmoothGrad noisy copies per frame")
    parser.add_argument("--noise", type=float, default=0.15, help="SmoothGrad noise std as a fraction of 255")
    parser.add_argument("--no-video", action="store_true", help="skip saliency.mp4")
    parser.add_argument("--out", default="explain", metavar="DIR", help="output folder (default: ./explain)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from lnn_control.explain.pipeline import ExplainConfig, run_explain
    from lnn_control.explain.saliency import SmoothGradConfig

    neurons = tuple(name.strip() for name in args.neurons.split(",") if name.strip())
    config = ExplainConfig(
        policy=args.policy,
        out=args.out,
        task=args.task,
        backend=args.backend,
        condition=args.condition,
        seed=args.seed,
        log=args.log,
        duration_s=None if args.duration == 0 else args.duration,
        onset_s=args.onset,
        neurons=None if neurons in ((), ("all",)) else neurons,
        smoothgrad=SmoothGradConfig(samples=args.samples, noise=args.noise),
        video=not args.no_video,
        progress=True,
    )
    summary = run_explain(config)
    print(f"explained {summary['steps']} steps ({summary['duration_s']:.1f} s, {summary['outcome']}) "
          f"of {summary['source']} under {summary['condition']} in {summary['timing_s']['total_s']:.1f} s")
    for method in summary["saliency"]["methods"]:
        entry = summary["attention"].get(method, {})
        parts = []
        if entry.get("ssim_clean_vs_condition") is not None:
            parts.append(f"SSIM clean vs {summary['condition']} {entry['ssim_clean_vs_condition']:.3f}")
        for mask, share in entry.get("mass_share", {}).items():
            text = f"{mask} mass {share['condition']:.3f}" if share.get("condition") is not None else ""
            if share.get("clean") is not None:
                text += f" (clean {share['clean']:.3f})"
            if text:
                parts.append(text)
        print(f"  {method:<15} " + "; ".join(parts))
    vanished = summary["saliency"]["smoothgrad"]["vanished_frames"]
    if vanished:
        print(f"note: SmoothGrad's gradients vanished on {vanished} of {summary['steps']} frames (peak "
              f"|d action / d pixel| < {summary['saliency']['smoothgrad']['vanished_below']:g} per grey level): the "
              "policy's response is flat around those frames (saturated sensory synapses: README \"Explain\"); their "
              "SmoothGrad maps are blank and left out of the attention numbers; VisualBackProp does not use gradients")
    print(f"files in {args.out}: " + ", ".join(sorted(summary["files"].values())) + ", explain.json")
    return 0
