"""Dynamic Path Selection (DPS): train only the paths that the current stage's proxies select.

Our reconstruction (the paper's full text is not public; the method notes we worked from are
summarised in docs/strategies.md):

- A pool of ``pool_size`` paths, initially uniform. Every ``round_interval`` iterations the
  hook measures the stage's proxies for the round's :attr:`~DPSSampler.candidates` and calls
  :meth:`DPSSampler.on_round`. While the stage's only objective is the learned predictor
  (``predicted``), only ``measure_fraction`` of the pool is measured (the selected paths and a
  random share of the rest): the predictor, fitted on every path measured so far, scores the
  paths not measured, and its Kendall tau on paths it had never seen is logged
  (``predictor_tau``). Stages with measured objectives (angle, loss decrease, MS-IB) measure
  the whole pool.
- Selection: Pareto non-dominated sorting over the stage's objectives (maximised); fronts are
  taken in order and the last one is filled by crowding distance, each member at Hamming
  distance >= ``min_hamming`` from those already chosen (diversity), until ``num_selected``
  paths are chosen. Cost enters only with ``cost_weight`` > 0: each objective (standardised
  over the pool) is then penalised by ``cost_weight`` times the standardised log-FLOPs.
- The angle proxy cannot tell apart paths that differ only in dilation or zoom: they use the
  same weights, and the angle measures how far those weights moved. This is acceptable
  because the angle is never the only objective (the convergence stage pairs it with the loss
  decrease, which is measured by a forward pass of the path itself and does differ) and the
  diversity rule keeps such near-duplicates from crowding the selected set.
- Refresh: the selected paths stay; the rest of the pool is replaced by mutations of selected
  paths and, for an ``explore`` share, by uniform samples.
- Training: each iteration draws a selected path uniformly, or with probability ``epsilon`` a
  uniform path of the whole space.
- Stages move on by :class:`raynas.core.stages.StageScheduler`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from scipy.stats import kendalltau

from raynas.core.errors import InvalidValueError
from raynas.core.pareto import crowding_distance, non_dominated_fronts
from raynas.core.predictor import Predictor
from raynas.core.proxies import loss_decrease
from raynas.core.sampler import PathSampler
from raynas.core.space import Arch, SearchSpace
from raynas.core.stages import DEFAULT_STAGES, Stage, StageScheduler

__all__ = ["DPSSampler", "select_diverse"]


def select_diverse(
    objectives: np.ndarray, codes: np.ndarray, k: int, min_hamming: int
) -> list[int]:
    """Indices of ``k`` rows: Pareto fronts in order, crowding within a front, diversity.

    Args:
        objectives: ``(n, m)`` values, all minimised.
        codes: ``(n, L)`` choice-index vectors for Hamming distances.
        k: How many to choose.
        min_hamming: Minimum Hamming distance to every chosen row (relaxed by one, down to 0,
            when too few rows qualify).
    """
    order: list[int] = []
    for front in non_dominated_fronts(objectives):
        crowd = crowding_distance(objectives[front])
        order.extend(front[np.argsort(-crowd, kind="stable")].tolist())
    for distance in range(min_hamming, -1, -1):
        chosen: list[int] = []
        for i in order:
            if all((codes[i] != codes[j]).sum() >= distance for j in chosen):
                chosen.append(i)
            if len(chosen) == k:
                return chosen
    return chosen


class DPSSampler(PathSampler):
    """Stagewise Pareto path selection over a refreshed candidate pool.

    A round (:meth:`on_round`) takes the pool's measured proxies, steps the stage scheduler
    (:attr:`stage_scheduler`), selects and refreshes the pool.

    Args:
        space: The search space.
        seed: Seed.
        pool_size: Candidate pool size.
        num_selected: Paths selected per round (M).
        round_interval: Iterations between selection rounds (K).
        epsilon: Share of iterations that train a uniform path.
        explore: Share of the refreshed pool drawn uniformly (the rest are mutations).
        mutation_prob: Per-label mutation probability.
        min_hamming: Minimum structural distance inside the selected set.
        stages: Stage table (``Stage`` or dicts).
        tau_threshold: Stage scheduler's Kendall-tau threshold.
        patience: Stage scheduler's stable rounds.
        plateau: Stage scheduler's rounds without objective improvement (None: off).
        min_delta: Stage scheduler's minimum objective improvement.
        predictor: Keyword arguments of :class:`Predictor`.
        measure_fraction: Share of the pool measured in predictor-only stages.
        cost_weight: Weight of the FLOPs penalty in selection (0: cost is not an objective).
    """

    def __init__(
        self,
        space: SearchSpace,
        seed: int = 0,
        pool_size: int = 64,
        num_selected: int = 16,
        round_interval: int = 100,
        epsilon: float = 0.1,
        explore: float = 0.25,
        mutation_prob: float = 0.1,
        min_hamming: int = 2,
        stages: Sequence[Stage | Mapping[str, Any]] = DEFAULT_STAGES,
        tau_threshold: float = 0.8,
        patience: int = 2,
        plateau: int | None = None,
        min_delta: float = 0.0,
        predictor: Mapping[str, Any] | None = None,
        measure_fraction: float = 0.5,
        cost_weight: float = 0.0,
    ) -> None:
        super().__init__(space, seed)
        if not 0 < measure_fraction <= 1 or cost_weight < 0:
            raise InvalidValueError(
                f"need 0 < measure_fraction ({measure_fraction}) <= 1 and cost_weight "
                f"({cost_weight}) >= 0"
            )
        self.measure_fraction, self.cost_weight = measure_fraction, cost_weight
        if not 0 < num_selected <= pool_size:
            raise InvalidValueError(
                f"need 0 < num_selected ({num_selected}) <= pool_size ({pool_size})"
            )
        self.pool_size, self.num_selected = pool_size, num_selected
        self.round_interval, self.epsilon, self.explore = round_interval, epsilon, explore
        self.mutation_prob, self.min_hamming = mutation_prob, min_hamming
        self.stage_scheduler = StageScheduler(stages, tau_threshold, patience, plateau, min_delta)
        self.predictor = Predictor(
            len(space.encode(space.extreme(True))), seed=seed, **dict(predictor or {})
        )
        self.pool = self._unique(
            [space.canonical(space.sample(self.rng)) for _ in range(4 * pool_size)]
        )[:pool_size]
        self.selected = list(self.pool)
        self.measure = list(self.pool)
        self.seen: set[str] = set()  # paths the predictor was fitted on
        self.loss_history: dict[str, list[float]] = {}
        self.last_log: dict[str, Any] = {}

    def _unique(self, archs: Sequence[Arch]) -> list[Arch]:
        seen, out = set(), []
        for a in archs:
            key = self.space.key(a)
            if key not in seen:
                seen.add(key)
                out.append(a)
        return out

    def set_run_length(self, total_iters: int) -> None:
        super().set_run_length(total_iters)
        self.stage_scheduler.set_run_length(total_iters)

    def key(self, arch: Arch) -> str:
        return repr(self.space.key(arch))

    name = "dps"
    needs_init_weights = True

    @property
    def candidates(self) -> list[Arch]:
        """The paths to measure this round (the pool, or a share of it)."""
        return self.measure

    @property
    def stage(self) -> Stage:
        return self.stage_scheduler.stage

    def sample(self, iteration: int) -> Arch:
        if self.rng.random() < self.epsilon:
            return self.space.sample(self.rng)
        return dict(self.selected[self.rng.integers(len(self.selected))])

    def due(self, iteration: int) -> bool:
        """A selection round is due after ``iteration`` (1-based count of done iterations)."""
        return iteration > 0 and iteration % self.round_interval == 0

    def needs(self) -> set[str]:
        """Proxies the hook must measure for the pool this round (the predictor's target and
        the loss are always measured: they feed the predictor and the loss-decrease history)."""
        needed = {"mIoU", "loss"} | set(self.stage.objectives)
        if "predicted" in needed:
            needed.discard("predicted")
        return needed

    def on_round(
        self, iteration: int, scores: Mapping[str, np.ndarray], flops: Sequence[float]
    ) -> dict[str, Any]:
        """Runs one round: predictor update, stage step, Pareto selection, pool refresh.

        Args:
            iteration: Iterations done.
            scores: Proxy name -> one value per candidate (higher is better), including
                ``'mIoU'`` (measured on the held-out batch) for the predictor.
            flops: FLOPs per candidate (unused: cost comes from :meth:`set_cost`, for the
                whole pool, and only with ``cost_weight`` > 0).

        Returns:
            The round's log (stage, sizes, proxy statistics, transition, selected paths).
        """
        scores = self._pool_scores(scores)
        objectives = [o for o in self.stage.objectives if o in scores] or ["mIoU"]
        primary = {self.key(a): float(v) for a, v in zip(self.pool, scores[objectives[0]])}
        stage_before = self.stage.name
        moved = self.stage_scheduler.step(iteration, {k: v for k, v in primary.items() if v == v})
        points = self._objectives(scores, objectives)
        codes = np.stack([self.space.index_vector(a) for a in self.pool])
        chosen = select_diverse(points, codes, self.num_selected, self.min_hamming)
        self.selected = [self.pool[i] for i in chosen]
        measured = len(self.measure)
        self._refresh()
        self._plan_measure()
        self.last_log = self._log(iteration, stage_before, moved, objectives, scores, measured)
        return self.last_log

    def _pool_scores(self, measured: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Per-pool-path scores (NaN where not measured), loss decrease, predictor scores."""
        where = {self.key(a): i for i, a in enumerate(self.measure)}
        index = [where.get(self.key(a)) for a in self.pool]
        arrays = {k: np.asarray(v, float) for k, v in measured.items()}
        scores = {  # proxies not measured this round come as empty arrays
            k: np.array([np.nan if i is None else float(v[i]) for i in index])
            for k, v in arrays.items()
            if len(v) == len(self.measure)
        }
        if "loss" in measured:
            scores["loss_decrease"] = self._loss_decrease(scores["loss"])
        encodings = np.stack([self.space.encode(a) for a in self.pool])
        got = np.array([i is not None for i in index])
        archs = [a for a, g in zip(self.pool, got) if g]
        self.predictor_tau = self._held_out_tau(archs, encodings[got], scores["mIoU"][got])
        self.predictor.add(encodings[got], scores["mIoU"][got])
        self.seen.update(self.key(a) for a, g in zip(self.pool, got) if g)
        self.predictor_mse = self.predictor.fit()
        if self.predictor.ready:
            predicted = self.predictor.predict(encodings)
            scores["predicted"] = np.where(got, scores["mIoU"], predicted)
        return scores

    def _held_out_tau(
        self, archs: Sequence[Arch], encodings: np.ndarray, miou: np.ndarray
    ) -> float:
        """Kendall tau of the predictor on measured paths it was never fitted on."""
        new = np.array([self.key(a) not in self.seen for a in archs], bool)
        if not self.predictor.ready or new.sum() < 3:
            return float("nan")
        return float(kendalltau(self.predictor.predict(encodings[new]), miou[new])[0])

    def _objectives(self, scores: Mapping[str, np.ndarray], names: Sequence[str]) -> np.ndarray:
        """Minimised objective columns, penalised by cost when ``cost_weight`` > 0."""
        cols = [_fill(scores[o]) for o in names]
        if self.cost_weight > 0:
            if self.cost is None:
                raise RuntimeError("DPSSampler(cost_weight > 0) needs set_cost")
            cost = _standard(np.log(np.array([self.cost(a) for a in self.pool], float)))
            cols = [_standard(c) - self.cost_weight * cost for c in cols]
        return -np.stack(cols, 1)

    def _plan_measure(self) -> None:
        """The next round's candidates: a share of the pool in predictor-only stages."""
        self.measure = list(self.pool)
        if set(self.stage.objectives) != {"predicted"} or not self.predictor.ready:
            return
        n = max(len(self.selected), int(np.ceil(self.measure_fraction * len(self.pool))))
        chosen = {self.key(a) for a in self.selected}
        rest = [a for a in self.pool if self.key(a) not in chosen]
        picks = self.rng.choice(len(rest), min(len(rest), n - len(chosen)), replace=False)
        self.measure = list(self.selected) + [rest[i] for i in sorted(picks)]

    def _log(self, iteration: int, stage: str, moved: bool, objectives: list[str],
             scores: Mapping[str, np.ndarray], measured: int) -> dict[str, Any]:  # fmt: skip
        log = dict(
            iteration=iteration,
            stage=stage,
            next_stage=self.stage.name,
            transition=self.stage_scheduler.transitions[-1] if moved else None,
            pool=len(self.pool),
            measured=measured,
            selected=len(self.selected),
            objectives=objectives,
            kendall_tau=self.stage_scheduler.last_tau,
            predictor_mse=self.predictor_mse,
            predictor_tau=self.predictor_tau,
            proxies={
                k: dict(
                    mean=float(np.nanmean(_fill(v))),
                    std=float(np.nanstd(_fill(v))),
                    max=float(np.nanmax(_fill(v))),
                )
                for k, v in scores.items()
            },
            selected_paths=[dict(a) for a in self.selected],
        )
        scalars = {"stage": float(self.stage_scheduler.index), "measured": float(measured)}
        for name in ("kendall_tau", "predictor_tau"):
            if log[name] == log[name]:  # NaN until defined
                scalars[name] = float(log[name])
        scalars.update({f"{k}_mean": v["mean"] for k, v in log["proxies"].items()})
        log["scalars"] = scalars
        return log

    def summary(self, log: Mapping[str, Any]) -> str:
        return (
            f"stage {log['stage']}, pool {log['pool']}, selected {log['selected']}, objectives "
            f"{log['objectives']}, Kendall tau {log['kendall_tau']:.3f}"
            + (f"; stage transition {log['transition']}" if log["transition"] else "")
        )

    def _loss_decrease(self, losses: np.ndarray) -> np.ndarray:
        """Held-out loss decrease of each pool path since its previous measurement (NaN if
        new or not measured this round)."""
        out = []
        history = {}
        for arch, loss in zip(self.pool, losses):
            key = self.key(arch)
            if loss != loss:  # not measured this round: keep its history
                history[key] = self.loss_history.get(key, [])
                out.append(np.nan)
                continue
            hist = [*self.loss_history.get(key, []), float(loss)][-2:]
            history[key] = hist
            out.append(loss_decrease(hist) if len(hist) == 2 else np.nan)
        self.loss_history = history
        return np.asarray(out)

    def _refresh(self) -> None:
        pool = list(self.selected)
        n_new = self.pool_size - len(pool)
        n_explore = round(self.explore * n_new)
        fresh = [self.space.canonical(self.space.sample(self.rng)) for _ in range(2 * n_explore)]
        for _ in range(8 * n_new):
            parent = self.selected[self.rng.integers(len(self.selected))]
            fresh.append(
                self.space.canonical(self.space.mutate(parent, self.rng, self.mutation_prob))
            )
        explore, mutants = fresh[: 2 * n_explore], fresh[2 * n_explore :]
        pool = self._unique(pool + explore[:n_explore] + mutants + explore[n_explore:])
        self.pool = pool[: self.pool_size]

    def state_dict(self) -> dict[str, Any]:
        return {
            **super().state_dict(),
            "pool": [dict(a) for a in self.pool],
            "selected": [dict(a) for a in self.selected],
            "scheduler": self.stage_scheduler.state_dict(),
            "loss_history": [[k, v] for k, v in self.loss_history.items()],
            "predictor": self.predictor.state_dict(),
            "measure": [dict(a) for a in self.measure],
            "seen": sorted(self.seen),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        super().load_state_dict(state)
        self.pool = [dict(a) for a in state["pool"]]
        self.selected = [dict(a) for a in state["selected"]]
        self.stage_scheduler.load_state_dict(state["scheduler"])
        self.loss_history = {k: list(v) for k, v in state["loss_history"]}
        self.predictor.load_state_dict(state["predictor"])
        self.measure = [dict(a) for a in state.get("measure", state["pool"])]
        self.seen = set(state.get("seen", []))


def _standard(values: np.ndarray) -> np.ndarray:
    return (values - values.mean()) / (values.std() + 1e-12)


def _fill(values: np.ndarray) -> np.ndarray:
    """NaNs (paths without a measurement yet) take the median, so they are neither favoured
    nor excluded."""
    if np.isnan(values).all():
        return np.zeros_like(values)
    return np.nan_to_num(values, nan=float(np.nanmedian(values)))
