"""Loading mmseg configs for raynas (mmengine-dependent; not part of the pure core)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mmengine.config import Config, DictAction

from raynas.core.errors import MissingInputError

__all__ = [
    "DictAction",
    "absolutize_data_roots",
    "config_from_text",
    "load_config",
    "space_and_table",
]


def space_and_table(cfg: Config) -> tuple[Any, Any]:
    """The search space and the FLOPs/params table of a supernet config, at its input size."""
    from raynas.core.complexity import PathComplexity
    from raynas.core.seg_space import space_from_model_cfg

    size = tuple(cfg.model.data_preprocessor.get("size") or cfg.get("crop_size"))
    return space_from_model_cfg(cfg.model), PathComplexity.from_model_cfg(cfg.model, size)


def config_from_text(text: str, options: dict[str, Any] | None = None) -> Config:
    """A config from its dumped text (``Config.pretty_text``), with ``--cfg-options``."""
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as f:
        f.write(text)
    try:
        cfg = Config.fromfile(f.name)
    finally:
        os.unlink(f.name)
    if options:
        cfg.merge_from_dict(dict(options))
    return cfg


def load_config(path: str | os.PathLike, options: dict[str, Any] | None = None) -> Config:
    """Loads an mmseg config, applies ``--cfg-options`` and makes data roots absolute.

    Raises:
        MissingInputError: No config at ``path``.
    """
    path = Path(path)
    if not path.is_file():
        raise MissingInputError(f"config {path} not found")
    cfg = Config.fromfile(str(path))
    if options:
        cfg.merge_from_dict(options)
    absolutize_data_roots(cfg)
    return cfg


def absolutize_data_roots(cfg: Config, base: str | os.PathLike | None = None) -> None:
    """Resolves every dataloader's relative ``data_root`` against ``base`` (default: cwd).

    Ray trials run in other working directories, so paths must not depend on the cwd.
    """
    base = Path(base or os.getcwd())
    for key in ("data_root", "train_dataloader", "val_dataloader", "test_dataloader"):
        if key == "data_root" and isinstance(cfg.get(key), str):
            cfg[key] = str((base / cfg[key]).resolve())
            continue
        dataset = (cfg.get(key) or {}).get("dataset") if isinstance(cfg.get(key), dict) else None
        for ds in _datasets(dataset):
            if isinstance(ds.get("data_root"), str):
                ds["data_root"] = str((base / ds["data_root"]).resolve())


def _datasets(dataset: Any) -> Sequence[dict]:
    if not isinstance(dataset, dict):
        return []
    inner = dataset.get("datasets") or ([dataset.get("dataset")] if "dataset" in dataset else [])
    return [dataset, *[d for sub in inner for d in _datasets(sub)]]
