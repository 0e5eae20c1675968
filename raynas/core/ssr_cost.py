"""The differentiable expected cost of SSR's relaxed supernet (pure torch).

``E[FLOPs]`` sums every layer's closed-form FLOPs (the tables of :mod:`raynas.core.complexity`)
weighted by the probability that the layer is computed with that configuration: a stage is
computed when the head fuses it or a deeper stage, a layer when the stage's depth reaches it;
operator, zoom and width are independent rows. On one-hot probabilities the figure is exactly
:class:`~raynas.core.complexity.PathComplexity`'s for that path.

``E[latency]`` does the same over a latency table's entries (one per searchable layer
configuration, one per fixed part: the needed stages' width ratios, the head's fusion and
channels); on one-hot probabilities it is the table's prediction for that path.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence

import torch

from raynas.core.complexity import PathComplexity, _conv_bn, _down, _layer, detail_branch
from raynas.core.seg_space import BACKBONE, HEAD, fusion_scales, needed_stages, stage_width

__all__ = ["expected_flops", "expected_latency"]

Probs = Callable[[str], torch.Tensor]
LayerMs = Callable[[int, int, str, int, int], float]  # (stage, width, op, dilation, zoom)
FixedMs = Callable[[tuple, str, int, int], float]  # (stage width ratios, fusion, channels, detail)


def expected_flops(p: Probs, choices: Mapping[str, Sequence], pc: PathComplexity) -> torch.Tensor:
    """Expected FLOPs of the relaxed path.

    Args:
        p: Probabilities over a label's choices (``ArchWeights.p``).
        choices: The space's choices per label.
        pc: The closed-form cost model of the same supernet and input size.
    """
    c0, c1 = pc.backbone.stem_channels
    fusions, pf = choices[f"{HEAD}fusion"], p(f"{HEAD}fusion")
    size = _down(pc.input_size)
    stem = _conv_bn(3, c0, (3, 3), size).flops
    size = _down(size)
    total = pf.new_tensor(float(stem + _conv_bn(c0, c1, (3, 3), size).flops))
    cin: dict[int, torch.Tensor] = {c1: pf.new_ones(())}
    widths, sizes = [], []
    for i, channels in enumerate(pc.backbone.stage_channels):
        size = _down(size)
        width = _widths(p, choices, f"{BACKBONE}stage{i}.width", channels)
        stage = sum(pi * pw * _conv_bn(c, w, (3, 3), size).flops
                    for c, pi in cin.items() for w, pw in width.items())  # fmt: skip
        stage = stage + _layers(p, choices, i, width, size)
        total = total + _stage_reached(pf, fusions, i) * stage
        cin = width
        widths.append(width)
        sizes.append(size)
    return total + _head(p, choices, pc, widths, sizes)


def _widths(p: Probs, choices: Mapping[str, Sequence], label: str, ch: int) -> dict:
    out: dict[int, torch.Tensor] = {}
    for ratio, prob in zip(choices[label], p(label)):
        w = stage_width(ch, ratio)
        out[w] = out[w] + prob if w in out else prob
    return out


def _stage_reached(pf: torch.Tensor, fusions: Sequence[str], i: int) -> torch.Tensor | int:
    """Probability that stage ``i`` is computed: the head fuses it or a deeper stage."""
    return sum(pf[k] for k, f in enumerate(fusions) if needed_stages(f) > i)


def _over_depth(p: Probs, choices: Mapping, i: int, layer_cost: Callable) -> torch.Tensor:
    """Sum over stage ``i``'s layers of ``layer_cost(label prefix)``, each weighted by the
    probability that the stage's depth reaches the layer."""
    stage = f"{BACKBONE}stage{i}"
    depths, pd = choices[f"{stage}.depth"], p(f"{stage}.depth")
    total = pd.new_zeros(())
    for j in range(max(depths)):
        reached = sum(pd[k] for k, d in enumerate(depths) if d > j)
        total = total + reached * layer_cost(f"{stage}.layer{j}")
    return total


def _layers(p: Probs, choices: Mapping, i: int, width: dict, size: tuple) -> torch.Tensor:
    def cost(layer: str) -> torch.Tensor:
        ops, pop = choices[f"{layer}.op"], p(f"{layer}.op")
        zooms, pz = choices[f"{layer}.zoom"], p(f"{layer}.zoom")
        return sum(po * pzz * pw * _layer(op, int(z), w, size).flops
                   for op, po in zip(ops, pop) for z, pzz in zip(zooms, pz)
                   for w, pw in width.items())  # fmt: skip

    return _over_depth(p, choices, i, cost)


