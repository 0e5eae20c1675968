"""Free functions over a built supernet segmentor (mmseg ``EncoderDecoder``).

``search_space``, ``set_arch`` and ``current_arch`` read and set the active path;
``subnet_state_dict`` gives a path's weights (prefix slices of the supernet's tensors, keyed by
the static subnet's parameter names); ``build_subnet`` builds the static model of a path with
those weights; ``subnet_model_cfg`` gives its mmseg model config.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import asdict
from typing import Any

import torch
from torch import nn

from mmseg_plugins.models import FixedHead, SearchableHead, SegSubNet, SegSuperNet
from raynas.core.seg_space import BACKBONE, HEAD, build_space, needed_stages, stage_width, strip
from raynas.core.space import Arch, InvalidArchError, SearchSpace

__all__ = [
    "build_subnet",
    "complexity_table",
    "current_arch",
    "is_supernet",
    "label_modules",
    "path_parameters",
    "search_space",
    "set_arch",
    "set_relaxed",
    "subnet_model_cfg",
    "subnet_state_dict",
]


def unwrap(model: nn.Module) -> nn.Module:
    """The model inside a DDP/FSDP wrapper (or the model itself)."""
    from mmengine.model import is_model_wrapper

    return model.module if is_model_wrapper(model) else model


def is_supernet(model: nn.Module) -> bool:
    return isinstance(getattr(model, "backbone", None), SegSuperNet) and isinstance(
        getattr(model, "decode_head", None), SearchableHead
    )


def _check(model: nn.Module) -> None:
    if not is_supernet(model):
        raise TypeError(
            "expected an EncoderDecoder with backbone=SegSuperNet and decode_head=SearchableHead, "
            f"got backbone={type(getattr(model, 'backbone', None)).__name__}, "
            f"decode_head={type(getattr(model, 'decode_head', None)).__name__}"
        )


def search_space(model: nn.Module) -> SearchSpace:
    """The joint search space of a supernet segmentor."""
    _check(model)
    return build_space(model.backbone.settings, model.decode_head.search)


def set_arch(model: nn.Module, arch: Mapping[str, Any]) -> Arch:
    """Validates ``arch`` against the model's space and makes it the active path."""
    space = search_space(model)
    arch = space.validate(arch)
    model.backbone.set_arch(strip(arch, BACKBONE), needed_stages(arch[f"{HEAD}fusion"]))
    model.decode_head.set_arch(strip(arch, HEAD))
    model._raynas_arch = arch
    return arch


def set_relaxed(model: nn.Module, weights: Any | None) -> None:
    """Switches the supernet to SSR's relaxed forward under ``weights`` (``ArchWeights``), or
    back to the single-path forward of the current path (``None``)."""
    _check(model)
    object.__setattr__(model.backbone, "relaxed", weights)
    object.__setattr__(model.decode_head, "relaxed", weights)
    if weights is None:
        set_arch(model, current_arch(model))


def current_arch(model: nn.Module) -> Arch:
    """The active path (the largest until ``set_arch`` is called)."""
    _check(model)
    return dict(getattr(model, "_raynas_arch", None) or search_space(model).extreme(True))


def complexity_table(model: nn.Module, input_size: Any) -> Any:
    """Closed-form FLOPs/params of the model's paths for ``(H, W)`` inputs
    (:class:`raynas.core.complexity.PathComplexity`)."""
    from raynas.core.complexity import PathComplexity

    return PathComplexity(
        model.backbone.settings,
        model.decode_head.search,
        model.decode_head.out_channels,
        tuple(input_size),
    )


def path_widths(model: nn.Module, arch: Mapping[str, Any]) -> list[int]:
    """Output channels of each stage on a path."""
    settings = model.backbone.settings
    return [
        stage_width(c, float(arch[f"{BACKBONE}stage{i}.width"]))
        for i, c in enumerate(settings.stage_channels)
    ]


def _static_modules(model: nn.Module, arch: Arch) -> nn.ModuleDict:
    head = model.decode_head
    return nn.ModuleDict(
        {
            "backbone": SegSubNet(
                arch,
                asdict(model.backbone.settings),
                model.backbone.out_indices,
                needed_stages(arch[f"{HEAD}fusion"]),
                stem_out=model.backbone.stem_out,
            ),
            "decode_head": FixedHead(
                strip(arch, HEAD),
                path_widths(model, arch),
                detail_channels=model.backbone.settings.stem_channels[-1],
                num_classes=head.num_classes,
                out_channels=head.out_channels,
                threshold=head.threshold,
                align_corners=head.align_corners,
                loss_decode=dict(type="CrossEntropyLoss", avg_non_ignore=True),
            ),
        }
    )


def _shapes(model: nn.Module, space: SearchSpace, arch: Arch) -> dict[str, torch.Size]:
    """Static parameter shapes of a path, cached on the model (built on the meta device)."""
    cache = model.__dict__.setdefault("_raynas_shapes", {})
    key = space.key(arch)
    if key not in cache:
        with torch.device("meta"):
            static = _static_modules(model, arch)
        cache[key] = {k: v.shape for k, v in static.state_dict().items()}
    return cache[key]


