"""Search spaces: labelled categorical choices with conditional activity (pure Python + numpy).

An architecture (:data:`Arch`) is a plain ``dict`` from stable dotted labels to choices; it
round-trips through JSON and YAML. A label can be *conditional*: active only while other labels
take some values (a layer only while its stage is deep enough, a stage only while the head fuses
it). Inactive labels keep a value so that every arch is a full assignment, but
:meth:`SearchSpace.canonical` resets them, so two archs that compute the same network compare
equal after canonicalisation.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field

import numpy as np

from raynas.core.errors import InvalidValueError, closest

Arch = dict[str, Hashable]
Condition = tuple[str, tuple[Hashable, ...]]  # (parent label, parent values that activate)

__all__ = ["Arch", "InvalidArchError", "SearchSpace"]


class InvalidArchError(InvalidValueError):
    """An architecture does not belong to a search space."""


@dataclass(frozen=True)
class SearchSpace:
    """A joint categorical search space.

    Attributes:
        choices: Label -> tuple of allowed choices (order is meaningful: index 0 is the default).
        conditions: Label -> tuple of ``(parent_label, values)``; the label is active only while
            every parent takes one of its listed values. A label repeats its parents' own
            conditions, so activity never needs to be chained.
    """

    choices: Mapping[str, tuple[Hashable, ...]]
    conditions: Mapping[str, tuple[Condition, ...]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for label, opts in self.choices.items():
            if not opts:
                raise ValueError(f"label {label!r} has no choices")
            if len(set(opts)) != len(opts):
                raise ValueError(f"label {label!r} has duplicate choices {opts}")
        for label, conds in self.conditions.items():
            for parent, _ in conds:
                if label not in self.choices or parent not in self.choices:
                    raise ValueError(f"condition {label!r} -> {parent!r} names an unknown label")
                missing = set(self.conditions.get(parent, ())) - set(conds)
                if missing:
                    raise ValueError(
                        f"label {label!r} must repeat the conditions of its parent "
                        f"{parent!r}: {sorted(missing)}"
                    )

    def validate(self, arch: Mapping[str, Hashable]) -> Arch:
        """Checks ``arch`` and returns it as a plain dict.

        Raises:
            InvalidArchError: Naming the missing, unknown or bad label and the valid choices.
        """
        unknown = [k for k in arch if k not in self.choices]
        if unknown:
            raise InvalidArchError(
                f"unknown label(s) {unknown}{closest(str(unknown[0]), self.choices)}; valid "
                f"labels are: {', '.join(self.choices)}"
            )
        missing = [k for k in self.choices if k not in arch]
        if missing:
            raise InvalidArchError(f"architecture is missing label(s) {missing}")
        for label, value in arch.items():
            if value not in self.choices[label]:
                raise InvalidArchError(
                    f"bad choice {value!r} for label {label!r}; valid choices: "
                    f"{list(self.choices[label])}"
                )
        return {k: arch[k] for k in self.choices}

    def contains(self, arch: Mapping[str, Hashable]) -> bool:
        try:
            self.validate(arch)
        except InvalidArchError:
            return False
        return True

    def is_active(self, arch: Mapping[str, Hashable], label: str) -> bool:
        return all(arch[p] in values for p, values in self.conditions.get(label, ()))

    def canonical(self, arch: Mapping[str, Hashable]) -> Arch:
        """Returns ``arch`` with every inactive label reset to its first choice."""
        return {
            k: (arch[k] if self.is_active(arch, k) else opts[0])
            for k, opts in self.choices.items()
        }

    def key(self, arch: Mapping[str, Hashable]) -> tuple:
        """A hashable identity of the network ``arch`` computes (inactive labels ignored)."""
        canon = self.canonical(arch)
        return tuple(canon[k] for k in self.choices)

    def sample(self, rng: np.random.Generator) -> Arch:
        """Draws every label uniformly and independently."""
        return {k: opts[rng.integers(len(opts))] for k, opts in self.choices.items()}

    def extreme(self, largest: bool) -> Arch:
        """The arch with the last (``largest``) or first choice of every label."""
        return {k: opts[-1 if largest else 0] for k, opts in self.choices.items()}

    def cost_range(self, cost: Callable[[Arch], float], sweeps: int = 4) -> tuple[float, float]:
        """The lowest and highest ``cost`` an arch of the space reaches.

        Found by coordinate descent (one label at a time) from the first- and last-choice archs:
        exact for costs that add up over the labels, however they nest. The first choices need not
        be the cheapest: a layer computed at half resolution can take longer than it saves.

        Args:
            cost: The cost of one arch (FLOPs, parameters, a latency table's milliseconds).
            sweeps: Passes over the labels at most.
        """
        low = self._descend(cost, self.extreme(False), sweeps)
        high = -self._descend(lambda arch: -cost(arch), self.extreme(True), sweeps)
        return low, high

    def _descend(self, cost: Callable[[Arch], float], arch: Arch, sweeps: int) -> float:
        arch = dict(arch)
        for _ in range(sweeps):
            start = dict(arch)
            for label, opts in self.choices.items():
                # an inactive label takes its best choice as if active, ready for its parents
                ctx = dict(arch)
                for parent, values in self.conditions.get(label, ()):
                    if ctx[parent] not in values:
                        ctx[parent] = values[0]
                arch[label] = min(opts, key=lambda opt: cost({**ctx, label: opt}))
            if arch == start:
                break
        return cost(arch)

    def mutate(self, arch: Mapping[str, Hashable], rng: np.random.Generator, prob: float) -> Arch:
        """Redraws each label with probability ``prob`` (at least one label changes)."""
        out = dict(arch)
        labels = [k for k in self.choices if len(self.choices[k]) > 1]
        flips = [k for k in labels if rng.random() < prob] or [labels[rng.integers(len(labels))]]
        for k in flips:
            others = [c for c in self.choices[k] if c != arch[k]]
            out[k] = others[rng.integers(len(others))]
        return out

    def encode(self, arch: Mapping[str, Hashable]) -> np.ndarray:
        """One-hot encoding of the canonical arch (inactive labels encode as all zeros)."""
        parts = []
        for k, opts in self.choices.items():
            vec = np.zeros(len(opts), np.float32)
            if self.is_active(arch, k):
                vec[opts.index(arch[k])] = 1.0
            parts.append(vec)
        return np.concatenate(parts)

    def index_vector(self, arch: Mapping[str, Hashable]) -> np.ndarray:
        """Choice indices of the canonical arch (for Hamming distances)."""
        canon = self.canonical(arch)
        return np.array([opts.index(canon[k]) for k, opts in self.choices.items()])

    def size(self) -> int:
        """Number of distinct networks (assignments of active labels)."""
        parents = sorted({p for conds in self.conditions.values() for p, _ in conds})
        free = [k for k in self.choices if k not in parents and k not in self.conditions]
        total_free = math.prod(len(self.choices[k]) for k in free)
        conditional = list(self.conditions)
        total = 0
        for values in itertools.product(*(self.choices[p] for p in parents)):
            assignment = dict(zip(parents, values))
            if any(
                not self.is_active(assignment, p) and assignment[p] != self.choices[p][0]
                for p in parents
            ):
                continue  # an inactive parent off its default: counted at its default already
            total += math.prod(
                len(self.choices[k])
                for k in conditional
                if k not in assignment and self.is_active(assignment, k)
            )
        return total * total_free

    def describe(self) -> str:
        """A human-readable table of labels and choices, with the space size."""
        width = max(len(k) for k in self.choices)
        lines = [
            f"{k:<{width}}  {list(v)}" + _cond(self.conditions.get(k))
            for k, v in self.choices.items()
        ]
        lines.append(f"{len(self.choices)} labels, {self.size():.3e} distinct architectures")
        return "\n".join(lines)


def _cond(conds: tuple[Condition, ...] | None) -> str:
    if not conds:
        return ""
    return "   (active if " + " and ".join(f"{p} in {list(v)}" for p, v in conds) + ")"
