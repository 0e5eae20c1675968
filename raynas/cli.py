"""The ``raynas`` command line."""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
import traceback
from collections.abc import Sequence
from typing import TYPE_CHECKING

import raynas

if TYPE_CHECKING:
    from raynas.core.complexity import PathComplexity
    from raynas.core.space import SearchSpace

__all__ = ["main"]


def _cmd_synth(args: argparse.Namespace) -> int:
    from raynas.data.synth import SynthSpec, generate

    spec = SynthSpec(args.seed, args.size, args.num_train, args.num_val)
    start = time.perf_counter()
    root = generate(args.out, spec, overwrite=args.overwrite)
    print(
        f"wrote {spec.num_train} train / {spec.num_val} val images of {spec.size}x{spec.size} "
        f"to {root} in {time.perf_counter() - start:.1f} s"
    )
    return 0


def _cmd_space(args: argparse.Namespace) -> int:
    from raynas.config import cost_input_size, load_config
    from raynas.core.complexity import PathComplexity
    from raynas.core.errors import InvalidValueError
    from raynas.core.seg_space import BackboneSettings, space_from_model_cfg

    cfg = load_config(args.config, args.cfg_options)
    if not isinstance(cfg.get("model"), dict) or "backbone" not in cfg.model:
        raise InvalidValueError(
            f"{args.config} defines no supernet model (model.backbone): raynas space reads a "
            "supernet config, e.g. configs/quickstart.py"
        )
    space = space_from_model_cfg(cfg.model)
    print(space.describe())
    size = cfg.model.get("data_preprocessor", {}).get("size")
    if size:
        _print_cost_ranges(space, PathComplexity.from_model_cfg(cfg.model, cost_input_size(cfg)))
    settings = BackboneSettings.from_cfg(cfg.model["backbone"].get("arch_settings"))
    notes = settings.degenerate_dilations(tuple(size)) if size else []
    if notes:
        print(f"note: at the {size[0]}x{size[1]} input, these dilations reach past the feature "
              "map (a 3x3 kernel then acts as 1x1), yet each is one more layer configuration "
              "for the supernet to train (experiments/sharing/):\n  "
              + "\n  ".join(notes))  # fmt: skip
    return 0


def _print_cost_ranges(space: SearchSpace, table: PathComplexity) -> None:
    """What ``tune_cfg.search.constraints`` can ask of ``space``, at ``table``'s input size."""
    h, w = table.input_size
    for key, at in (("flops", f" at {h}x{w}"), ("params", "")):
        low, high = table.span(space, key)
        print(f"{key}{at}: {_eng(low)} (cheapest path) to {_eng(high)} (dearest path)")


def _eng(value: float) -> str:
    """``value`` as a config would write it: 15.73e6, 63.82e3."""
    exp = 3 * math.floor(math.log10(abs(value)) / 3) if value else 0
    return f"{value / 10**exp:.4g}e{exp}"


def _cmd_train(args: argparse.Namespace) -> int:
    from mmengine.runner import Runner

    from raynas.config import apply_selection_split, load_config
    from raynas.tune.checks import check_datasets

    cfg = load_config(args.config, args.cfg_options)
    check_datasets(cfg)  # generates a missing synthseg dataset
    apply_selection_split(cfg)
    cfg.work_dir = args.work_dir or cfg.get("work_dir") or f"work_dirs/{args.config.stem}"
    cfg.resume = args.resume
    Runner.from_cfg(cfg).train()
    return 0


def _resolve_arch(spec: str, cfg) -> dict:
    from raynas.core.arch_io import resolve_arch
    from raynas.core.seg_space import space_from_model_cfg

    return resolve_arch(space_from_model_cfg(cfg.model), spec)


def _cmd_export(args: argparse.Namespace) -> int:
    from raynas.config import load_config
    from raynas.export import export_subnet

    cfg = load_config(args.config, args.cfg_options)
    arch = _resolve_arch(args.arch, cfg)
    result = export_subnet(cfg, args.checkpoint, arch, args.out, args.calib_batches)
    if args.format == "onnx":
        from raynas.onnx_export import export_onnx

        size = tuple(args.size) if args.size else None
        done = export_onnx(result.config, result.checkpoint, args.out / "model.onnx", size,
                           dynamic=not args.static)  # fmt: skip
        kind = "dynamic" if done["dynamic"] else "static"
        print(f"wrote {done['path']} (opset {done['opset']}, {kind} input, logits within "
              f"{done['max_abs_diff']:.1e} of PyTorch at {done['checked_sizes']}); it runs "
              "with onnxruntime on images normalized as its metadata says")  # fmt: skip
    print(
        f"exported {args.arch} to {result.config}, {result.checkpoint} and {result.arch}\n"
        f'test it with plain mmseg: python -c "from mmseg.apis import init_model, '
        f"inference_model; m = init_model('{result.config}', '{result.checkpoint}'); "
        f"print(inference_model(m, 'IMAGE.png').pred_sem_seg.shape)\""
    )
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    from raynas.tune.pipeline import STATE, Pipeline, check_address
    from raynas.tune.storage import Storage

    check_address(args.address)
    root = Storage(args.storage)
    name = args.name
    if name is None:  # default: the config's name, suffixed so that a rerun never collides
        name, n = args.config.stem, 1
        while root.exists(name, STATE) and not args.resume:
            n += 1
            name = f"{args.config.stem}-{n}"
    if args.resume and root.exists(name, STATE):
        pipeline = Pipeline(root.child(name))
    else:
        pipeline = Pipeline.create(args.config, args.storage, name, args.cfg_options)
    print(
        f"[raynas] experiment {pipeline.storage.uri} (continue it after any interruption with "
        f"`raynas resume {pipeline.storage.uri}`)",
        flush=True,
    )
    _run_pipeline(pipeline, args)
    return 0


