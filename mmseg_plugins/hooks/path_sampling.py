"""The hook that connects a pure path sampler (``raynas.core.samplers``) to the Runner."""

from __future__ import annotations

import json
import os
import time
from typing import Any

import torch
from mmengine.hooks import Hook
from mmseg.registry import HOOKS
from torch import nn

from mmseg_plugins.arch import complexity_table, label_modules, search_space, set_arch, unwrap
from mmseg_plugins.checkpoint import (
    DISTILL_KEY,
    INIT_WEIGHTS_KEY,
    SAMPLER_KEY,
    read_meta,
    write_meta,
)
from mmseg_plugins.distributed import broadcast, is_main, mean, same_on_all_ranks, world_size
from mmseg_plugins.models.segmentor import SuperNetEncoderDecoder
from raynas.core.distill import Distiller, build_distiller
from raynas.core.sampler import PathSampler
from raynas.core.samplers import build_sampler
from raynas.core.space import Arch

__all__ = ["PathSamplingHook"]


def _proxy_evaluator(
    runner: Any, model: nn.Module, init_state: Any, images: int, beta: float
) -> Any:
    from mmengine.dataset import pseudo_collate

    from mmseg_plugins.proxy_evaluator import ProxyEvaluator

    dataset = runner.val_loop.dataloader.dataset
    batch = pseudo_collate([dataset[i] for i in range(min(images, len(dataset)))])
    return ProxyEvaluator(model, batch, init_state, beta)


