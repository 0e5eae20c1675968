"""Export a path of a trained supernet as a plain mmseg model: config + checkpoint + arch YAML."""

from __future__ import annotations

import copy
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from mmengine.config import Config
from mmengine.runner.checkpoint import CheckpointLoader
from torch import nn

from raynas.config import formatted_text
from raynas.core.errors import InvalidValueError

__all__ = [
    "SUPERNET_HOOKS",
    "ExportResult",
    "build_supernet",
    "drop_supernet_training",
    "export_subnet",
    "load_supernet_weights",
    "subnet_config",
]


@dataclass(frozen=True)
class ExportResult:
    """Paths written by :func:`export_subnet`."""

    config: Path
    checkpoint: Path
    arch: Path


def build_supernet(cfg: Config) -> nn.Module:
    """Builds the supernet segmentor of a config (imports ``mmseg_plugins``)."""
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS

    import mmseg_plugins  # noqa: F401

    init_default_scope(cfg.get("default_scope", "mmseg"))
    return MODELS.build(cfg.model)


def load_supernet_weights(model: nn.Module, checkpoint: str | os.PathLike) -> dict[str, Any]:
    """Loads a supernet checkpoint, refusing one trained for another search space.

    Returns:
        The checkpoint's ``meta``.

    Raises:
        ValueError: Keys or shapes differ (the checkpoint belongs to another space/config).
    """
    ckpt = CheckpointLoader.load_checkpoint(str(checkpoint), map_location="cpu")
    state = ckpt.get("state_dict", ckpt)
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    bad = [
        f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(v.shape)}"
        for k, v in own.items()
        if k in state and state[k].shape != v.shape
    ]
    if missing or bad:
        detail = "; ".join((bad + [f"missing {k}" for k in missing])[:5])
        raise InvalidValueError(
            f"checkpoint {checkpoint} does not match this config's supernet (another search "
            f"space or model settings?): {detail}. Use the config the supernet was trained with."
        )
    model.load_state_dict({k: state[k] for k in own})
    return dict(ckpt.get("meta", {}))


def dataset_meta(cfg: Config) -> dict[str, list]:
    """Classes and palette of the config's training dataset, as mmseg's ``init_model`` reads
    them from a checkpoint's ``meta['dataset_meta']``."""
    from mmseg.registry import DATASETS

    dataset = cfg.train_dataloader.dataset
    cls = DATASETS.get(dataset.type)
    meta = {**getattr(cls, "METAINFO", {}), **dict(dataset.get("metainfo") or {})}
    return {k: [list(v) if isinstance(v, tuple) else v for v in meta[k]]
            for k in ("classes", "palette") if k in meta}  # fmt: skip


# supernet-training machinery, dropped from a subnet's config (and from SSR's search trials)
SUPERNET_HOOKS = (
    "PathSamplingHook",
    "CaLRHook",
    "MomentumSeparationHook",
    "DataImportanceHook",
    "SSRHook",
)


def drop_supernet_training(cfg: Config) -> None:
    """Removes the supernet-training machinery from a config, in place: the hooks of
    :data:`SUPERNET_HOOKS` and PA&DA's ``ImportanceSampler``; ``subnet_param_scheduler``, when
    the config sets one, becomes its schedule.

    Raises:
        InvalidValueError: The supernet's learning rate came from ``CaLRHook`` (its
            ``param_scheduler`` is empty) and no ``subnet_param_scheduler`` is set.
    """
    hooks = cfg.get("custom_hooks", [])
    cfg.custom_hooks = [h for h in hooks if h.get("type") not in SUPERNET_HOOKS]
    sampler = cfg.train_dataloader.get("sampler") or {}
    if sampler.get("type") == "ImportanceSampler":
        cfg.train_dataloader.sampler = dict(type="InfiniteSampler", shuffle=True)
    scheduler = cfg.pop("subnet_param_scheduler", None)
    if scheduler is not None:
        cfg.param_scheduler = scheduler
    elif not cfg.get("param_scheduler") and any(h.get("type") == "CaLRHook" for h in hooks):
        raise InvalidValueError(
            "the supernet's learning rate comes from CaLRHook (param_scheduler=[]), which a "
            "subnet does not train with: set subnet_param_scheduler=[...] in the config, e.g. "
            "subnet_param_scheduler = {{_base_.param_scheduler}}"
        )


