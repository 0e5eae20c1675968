"""The cost a differentiable search (``SSRHook``) is held to: its expected value under the
architecture weights (the term the search's loss pulls toward the target), the exact value of
one path, the target's range check, and the derived path held within ``tolerance`` of the
target (:func:`raynas.core.ssr_derive.derive_under_cost`)."""

from __future__ import annotations

from typing import Any

import torch

from mmseg_plugins.latency import LatencyCost
from raynas.core.complexity import PathComplexity
from raynas.core.errors import InvalidValueError
from raynas.core.space import Arch, SearchSpace
from raynas.core.ssr_cost import expected_flops
from raynas.core.ssr_derive import active_choices, derive_under_cost, shrink_under_cost

__all__ = ["SearchCost"]


class SearchCost:
    """FLOPs (closed form) or latency (the device's table) of the relaxed supernet's paths.

    Args:
        table: The closed-form cost model of the supernet at its input size.
        latency: The latency table (``cost='latency_ms'``); None: FLOPs.
        target: The cost asked for, in the cost's unit; None: no target.
        tolerance: Relative half-width of the band the derived path is held to.
    """

    def __init__(
        self,
        table: PathComplexity,
        latency: LatencyCost | None,
        target: float | None,
        tolerance: float,
    ) -> None:
        self.table, self.latency, self.target, self.tolerance = table, latency, target, tolerance
        self.derivation: dict[str, Any] = {}
        self.anchor: Arch | None = None  # the last path derived within the band

    def check(self, space: SearchSpace) -> None:
        """Refuses a target no path of ``space`` reaches, with the range it reaches."""
        if self.target is None:
            return
        if self.latency is not None:
            key, unit = "target_latency_ms", "ms"
            on = f" on {self.latency.table.device_key}"
        else:
            key, unit, on = "target_flops", "FLOPs", ""
        low, high = space.cost_range(self.exact)
        if not low <= self.target <= high:
            raise InvalidValueError(
                f"SSRHook.{key}={self.target:.4g} is outside what the space reaches{on} "
                f"({low:.4g}..{high:.4g} {unit} at this input size); choose a target in range"
            )

    def expected_flops(self, view: Any) -> torch.Tensor:
        """``E[FLOPs]`` under ``view`` (the architecture weights, or one step's view)."""
        return expected_flops(view.p, view.space.choices, self.table)

    def expected(self, view: Any) -> torch.Tensor:
        """The expected cost the target applies to (FLOPs, or latency in ms)."""
        if self.latency is None:
            return self.expected_flops(view)
        return self.latency.expected(view)

    def exact(self, arch: Arch) -> float:
        """The cost of one path, in the target's unit."""
        return self.latency.predict(arch) if self.latency is not None else self.table(arch).flops

    def derive(self, weights: Any) -> Arch:
        """The argmax path, or with a target the most probable path within the band
        (``self.derivation`` says how it was found)."""
        if self.target is None:
            return weights.derive()
        return self._derive(weights)[0]

    def _derive(self, weights: Any) -> tuple[Arch, dict[str, Any]]:
        starts = [self.anchor] if self.anchor else []
        arch, self.derivation = derive_under_cost(weights, self.exact, self.target,
                                                  self.tolerance, starts)  # fmt: skip
        if self.derivation["within"]:
            self.anchor = arch
        return arch, self.derivation

    def shrink(self, weights: Any, threshold: float) -> tuple[dict[str, int], list[str]]:
        """The paper's shrinking step; with a target, a path within the band kept reachable
        (:func:`~raynas.core.ssr_derive.shrink_under_cost`). Returns the candidates removed per
        row and the rows decided by the cost rather than the threshold."""
        if self.target is None:
            return weights.shrink(threshold), []
        return shrink_under_cost(weights, threshold, lambda: self._derive(weights))

    def protected(self, weights: Any) -> dict[str, Any] | None:
        """With a target: the derived path's active choices, kept through shrinking and
        wipeout so that a path within the band stays reachable."""
        if self.target is None:
            return None
        return active_choices(weights, self.derive(weights))

    @torch.no_grad()
    def now(self, weights: Any) -> dict[str, float]:
        """The expected FLOPs (and latency) under ``weights``, and the last derivation's."""
        out = dict(expected_mflops=float(self.expected_flops(weights)) / 1e6)
        if self.latency is not None:
            out["expected_latency_ms"] = float(self.expected(weights))
        out.update({f"derived_{k}": float(v) for k, v in self.derivation.items()
                    if k in ("cost", "argmax_cost", "within")})  # fmt: skip
        return out
