"""The deployment commands of the ``raynas`` command line: ``bench`` and ``predict``."""

from __future__ import annotations

import argparse
from pathlib import Path

__all__ = ["add_deploy_commands"]


def _cmd_bench(args: argparse.Namespace) -> int:
    from raynas.deploy_bench import bench

    got = bench(args.model, args.backend, args.threads, tuple(args.size), args.device, args.runs)
    print(f"{args.model} on {got['backend']} ({got['device']}, {got['threads']} thread(s), "
          f"{got['size'][0]}x{got['size'][1]}, batch 1): median {got['median_ms']:.2f} ms, "
          f"p90 {got['p90_ms']:.2f} ms over {got['runs']} runs")  # fmt: skip
    return 0


def _cmd_predict(args: argparse.Namespace) -> int:
    from raynas.predict import predict

    written = predict(args.model, args.images, args.out, args.backend)
    print(f"wrote {len(written)} colour mask(s) to {args.out} ({args.backend})")
    return 0


def add_deploy_commands(sub: argparse._SubParsersAction) -> None:
    """Adds ``raynas bench`` and ``raynas predict`` to the command line's subparsers."""
    bench = sub.add_parser("bench", help="deployment latency of an exported model")
    bench.add_argument("model", type=Path, help="an export folder (best/) or a .onnx file")
    bench.add_argument("--backend", choices=("torch", "onnxruntime"), default="torch")
    bench.add_argument("--threads", type=int, default=1)
    bench.add_argument("--size", type=int, nargs=2, metavar=("H", "W"), default=[512, 1024])
    bench.add_argument("--device", default="cpu", help="cpu or cuda")
    bench.add_argument("--runs", type=int, default=50, help="timed runs (>= 50)")
    bench.set_defaults(func=_cmd_bench)
    predict = sub.add_parser("predict", help="colour masks of images from an exported model")
    predict.add_argument("model", type=Path, help="an export folder (best/) or a .onnx file")
    predict.add_argument("images", type=Path, nargs="+", help="image files")
    predict.add_argument("--out", type=Path, required=True, help="output folder")
    predict.add_argument("--backend", choices=("onnxruntime", "torch"), default="onnxruntime")
    predict.set_defaults(func=_cmd_predict)
