"""``lnn-control export POLICY --format onnx --out FILE``: a policy bundle as a single-step ONNX model."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "export",
        help="export a policy bundle for edge runtimes (single-step ONNX with state in/out)",
        description=(
            "Export the full policy (CNN + liquid core + output scaling) as one control step with the "
            "recurrent state as input and output, then check ONNX Runtime against torch on a short rollout."
        ),
    )
    parser.add_argument("policy", metavar="POLICY", help="policy bundle: a directory (config.json + model.safetensors) or its .zip")
    parser.add_argument("--format", choices=["onnx"], default="onnx", help="export format (default: onnx)")
    parser.add_argument("--out", metavar="FILE", help="output file (default: next to POLICY, named POLICY.onnx)")
    parser.add_argument("--opset", type=int, default=18, help="ONNX opset, >= 17 (default: 18)")
    parser.add_argument(
        "--tolerance", type=float, default=1e-5,
        help="largest allowed |torch - ONNX Runtime| on the check rollout (default: 1e-5)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from lnn_control.cli import CommandError
    from lnn_control.export.onnx import export_onnx, verify_onnx
    from lnn_control.policies.bundle import load_policy

    bundle = Path(args.policy)
    default = bundle.with_suffix(".onnx") if bundle.is_file() else bundle.parent / f"{bundle.name}.onnx"
    out = Path(args.out) if args.out else default
    if out.resolve() == bundle.resolve() or out.is_dir():
        raise CommandError(f"--out {out} is a directory; give a file name such as {bundle.name}.onnx")
    policy = load_policy(bundle)
    export_onnx(policy, out, opset=args.opset)
    difference = verify_onnx(policy, out)
    if difference > args.tolerance:
        out.unlink(missing_ok=True)
        raise CommandError(
            f"ONNX Runtime differs from torch by {difference:.3g} > {args.tolerance:g}; the file was removed. "
            "Try a newer opset (--opset) or report the core type"
        )
    size_kib = out.stat().st_size / 1024
    print(f"wrote {out} ({size_kib:.0f} KiB, opset {args.opset}); max |torch - onnxruntime| = {difference:.2e}")
    return 0
