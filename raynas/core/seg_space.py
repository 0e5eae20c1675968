"""The segmentation supernet's joint search space, derived from its config (pure Python).

Labels (stable, dotted)::

    backbone.stage{i}.depth          1 .. max_depths[i]
    backbone.stage{i}.width          width ratios of stage_channels[i]
    backbone.stage{i}.layer{j}.op        operator: 'fr' (factorized residual 3x1/1x3),
                                          'ir3' / 'ir6' (inverted residual, expansion 3 / 6)
    backbone.stage{i}.layer{j}.dilation  1, 2, 4, 8
    backbone.stage{i}.layer{j}.zoom      2 (compute at half the stage resolution) or 1
    head.fusion                      which stage outputs the head fuses, e.g. '8+16+32'
    head.channels                    the head's channels
    head.detail                      0, or 1: refine at 1/4 with the stem's features (a
                                     detail branch); a label only when ``details`` is set

A stage deeper than the deepest fused one is not computed (its labels are inactive).

Choices are ordered from cheapest to most expensive, so :meth:`SearchSpace.extreme` gives the
smallest and the largest paths.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from raynas.core.errors import InvalidValueError, UnknownKeyError, closest
from raynas.core.space import Arch, SearchSpace

__all__ = [
    "BACKBONE",
    "HEAD",
    "SCALES",
    "BackboneSettings",
    "HeadSettings",
    "build_space",
    "expansion",
    "functional_arch",
    "fusion_scales",
    "has_detail",
    "needed_stages",
    "space_from_model_cfg",
    "stage_width",
]

BACKBONE = "backbone."
HEAD = "head."
SCALES = (8, 16, 32)  # output stride of each stage
OPS = ("fr", "ir3", "ir6")


@dataclass(frozen=True)
class BackboneSettings:
    """``arch_settings`` of the supernet backbone (all fields may be overridden in a config)."""

    stem_channels: tuple[int, int] = (16, 32)
    stage_channels: tuple[int, int, int] = (64, 96, 128)
    max_depths: tuple[int, int, int] = (4, 4, 4)
    width_ratios: tuple[float, ...] = (0.5, 0.75, 1.0)
    ops: tuple[str, ...] = OPS
    dilations: tuple[int, ...] = (1, 2, 4, 8)
    zooms: tuple[int, ...] = (2, 1)

    @classmethod
    def from_cfg(cls, cfg: Mapping[str, Any] | None) -> BackboneSettings:
        """Builds settings from a config dict; unknown keys raise naming the valid ones."""
        cfg = dict(cfg or {})
        valid = set(asdict(cls()))
        unknown = sorted(set(cfg) - valid)
        if unknown:
            hint = closest(unknown[0], valid)
            raise UnknownKeyError(
                f"unknown arch_settings key(s) {unknown}{hint}; valid: {sorted(valid)}"
            )
        out = cls(**{k: tuple(v) for k, v in cfg.items()})
        bad = [op for op in out.ops if op not in OPS]
        if bad:
            raise InvalidValueError(
                f"unknown op(s) {bad} in arch_settings.ops; valid: {list(OPS)}"
            )
        if not len(out.stage_channels) == len(out.max_depths) == len(SCALES):
            raise InvalidValueError("arch_settings.stage_channels and max_depths need 3 entries")
        return out

    def max_width(self, stage: int) -> int:
        return stage_width(self.stage_channels[stage], max(self.width_ratios))

    def dilations_past(self, stage: int, zoom: int, size: tuple[int, int]) -> list[int]:
        """The dilation choices that reach past a layer's feature map at input ``size``
        (H, W): their 3x3 kernel reads padding outside the centre tap at every pixel, so they
        all act as the same 1x1 convolution."""
        side = min(size) // (SCALES[stage] * zoom)
        return [d for d in self.dilations if d >= side]

    def degenerate_dilations(self, size: tuple[int, int]) -> list[str]:
        """Where dilation choices reach past the feature map (:meth:`dilations_past`): each
        still adds a configuration for the supernet to train."""
        notes = []
        for stage, scale in enumerate(SCALES):
            for zoom in self.zooms:
                bad = self.dilations_past(stage, zoom, size)
                if bad:
                    side, zoomed = min(size) // (scale * zoom), ", zoomed" if zoom > 1 else ""
                    notes.append(f"stage{stage} at 1/{scale * zoom} ({side}x{side} maps"
                                 f"{zoomed}): dilation(s) {bad}")  # fmt: skip
        return notes


@dataclass(frozen=True)
class HeadSettings:
    """Search settings of the searchable decode head."""

    fusions: tuple[str, ...] = ("8+16", "8+32", "8+16+32")
    channel_choices: tuple[int, ...] = (32, 48, 64)
    details: tuple[int, ...] = ()  # () or subsets of (0, 1): ``head.detail`` choices

    def __post_init__(self) -> None:
        for f in self.fusions:
            fusion_scales(f)
        if any(d not in (0, 1) or isinstance(d, bool) for d in self.details):
            raise InvalidValueError(
                f"decode_head.details={list(self.details)}: use () (no detail branch), (1,) or "
                "(0, 1) (searched)"
            )

    @classmethod
    def from_cfg(cls, head: Mapping[str, Any]) -> HeadSettings:
        """From a ``SearchableHead`` config dict (defaults for missing keys)."""
        return cls(
            tuple(head.get("fusions", cls.fusions)),
            tuple(head.get("channel_choices", cls.channel_choices)),
            tuple(head.get("details", cls.details)),
        )


def stage_width(channels: int, ratio: float, divisor: int = 8) -> int:
    """Active channels of a stage with ``channels`` at width ``ratio`` (multiple of divisor)."""
    return max(divisor, round(channels * ratio / divisor) * divisor)


def expansion(op: str) -> int:
    """Expansion ratio of an inverted-residual op ('ir3' -> 3); 0 for other ops."""
    return int(op[2:]) if op.startswith("ir") else 0


def fusion_scales(fusion: str) -> tuple[int, ...]:
    """Stage indices fused by a ``head.fusion`` choice, e.g. '8+32' -> (0, 2)."""
    try:
        idx = tuple(SCALES.index(int(s)) for s in fusion.split("+"))
    except ValueError as err:
        raise InvalidValueError(
            f"bad fusion {fusion!r}: use '+'-joined strides from {SCALES}"
        ) from err
    if not idx or idx[0] != 0 or len(set(idx)) != len(idx):
        raise InvalidValueError(
            f"bad fusion {fusion!r}: must start with 8 and not repeat a stride"
        )
    return idx


def has_detail(arch: Mapping[str, Any]) -> bool:
    """Whether a path refines its logits at 1/4 with the stem's features (``head.detail``)."""
    return bool(int(arch.get(f"{HEAD}detail", 0)))


