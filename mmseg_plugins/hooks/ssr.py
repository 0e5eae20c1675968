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
discretisation gap.

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
from mmseg_plugins.latency import LatencyCost
from raynas.core.errors import InvalidValueError, UnknownKeyError, closest
from raynas.core.ssr import ArchWeights, check_loss_weights, check_settings
from raynas.core.ssr_cost import expected_flops

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
            candidates, as the paper (``benchmarks/results/ssr.md`` compares time and memory).
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
                            target_latency_ms=target_latency_ms, sample_k=sample_k),
                       "SSRHook")  # fmt: skip
        self.latency = LatencyCost(latency_table, latency_runs) if cost != "flops" else None
        self.target = target_flops if cost == "flops" else target_latency_ms
        self.cost_weight, self.grad_clip = cost_weight, grad_clip
        self.interval, self.threshold = int(shrink_interval), float(threshold)
        self.warmup, self.seed, self.sample_k = int(warmup_iters), int(seed), int(sample_k)
        self.weights: ArchWeights | None = None
        self.history: list[dict[str, Any]] = []
        self._pending: dict | None = None
        self._tick = time.perf_counter()

    # set-up, checkpoint ------------------------------------------------------------------
    def _setup(self, runner: Any) -> ArchWeights:
        if self.weights is not None:
            return self.weights
        model = unwrap(runner.model)
        ref = next(model.parameters())
        self.weights = ArchWeights(search_space(model), self.loss_weights).to(
            ref.device, ref.dtype
        )
        self.table = complexity_table(model, tuple(model.data_preprocessor.size))
        if self.latency is not None:
            self.latency.measure(model, self.weights, runner.logger)
        self._check_target()
        self.optimizer = torch.optim.Adam(self.weights.parameters(), **self.optim_args)
        self.search_set = self._search_set(runner)
        if self._pending is not None:
            self.weights.load_state_dict(self._pending["weights"])
            self.optimizer.load_state_dict(self._pending["optimizer"])
            self.history = list(self._pending["history"])
        return self.weights

    def _check_target(self) -> None:
        if self.target is None:
            return
        space = self.weights.space
        if self.latency is not None:
            key, unit, on = "target_latency_ms", "ms", f" on {self.latency.table.device_key}"
            cost = self.latency.predict
        else:
            key, unit, on = "target_flops", "FLOPs", ""
            cost = lambda arch: self.table(arch).flops  # noqa: E731
        low, high = space.cost_range(cost)
        if not low <= self.target <= high:
            raise InvalidValueError(
                f"SSRHook.{key}={self.target:.4g} is outside what the space reaches{on} "
                f"({low:.4g}..{high:.4g} {unit} at this input size); choose a target in range"
            )

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
            set_arch(model, weights.derive())
        else:
            set_relaxed(model, weights)
        self._tick = time.perf_counter()

    def before_save_checkpoint(self, runner: Any, checkpoint: dict) -> None:
        weights = self._setup(runner)
        write_meta(checkpoint, SSR_KEY, dict(weights=weights.state_dict(),
                   optimizer=self.optimizer.state_dict(), history=self.history))  # fmt: skip

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
        if (runner.iter + 1) % self.interval == 0:
            self._shrink(runner)

    def _batch(self, runner: Any) -> Any:
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + runner.iter)
        size = runner.train_dataloader.batch_size
        idx = torch.randperm(len(self.search_set), generator=gen)[:size].tolist()
        return pseudo_collate([self.search_set[i] for i in idx])

    def expected_flops(self) -> torch.Tensor:
        w = self.weights
        return expected_flops(w.p, w.space.choices, self.table)

    def expected_cost(self) -> torch.Tensor:
        """The expected cost the target applies to (FLOPs, or latency in ms)."""
        if self.latency is None:
            return self.expected_flops()
        return self.latency.expected(self.weights)

    @torch.no_grad()
    def _flops_now(self) -> float:
        return float(self.expected_flops())

    @torch.no_grad()
    def _latency_now(self) -> dict[str, float]:
        return (
            {} if self.latency is None else dict(expected_latency_ms=float(self.expected_cost()))
        )

    def _arch_step(self, runner: Any) -> None:
        model, w = unwrap(runner.model), self.weights
        if self.sample_k:
            set_relaxed(model, self._sampled(runner, 1))
        data = model.data_preprocessor(self._batch(runner), True)
        task, _ = model.parse_losses(model.loss(data["inputs"], data["data_samples"]))
        loss = task + w.ssr_loss()
        if self.target is not None and self.cost_weight:
            loss = loss + self.cost_weight * (self.expected_cost() / self.target - 1) ** 2
        params = list(w.parameters())
        grads = torch.autograd.grad(loss, params, allow_unused=True)
        for param, grad in zip(params, grads):
            param.grad = torch.zeros_like(param) if grad is None else grad
        torch.nn.utils.clip_grad_norm_(params, self.grad_clip)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        runner.message_hub.update_scalar("strategy/arch_loss", float(loss.detach()))

    def _shrink(self, runner: Any) -> None:
        w = self.weights
        removed = w.shrink(self.threshold)
        now = time.perf_counter()
        step = dict(iter=runner.iter + 1, removed=sum(removed.values()),
                    candidates_left=w.candidates_left(), decided=w.decided,
                    expected_flops=self._flops_now(), **self._latency_now(),
                    s_per_iter=(now - self._tick) / self.interval,
                    **{f"entropy_{k}": v for k, v in w.entropy().items()})  # fmt: skip
        self._tick = now
        self.history.append(step)
        runner.logger.info(f"SSR shrink at iter {step['iter']}: removed {step['removed']}, "
                           f"{step['candidates_left']} candidates left")  # fmt: skip
        if w.decided:
            set_relaxed(unwrap(runner.model), None)
            set_arch(unwrap(runner.model), w.derive())

    # validation: the relaxed supernet, then the derived path ------------------------------
    def before_val_epoch(self, runner: Any) -> None:
        weights = self._setup(runner)
        loop = runner.val_loop
        if not weights.decided:
            set_relaxed(unwrap(runner.model), weights)  # every valid candidate
            runner.message_hub.update_scalar("strategy/relaxed_mIoU", self._relaxed_miou(runner))
            set_relaxed(unwrap(runner.model), None)
        loop.paths, loop.main = {"derived": weights.derive()}, "derived"
        for key, value in self.summary().items():
            runner.message_hub.update_scalar(f"strategy/{key}", value)

    def summary(self) -> dict[str, float]:
        w = self.weights
        return dict(candidates_left=float(w.candidates_left()), decided=float(w.decided),
                    expected_mflops=self._flops_now() / 1e6, **self._latency_now(),
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
            set_arch(unwrap(runner.model), weights.derive())
            runner.train_loop.stop_training = True  # the search is over
        else:
            set_relaxed(unwrap(runner.model), weights)
