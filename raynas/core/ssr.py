"""Solution Space Regularization (SSR, Ye et al., IJCV 2022): architecture weights, the SSR
loss and hierarchical progressive shrinking, over the labels of a :class:`SearchSpace`.

Every label of the space is one decision row. A row's probabilities are the sigmoid of its
architecture weights, normalised over the candidates still valid (as the official code does).
The SSR loss of a row is ``(1/K) sum_i log p_i + log K`` = ``-KL(uniform || p)`` over its ``K``
valid candidates: 0 at uniform, falling without bound as the row concentrates, so minimising it
drives every row toward one-hot. Rows are grouped by decision type (``depth``, ``ops`` for
operator/dilation/zoom, ``widths``, ``head``), each with its own loss weight. Shrinking removes
the candidates with ``p_i / max_j p_j <= threshold``, level by level at each step: depth first,
then operator/dilation/zoom, then widths and head, never the last candidate of a row.

This module is the method's core only (no model): the relaxed forward pass that consumes the
probabilities is :mod:`mmseg_plugins.models.relaxed`, the expected cost
:mod:`raynas.core.ssr_cost`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from raynas.core.errors import InvalidValueError, UnknownKeyError, closest
from raynas.core.space import Arch, SearchSpace

__all__ = [
    "COSTS",
    "DECISION_TYPES",
    "LINKS",
    "OPTIMIZERS",
    "SHRINK_ORDER",
    "ArchWeights",
    "SampledWeights",
    "check_loss_weights",
    "check_settings",
    "decision_type",
]

DECISION_TYPES = ("depth", "ops", "widths", "head")
SHRINK_ORDER = (("depth",), ("ops",), ("widths", "head"))


def decision_type(label: str) -> str:
    """The decision type of a label of the segmentation space."""
    if label.startswith("head."):
        return "head"
    if label.endswith(".depth"):
        return "depth"
    if label.endswith(".width"):
        return "widths"
    return "ops"  # .op, .dilation, .zoom


def check_loss_weights(weights: Mapping[str, Any], where: str = "SSR loss_weights") -> dict:
    """``weights`` per decision type, checked: known types, numbers >= 0 (missing: 1.0)."""
    out = {t: 1.0 for t in DECISION_TYPES}
    for key, value in weights.items():
        if key not in out:
            raise UnknownKeyError(
                f"unknown SSR decision type {key!r} in {where}{closest(key, DECISION_TYPES)}; "
                f"known: {list(DECISION_TYPES)}"
            )
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise InvalidValueError(f"{where}.{key} must be a number >= 0, got {value!r}")
        out[key] = float(value)
    return out


LINKS = ("sigmoid", "exp")
COSTS = ("flops", "latency_ms")  # what an SSR target can be set on
# SSR's numeric settings and their lower bounds (``target_flops``: > 0 or None)
LOWER_BOUNDS = dict(iters=1, shrink_interval=1, warmup_iters=0, threshold=0, cost_weight=0,
                     grad_clip=0, sample_k=0)  # fmt: skip
COUNT_SETTINGS = ("iters", "shrink_interval", "warmup_iters", "sample_k")  # whole numbers


def check_settings(settings: Mapping[str, Any], where: str) -> None:
    """Checks the numeric SSR settings present in ``settings`` (the same rules for
    ``tune_cfg.search.ssr`` and for ``SSRHook``'s arguments).

    Raises:
        InvalidValueError: A value below its bound, or not a number; the message names it.
    """
    for key, low in LOWER_BOUNDS.items():
        value = settings.get(key, low)
        kinds, kind = (
            ((int,), "an integer") if key in COUNT_SETTINGS else ((int, float), "a number")
        )
        if isinstance(value, bool) or not isinstance(value, kinds) or value < low:
            raise InvalidValueError(f"{where}.{key} must be {kind} >= {low}, got {value!r}")
    for key in ("target_flops", "target_latency_ms"):
        target = settings.get(key)
        if target is not None and (
            isinstance(target, bool) or not isinstance(target, (int, float)) or target <= 0
        ):
            raise InvalidValueError(f"{where}.{key} must be > 0 or None, got {target!r}")
    if settings.get("sample_k", 0) == 1:
        raise InvalidValueError(
            f"{where}.sample_k=1 leaves each row one candidate at weight 1, so alpha gets no "
            "task gradient; use 0 (every candidate) or >= 2"
        )
    _check_optimizer(settings, where)
    cost = settings.get("cost", "flops")
    if cost not in COSTS:
        raise InvalidValueError(
            f"{where}.cost must be one of {list(COSTS)}{closest(str(cost), COSTS)}, got {cost!r}"
        )


OPTIMIZERS = ("ssr", "xnas")  # the architecture optimizers


def _check_optimizer(settings: Mapping[str, Any], where: str) -> None:
    """``optimizer``, XNAS's ``xnas_bound`` and ``xnas_lr`` (> 0 or None), the
    derivation's ``tolerance`` (in (0, 1))."""
    optimizer = settings.get("optimizer", "ssr")
    if optimizer not in OPTIMIZERS:
        raise InvalidValueError(
            f"{where}.optimizer must be one of {list(OPTIMIZERS)}"
            f"{closest(str(optimizer), OPTIMIZERS)}, got {optimizer!r}"
        )
    for key in ("xnas_bound", "xnas_lr"):
        value = settings.get(key)
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0
        ):
            raise InvalidValueError(f"{where}.{key} must be a number > 0 or None, got {value!r}")
    tolerance = settings.get("tolerance", 0.05)
    if (
        isinstance(tolerance, bool)
        or not isinstance(tolerance, (int, float))
        or not (0 < tolerance < 1)
    ):
        raise InvalidValueError(f"{where}.tolerance must be in (0, 1), got {tolerance!r}")
    if optimizer == "xnas" and settings.get("sample_k", 0):
        raise InvalidValueError(
            f"{where}.sample_k={settings['sample_k']} with optimizer='xnas': XNAS rewards "
            "every valid candidate at each step; use sample_k=0"
        )


