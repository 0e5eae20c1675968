"""SSR's relaxed forward pass over the supernet's own weights (``SegSuperNet``,
``SearchableHead``).

Every decision is a weighted mixture, computed from the same modules the single-path forward
uses, so a checkpoint of any supernet strategy warm-starts it and on one-hot probabilities it
equals the single-path forward:

- operator x zoom: a mixture of the layer's residual outputs; ``ir3``/``ir6`` share one pass of
  the inverted-residual body whose hidden channels carry a soft mask (``ir3`` is the first
  ``3 w`` channels of ``ir6``'s ``6 w``);
- dilation: a mixture of the dilated convolutions' outputs inside the body (the depthwise conv of
  ``ir``, the dilated pair of ``fr``);
- width (stage and head channels): soft channel masks ``sum_w p_w 1[c < w]`` on every output;
- depth: the stage's output is ``sum_d p_d x_d``, the output after ``d`` layers;
- head fusion: each stage's lateral projection weighted by the probability that it is fused;
- head detail: the 1/8 features upsampled to 1/4 mixed with the detail branch's output (the
  classifier is linear, so this mixes the two paths' logits at 1/4).

Candidates pruned by shrinking (probability 0) are not computed. Computing every valid candidate
costs ``len(zooms) x (fr + ir)`` body passes per layer and ``len(dilations)`` dilated
convolutions per body; ``benchmarks/ssr.py`` measures the peak memory against a single path.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F

from raynas.core.seg_space import BACKBONE, HEAD, expansion, fusion_scales, stage_width

__all__ = ["relaxed_backbone", "relaxed_head"]


def _mask(p: torch.Tensor, sizes: Sequence[int], channels: int, valid: list[int]) -> torch.Tensor:
    """``sum_k p_k 1[c < sizes_k]`` as a (1, C, 1, 1) tensor."""
    c = torch.arange(channels, device=p.device)
    m = sum(p[k] * (c < sizes[k]).to(p.dtype) for k in valid)
    return m.view(1, -1, 1, 1)


def relaxed_backbone(backbone: Any, x: torch.Tensor, w: Any) -> tuple:
    """The relaxed forward of a ``SegSuperNet`` under architecture weights ``w``."""
    fusions = w.space.choices[f"{HEAD}fusion"]
    stages = max(max(fusion_scales(fusions[k])) + 1 for k in w.valid(f"{HEAD}fusion"))
    x = stem = backbone.stem(x)
    outs: list[torch.Tensor | None] = [None] * len(backbone.stages)
    for i, stage in enumerate(backbone.stages[:stages]):
        x = _stage(stage, f"{BACKBONE}stage{i}", x, w, backbone.settings, i)
        outs[i] = x
    return backbone.outputs(outs, stem)


def _stage(stage: Any, prefix: str, x: torch.Tensor, w: Any, settings: Any, i: int):
    ratios = w.space.choices[f"{prefix}.width"]
    widths = [stage_width(settings.stage_channels[i], r) for r in ratios]
    cmax = settings.max_width(i)
    pw, valid_w = w.p(f"{prefix}.width"), w.valid(f"{prefix}.width")
    m = _mask(pw, widths, cmax, valid_w)
    stage.downsample.set_out(cmax)
    x = stage.downsample(x) * m
    depths, pd = w.space.choices[f"{prefix}.depth"], w.p(f"{prefix}.depth")
    valid_d = w.valid(f"{prefix}.depth")
    out = 0
    for j in range(max(depths[k] for k in valid_d)):
        x = _layer(stage.layers[j], f"{prefix}.layer{j}", x, w, m, (pw, valid_w, widths))
        if depths.index(j + 1) in valid_d:
            out = out + pd[depths.index(j + 1)] * x
    return out


def _layer(layer: Any, prefix: str, x: torch.Tensor, w: Any, m: torch.Tensor, width: tuple):
    ops, pop = w.space.choices[f"{prefix}.op"], w.p(f"{prefix}.op")
    zooms, pz = w.space.choices[f"{prefix}.zoom"], w.p(f"{prefix}.zoom")
    dil = (w.space.choices[f"{prefix}.dilation"], w.p(f"{prefix}.dilation"),
           w.valid(f"{prefix}.dilation"))  # fmt: skip
    valid_ops = [ops[k] for k in w.valid(f"{prefix}.op")]
    ir = [k for k in w.valid(f"{prefix}.op") if ops[k] != "fr"]
    y = 0
    for z in w.valid(f"{prefix}.zoom"):
        xin = x if zooms[z] == 1 else F.avg_pool2d(x, zooms[z], ceil_mode=True)
        if "fr" in valid_ops:
            body = _fr(layer.fr, xin, m, dil)
            y = y + pz[z] * pop[ops.index("fr")] * F.relu(x + _up(body, x, zooms[z]))
        if ir:
            p_ir = sum(pop[k] for k in ir)
            body = _ir(layer.ir, xin, m, dil, [(expansion(ops[k]), pop[k] / p_ir) for k in ir],
                       width)  # fmt: skip
            y = y + pz[z] * p_ir * (x + _up(body, x, zooms[z]))
    return y


def _up(y: torch.Tensor, x: torch.Tensor, zoom: int) -> torch.Tensor:
    if zoom == 1:
        return y
    return F.interpolate(y, size=x.shape[2:], mode="bilinear", align_corners=False)


def _fr(body: Any, x: torch.Tensor, m: torch.Tensor, dil: tuple) -> torch.Tensor:
    cmax = body.conv3x1_1.conv.weight.shape[0]
    for conv in (body.conv3x1_1, body.conv1x3_1, body.conv3x1_2, body.conv1x3_2):
        conv.set_out(cmax)
    h = body.conv1x3_1(body.conv3x1_1(x) * m) * m
    dilations, pd, valid = dil
    out = 0
    for k in valid:
        body.conv3x1_2.set_dilation(dilations[k])
        body.conv1x3_2.set_dilation(dilations[k])
        out = out + pd[k] * body.conv1x3_2(body.conv3x1_2(h) * m)
    return out * m


def _ir(body: Any, x: torch.Tensor, m: torch.Tensor, dil: tuple, experts: list, width: tuple):
    hmax, cmax = body.expand.conv.weight.shape[0], body.project.conv.weight.shape[0]
    pw, valid_w, widths = width
    hidden = sum(q * _mask(pw, [wd * e for wd in widths], hmax, valid_w) for e, q in experts)
    body.expand.set_out(hmax)
    body.project.set_out(cmax)
    h = body.expand(x) * hidden
    dilations, pd, valid = dil
    mixed = 0
    for k in valid:
        body.dw.set_dilation(dilations[k])
        mixed = mixed + pd[k] * body.dw(h)
    return body.project(mixed * hidden) * m


def relaxed_head(head: Any, inputs: Sequence[torch.Tensor], w: Any) -> torch.Tensor:
    """The relaxed forward of a ``SearchableHead`` under architecture weights ``w``."""
    feats = head._transform_inputs(inputs)
    fusions, pf = w.space.choices[f"{HEAD}fusion"], w.p(f"{HEAD}fusion")
    chs, label = w.space.choices[f"{HEAD}channels"], f"{HEAD}channels"
    m = _mask(w.p(label), [int(c) for c in chs], head.channels, w.valid(label))
    size, out = feats[0].shape[2:], 0
    for i, key in enumerate(head.lateral):
        users = [k for k in w.valid(f"{HEAD}fusion") if i in fusion_scales(fusions[k])]
        if not users:
            continue
        head.lateral[key].set_out(head.channels)
        y = head.lateral[key](feats[i]) * m
        if y.shape[2:] != size:
            y = F.interpolate(y, size=size, mode="bilinear", align_corners=head.align_corners)
        out = out + sum(pf[k] for k in users) * y
    head.fuse.set_out(head.channels)
    out = head.fuse(out) * m
    label = f"{HEAD}detail"
    if label not in w.space.choices or 1 not in [
        w.space.choices[label][k] for k in w.valid(label)
    ]:
        return head.cls_seg(out)
    for conv in head._detail_convs():
        conv.set_out(head.channels)
    p = w.p(label)[list(w.space.choices[label]).index(1)]
    refined = head.refine(out, head.stem_features(inputs), m)
    if p == 1:
        return head.cls_seg(refined)
    up = F.interpolate(
        out, size=refined.shape[2:], mode="bilinear", align_corners=head.align_corners
    )
    return head.cls_seg((1 - p) * up + p * refined)  # the classifier is linear: mixes the logits
