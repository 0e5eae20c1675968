"""mmengine hooks connecting the pure path samplers to the Runner."""

from __future__ import annotations

import json
import os
import random
import time
from typing import Any

import numpy as np
import torch
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmseg.registry import HOOKS
from torch import nn

from mmseg_plugins.arch import complexity_table, label_modules, search_space, set_arch
from raynas.core.sampler import PathSampler, build_sampler
from raynas.space import Arch

__all__ = ["PathSamplingHook", "unwrap"]

META_KEY = "raynas_sampler"
RNG_KEY = "raynas_rng"
INIT_KEY = "raynas_init_weights"


def _proxy_evaluator(
    runner: Any, model: nn.Module, init_state: Any, images: int, beta: float
) -> Any:
    from mmengine.dataset import pseudo_collate

    from mmseg_plugins.proxies import ProxyEvaluator

    dataset = runner.val_loop.dataloader.dataset
    batch = pseudo_collate([dataset[i] for i in range(min(images, len(dataset)))])
    return ProxyEvaluator(model, batch, init_state, beta)


def rng_state() -> dict[str, Any]:
    """Global RNG states (python, numpy, torch) in checkpoint-safe types."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    return {
        "python": random.getstate(),
        "torch": torch.get_rng_state(),
        "numpy": [kind, keys.tolist(), pos, has_gauss, gauss],
    }


def set_rng_state(state: dict[str, Any]) -> None:
    python = state["python"]
    random.setstate((python[0], tuple(python[1]), python[2]))
    torch.set_rng_state(state["torch"])
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, gauss))


def unwrap(model: nn.Module) -> nn.Module:
    return model.module if is_model_wrapper(model) else model


@HOOKS.register_module()
class PathSamplingHook(Hook):
    """Samples one path per training iteration and sets it on the supernet.

    The sampler's state travels in the checkpoint's ``meta['raynas_sampler']`` and the global
    RNG states (dropout, augmentation) in ``meta['raynas_rng']``; they are restored at the first
    iteration after a resume, so a resumed run draws the same next paths, and with a fixed
    ``randomness.seed`` computes the same losses, as an uninterrupted one.

    Samplers with selection rounds (DPS) get their pool's proxies measured here, on the first
    ``proxy_images`` validation images (each round's log, selected paths included, is appended
    to ``{log_dir}/dps_rounds.jsonl``); samplers with ``refresh`` (PA&DA) get per-label
    gradient norms, read just before each optimizer step.

    Args:
        sampler: ``dict(type=..., **kwargs)`` for :func:`raynas.core.sampler.build_sampler`.
        proxy_images: Held-out images for DPS proxies.
        ib_beta: Beta of the multi-scale IB proxy.
    """

    priority = "VERY_HIGH"

    def __init__(
        self, sampler: dict[str, Any] | None = None, proxy_images: int = 8, ib_beta: float = 0.5
    ) -> None:
        self.sampler_cfg = dict(sampler or dict(type="uniform", seed=0))
        self.proxy_images, self.ib_beta = proxy_images, ib_beta
        self._sampler: PathSampler | None = None
        self._init_state: dict[str, torch.Tensor] | None = None
        self._proxies: Any = None
        self._table: Any = None
        self._grad_norms: dict[str, float] | None = None
        self._pending: dict[str, Any] | None = None
        self._pending_rng: dict[str, Any] | None = None
        self.current: Arch | None = None

    def sampler(self, runner: Any) -> PathSampler:
        if self._sampler is None:
            self._sampler = build_sampler(self.sampler_cfg, search_space(unwrap(runner.model)))
        if self._pending is not None:
            self._sampler.load_state_dict(self._pending)
            self._pending = None
        return self._sampler

    def before_train(self, runner: Any) -> None:
        sampler = self.sampler(runner)
        if hasattr(sampler, "select") and self._init_state is None:
            state = unwrap(runner.model).state_dict()
            self._init_state = {k: v.detach().clone() for k, v in state.items()}
        if hasattr(sampler, "refresh"):  # PA&DA: gradient norms per label, read before step
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
        if self._pending_rng is not None:
            set_rng_state(self._pending_rng)
            self._pending_rng = None
        self.current = self.sampler(runner).sample(runner.iter)
        set_arch(unwrap(runner.model), self.current)

    def after_train_iter(
        self, runner: Any, batch_idx: int, data_batch: Any = None, outputs: dict | None = None
    ) -> None:
        sampler = self.sampler(runner)
        loss = (outputs or {}).get("loss")
        if self.current is not None and loss is not None:
            value = loss.item() if isinstance(loss, torch.Tensor) else float(loss)
            sampler.update(self.current, {"loss": value, "grad_norms": self._grad_norms})
        if hasattr(sampler, "due") and sampler.due(runner.iter + 1):
            if hasattr(sampler, "select"):
                self._round(runner, sampler, runner.iter + 1)
            else:
                log = sampler.refresh(runner.iter + 1)
                runner.message_hub.update_scalar("strategy/tau", log["tau"])
                runner.message_hub.update_scalar("strategy/prob_entropy", log["mean_norm_entropy"])

    def _round(self, runner: Any, sampler: Any, iteration: int) -> None:
        """One DPS selection round: measure the pool's proxies, select, log."""
        model = unwrap(runner.model)
        if self._proxies is None:
            self._proxies = _proxy_evaluator(
                runner, model, self._init_state, self.proxy_images, self.ib_beta
            )
            self._table = complexity_table(model, self._proxies.inputs.shape[-2:])
        start = time.perf_counter()
        scores = self._proxies.measure(sampler.pool, sampler.needs())
        log = sampler.select(iteration, scores, [self._table(a).flops for a in sampler.pool])
        log["round_s"] = time.perf_counter() - start
        hub = runner.message_hub
        hub.update_scalar("strategy/stage", float(sampler.scheduler.index))
        hub.update_scalar("strategy/round_s", log["round_s"])
        if log["kendall_tau"] == log["kendall_tau"]:
            hub.update_scalar("strategy/kendall_tau", log["kendall_tau"])
        for name, stats in log["proxies"].items():
            hub.update_scalar(f"strategy/{name}_mean", stats["mean"])
        with open(os.path.join(runner.log_dir, "dps_rounds.jsonl"), "a") as f:
            f.write(json.dumps(log, default=float) + "\n")
        runner.logger.info(
            f"DPS round at iter {iteration}: stage {log['stage']}, pool {log['pool']}, selected "
            f"{log['selected']}, objectives {log['objectives']}, Kendall tau "
            f"{log['kendall_tau']:.3f}, {log['round_s']:.2f} s"
            + (f"; stage transition {log['transition']}" if log["transition"] else "")
        )

    def before_save_checkpoint(self, runner: Any, checkpoint: dict) -> None:
        meta = checkpoint.setdefault("meta", {})
        meta[META_KEY] = self.sampler(runner).state_dict()
        meta[RNG_KEY] = rng_state()
        if self._init_state is not None:
            meta[INIT_KEY] = self._init_state

    def after_load_checkpoint(self, runner: Any, checkpoint: dict) -> None:
        meta = checkpoint.get("meta", {})
        self._pending = meta.get(META_KEY, self._pending)
        self._pending_rng = meta.get(RNG_KEY, self._pending_rng)
        if meta.get(INIT_KEY) is not None:
            self._init_state = meta[INIT_KEY]