def _run_pipeline(pipeline, args: argparse.Namespace) -> None:
    dashboard = False if args.no_dashboard else None
    pipeline.run(args.address, until=args.until, quiet=args.quiet, dashboard=dashboard)


def _cmd_resume(args: argparse.Namespace) -> int:
    from raynas.tune.pipeline import Pipeline

    pipeline = Pipeline(args.experiment)
    if args.workers is not None:
        pipeline.set_workers(args.workers)
    _run_pipeline(pipeline, args)
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from raynas.tune.pipeline import Pipeline

    Pipeline(args.experiment).report()
    return 0


def _cmd_check(args: argparse.Namespace) -> int:
    import torch

    from raynas.config import load_config, space_and_table
    from raynas.tune.checks import check_config
    from raynas.tune.options import DATA_PARALLEL, trial_resources

    cfg = load_config(args.config, args.cfg_options)
    memory: list[str] = []
    opts = check_config(cfg, memory)
    space, table = space_and_table(cfg)
    print(f"{args.config}: every check passed (tune_cfg, supernet, searcher and schedulers, "
          "constraints, SSR options, start_with, datasets, GPU memory)")  # fmt: skip
    print(f"space: {space.size():.4g} architectures; ", end="")
    _print_cost_ranges(space, table)
    for phase in ("supernet", "search", "retrain"):
        o = opts[phase]
        res = dict(o["resources"])
        per = trial_resources(o) if phase not in DATA_PARALLEL or res.get("workers", 1) == 1 else {
            "workers": res["workers"], "cpu_per_worker": res.get("cpu_per_worker", 1),
            "gpu_per_worker": res.get("gpu_per_worker", 0)}  # fmt: skip
        size = o.get("iters", o.get("num_candidates"))
        what = f"{size} {'iterations' if 'iters' in o else 'candidates'}"
        if phase == "search" and o.get("type") == "ssr":
            what = f"SSR ({o['ssr']['optimizer']}), at most {o['ssr']['iters']} iterations a trial"
        print(f"{phase}: {what}, trial resources {per}, {o['max_concurrent']} at a time")
    wants = any(opts[p]["resources"].get(k) for p in ("supernet", "search", "retrain")
                for k in ("gpu", "gpu_per_worker"))  # fmt: skip
    gpus = torch.cuda.device_count()
    if wants and not gpus:
        print("note: phases request GPUs and this machine sees none; run on a cluster that has "
              "them (raynas run --address ...)")  # fmt: skip
    for line in memory:
        print(f"memory: {line}")
    if memory and not any(" of " in line.rsplit(")", 1)[-1] for line in memory):
        print("note: GPU memory unknown here: set tune_cfg.<phase>.resources.gpu_memory (GiB "
              "of one GPU) and the check refuses a step that cannot fit")  # fmt: skip
    return 0


def _cmd_doctor(args: argparse.Namespace) -> int:
    from raynas.tune.doctor import main as doctor

    return doctor(args.address)


def _running_options(parser: argparse.ArgumentParser) -> None:
    from raynas.tune.checks import PHASES

    parser.add_argument("--until", choices=PHASES, help="stop after this phase (resume goes on)")
    parser.add_argument(
        "--quiet", action="store_true", help="only raynas' progress lines, not Tune's tables"
    )
    parser.add_argument(
        "--no-dashboard", action="store_true", help="do not start the Ray dashboard"
    )