def _head(p: Probs, choices: Mapping, pc: PathComplexity, widths: list, sizes: list):
    chs, pch = choices[f"{HEAD}channels"], p(f"{HEAD}channels")
    fusions, pf = choices[f"{HEAD}fusion"], p(f"{HEAD}fusion")
    s0 = sizes[0]
    total = pf.new_zeros(())
    for i, (width, size) in enumerate(zip(widths, sizes)):
        fused = sum(pf[k] for k, f in enumerate(fusions) if i in fusion_scales(f))
        if not torch.is_tensor(fused):
            continue
        lateral = sum(pw * pc_ * _conv_bn(w, int(c), (1, 1), size).flops
                      for w, pw in width.items() for c, pc_ in zip(chs, pch))  # fmt: skip
        if size != s0:
            lateral = lateral + sum(pc_ * 4 * int(c) * s0[0] * s0[1] for c, pc_ in zip(chs, pch))
        total = total + fused * lateral
    p_detail = _p_detail(p, choices)
    s4 = _down(_down(pc.input_size))
    for c, pc_ in zip(chs, pch):
        c = int(c)
        fuse = _conv_bn(c, c, (3, 3), s0).flops
        cls = _conv_bn(c, pc.num_classes, (1, 1), s0, bn=False, bias=True).flops
        total = total + pc_ * (fuse + cls)
        if torch.is_tensor(p_detail):
            detail = detail_branch(pc.backbone.stem_channels[-1], c, s4).flops
            cls4 = _conv_bn(c, pc.num_classes, (1, 1), s4, bn=False, bias=True).flops
            total = total + pc_ * p_detail * (detail + cls4 - cls)
    return total


def _p_detail(p: Probs, choices: Mapping[str, Sequence]) -> torch.Tensor | int:
    """Probability of the head's detail branch (0 without a ``head.detail`` label)."""
    label = f"{HEAD}detail"
    if label not in choices or 1 not in choices[label]:
        return 0
    return p(label)[list(choices[label]).index(1)]


def expected_latency(
    p: Probs,
    choices: Mapping[str, Sequence],
    stage_channels: Sequence[int],
    layer_ms: LayerMs,
    fixed_ms: FixedMs,
) -> torch.Tensor:
    """Expected latency (ms) of the relaxed path from a latency table's entries.

    Args:
        p: Probabilities over a label's choices (``ArchWeights.p``).
        choices: The space's choices per label.
        stage_channels: The backbone's widest stage channels.
        layer_ms: The table's entry of one searchable layer configuration.
        fixed_ms: The table's entry of one fixed part.
    """
    fusions, pf = choices[f"{HEAD}fusion"], p(f"{HEAD}fusion")
    chs, pch = choices[f"{HEAD}channels"], p(f"{HEAD}channels")
    label = f"{HEAD}detail"
    details = list(zip(choices[label], p(label))) if label in choices else [(0, 1)]
    total = pf.new_zeros(())
    for k, fusion in enumerate(fusions):
        labels = [f"{BACKBONE}stage{i}.width" for i in range(needed_stages(fusion))]
        for ratios in itertools.product(*(choices[label] for label in labels)):
            prob = pf[k]
            for label, ratio in zip(labels, ratios):
                prob = prob * p(label)[list(choices[label]).index(ratio)]
            total = total + prob * sum(pc * pd * fixed_ms(ratios, fusion, int(c), d)
                                       for c, pc in zip(chs, pch)
                                       for d, pd in details)  # fmt: skip
    for i, channels in enumerate(stage_channels):
        reached = _stage_reached(pf, fusions, i)
        if not torch.is_tensor(reached):
            continue
        width = _widths(p, choices, f"{BACKBONE}stage{i}.width", channels)
        total = total + reached * _layers_ms(p, choices, i, width, layer_ms)
    return total


def _layers_ms(p: Probs, choices: Mapping, i: int, width: dict, layer_ms: LayerMs):
    def cost(layer: str) -> torch.Tensor:
        configs = itertools.product(*(zip(choices[f"{layer}.{n}"], p(f"{layer}.{n}"))
                                      for n in ("op", "dilation", "zoom")))  # fmt: skip
        return sum(po * pdil * pz * pw * layer_ms(i, w, op, int(d), int(z))
                   for (op, po), (d, pdil), (z, pz) in configs
                   for w, pw in width.items())  # fmt: skip

    return _over_depth(p, choices, i, cost)
