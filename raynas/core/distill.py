"""Multi-path training steps: the sandwich rule with in-place distillation, and Cream.

A *distiller* turns the path a sampler drew for an iteration into a plan of
:class:`PathStep` s that one optimizer step trains together (gradients accumulate over the
steps). It combines with every sampler: the sampler still chooses the sampled path and gets its
loss back.

- ``sandwich`` (BigNAS/OFA): the largest path on the labels, then the sampled path, the
  smallest path and ``num_random`` more random paths, each distilled from the largest path's
  logits of the same batch (in-place distillation).
- ``cream`` (Cream of the Crop, NeurIPS 2020): a board of the best paths seen so far (by
  training-batch pixel accuracy, Cream's insertion rule); after a warm-up, the sampled path is
  distilled from the board path that matches it best. Cream's meta matching network is replaced
  by architecture distance (fewest differing labels, ties to the higher score) and its matching
  score by a fixed 1, which makes the loss ``(KD + CE) / 2``.
"""

from __future__ import annotations

import abc
import inspect
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from raynas.core.errors import InvalidValueError, UnknownKeyError, closest
from raynas.core.space import Arch, SearchSpace

__all__ = [
    "DISTILLERS",
    "Cream",
    "Distiller",
    "PathStep",
    "PrioritizedBoard",
    "Sandwich",
    "build_distiller",
]


@dataclass(frozen=True)
class PathStep:
    """One forward/backward pass of a multi-path step.

    Attributes:
        arch: The path.
        role: ``teacher`` (trained on the labels; its logits teach the later steps),
            ``frozen`` (no gradient; its logits teach the later steps) or ``student``
            (``ce_weight * CE + kd_weight * KD`` against the last teacher's logits).
        sampled: This is the sampler's path (its loss is the iteration's ``loss``).
        ce_weight: Weight of the label loss.
        kd_weight: Weight of the distillation loss.
    """

    arch: Arch
    role: str
    sampled: bool = False
    ce_weight: float = 1.0
    kd_weight: float = 0.0


class Distiller(abc.ABC):
    """Base class of distillers.

    Args:
        space: The search space.
        temperature: Softmax temperature of the distillation loss.
    """

    name = "base"

    def __init__(self, space: SearchSpace, temperature: float = 1.0) -> None:
        if temperature <= 0:
            raise InvalidValueError(f"distill.temperature must be > 0, got {temperature}")
        self.space, self.temperature = space, temperature

    @abc.abstractmethod
    def plan(self, sampled: Arch, iteration: int, max_iters: int) -> list[PathStep]:
        """The steps of ``iteration`` around the sampler's path ``sampled``."""

    def observe(  # noqa: B027
        self, arch: Arch, accuracy: float, flops: float, iteration: int, max_iters: int
    ) -> None:
        """Feedback: ``arch`` scored ``accuracy`` (%) on this iteration's batch."""

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:  # noqa: B027
        """Restores :meth:`state_dict`."""


class Sandwich(Distiller):
    """The sandwich rule with in-place distillation from the largest path.

    Args:
        space: The search space.
        num_random: Random paths per step besides the sampled one.
        kd_weight: Weight of the distillation loss of the students.
        ce_weight: Weight of the students' label loss.
        temperature: Softmax temperature.
        seed: Seed of the extra random paths.
    """

    name = "sandwich"

    def __init__(
        self,
        space: SearchSpace,
        num_random: int = 0,
        kd_weight: float = 1.0,
        ce_weight: float = 1.0,
        temperature: float = 1.0,
        seed: int = 0,
    ) -> None:
        super().__init__(space, temperature)
        if num_random < 0 or kd_weight < 0 or ce_weight < 0:
            raise InvalidValueError("distill.num_random, kd_weight and ce_weight must be >= 0")
        self.num_random, self.kd_weight, self.ce_weight = num_random, kd_weight, ce_weight
        self.rng = np.random.default_rng(seed)
        self.largest, self.smallest = space.extreme(True), space.extreme(False)

    def plan(self, sampled: Arch, iteration: int, max_iters: int) -> list[PathStep]:
        kw = dict(role="student", kd_weight=self.kd_weight, ce_weight=self.ce_weight)
        steps = [PathStep(self.largest, "teacher", sampled=sampled == self.largest)]
        if sampled != self.largest:
            steps.append(PathStep(sampled, sampled=True, **kw))
        extra = [self.smallest] + [self.space.sample(self.rng) for _ in range(self.num_random)]
        return steps + [PathStep(a, **kw) for a in extra if a != self.largest]

    def state_dict(self) -> dict[str, Any]:
        return {"rng": self.rng.bit_generator.state}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.rng.bit_generator.state = state["rng"]