def build_parser() -> argparse.ArgumentParser:
    from pathlib import Path

    from raynas.cli_deploy import add_deploy_commands
    from raynas.config import DictAction

    parser = argparse.ArgumentParser(
        prog="raynas",
        description="Neural architecture search for efficient semantic "
        "segmentation on OpenMMLab and Ray Tune.",
    )
    parser.add_argument("--version", action="version", version=f"raynas {raynas.__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    data = sub.add_parser("data", help="datasets").add_subparsers(
        dest="data_command", metavar="DATA_COMMAND"
    )
    synth = data.add_parser("synth", help="generate the embedded synthseg dataset")
    synth.add_argument("--out", type=Path, default=Path("data/synthseg"), help="output folder")
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument("--size", type=int, default=128, help="image height and width")
    synth.add_argument("--num-train", type=int, default=2000)
    synth.add_argument("--num-val", type=int, default=300)
    synth.add_argument("--overwrite", action="store_true", help="replace an existing dataset")
    synth.set_defaults(func=_cmd_synth)

    def with_config(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument("config", type=Path, help="an mmseg config file")
        p.add_argument(
            "--cfg-options",
            nargs="+",
            action=DictAction,
            default=None,
            metavar="KEY=VALUE",
            help="override config keys (mmengine syntax)",
        )
        return p

    check = with_config(sub.add_parser(
        "check", help="every pre-run check of a pipeline config, without training"))  # fmt: skip
    check.set_defaults(func=_cmd_check)
    space = with_config(sub.add_parser("space", help="print the search space of a config"))
    space.set_defaults(func=_cmd_space)
    train = with_config(sub.add_parser("train", help="train a config with the mmengine Runner"))
    train.add_argument("--work-dir", help="output folder (default work_dirs/CONFIG_NAME)")
    train.add_argument("--resume", action="store_true", help="resume from the latest checkpoint")
    train.set_defaults(func=_cmd_train)
    export = with_config(
        sub.add_parser(
            "export", help="export one path of a trained supernet as a plain mmseg model"
        )
    )
    export.add_argument("--checkpoint", required=True, help="supernet checkpoint (.pth)")
    export.add_argument(
        "--arch", required=True, help="arch YAML/JSON file, or 'largest' / 'smallest'"
    )
    export.add_argument("--out", type=Path, required=True, help="output folder")
    export.add_argument(
        "--calib-batches",
        type=int,
        default=16,
        help="training batches for BN recalibration (0: keep supernet stats)",
    )
    export.add_argument(
        "--format",
        choices=("mmseg", "onnx"),
        default="mmseg",
        help="onnx: also model.onnx (opset 17), checked against PyTorch",
    )
    export.add_argument("--size", type=int, nargs=2, metavar=("H", "W"),
                        help="ONNX export size (default: the config's input size)")  # fmt: skip
    export.add_argument("--static", action="store_true", help="ONNX with a fixed input size")
    export.set_defaults(func=_cmd_export)

    run = with_config(
        sub.add_parser(
            "run", help="run the supernet -> search -> retrain -> report pipeline on Ray Tune"
        )
    )
    run.add_argument(
        "--storage",
        default="runs",
        help="experiments root: a path or a URI pyarrow understands (default runs)",
    )
    run.add_argument(
        "--name",
        help="experiment name (default: the config's file name, suffixed -2, -3... if taken)",
    )
    run.add_argument("--address", help="Ray cluster address (default: start a local Ray)")
    run.add_argument(
        "--resume", action="store_true", help="continue the experiment STORAGE/NAME if it exists"
    )
    run.set_defaults(func=_cmd_run)
    resume = sub.add_parser("resume", help="continue an interrupted pipeline experiment")
    resume.add_argument("experiment", help="experiment folder (STORAGE/NAME)")
    resume.add_argument("--address", help="Ray cluster address (default: start a local Ray)")
    resume.add_argument(
        "--workers",
        type=int,
        help="continue the unfinished data-parallel phases on N workers (e.g. after losing nodes)",
    )
    resume.set_defaults(func=_cmd_resume)
    for p in (run, resume):
        _running_options(p)
    add_deploy_commands(sub)
    report = sub.add_parser("report", help="print the table and redraw the plots of an experiment")
    report.add_argument("experiment", help="experiment folder (STORAGE/NAME)")
    report.set_defaults(func=_cmd_report)
    doctor = sub.add_parser(
        "doctor", help="check Python, torch, mmcv ops, mmengine, mmseg, Ray, GPUs (and a cluster)"
    )
    doctor.add_argument("--address", help="also check this Ray cluster (HOST:PORT, ray://, auto)")
    doctor.set_defaults(func=_cmd_doctor)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0 if args.command is None else 2
    from raynas.core.errors import InputError
    from raynas.tune import PipelineError, PipelineInterrupted

    try:
        return args.func(args)
    except InputError as err:
        print(f"raynas {args.command}: error: {err}", file=sys.stderr)
        return 2
    except PipelineInterrupted as err:
        print(f"raynas {args.command}: {err}", file=sys.stderr)
        return 130
    except PipelineError as err:
        print(f"raynas {args.command}: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"raynas {args.command}: interrupted; `raynas resume` continues", file=sys.stderr)
        return 130
    except Exception as err:
        if os.environ.get("RAYNAS_DEBUG"):
            raise
        return _internal_error(args.command, err)


def _internal_error(command: str, err: BaseException) -> int:
    """A bug or a runtime failure, not bad input: where it happened, and how to see more."""
    frame = traceback.extract_tb(err.__traceback__)[-1] if err.__traceback__ else None
    where = f" (at {frame.filename}:{frame.lineno} in {frame.name})" if frame else ""
    print(
        f"raynas {command}: internal error {type(err).__name__}: {err}{where}\n"
        "run again with RAYNAS_DEBUG=1 for the full traceback",
        file=sys.stderr,
    )
    return 1


if __name__ == "__main__":
    sys.exit(main())