def needed_stages(fusion: str) -> int:
    """How many stages a path computes: up to the deepest stage the head fuses."""
    return max(fusion_scales(fusion)) + 1


def build_space(backbone: BackboneSettings, head: HeadSettings) -> SearchSpace:
    """The joint space of a supernet backbone and head.

    A stage deeper than every stage the head fuses is not computed, so its labels are active
    only under the fusions that need it; a layer is active only while its stage is deep enough.
    """
    fusion = f"{HEAD}fusion"
    choices: dict[str, tuple] = {fusion: tuple(head.fusions)}
    choices[f"{HEAD}channels"] = tuple(sorted(head.channel_choices))
    if head.details:
        choices[f"{HEAD}detail"] = tuple(sorted(set(head.details)))
    conditions: dict[str, tuple] = {}
    for i, max_depth in enumerate(backbone.max_depths):
        stage = f"{BACKBONE}stage{i}"
        users = tuple(f for f in head.fusions if needed_stages(f) > i)
        stage_cond = () if users == tuple(head.fusions) else ((fusion, users),)
        for name, opts in (
            ("depth", tuple(range(1, max_depth + 1))),
            ("width", tuple(sorted(backbone.width_ratios))),
        ):
            choices[f"{stage}.{name}"] = opts
            if stage_cond:
                conditions[f"{stage}.{name}"] = stage_cond
        for j in range(max_depth):
            depth_cond = ((f"{stage}.depth", tuple(range(j + 1, max_depth + 1))),) if j else ()
            for name, opts in (
                ("op", backbone.ops),
                ("dilation", backbone.dilations),
                ("zoom", backbone.zooms),
            ):
                label = f"{stage}.layer{j}.{name}"
                choices[label] = tuple(opts)
                if stage_cond or depth_cond:
                    conditions[label] = stage_cond + depth_cond
    return SearchSpace(choices, conditions)


def space_from_model_cfg(model: Mapping[str, Any]) -> SearchSpace:
    """The search space an mmseg supernet model config (``cfg.model``) defines."""
    return build_space(
        BackboneSettings.from_cfg(model["backbone"].get("arch_settings")),
        HeadSettings.from_cfg(model["decode_head"]),
    )


def functional_arch(arch: Mapping[str, Any], settings: BackboneSettings,
                    size: tuple[int, int]) -> Arch:  # fmt: skip
    """``arch`` with every dilation that reaches past its feature map at input ``size``
    replaced by the smallest such dilation: paths computing the same function get one key
    (their 3x3 kernels read only their centre tap either way)."""
    out = dict(arch)
    for stage in range(len(SCALES)):
        for j in range(settings.max_depths[stage]):
            layer = f"{BACKBONE}stage{stage}.layer{j}"
            if f"{layer}.dilation" not in arch:
                continue
            past = settings.dilations_past(stage, int(arch.get(f"{layer}.zoom", 1)), size)
            if int(arch[f"{layer}.dilation"]) in past:
                out[f"{layer}.dilation"] = min(past)
    return out


def stage_arch(
    arch: Mapping[str, Any], stage: int
) -> tuple[int, float, list[tuple[str, int, int]]]:
    """(depth, width ratio, [(op, dilation, zoom) per active layer]) of one stage of an arch."""
    prefix = f"{BACKBONE}stage{stage}"
    depth = int(arch[f"{prefix}.depth"])
    layers = [
        (
            arch[f"{prefix}.layer{j}.op"],
            int(arch[f"{prefix}.layer{j}.dilation"]),
            int(arch[f"{prefix}.layer{j}.zoom"]),
        )
        for j in range(depth)
    ]
    return depth, float(arch[f"{prefix}.width"]), layers


def strip(arch: Mapping[str, Any], prefix: str) -> Arch:
    """The sub-arch of labels starting with ``prefix``, prefix removed."""
    return {k[len(prefix) :]: v for k, v in arch.items() if k.startswith(prefix)}