def subnet_config(
    cfg: Config, arch: Mapping[str, Any], supernet: nn.Module | None = None
) -> Config:
    """The full training/testing config of one path as a plain mmseg model: the supernet's
    config minus its training machinery (:func:`drop_supernet_training`), with the path's
    static model.

    Args:
        cfg: The supernet's config.
        arch: The path.
        supernet: The config's supernet, when already built (only its shapes are read).
    """
    from mmseg_plugins.arch import path_widths, subnet_model_cfg

    if supernet is None:
        supernet = build_supernet(cfg)
    out = copy.deepcopy(cfg)
    drop_supernet_training(out)
    out.model = subnet_model_cfg(cfg.model, arch, path_widths(supernet, arch))
    out.val_cfg = dict(type="ValLoop")
    for key in ("load_from", "work_dir"):
        out.pop(key, None)
    out.resume = False
    return out


def export_subnet(
    cfg: Config,
    checkpoint: str | os.PathLike,
    arch: Mapping[str, Any],
    out_dir: str | os.PathLike,
    calib_batches: int = 16,
    provenance: Mapping[str, Any] | None = None,
    model: nn.Module | None = None,
    calib_loader: Iterable | None = None,
) -> ExportResult:
    """Writes ``subnet.py``, ``subnet.pth`` and ``arch.yaml`` for one path.

    The checkpoint holds the path's weights sliced from the supernet, with BN statistics
    recalibrated for the path on ``calib_batches`` training batches; plain mmseg
    (``init_model``/``inference_model``, ``tools/test.py``) loads them.

    Args:
        cfg: The supernet's config.
        checkpoint: The supernet checkpoint.
        arch: The path (validated against the config's space).
        out_dir: Output folder (created; existing files of the same names are replaced).
        calib_batches: Training batches for BN recalibration (0 keeps the supernet's stats).
        provenance: Extra facts stored in ``arch.yaml`` and the checkpoint meta.
        model: An already loaded supernet to reuse (skips building and loading).
        calib_loader: A :func:`~mmseg_plugins.bn_calib.calibration_loader` to reuse across
            exports (default: :func:`~mmseg_plugins.bn_calib.train_calibration_loader`).
    """
    from mmseg_plugins.arch import build_subnet, set_arch
    from mmseg_plugins.bn_calib import recalibrate_bn, train_calibration_loader
    from mmseg_plugins.checkpoint import subnet_checkpoint
    from raynas.core.arch_io import dump_arch

    if model is None:
        model = build_supernet(cfg)
        load_supernet_weights(model, checkpoint)
    arch = set_arch(model, arch)
    if calib_batches:
        if calib_loader is None:
            calib_loader = train_calibration_loader(cfg)
        recalibrate_bn(model, calib_loader, calib_batches)
    sub = build_subnet(model, arch, cfg.model)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    facts = {
        "supernet_checkpoint": str(checkpoint),
        "calib_batches": calib_batches,
        **(provenance or {}),
    }
    arch_path = dump_arch(arch, out / "arch.yaml", facts)
    sub_cfg = subnet_config(cfg, arch, model)
    config_path = out / "subnet.py"
    config_path.write_text(formatted_text(sub_cfg))
    ckpt_path = out / "subnet.pth"
    provenance = {"arch": arch, **facts}
    torch.save(subnet_checkpoint(sub.state_dict(), provenance, dataset_meta(cfg)), ckpt_path)
    return ExportResult(config_path, ckpt_path, arch_path)
