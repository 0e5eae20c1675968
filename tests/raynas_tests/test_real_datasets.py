"""The Cityscapes, CamVid and ADE20K pipeline configs on small generated datasets in those
datasets' folder layouts, read by mmseg's own dataset classes: ``raynas check`` and one
supernet step each (default tier), the whole pipeline on each (slow tier).

The configs run unchanged but for the ``--cfg-options`` of :func:`fixture_options`: data roots,
data loading in the main process, image sizes (the fixture's images are 64 px high), and
iterations."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from raynas.cli import main
from raynas.data.layouts import CITIES, write_layout

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = {layout: ROOT / f"configs/{layout}/realtime.py" for layout in ("cityscapes", "camvid",
                                                                          "ade20k")}  # fmt: skip
# (train pipeline's resize index, crop index, val pipeline's resize index, crop)
SIZES = {"cityscapes": (2, 3, 1, (64, 128)), "camvid": (2, 3, 1, (64, 64)),
         "ade20k": (2, 3, 1, (64, 64))}  # fmt: skip


def fixture_options(layout: str, root: Path) -> dict[str, Any]:
    """The ``--cfg-options`` that point a shipped config at a fixture of its layout."""
    resize, crop, val_resize, (h, w) = SIZES[layout]
    opts: dict[str, Any] = {
        "model.data_preprocessor.size": (h, w),
        f"train_dataloader.dataset.pipeline.{resize}.scale": (w, h),
        f"train_dataloader.dataset.pipeline.{crop}.crop_size": (h, w),
        "train_dataloader.batch_size": 2,
    }
    for split in ("train", "val", "test"):
        opts[f"{split}_dataloader.dataset.data_root"] = str(root)
        opts[f"{split}_dataloader.num_workers"] = 0
        opts[f"{split}_dataloader.persistent_workers"] = False
        if split != "train":
            opts[f"{split}_dataloader.dataset.pipeline.{val_resize}.scale"] = (w, h)
    return opts


def _argv(options: dict[str, Any]) -> list[str]:
    return [f"{k}={v}".replace(" ", "") for k, v in options.items()]


@pytest.fixture(scope="module")
def fixtures(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return {layout: write_layout(layout, tmp_path_factory.mktemp(layout)) for layout in CONFIGS}


@pytest.mark.parametrize("layout", list(CONFIGS))
def test_check_passes_on_the_fixture(layout: str, fixtures: dict, capsys) -> None:
    opts = fixture_options(layout, fixtures[layout])
    assert main(["check", str(CONFIGS[layout]), "--cfg-options", *_argv(opts)]) == 0
    out = capsys.readouterr().out
    assert "every check passed" in out
    for phase in ("supernet", "search", "retrain"):  # every phase asks for a GPU
        line = next(x for x in out.splitlines() if x.startswith(f"{phase}:"))
        assert "'gpu': 1.0" in line or "'gpu': 0.5" in line, line


@pytest.mark.integration
@pytest.mark.parametrize("layout", list(CONFIGS))
def test_one_supernet_step_with_mmsegs_dataset(layout: str, fixtures: dict, tmp_path) -> None:
    from mmengine.runner import Runner

    from raynas.config import apply_selection_split, dataset_files, load_config

    opts = fixture_options(layout, fixtures[layout])
    cfg = load_config(CONFIGS[layout], {**opts, "train_cfg.max_iters": 1,
                                        "train_cfg.val_interval": 2})  # fmt: skip
    apply_selection_split(cfg)
    cfg.work_dir = str(tmp_path)
    runner = Runner.from_cfg(cfg)
    assert type(runner.train_dataloader.dataset).__name__ == {
        "cityscapes": "CityscapesDataset", "camvid": "BaseSegDataset",
        "ade20k": "ADE20KDataset"}[layout]  # fmt: skip
    selection = cfg.val_dataloader.dataset.indices
    if layout == "cityscapes":  # the selection split takes an image of every city
        images, _ = dataset_files(cfg.train_dataloader.dataset)
        assert {images[i].parent.name for i in selection} == set(CITIES)
    runner.train()
    assert runner.iter == 1


@pytest.mark.slow  # the whole pipeline on each fixture, about 3 min each on 2 cores
@pytest.mark.ray
@pytest.mark.parametrize("layout", list(CONFIGS))
def test_pipeline_end_to_end(layout: str, fixtures: dict, tmp_path: Path) -> None:
    from mmseg.apis import inference_model, init_model

    opts = fixture_options(layout, fixtures[layout])
    opts.update({"tune_cfg.supernet.iters": 40, "tune_cfg.supernet.report_interval": 20,
                 "tune_cfg.search.num_candidates": 3, "tune_cfg.search.eval_images": 4,
                 "tune_cfg.search.calib_batches": 1, "tune_cfg.retrain.iters": 20,
                 "tune_cfg.retrain.report_interval": 10, "tune_cfg.retrain.top_k": 1,
                 "tune_cfg.search.constraints.flops": (None, 1e12)})  # fmt: skip
    for phase, cpus in (("supernet", 2), ("search", 1), ("retrain", 2)):  # no GPU here
        opts.update(
            {f"tune_cfg.{phase}.resources.cpu": cpus, f"tune_cfg.{phase}.resources.gpu": 0}
        )
    cmd = [sys.executable, "-m", "raynas.cli", "run", str(CONFIGS[layout]), "--storage",
           str(tmp_path), "--name", "cs", "--cfg-options", *_argv(opts)]  # fmt: skip
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    state = json.loads((tmp_path / "cs/pipeline.json").read_text())
    assert all(state["phases"][p]["done"] for p in ("supernet", "search", "retrain", "report"))
    best = tmp_path / "cs/best"
    model = init_model(str(best / "subnet.py"), str(best / "subnet.pth"), device="cpu")
    val = {"cityscapes": "leftImg8bit/val", "camvid": "images/val",
           "ade20k": "images/validation"}[layout]  # fmt: skip
    img = next(p for p in sorted((fixtures[layout] / val).rglob("*")) if p.is_file())
    h, w = SIZES[layout][3]
    assert inference_model(model, str(img)).pred_sem_seg.data.shape[-2:] == (h, w)
