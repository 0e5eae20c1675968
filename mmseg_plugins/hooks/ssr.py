"""``SSRHook``: differentiable search with Solution Space Regularization through the Runner.

The Runner trains the supernet's weights on the training split as usual, through SSR's relaxed
forward (:mod:`mmseg_plugins.models.relaxed`); after each weight step the hook takes one
first-order step of the architecture weights (:class:`raynas.core.ssr.ArchWeights`) on a batch
of the selection split (carved from training, never the validation set), with the loss
``task + SSR + cost_weight (E[cost] / target - 1)^2``, the cost being FLOPs (closed form) or
latency (the device's :class:`~mmseg_plugins.latency.LatencyTable`, measured once). Every
``shrink_interval`` iterations it prunes candidates (depth, then operator/dilation/zoom, then
widths and head); once every row has one candidate left the relaxed forward is switched off,
the derived path is validated and training stops. Validation reports the derived path (BN
recalibrated, as ``PathValLoop``) and the relaxed supernet's mIoU: their difference is the
discretisation gap. With a cost target, the derived path is the most probable one within
``tolerance`` of it (:func:`raynas.core.ssr_derive.derive_under_cost`), not the plain argmax.

``optimizer='xnas'`` replaces the gradient step and the threshold shrinking with XNAS's
exponentiated-gradient step and wipeout (:mod:`raynas.core.xnas`), on the same relaxed supernet.
Data-parallel (several ranks): the architecture gradients are averaged over the ranks, each rank
drawing its own search batch; rank 0's shrinking is broadcast, and the architecture weights are
checked identical on every rank when training ends.

Alpha, the valid-candidate masks, the alpha optimizer and the shrink history travel in the
checkpoint (``meta['raynas_ssr']``); search batches are drawn from a generator seeded by the
iteration, so a resumed search follows the same alpha trajectory.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Mapping
from typing import Any

import torch
from mmengine.dataset import pseudo_collate
from mmengine.hooks import Hook
from mmseg.registry import DATASETS, HOOKS

from mmseg_plugins.arch import complexity_table, search_space, set_arch, set_relaxed, unwrap
from mmseg_plugins.checkpoint import SSR_KEY, read_meta, write_meta
from mmseg_plugins.distributed import broadcast, mean_, rank, same_on_all_ranks, world_size
from mmseg_plugins.latency import LatencyCost
from mmseg_plugins.search_cost import SearchCost
from raynas.core.errors import InvalidValueError, UnknownKeyError, closest
from raynas.core.space import Arch
from raynas.core.ssr import ArchWeights, check_loss_weights, check_settings
from raynas.core.xnas import LeafWeights, XNASOptimizer

__all__ = ["SSRHook"]

_OPTIM = dict(lr=2e-3, betas=(0.9, 0.999), weight_decay=1e-3)


@HOOKS.register_module()
class SSRHook(Hook):
    """SSR search on the Runner (see the module docstring).

    Args:
        loss_weights: SSR loss weight per decision type (``depth``, ``ops``, ``widths``,
            ``head``); the official code's ratio to the task loss is 0.3 (ops) and 0.15
            (channels).
        target_flops: Expected FLOPs the cost term pulls toward (``cost='flops'``); None: no
            cost term.
        cost_weight: Weight of ``(E[cost] / target - 1)^2``.
        arch_optimizer: Adam arguments for alpha (reference: lr 2e-3, betas (0.9, 0.999),
            weight decay 1e-3).
        grad_clip: Max norm of alpha's gradient.
        shrink_interval: Iterations between shrink steps.
        threshold: Prune candidates with ``p_i / max_j p_j <= threshold``.
        warmup_iters: Weight-only iterations (relaxed forward, alpha frozen) before alpha moves.
        seed: Seed of the search-batch order.
        cost: ``'flops'`` or ``'latency_ms'`` (expected latency on the trial's device).
        target_latency_ms: Expected latency the cost term pulls toward (``cost='latency_ms'``).
        latency_table: A JSON file keeping the latency table's entries (read if present,
            written after measuring); None: measured in this run only.
        latency_runs: Timed runs per latency table entry.
        sample_k: Candidates per decision row computed in a training step, drawn in proportion
            to their probabilities and renormalised (``ArchWeights.sample``); 0: all valid
            candidates, as the paper (``benchmarks/results/ssr-cost.md`` compares time and memory).
        optimizer: ``'ssr'`` (Adam on alpha with the SSR loss, threshold shrinking) or
            ``'xnas'`` (exponentiated gradient with wipeout; no SSR loss, no threshold).
        xnas_bound: XNAS's reward bound; None: the largest reward of the first step.
        xnas_lr: XNAS's step size; None: ``sqrt(2 ln N / T) / xnas_bound``.
        tolerance: Relative half-width of the cost band the derived path is held to.
    """

    priority = "NORMAL"

    def __init__(
        self,
        loss_weights: Mapping[str, float] | None = None,
        target_flops: float | None = None,
        cost_weight: float = 1.0,
        arch_optimizer: Mapping[str, Any] | None = None,
        grad_clip: float = 5.0,
        shrink_interval: int = 100,
        threshold: float = 0.1,
        warmup_iters: int = 0,
        seed: int = 0,
        cost: str = "flops",
        target_latency_ms: float | None = None,
        latency_table: str | None = None,
        latency_runs: int = 20,
        sample_k: int = 0,
        optimizer: str = "ssr",
        xnas_bound: float | None = None,
        xnas_lr: float | None = None,
        tolerance: float = 0.05,
    ) -> None:
        weights = loss_weights or dict(depth=0.3, ops=0.3, widths=0.15, head=0.15)
        self.loss_weights = check_loss_weights(weights, "SSRHook.loss_weights")
        unknown = sorted(set(arch_optimizer or {}) - set(_OPTIM))
        if unknown:
            hint = closest(unknown[0], _OPTIM)
            raise UnknownKeyError(
                f"unknown SSRHook.arch_optimizer key {unknown[0]!r}{hint}; valid: {sorted(_OPTIM)}"
            )
        self.optim_args = {**_OPTIM, **(arch_optimizer or {})}
        check_settings(dict(cost_weight=cost_weight, grad_clip=grad_clip, threshold=threshold,
                            warmup_iters=warmup_iters, shrink_interval=shrink_interval,
                            target_flops=target_flops, cost=cost,
                            target_latency_ms=target_latency_ms, sample_k=sample_k,
                            optimizer=optimizer, xnas_bound=xnas_bound, xnas_lr=xnas_lr,
                            tolerance=tolerance), "SSRHook")  # fmt: skip
        self.xnas, self.xnas_bound, self.xnas_lr = optimizer == "xnas", xnas_bound, xnas_lr
        self.tolerance = float(tolerance)
        self.latency = LatencyCost(latency_table, latency_runs) if cost != "flops" else None
        self.target = target_flops if cost == "flops" else target_latency_ms
        self.cost_weight, self.grad_clip = cost_weight, grad_clip
        self.interval, self.threshold = int(shrink_interval), float(threshold)
        self.warmup, self.seed, self.sample_k = int(warmup_iters), int(seed), int(sample_k)
        self.weights: ArchWeights | None = None
        self.history: list[dict[str, Any]] = []
        self.decided_at: dict[str, int] = {}  # row -> the iteration it was decided at
        self.decided_by_cost: list[str] = []  # rows the cost target decided, not the threshold
        self._pending: dict | None = None
        self._tick = time.perf_counter()
        self._wiped = 0  # XNAS: candidates wiped out since the last shrink step

    # set-up, checkpoint ------------------------------------------------------------------
    def _setup(self, runner: Any) -> ArchWeights:
        if self.weights is not None:
            return self.weights
        model = unwrap(runner.model)
        ref = next(model.parameters())
        link = "exp" if self.xnas else "sigmoid"
        self.weights = ArchWeights(search_space(model), self.loss_weights, link).to(
            ref.device, ref.dtype
        )
        self.table = complexity_table(model, tuple(model.data_preprocessor.size))
        self.costs = SearchCost(self.table, self.latency, self.target, self.tolerance)
        if self.latency is not None:
            self.latency.measure(model, self.weights, runner.logger)
            if world_size() > 1:  # every rank's expected latency from rank 0's measurements
                self.latency.table.entries = broadcast(self.latency.table.entries)
        self.costs.check(self.weights.space)
        if self.xnas:
            steps = max(runner.max_iters - self.warmup, 1)
            self.optimizer = XNASOptimizer(self.weights, steps, self.xnas_bound, self.xnas_lr)
        else:
            self.optimizer = torch.optim.Adam(self.weights.parameters(), **self.optim_args)
        self.search_set = self._search_set(runner)
        if self._pending is not None:
            self.weights.load_state_dict(self._pending["weights"])
            self.optimizer.load_state_dict(self._pending["optimizer"])
            self.history = list(self._pending["history"])
            self.decided_at = dict(self._pending.get("decided_at") or {})
            self.decided_by_cost = list(self._pending.get("by_cost") or [])
            self.costs.anchor = self._pending.get("anchor")
        return self.weights

    def _search_set(self, runner: Any) -> Any:
        cfg = runner.cfg
        if not (cfg.get("selection_split") or {}).get("applied"):
            raise InvalidValueError(
                "SSR updates its architecture weights on the selection split, carved from the "
                "training set; set selection_split=dict(fraction=..., seed=...) in the config "
                "(the validation set only reports)"
            )
        dataset = copy.deepcopy(cfg.val_dataloader.dataset)
        dataset.pipeline = copy.deepcopy(cfg.train_dataloader.dataset.pipeline)
        return DATASETS.build(dataset)

    def before_train(self, runner: Any) -> None:
        weights = self._setup(runner)
        model = unwrap(runner.model)
        if weights.decided:
            set_arch(model, self.derive())
        else:
            set_relaxed(model, weights)
        self._tick = time.perf_counter()

    def after_train(self, runner: Any) -> None:
        """Data-parallel: the architecture weights must be identical on every rank."""
        if world_size() == 1:
            return
        state = {k: v.tolist() for k, v in self._setup(runner).state_dict().items()}
        if not same_on_all_ranks(state):
            raise RuntimeError("SSR's architecture weights differ between data-parallel ranks")
        runner.logger.info(f"SSR architecture weights identical on {world_size()} ranks")

    def before_save_checkpoint(self, runner: Any, checkpoint: dict) -> None:
        weights = self._setup(runner)
        write_meta(checkpoint, SSR_KEY, dict(weights=weights.state_dict(),
                   optimizer=self.optimizer.state_dict(), history=self.history,
                   decided_at=self.decided_at, by_cost=self.decided_by_cost,
                   anchor=self.costs.anchor))  # fmt: skip

    def after_load_checkpoint(self, runner: Any, checkpoint: dict) -> None:
        self._pending = read_meta(checkpoint, SSR_KEY, self._pending)
        self.weights = None  # rebuilt from the checkpoint in before_train

    # search ------------------------------------------------------------------------------
    def before_train_iter(self, runner: Any, batch_idx: int, data_batch: Any = None) -> None:
        weights = self._setup(runner)
        if self.sample_k and not weights.decided:
            set_relaxed(unwrap(runner.model), self._sampled(runner, 0))

    def _sampled(self, runner: Any, step: int) -> Any:
        """This iteration's drawn candidates for the weight (0) or the alpha (1) step; seeded
        by the iteration, so a resumed search draws the same."""
        gen = torch.Generator().manual_seed(hash((self.seed, runner.iter, step)))
        return self.weights.sample(self.sample_k, gen)

    def after_train_iter(self, runner: Any, batch_idx: int, data_batch: Any = None,
                         outputs: Any = None) -> None:  # fmt: skip
        weights = self._setup(runner)
        if weights.decided:
            return
        if runner.iter >= self.warmup:
            self._arch_step(runner)
        if (runner.iter + 1) % self.interval == 0 or weights.decided:
            self._shrink(runner)

    def _batch(self, runner: Any) -> Any:
        """This iteration's search batch (each rank its own)."""
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + runner.iter + 7919 * rank())
        size = runner.train_dataloader.batch_size
        idx = torch.randperm(len(self.search_set), generator=gen)[:size].tolist()
        return pseudo_collate([self.search_set[i] for i in idx])

    def expected_flops(self, view: Any = None) -> torch.Tensor:
        return self.costs.expected_flops(view or self.weights)

    def derive(self) -> Arch:
        """The derived path (with a target: the most probable one within the band)."""
        return self.costs.derive(self.weights)

    def _arch_step(self, runner: Any) -> None:
        """One step of the architecture weights on a search batch: SSR's (Adam on alpha, SSR
        loss) or XNAS's (rewards ``-dl/dp``, exponentiated gradient, wipeout)."""
        model, w = unwrap(runner.model), self.weights
        view: Any = LeafWeights(w) if self.xnas else w
        if self.sample_k:
            view = self._sampled(runner, 1)
        set_relaxed(model, view)
        data = model.data_preprocessor(self._batch(runner), True)
        task, _ = model.parse_losses(model.loss(data["inputs"], data["data_samples"]))
        loss = task if self.xnas else task + w.ssr_loss()
        if self.target is not None and self.cost_weight:
            loss = loss + self.cost_weight * (self.costs.expected(view) / self.target - 1) ** 2
        tensors = view.tensors() if self.xnas else list(w.parameters())
        grads = torch.autograd.grad(loss, tensors, allow_unused=True)
        grads = [torch.zeros_like(t) if g is None else g for t, g in zip(tensors, grads)]
        mean_(grads)  # data-parallel: every rank steps with the same gradient
        if self.xnas:
            wiped = self.optimizer.step(dict(zip(w.rows, grads)), self.costs.protected(w))
            self._wiped += sum(wiped.values())
            if self.optimizer.t >= self.optimizer.steps and not w.decided:
                w.settle_(self.derive())  # the last step: the protected path where it differs
            set_relaxed(model, w)
            self._note_decisions(runner)
        else:
            for param, grad in zip(tensors, grads):
                param.grad = grad
            torch.nn.utils.clip_grad_norm_(tensors, self.grad_clip)
            self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)
        runner.message_hub.update_scalar("strategy/arch_loss", float(loss.detach()))

    def _note_decisions(self, runner: Any) -> None:
        for label in self.weights.decided_rows():
            self.decided_at.setdefault(label, runner.iter + 1)

    def _sync_masks(self) -> None:
        """Rank 0's valid-candidate masks on every rank."""
        w = self.weights
        if world_size() == 1:
            return
        masks = broadcast({k: w.mask(k).tolist() for k in w.rows})
        for label, mask in masks.items():
            w.mask(label).copy_(torch.tensor(mask, dtype=torch.bool))

    def _shrink(self, runner: Any) -> None:
        w = self.weights
        by_cost: list[str] = []
        if self.xnas:  # wipeout ran at each step since the last shrink step
            removed, self._wiped = {"wipeout": self._wiped}, 0
        else:
            removed, by_cost = self.costs.shrink(w, self.threshold)
        self.decided_by_cost.extend(by_cost)
        self._sync_masks()
        self._note_decisions(runner)
        now = time.perf_counter()
        step = dict(iter=runner.iter + 1, removed=sum(removed.values()), by_cost=len(by_cost),
                    candidates_left=w.candidates_left(), decided=w.decided,
                    **self.costs.now(w), s_per_iter=(now - self._tick) / self.interval,
                    **{f"entropy_{k}": v for k, v in w.entropy().items()})  # fmt: skip
        self._tick = now
        self.history.append(step)
        runner.logger.info(f"SSR shrink at iter {step['iter']}: removed {step['removed']}, "
                           f"{step['candidates_left']} candidates left")  # fmt: skip
        if w.decided:
            set_relaxed(unwrap(runner.model), None)
            set_arch(unwrap(runner.model), self.derive())

    # validation: the relaxed supernet, then the derived path ------------------------------
    def before_val_epoch(self, runner: Any) -> None:
        weights = self._setup(runner)
        loop = runner.val_loop
        if not weights.decided:
            set_relaxed(unwrap(runner.model), weights)  # every valid candidate
            runner.message_hub.update_scalar("strategy/relaxed_mIoU", self._relaxed_miou(runner))
            set_relaxed(unwrap(runner.model), None)
        loop.paths, loop.main = {"derived": self.derive()}, "derived"
        for key, value in self.summary().items():
            runner.message_hub.update_scalar(f"strategy/{key}", value)

    def summary(self) -> dict[str, float]:
        w = self.weights
        return dict(candidates_left=float(w.candidates_left()), decided=float(w.decided),
                    rows_decided=float(len(w.decided_rows())), rows=float(len(w.rows)),
                    rows_decided_by_cost=float(len(self.decided_by_cost)),
                    **self.costs.now(w),
                    **{f"entropy_{k}": v for k, v in w.entropy().items()})  # fmt: skip

    @torch.no_grad()
    def _relaxed_miou(self, runner: Any) -> float:
        loop = runner.val_loop
        runner.model.eval()
        for batch in loop.dataloader:
            loop.evaluator.process(runner.model.val_step(batch), batch)
        metrics = loop.evaluator.evaluate(len(loop.dataloader.dataset))
        return float(metrics["mIoU"])

    def after_val_epoch(self, runner: Any, metrics: Mapping[str, Any] | None = None) -> None:
        weights = self._setup(runner)
        if weights.decided:
            set_arch(unwrap(runner.model), self.derive())
            runner.train_loop.stop_training = True  # the search is over
        else:
            set_relaxed(unwrap(runner.model), weights)
