"""A pipeline's inputs checked before anything is written: config, datasets, constraints,
searcher and schedulers, the Ray address, and an experiment's ``pipeline.json``."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mmengine.config import Config

from raynas.config import dataset_suffixes, space_and_table
from raynas.core.arch_io import resolve_arch
from raynas.core.errors import InvalidValueError, MissingInputError, UnknownKeyError, closest
from raynas.core.space import InvalidArchError
from raynas.tune.storage import Storage

__all__ = [
    "PHASES",
    "STATE",
    "STATE_VERSION",
    "check_address",
    "check_config",
    "check_datasets",
    "check_factories",
    "check_feasible",
    "check_memory",
    "check_ssr",
    "check_supernet",
    "read_state",
]

PHASES = ("supernet", "search", "tse", "retrain", "report")
STATE = "pipeline.json"
STATE_VERSION = 1


def read_state(storage: Storage) -> dict[str, Any]:
    """``pipeline.json``, checked: a hand-edited or foreign file is refused, never guessed at."""
    where = storage.child(STATE).uri
    try:
        state = json.loads(storage.read_text(STATE))
    except ValueError as err:
        raise InvalidValueError(f"{where} is not valid JSON ({err}); restore it") from err
    version = state.get("version", STATE_VERSION) if isinstance(state, dict) else None
    if version != STATE_VERSION:
        raise InvalidValueError(
            f"{where} has format version {version!r}; this raynas reads version "
            f"{STATE_VERSION}: continue the experiment with the raynas that started it"
        )
    phases = state.get("phases")
    if not isinstance(phases, dict) or not all(isinstance(v, dict) for v in phases.values()):
        raise InvalidValueError(f"{where}: 'phases' must map phase names to dicts; restore it")
    unknown = sorted(set(phases) - set(PHASES))
    if unknown:
        raise InvalidValueError(f"{where}: unknown phase(s) {unknown}; phases: {list(PHASES)}")
    return state


def check_address(address: str | None) -> None:
    """Refuses a Ray address that does not answer, before anything is written."""
    from raynas.tune.doctor import unreachable

    problem = unreachable(address) if address and address != "auto" else ""
    if problem:
        raise InvalidValueError(
            f"--address {address}: {problem}; start the cluster (`ray start --head`) "
            "or pass the address that `ray status` prints on its head node"
        )


def check_factories(opts: dict[str, Any]) -> None:
    """Checks the search type and builds the searcher and the schedulers once, so a bad type
    or argument fails now."""
    from raynas.tune.factories import build_searcher, build_trial_scheduler
    from raynas.tune.phases import SEARCH_TYPES

    kind = opts["search"]["type"]
    if kind not in SEARCH_TYPES:
        raise UnknownKeyError(
            f"unknown tune_cfg.search.type {kind!r}{closest(kind, SEARCH_TYPES)}; known: "
            f"{sorted(SEARCH_TYPES)}"
        )

    build_searcher(opts["search"]["searcher"], ["mIoU", "flops"], ["max", "min"])
    for phase in ("supernet", "retrain"):
        build_trial_scheduler(opts[phase]["scheduler"])


def check_feasible(cfg: Config, constraints: Mapping[str, Any]) -> None:
    """Refuses constraints that no architecture of the space meets, before any training."""
    if not constraints:
        return
    space, table = space_and_table(cfg)
    for key, (low, high) in constraints.items():
        if key == "latency_ms":  # known once measured on the trials' device
            continue
        lo, hi = table.span(space, key)
        if (high is not None and high < lo) or (low is not None and low > hi):
            raise InvalidValueError(
                f"tune_cfg.search.constraints.{key}=({low}, {high}) admits no architecture: "
                f"this space spans {key} {lo:.4g} (cheapest path) to {hi:.4g} (dearest path)"
            )


def check_start_with(cfg: Config, starts: list[Any]) -> None:
    """Refuses ``search.start_with`` entries that are no architecture of the space, before
    training (the search phase resolves them again when it starts).

    Raises:
        InvalidValueError: Naming the entry and what is wrong with it.
    """
    space, _ = space_and_table(cfg)
    for i, spec in enumerate(starts):
        try:
            resolve_arch(space, spec)
        except (InvalidArchError, MissingInputError) as err:
            raise InvalidValueError(f"tune_cfg.search.start_with[{i}]: {err}") from err


def check_ssr(cfg: Config, search: Mapping[str, Any]) -> None:
    """Refuses SSR cost targets (``ssr.target_flops`` and its ``param_space`` values) that no
    architecture of the space reaches, before any training (latency targets are checked in
    the trial, once the latency table is measured on its device)."""
    if search["type"] != "ssr":
        return
    if search["ssr"].get("cost", "flops") == "latency_ms" and search["ssr"]["target_flops"]:
        raise InvalidValueError(
            "tune_cfg.search.ssr: cost='latency_ms' pulls toward target_latency_ms; "
            "set target_flops=None (or cost='flops')"
        )
    grid = ((search.get("param_space") or {}).get("ssr") or {}).get("target_flops")
    if isinstance(grid, Mapping):  # dict(grid=[...]) / dict(choice=[...]); ranges unchecked
        values = list(grid.get("grid", grid.get("choice", [])))
    else:
        values = [search["ssr"]["target_flops"]] if grid is None else [grid]
    space, table = space_and_table(cfg)
    lo, hi = table.span(space, "flops")
    for value in values:
        if value is not None and not lo <= value <= hi:
            raise InvalidValueError(
                f"tune_cfg.search.ssr.target_flops={value:.4g} is reached by no architecture: "
                f"this space spans {lo:.4g} (cheapest path) to {hi:.4g} FLOPs (dearest path)"
            )


def check_supernet(cfg: Config) -> None:
    backbone = cfg.get("model", {}).get("backbone", {}).get("type")
    head = cfg.get("model", {}).get("decode_head", {}).get("type")
    if backbone != "SegSuperNet" or head != "SearchableHead":
        raise InvalidValueError(
            f"model must be an EncoderDecoder with backbone SegSuperNet and "
            f"decode_head SearchableHead, got {backbone!r} / {head!r}"
        )
    distill = any(h.get("distill") for h in cfg.get("custom_hooks", []))
    workers = (((cfg.get("tune_cfg") or {}).get("supernet") or {}).get("resources") or {}).get(
        "workers", 1
    )
    if distill and workers > 1:
        raise InvalidValueError(
            "PathSamplingHook(distill=...) runs several paths per step in "
            "SuperNetEncoderDecoder.train_step, which DDP's train step bypasses: use "
            "tune_cfg.supernet.resources.workers=1 with a distiller"
        )
    if distill and cfg.model.get("type") != "SuperNetEncoderDecoder":
        raise InvalidValueError(
            f"PathSamplingHook(distill=...) trains several paths per step and needs "
            f"model.type='SuperNetEncoderDecoder', got {cfg.model.get('type')!r}"
        )


def check_memory(cfg: Config, opts: dict[str, Any]) -> list[str]:
    """Refuses a phase whose training step cannot fit its trial's GPU: the supernet and
    retrain phases by the largest path's step (the bound of any retrained candidate), an SSR
    search by its relaxed step (:func:`raynas.memory.step_memory`). Returns a line per phase
    that trains on a GPU.

    Raises:
        InvalidValueError: Naming the phase, the estimate, the GPU's share and the fixes.
    """
    from raynas.memory import gpu_memory_mib, step_memory

    lines = []
    for phase in ("supernet", "search", "retrain"):
        o, relaxed = opts[phase], phase == "search"
        if relaxed and o["type"] != "ssr":
            continue  # the sampling search evaluates without backward
        res = o["resources"]
        if not (res.get("gpu") or res.get("gpu_per_worker")):
            continue
        amp = o.get("amp") if not relaxed else opts["supernet"].get("amp")
        est = step_memory(cfg, relaxed=relaxed, amp=amp)
        have = gpu_memory_mib(res)
        fits = "" if have is None else f" of {have / 1024:.1f} GiB"
        lines.append(f"{phase}: {est.line()}{fits}")
        if have is not None and est.total_mib > have:
            raise InvalidValueError(
                f"tune_cfg.{phase}: {est.line()} exceeds the {have / 1024:.1f} GiB of the "
                f"trial's GPU; lower train_dataloader.batch_size (activations scale with it) "
                f"or the crop (model.data_preprocessor.size), set tune_cfg.{phase}.amp='bf16', "
                f"or give the trial more GPU (resources.gpu / resources.gpu_memory)"
            )
    return lines


def check_config(cfg: Config, memory: list[str] | None = None) -> dict[str, dict[str, Any]]:
    """Every check a pipeline config passes before anything is written or trained (``raynas
    run`` and ``raynas check``): ``tune_cfg``, the supernet, searcher and schedulers, the
    constraints against the space, SSR's options, ``start_with``, the datasets (a missing
    synthseg dataset is generated) and each GPU phase's step memory (its lines appended to
    ``memory``). Returns the resolved ``tune_cfg``.

    Raises:
        InputError: The first problem found, naming the key, file or value.
    """
    from raynas.tune.options import resolve_tune_cfg

    opts = resolve_tune_cfg(cfg.get("tune_cfg"))
    check_supernet(cfg)
    check_factories(opts)
    check_feasible(cfg, opts["search"]["constraints"])
    check_ssr(cfg, opts["search"])
    check_start_with(cfg, opts["search"]["start_with"])
    check_datasets(cfg)
    lines = check_memory(cfg, opts)
    if memory is not None:
        memory.extend(lines)
    return opts


def check_datasets(cfg: Config) -> None:
    """Fails early on a missing, empty or inconsistent dataset; generates a missing synthseg
    dataset once, here."""
    from raynas.data.checks import check_seg_folder
    from raynas.data.synth import SynthSpec, ensure_synth_dataset

    head = cfg.model.decode_head
    for key in ("train_dataloader", "val_dataloader"):
        ds = cfg[key]["dataset"]
        root = Path(ds.get("data_root") or ".")
        if ds.get("synth") is not None:
            ensure_synth_dataset(root, SynthSpec(**ds["synth"]), log=print)
        prefix = ds.get("data_prefix", {})
        check_seg_folder(
            f"{key}.dataset (data_root={str(root)!r})",
            root / prefix.get("img_path", ""),
            root / prefix.get("seg_map_path", ""),
            head.num_classes,
            dataset_suffixes(ds),
            head.get("ignore_index", 255),
        )