class PrioritizedBoard:
    """Cream's board: the best paths seen so far, best first.

    A path enters when the board is not full, when it beats the worst entry by ``gap``
    points, or when it beats the worst entry and costs less.

    Args:
        size: Number of paths kept.
        gap: Accuracy margin (points) to replace the worst entry regardless of cost.
    """

    def __init__(self, size: int = 10, gap: float = 5.0) -> None:
        if size < 1:
            raise InvalidValueError(f"distill.board_size must be >= 1, got {size}")
        self.size, self.gap = size, gap
        self.entries: list[dict[str, Any]] = []

    def consider(self, arch: Arch, score: float, flops: float) -> bool:
        """Offers ``arch``; returns whether it is on the board afterwards."""
        for entry in self.entries:
            if entry["arch"] == arch:  # a path on the board keeps its latest score
                entry["score"] = score
                self.entries.sort(key=lambda e: -e["score"])
                return True
        worst = self.entries[-1] if self.entries else None
        if not (
            len(self.entries) < self.size
            or score > worst["score"] + self.gap
            or (score > worst["score"] and flops < worst["flops"])
        ):
            return False
        self.entries.append(dict(arch=dict(arch), score=float(score), flops=float(flops)))
        self.entries.sort(key=lambda e: -e["score"])
        del self.entries[self.size :]
        return any(e["arch"] == arch for e in self.entries)

    def match(self, arch: Arch) -> Arch | None:
        """The board path closest to ``arch`` (fewest differing labels; ties: higher score)."""
        if not self.entries:
            return None

        def distance(entry: dict[str, Any]) -> tuple[int, float]:
            differ = sum(entry["arch"].get(k) != v for k, v in arch.items())
            return differ, -entry["score"]

        return dict(min(self.entries, key=distance)["arch"])


class Cream(Distiller):
    """Cream's prioritized-path distillation (board + distillation from the matching path).

    Args:
        space: The search space.
        board_size: Paths on the board (Cream: 10).
        gap: Accuracy margin of the board's insertion rule (Cream: 5 points).
        start: Fraction of the run before the board fills and distillation starts (Cream:
            20 of 120 epochs).
        temperature: Softmax temperature.
    """

    name = "cream"

    def __init__(
        self,
        space: SearchSpace,
        board_size: int = 10,
        gap: float = 5.0,
        start: float = 0.2,
        temperature: float = 1.0,
    ) -> None:
        super().__init__(space, temperature)
        if not 0 <= start < 1:
            raise InvalidValueError(f"distill.start must be in [0, 1), got {start}")
        self.board, self.start = PrioritizedBoard(board_size, gap), start

    def _active(self, iteration: int, max_iters: int) -> bool:
        return iteration >= self.start * max_iters

    def plan(self, sampled: Arch, iteration: int, max_iters: int) -> list[PathStep]:
        teacher = self.board.match(sampled) if self._active(iteration, max_iters) else None
        if teacher is None or teacher == sampled:
            return [PathStep(sampled, "teacher", sampled=True)]
        return [
            PathStep(teacher, "frozen"),
            PathStep(sampled, "student", True, ce_weight=0.5, kd_weight=0.5),
        ]

    def observe(
        self, arch: Arch, accuracy: float, flops: float, iteration: int, max_iters: int
    ) -> None:
        if self._active(iteration, max_iters):
            self.board.consider(arch, accuracy, flops)

    def state_dict(self) -> dict[str, Any]:
        return {"board": [dict(e) for e in self.board.entries]}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.board.entries = [dict(e) for e in state.get("board", [])]


DISTILLERS: dict[str, type[Distiller]] = {cls.name: cls for cls in (Sandwich, Cream)}


def build_distiller(cfg: Mapping[str, Any] | None, space: SearchSpace) -> Distiller | None:
    """A distiller from ``dict(type=..., **kwargs)``; ``None`` for none.

    Raises:
        UnknownKeyError: Unknown ``type`` or argument, naming the known ones.
    """
    if not cfg:
        return None
    cfg = dict(cfg)
    kind = cfg.pop("type", None)
    if kind not in DISTILLERS:
        hint = closest(str(kind), DISTILLERS)
        raise UnknownKeyError(f"unknown distill type {kind!r}{hint}; known: {sorted(DISTILLERS)}")
    known = [p for p in inspect.signature(DISTILLERS[kind]).parameters if p != "space"]
    for key in cfg:
        if key not in known:
            raise UnknownKeyError(
                f"unknown distill.{key} for type {kind!r}{closest(key, known)}; known: {known}"
            )
    return DISTILLERS[kind](space, **cfg)
