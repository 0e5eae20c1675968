"""Do the maintained and the upstream OpenMMLab stacks train the quickstart the same way?

The quickstart's supernet (``configs/quickstart.py``: uniform path sampling, AdamW, seed 0) is
trained for --iters iterations with mmengine's Runner on the same generated synthseg data, once
in each given Python environment (one per stack), in one thread; the per-iteration losses are
compared. The two stacks initialize the weights differently (mmengine's and mmcv's init
functions draw differently), so the first run saves its initialized weights and every other run
starts from them: what is compared is the training itself (data, paths, forward, loss,
optimizer). Each environment runs this module with ``--record`` in a subprocess.

Run:  python -m experiments.stacks.run --python /path/to/upstream-venv/bin/python
Writes experiments/stacks/results/stacks.{json,md} and prints the table.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from benchmarks import harness

OUT = Path(__file__).resolve().parent / "results"
CONFIG = harness.ROOT / "configs" / "quickstart.py"


def record(data: Path, iters: int, out: Path, weights: Path) -> None:
    """Trains the quickstart supernet on ``data`` and writes its losses and stack to ``out``;
    saves its initialized weights to ``weights``, or starts from them where the file exists."""
    import torch
    from mmengine.hooks import Hook
    from mmengine.runner import Runner

    import mmseg_plugins  # noqa: F401
    from raynas.config import load_config

    class Losses(Hook):
        losses: list[float] = []
        initial_abs_sum = 0.0

        def before_train(self, runner) -> None:  # after the Runner initialized the weights
            model = runner.model
            self.initial_abs_sum = sum(float(v.double().abs().sum())
                                       for v in model.state_dict().values()
                                       if v.dtype.is_floating_point)  # fmt: skip
            if weights.is_file():
                model.load_state_dict(torch.load(weights, weights_only=True))
            else:
                torch.save(model.state_dict(), weights)

        def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
            self.losses.append(float(outputs["loss"].detach()))

    torch.set_num_threads(1)
    opts = {f"{s}_dataloader.dataset.{k}": v for s in ("train", "val", "test")
            for k, v in (("data_root", str(data)), ("synth", None))}  # fmt: skip
    opts.update({"train_cfg.max_iters": iters, "train_cfg.val_interval": iters + 1,
                 "log_level": "WARNING"})  # fmt: skip
    cfg = load_config(CONFIG, opts)
    cfg.randomness = dict(seed=0, deterministic=False)
    with tempfile.TemporaryDirectory() as work:
        cfg.work_dir = work
        cfg.default_hooks.checkpoint = dict(type="CheckpointHook", interval=10**9)
        runner = Runner.from_cfg(cfg)
        hook = Losses()
        runner.register_hook(hook, priority="LOWEST")
        runner.train()
    out.write_text(json.dumps(dict(machine=harness.machine(), losses=hook.losses,
                                   initial_abs_sum=hook.initial_abs_sum)))  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--python", nargs="+", required=True,
                    help="the other stacks' interpreters (this one runs too)")  # fmt: skip
    ap.add_argument("--iters", type=int, default=50)
    ap.add_argument("--record", nargs=3, metavar=("DATA", "OUT", "WEIGHTS"),
                    help=argparse.SUPPRESS)  # fmt: skip
    args = ap.parse_args()
    if args.record:
        data, out, weights = map(Path, args.record)
        record(data, args.iters, out, weights)
        return
    from raynas.data.synth import SynthSpec, generate

    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        data = generate(Path(tmp) / "synthseg", SynthSpec(num_train=200, num_val=40))
        for i, python in enumerate([sys.executable, *args.python]):
            out = Path(tmp) / f"{i}.json"
            subprocess.run([python, "-m", "experiments.stacks.run", "--python", python,
                            "--iters", str(args.iters), "--record", str(data), str(out),
                            str(Path(tmp) / "initial.pth")],
                           check=True, cwd=harness.ROOT)  # fmt: skip
            runs.append(json.loads(out.read_text()))
    write(runs, args.iters)


def write(runs: list[dict[str, Any]], iters: int) -> None:
    ref = runs[0]["losses"]
    lines = [f"The quickstart supernet, {iters} iterations, seed 0, 1 thread, same data, every "
             "run from the first run's initialized weights (the initialization itself differs: "
             "sum of absolute weights as each stack initializes them in the last column).", "",
             "| stack | mmcv / mmengine / mmseg | torch | numpy | max abs loss difference to the "
             "first row | first loss | last loss | own initialization, sum of abs weights |",
             "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for run in runs:
        m, losses = run["machine"], run["losses"]
        mm = " / ".join(str(v) for k, v in m.items() if k.split("-")[-1] in
                        ("mmcv", "mmengine", "mmsegmentation"))  # fmt: skip
        diff = max(abs(a - b) for a, b in zip(losses, ref, strict=True))
        lines.append(
            f"| {m['stack']} | {mm} | {m['torch']} | {m.get('numpy', '')} | {diff:.2e} "
            f"| {losses[0]:.5f} | {losses[-1]:.5f} | {run['initial_abs_sum']:.4f} |"
        )
    harness.write("stacks", dict(iters=iters, runs=runs), "\n".join(lines), OUT)


if __name__ == "__main__":
    main()
