"""Shared fixtures: a small synthseg dataset and config helpers."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from raynas.data.synth import SynthSpec, generate

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs"
SMALL = SynthSpec(seed=0, size=128, num_train=64, num_val=16)

os.environ.setdefault("OMP_NUM_THREADS", "2")


_NOT_UNIT = {"ray", "integration", "slow", "gpu"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The unit tier (``-m unit``): every test not marked ray, integration, slow or gpu."""
    for item in items:
        if not _NOT_UNIT & {m.name for m in item.iter_markers()}:
            item.add_marker(pytest.mark.unit)


@pytest.fixture(scope="session")
def synth_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small synthseg dataset (128 px, 64 train / 16 val)."""
    return generate(tmp_path_factory.mktemp("synth") / "synthseg", SMALL)


def small_data_options(root: Path, batch: int = 4) -> dict[str, Any]:
    """--cfg-options that point a synthseg config at the small test dataset."""
    synth = dict(
        seed=SMALL.seed, size=SMALL.size, num_train=SMALL.num_train, num_val=SMALL.num_val
    )
    opts: dict[str, Any] = {
        "data_root": str(root),
        "crop_size": (SMALL.size, SMALL.size),
        "model.data_preprocessor.size": (SMALL.size, SMALL.size),
    }
    for split in ("train", "val", "test"):
        opts[f"{split}_dataloader.batch_size"] = batch
        opts[f"{split}_dataloader.dataset.data_root"] = str(root)
        opts[f"{split}_dataloader.dataset.synth"] = synth
    return opts


@pytest.fixture(scope="session")
def small_options(synth_root: Path) -> dict[str, Any]:
    """--cfg-options pointing a synthseg config at the small test dataset."""
    return small_data_options(synth_root)


@pytest.fixture(scope="session")
def run_options(small_options: dict[str, Any]) -> Callable[..., dict[str, Any]]:
    """``run_options(tune)``: ``small_options`` for a pipeline run, whose trials must not
    generate the dataset again (``synth=None``), plus ``tune_cfg.KEY`` for each key of ``tune``."""
    generated = {f"{split}_dataloader.dataset.synth": None for split in ("train", "val", "test")}

    def _make(tune: dict[str, Any] | None = None) -> dict[str, Any]:
        return {
            **small_options,
            **generated,
            **{f"tune_cfg.{k}": v for k, v in (tune or {}).items()},
        }

    return _make


@pytest.fixture(scope="session")
def make_cfg(synth_root: Path) -> Callable[..., Any]:
    """Loads a repo config pointed at the small dataset: ``make_cfg(rel, work_dir, **opts)``."""
    from raynas.config import load_config

    def _make(rel: str, work_dir: Path, **options: Any):
        cfg = load_config(CONFIGS / rel, {**small_data_options(synth_root), **options})
        cfg.work_dir = str(work_dir)
        cfg.default_hooks.logger.interval = 10
        return cfg

    return _make


@pytest.fixture
def load_cfg(make_cfg: Callable[..., Any], tmp_path: Path) -> Callable[..., Any]:
    """Like ``make_cfg`` with a fresh ``work_dir`` under the test's tmp_path."""
    return lambda rel, **options: make_cfg(rel, tmp_path / "work", **options)


@pytest.fixture
def in_process_ray() -> Iterator[None]:
    """For tests that run a Pipeline in the pytest process: Ray shut down afterwards, and the
    environment and SIGTERM handler it changed restored, so no later test (or subprocess
    driver, which inherits the environment) sees them."""
    import signal

    import ray

    env, handler = dict(os.environ), signal.getsignal(signal.SIGTERM)
    yield
    ray.shutdown()
    os.environ.clear()
    os.environ.update(env)
    signal.signal(signal.SIGTERM, handler)


@pytest.fixture(scope="session", autouse=True)
def mmseg_scope() -> None:
    """Resolve bare type names (``SegDataPreProcessor``...) in mmseg's registries."""
    from mmengine.registry import init_default_scope

    import mmseg_plugins  # noqa: F401

    init_default_scope("mmseg")