def subnet_state_dict(
    model: nn.Module, arch: Mapping[str, Any], state: Mapping[str, torch.Tensor] | None = None
) -> dict[str, torch.Tensor]:
    """The weights of a path, keyed like the static subnet (views into the supernet's tensors).

    Every static key is a supernet key (a key filter, not a remap), and every tensor is the
    prefix slice of the supernet tensor with the static shape.

    Args:
        model: The supernet segmentor.
        arch: The path.
        state: Slice this supernet state dict instead of the model's own (e.g. the weights
            at initialisation, for the angle proxy).
    """
    space = search_space(model)
    arch = space.canonical(space.validate(arch))
    shapes = _shapes(model, space, arch)
    full = model.state_dict(keep_vars=True) if state is None else state
    out = {}
    for name, shape in shapes.items():
        tensor = full[name]
        out[name] = tensor[tuple(slice(0, s) for s in shape)] if shape else tensor
    return out


def path_parameters(
    model: nn.Module, arch: Mapping[str, Any], state: Mapping[str, torch.Tensor] | None = None
) -> list[tuple[str, torch.Tensor]]:
    """(name, slice) of every trainable parameter a path uses (no buffers).

    Args:
        model: The supernet segmentor.
        arch: The path.
        state: Slice this state dict (same keys as the model's) instead of the live weights.
    """
    params = dict(model.named_parameters())
    return [(k, v) for k, v in subnet_state_dict(model, arch, state).items() if k in params]


def label_modules(model: nn.Module, arch: Mapping[str, Any]) -> dict[str, nn.Module]:
    """The module whose weights each active label of a path trains (for per-choice statistics).

    Layer labels map to the layer's active body, ``depth`` to the deepest active layer,
    ``width`` to the stage's downsampling conv, ``head.fusion`` to the laterals,
    ``head.channels`` to the fusion conv and ``head.detail`` to the detail branch's lateral.
    """
    space = search_space(model)
    head = model.decode_head
    out: dict[str, nn.Module] = {"head.fusion": head.lateral, "head.channels": head.fuse}
    if head.search.details:
        out["head.detail"] = head.detail_lateral
    for label in space.choices:
        if not label.startswith(BACKBONE) or not space.is_active(arch, label):
            continue
        parts = label.split(".")
        stage = model.backbone.stages[int(parts[1].removeprefix("stage"))]
        if parts[2] == "depth":
            layer = stage.layers[int(arch[label]) - 1]
            out[label] = layer.fr if layer.op == "fr" else layer.ir
        elif parts[2] == "width":
            out[label] = stage.downsample
        else:
            layer = stage.layers[int(parts[2].removeprefix("layer"))]
            out[label] = (
                layer.fr if arch[f"{BACKBONE}{parts[1]}.{parts[2]}.op"] == "fr" else layer.ir
            )
    return out


def subnet_model_cfg(
    model_cfg: Mapping[str, Any], arch: Mapping[str, Any], widths: list[int]
) -> dict[str, Any]:
    """The mmseg model config of the static subnet of ``arch``.

    Args:
        model_cfg: The supernet's model config (an ``EncoderDecoder`` dict).
        arch: A validated full arch.
        widths: Stage output channels of the path (:func:`path_widths`).
    """
    cfg = copy.deepcopy(dict(model_cfg))
    if cfg.get("type") in ("SuperNetEncoderDecoder", "mmseg.SuperNetEncoderDecoder"):
        cfg["type"] = "EncoderDecoder"  # the static subnet needs only plain mmseg
    backbone, head = dict(cfg["backbone"]), dict(cfg["decode_head"])
    if backbone.get("type") not in ("SegSuperNet", "mmseg.SegSuperNet"):
        raise InvalidArchError(f"model.backbone.type is {backbone.get('type')!r}, not SegSuperNet")
    backbone["type"] = "SegSubNet"
    backbone["arch"] = strip(arch, BACKBONE)
    backbone["num_stages"] = needed_stages(arch[f"{HEAD}fusion"])
    head["type"] = "FixedHead"
    head["arch"] = strip(arch, HEAD)
    head["in_channels"] = widths
    for key in ("fusions", "channel_choices", "details", "channels"):
        head.pop(key, None)
    cfg["backbone"], cfg["decode_head"] = backbone, head
    return cfg


def build_subnet(model: nn.Module, arch: Mapping[str, Any], model_cfg: Mapping[str, Any]):
    """Builds the static subnet of ``arch`` with weights copied from the supernet.

    Args:
        model: The supernet segmentor.
        arch: The path.
        model_cfg: The supernet's model config.

    Returns:
        The subnet segmentor, in the supernet's training mode, device and dtype.
    """
    from mmseg.registry import MODELS

    arch = search_space(model).validate(arch)
    ref = next(model.parameters())
    sub = MODELS.build(subnet_model_cfg(model_cfg, arch, path_widths(model, arch)))
    sub = sub.to(device=ref.device, dtype=ref.dtype)  # before loading: no rounding to float32
    state = {k: v.detach().clone() for k, v in subnet_state_dict(model, arch).items()}
    missing, unexpected = sub.load_state_dict(state, strict=False)
    if unexpected or [k for k in missing if not k.startswith("auxiliary_head")]:
        raise RuntimeError(f"subnet keys differ: missing {missing}, unexpected {unexpected}")
    return sub.train(model.training)