class ArchWeights(nn.Module):
    """Architecture weights of every decision row, with valid-candidate masks.

    Args:
        space: The search space (rows = its labels with more than one choice).
        loss_weights: SSR loss weight per decision type (missing types: 1.0).
        link: How a row's weights become probabilities: ``'sigmoid'`` (SSR's official code,
            ``sigmoid(alpha)`` normalised) or ``'exp'`` (XNAS: ``alpha`` is the log of each
            expert's weight, ``p = softmax(alpha)`` over the valid candidates).
    """

    def __init__(
        self,
        space: SearchSpace,
        loss_weights: Mapping[str, float] | None = None,
        link: str = "sigmoid",
    ):
        super().__init__()
        if link not in LINKS:
            raise InvalidValueError(f"ArchWeights link must be one of {list(LINKS)}, got {link!r}")
        self.space, self.link = space, link
        self.rows = [k for k, v in space.choices.items() if len(v) > 1]
        self.alpha_keys = set(self.rows)
        self.loss_weights = check_loss_weights(loss_weights or {})
        self.alpha = nn.ParameterDict(
            {_key(k): nn.Parameter(torch.zeros(len(space.choices[k]))) for k in self.rows}
        )
        for k in self.rows:
            self.register_buffer(_mask(k), torch.ones(len(space.choices[k]), dtype=torch.bool))

    def mask(self, label: str) -> torch.Tensor:
        return getattr(self, _mask(label))

    def weight(self, label: str) -> nn.Parameter:
        """The row's architecture weights (``alpha``)."""
        return self.alpha[_key(label)]

    def p(self, label: str) -> torch.Tensor:
        """Probabilities over all of ``label``'s choices (a one-choice label: ``[1.]``)."""
        if label in self.alpha_keys:
            return self.probs(label)
        ref = next(iter(self.alpha.values()))
        return torch.ones(len(self.space.choices[label]), dtype=ref.dtype, device=ref.device)

    def valid(self, label: str) -> list[int]:
        """Indices of ``label``'s candidates still valid."""
        if label not in self.alpha_keys:
            return list(range(len(self.space.choices[label])))
        return [i for i, v in enumerate(self.mask(label).tolist()) if v]

    def probs(self, label: str) -> torch.Tensor:
        """The row's probabilities (0 for pruned candidates)."""
        a = self.weight(label)
        if self.link == "exp":  # shifted by the largest valid weight: no overflow
            a = a - a.detach().masked_fill(~self.mask(label), float("-inf")).max()
            p = torch.exp(a) * self.mask(label)
        else:
            p = torch.sigmoid(a) * self.mask(label)
        return p / p.sum()

    def ssr_loss(self) -> torch.Tensor:
        """Weighted mean over rows of ``(1/K) sum log p_i + log K`` (valid candidates only)."""
        terms = []
        for label in self.rows:
            valid = self.mask(label)
            k = int(valid.sum())
            if k < 2:
                continue
            p = self.probs(label)[valid]
            weight = self.loss_weights[decision_type(label)]
            terms.append(weight * (torch.log(p).mean() + math.log(k)))
        if not terms:
            return self.weight(self.rows[0]).sum() * 0.0
        return torch.stack(terms).mean()

    def entropy(self) -> dict[str, float]:
        """Mean normalised entropy of the rows of each decision type (1 uniform, 0 one-hot)."""
        out: dict[str, list[float]] = {}
        with torch.no_grad():
            for label in self.rows:
                p = self.probs(label)
                p = p[p > 0]
                h = float(-(p * p.log()).sum() / math.log(len(self.space.choices[label])))
                out.setdefault(decision_type(label), []).append(h)
        return {t: sum(v) / len(v) for t, v in out.items()}

    def undecided(self, types: tuple[str, ...]) -> list[str]:
        return [k for k in self.rows if decision_type(k) in types and int(self.mask(k).sum()) > 1]

    @torch.no_grad()
    def shrink(
        self, threshold: float = 0.1, protect: Mapping[str, Any] | None = None
    ) -> dict[str, int]:
        """Prunes every row level by level in :data:`SHRINK_ORDER` (depth, then
        operator/dilation/zoom, then widths and head), as the official code does at each
        shrink step; returns the candidates removed per label, in pruning order.

        Args:
            threshold: Prune the candidates with ``p_i / max_j p_j <= threshold``.
            protect: A choice per label that is never pruned (a path that meets a cost
                target stays reachable).
        """
        protect = protect or {}
        removed: dict[str, int] = {}
        for level in SHRINK_ORDER:
            removed.update({k: n for k in self.undecided(level)
                            if (n := self._prune(k, threshold, protect.get(k)))})  # fmt: skip
        return removed

    def _prune(self, label: str, threshold: float, protected: Any = None) -> int:
        p = self.probs(label)
        return self.restrict_(label, p / p.max() > threshold, protected)

    @torch.no_grad()
    def restrict_(self, label: str, keep: torch.Tensor, protected: Any = None) -> int:
        """Keeps the valid candidates of ``label`` that ``keep`` marks, always the most probable
        (never the last candidate) and the ``protected`` choice; returns how many went."""
        keep = keep & self.mask(label)
        keep[int(self.probs(label).argmax())] = True
        if protected is not None:
            keep[self.space.choices[label].index(protected)] = True
        removed = int(self.mask(label).sum() - keep.sum())
        self.mask(label).copy_(keep)
        return removed

    @torch.no_grad()
    def decide_(self, label: str, index: int) -> None:
        """Leaves ``label`` the one candidate ``index``."""
        mask = torch.zeros_like(self.mask(label))
        mask[index] = True
        self.mask(label).copy_(mask)

    def decided_rows(self) -> list[str]:
        """The rows with one candidate left."""
        return [k for k in self.rows if int(self.mask(k).sum()) == 1]

    def candidates_left(self) -> int:
        return int(sum(int(self.mask(k).sum()) for k in self.rows))

    @property
    def decided(self) -> bool:
        return all(int(self.mask(k).sum()) == 1 for k in self.rows)

    @torch.no_grad()
    def derive(self) -> Arch:
        """The argmax architecture (canonical)."""
        arch = {k: v[0] for k, v in self.space.choices.items()}
        for label in self.rows:
            arch[label] = self.space.choices[label][int(self.probs(label).argmax())]
        return self.space.canonical(arch)

    @torch.no_grad()
    def sample(self, k: int, generator: torch.Generator) -> ArchWeights | SampledWeights:
        """The weights one step computes: all valid candidates (``k`` = 0, the paper's), or
        ``k`` of each row's drawn without replacement in proportion to their probabilities
        (ProxylessNAS-style; drawing rather than taking the top ``k`` lets every candidate
        still earn task gradient, and starts without ties to break at uniform ``alpha``)."""
        if k <= 0:
            return self
        active = {}
        for label in self.rows:
            valid = self.valid(label)
            if len(valid) > k:
                p = self.probs(label)[valid].float().cpu()
                pick = torch.multinomial(p, k, replacement=False, generator=generator)
                active[label] = sorted(valid[i] for i in pick.tolist())
        return SampledWeights(self, active)

    @torch.no_grad()
    def settle_(self, arch: Mapping[str, Any]) -> None:
        """Decides every row: ``arch``'s choice where the label is active in it, the most
        probable valid candidate elsewhere."""
        for label in self.rows:
            if self.space.is_active(arch, label):
                self.decide_(label, self.space.choices[label].index(arch[label]))
            else:
                self.decide_(label, int(self.probs(label).argmax()))

    def onehot_(self, arch: Mapping[str, Any]) -> None:
        """Masks every row to ``arch``'s choice (probabilities become one-hot)."""
        for label in self.rows:
            self.decide_(label, self.space.choices[label].index(arch[label]))


class SampledWeights:
    """One step's view of :class:`ArchWeights` restricted to drawn candidates: ``p`` is
    renormalised over them (differentiable in ``alpha``), ``valid`` lists them; what the relaxed
    forward reads (``space``, ``p``, ``valid``), nothing else.

    Args:
        weights: The architecture weights.
        active: Drawn candidate indices per row (rows not listed: all valid ones).
    """

    def __init__(self, weights: ArchWeights, active: Mapping[str, list[int]]):
        self.space, self.weights, self.active = weights.space, weights, dict(active)

    def p(self, label: str) -> torch.Tensor:
        p = self.weights.p(label)
        if label not in self.active:
            return p
        keep = torch.zeros_like(p)
        keep[self.active[label]] = 1
        return p * keep / (p * keep).sum()

    def valid(self, label: str) -> list[int]:
        return self.active.get(label) or self.weights.valid(label)


def _key(label: str) -> str:
    return label.replace(".", "__")


def _mask(label: str) -> str:
    return "mask__" + _key(label)