@HOOKS.register_module()
class PathSamplingHook(Hook):
    """Samples one path per training iteration and sets it on the supernet.

    The sampler's state travels in the checkpoint's ``meta['raynas_sampler']`` and is restored
    at the first iteration after a resume, so a resumed run draws the same next paths as an
    uninterrupted one (with :class:`~mmseg_plugins.hooks.rng_state.RNGStateHook` and
    :class:`~mmseg_plugins.loops.ExactResumeTrainLoop`, which the configs use, it also
    computes the same losses).

    Samplers with rounds (:meth:`PathSampler.due`) get them here: the proxies they
    :meth:`~PathSampler.needs` for their :attr:`~PathSampler.candidates` are measured on the
    first ``proxy_images`` validation images, their :meth:`~PathSampler.on_round` log is
    appended to ``{log_dir}/{sampler}_rounds.jsonl`` and its scalars logged as
    ``strategy/NAME``. Samplers that ask for gradient norms (PA&DA) get them per label, read
    just before each optimizer step.

    With ``distill`` (``dict(type='sandwich' | 'cream', ...)``, see :mod:`raynas.core.distill`)
    each iteration trains the distiller's plan around the sampled path in one optimizer step;
    the model must be a :class:`~mmseg_plugins.models.SuperNetEncoderDecoder`.

    Args:
        sampler: ``dict(type=..., **kwargs)`` for :func:`raynas.core.samplers.build_sampler`.
        proxy_images: Held-out images for DPS proxies.
        ib_beta: Beta of the multi-scale IB proxy.
        distill: ``dict(type=..., **kwargs)`` for :func:`raynas.core.distill.build_distiller`.
    """

    priority = "VERY_HIGH"

    def __init__(
        self,
        sampler: dict[str, Any] | None = None,
        proxy_images: int = 8,
        ib_beta: float = 0.5,
        distill: dict[str, Any] | None = None,
    ) -> None:
        self.sampler_cfg = dict(sampler or dict(type="uniform", seed=0))
        self.distill_cfg = dict(distill) if distill else None
        self._distiller: Distiller | None = None
        self._distill_pending: dict[str, Any] | None = None
        self.proxy_images, self.ib_beta = proxy_images, ib_beta
        self._sampler: PathSampler | None = None
        self._init_state: dict[str, torch.Tensor] | None = None
        self._proxies: Any = None
        self._table: Any = None
        self._train_table: Any = None
        self._grad_norms: dict[str, float] | None = None
        self._pending: dict[str, Any] | None = None
        self.current: Arch | None = None

    def sampler(self, runner: Any) -> PathSampler:
        if self._sampler is None:
            self._sampler = build_sampler(self.sampler_cfg, search_space(unwrap(runner.model)))
        if self._pending is not None:
            self._sampler.load_state_dict(self._pending)
            self._pending = None
        return self._sampler

    def distiller(self, runner: Any) -> Distiller | None:
        if self._distiller is None and self.distill_cfg:
            model = unwrap(runner.model)
            if not isinstance(model, SuperNetEncoderDecoder):
                raise TypeError(
                    f"PathSamplingHook(distill=...) needs model.type='SuperNetEncoderDecoder', "
                    f"got {type(model).__name__}"
                )
            self._distiller = build_distiller(self.distill_cfg, search_space(model))
            model.activate = lambda arch: set_arch(model, arch)
            model.temperature = self._distiller.temperature
        if self._distiller is not None and self._distill_pending is not None:
            self._distiller.load_state_dict(self._distill_pending)
            self._distill_pending = None
        return self._distiller

    def before_train(self, runner: Any) -> None:
        self.distiller(runner)
        sampler = self.sampler(runner)
        sampler.set_run_length(runner.max_iters)  # schedules are shares of the run
        sampler.set_cost(lambda arch: self._train_cost(runner)(arch).flops)
        if sampler.needs_init_weights and self._init_state is None:
            state = unwrap(runner.model).state_dict()
            self._init_state = {k: v.detach().clone() for k, v in state.items()}
        if sampler.needs_grad_norms:  # read just before the optimizer step
            runner.optim_wrapper.optimizer.register_step_pre_hook(
                lambda *_: self._record_grad_norms(runner)
            )

    @torch.no_grad()
    def _record_grad_norms(self, runner: Any) -> None:
        norms = {}
        for label, module in label_modules(unwrap(runner.model), self.current).items():
            grads = [p.grad for p in module.parameters() if p.grad is not None]
            if grads:
                norms[label] = float(torch.sqrt(sum(g.square().sum() for g in grads)))
        self._grad_norms = norms

    def before_train_iter(self, runner: Any, batch_idx: int, data_batch: Any = None) -> None:
        model, distiller, plan = unwrap(runner.model), self.distiller(runner), None
        if is_main():  # rank 0 draws; every data-parallel rank trains the same path
            self.current = self.sampler(runner).sample(runner.iter)
            if distiller is not None:
                plan = distiller.plan(self.current, runner.iter, runner.max_iters)
        self.current, plan = broadcast((self.current, plan))
        set_arch(model, self.current)
        if distiller is not None:
            model.plan = plan

    def after_train_iter(
        self, runner: Any, batch_idx: int, data_batch: Any = None, outputs: dict | None = None
    ) -> None:
        sampler = self.sampler(runner)
        loss = (outputs or {}).get("loss")
        if loss is not None and world_size() > 1:  # the step's loss over all ranks' data
            loss = mean(loss.item() if isinstance(loss, torch.Tensor) else loss)
            runner.message_hub.update_scalar("train/loss_all_ranks", loss)
        if not is_main():  # the sampler and its rounds live on rank 0 (synced at the end)
            return
        if self.current is not None and loss is not None:
            value = loss.item() if isinstance(loss, torch.Tensor) else float(loss)
            sampler.update(self.current, {"loss": value, "grad_norms": self._grad_norms})
        if self.distiller(runner) is not None:
            self._observe(runner)
        if sampler.due(runner.iter + 1):
            self._round(runner, sampler, runner.iter + 1)

    def sync(self, runner: Any) -> bool:
        """Gives every rank rank 0's sampler and distiller state; returns whether they are
        now identical on all ranks (always True in one process)."""
        if world_size() == 1:
            return True
        sampler, distiller = self.sampler(runner), self.distiller(runner)
        state = broadcast((sampler.state_dict(), distiller.state_dict() if distiller else None))
        if not is_main():
            sampler.load_state_dict(state[0])
            if distiller is not None:
                distiller.load_state_dict(state[1])
        return same_on_all_ranks([sampler.state_dict(), distiller and distiller.state_dict()])

    def after_train(self, runner: Any) -> None:
        same = self.sync(runner)
        runner.message_hub.update_info("strategy_state_same_on_all_ranks", same)
        if not same:
            raise RuntimeError("the path sampler's state differs between data-parallel ranks")
        if world_size() > 1:
            runner.logger.info(f"path sampler state identical on {world_size()} ranks")

    def _train_cost(self, runner: Any) -> Any:
        """The complexity table at the training input size."""
        if self._train_table is None:
            model = unwrap(runner.model)
            size = getattr(model.data_preprocessor, "size", None)
            if not size:
                batch = next(iter(runner.train_dataloader))
                size = batch["inputs"][0].shape[-2:]
            self._train_table = complexity_table(model, tuple(int(v) for v in size))
        return self._train_table

    def _observe(self, runner: Any) -> None:
        """Hands the accuracy of every path trained this iteration to the distiller."""
        model = unwrap(runner.model)
        for arch, accuracy in model.step_accuracy:
            flops = self._train_cost(runner)(arch).flops
            self._distiller.observe(arch, accuracy, flops, runner.iter, runner.max_iters)

    def _round(self, runner: Any, sampler: PathSampler, iteration: int) -> None:
        """One round: measure what the sampler needs, hand it over, log what it says."""
        start = time.perf_counter()
        needs, candidates = sampler.needs(), sampler.candidates
        scores, flops = {}, []
        if needs:
            model = unwrap(runner.model)
            if self._proxies is None:
                self._proxies = _proxy_evaluator(
                    runner, model, self._init_state, self.proxy_images, self.ib_beta
                )
                self._table = complexity_table(model, self._proxies.inputs.shape[-2:])
            scores = self._proxies.measure(candidates, needs)
            flops = [self._table(a).flops for a in candidates]
        log = sampler.on_round(iteration, scores, flops)
        log["round_s"] = time.perf_counter() - start
        hub = runner.message_hub
        for name, value in {**log.get("scalars", {}), "round_s": log["round_s"]}.items():
            hub.update_scalar(f"strategy/{name}", value)
        with open(os.path.join(runner.log_dir, f"{sampler.name}_rounds.jsonl"), "a") as f:
            f.write(json.dumps(log, default=float) + "\n")
        runner.logger.info(
            f"{sampler.name} round at iter {iteration} ({log['round_s']:.2f} s): "
            + sampler.summary(log)
        )

    def before_save_checkpoint(self, runner: Any, checkpoint: dict) -> None:
        # rank 0 only (mmengine saves on the main process); a resume loads it on every rank
        write_meta(checkpoint, SAMPLER_KEY, self.sampler(runner).state_dict())
        if self.distiller(runner) is not None:
            write_meta(checkpoint, DISTILL_KEY, self._distiller.state_dict())
        if self._init_state is not None:
            write_meta(checkpoint, INIT_WEIGHTS_KEY, self._init_state)

    def after_load_checkpoint(self, runner: Any, checkpoint: dict) -> None:
        self._pending = read_meta(checkpoint, SAMPLER_KEY, self._pending)
        self._distill_pending = read_meta(checkpoint, DISTILL_KEY, self._distill_pending)
        if read_meta(checkpoint, INIT_WEIGHTS_KEY) is not None:
            self._init_state = read_meta(checkpoint, INIT_WEIGHTS_KEY)
