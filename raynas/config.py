"""Loading mmseg configs for raynas (mmengine-dependent; not part of the pure core)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from mmengine.config import Config
from mmengine.config import DictAction as _MMDictAction

from raynas.core.errors import InvalidValueError, MissingInputError

__all__ = [
    "DictAction",
    "absolutize_data_roots",
    "apply_selection_split",
    "config_from_text",
    "cost_input_size",
    "dataset_files",
    "dataset_suffixes",
    "formatted_text",
    "load_config",
    "mixed_precision",
    "space_and_table",
]


class DictAction(_MMDictAction):
    """mmengine's ``--cfg-options`` parser; a value it cannot read (e.g. ``dict(...)``, on
    which it recursed without end) is refused naming the pair and the syntax it reads."""

    def __call__(
        self, parser: Any, namespace: Any, values: Any, option_string: Any = None
    ) -> None:
        for pair in values if isinstance(values, list) else [values]:
            try:  # mmengine's action adds each pair to the options already parsed
                super().__call__(parser, namespace, [pair], option_string)
            except (RecursionError, ValueError, SyntaxError, IndexError) as err:
                parser.error(
                    f"{option_string} {pair!r}: mmengine cannot read this value "
                    f"({type(err).__name__}); set a dict's keys one by one (KEY.SUB=VALUE), "
                    "lists as [a,b] or (a,b), strings without quotes"
                )


def cost_input_size(cfg: Config) -> tuple[int, int]:
    """The input size that FLOPs are counted at: ``cost_input_size`` (e.g. Cityscapes'
    evaluation resolution, 1024x2048) where a config sets it, else the training input size."""
    return tuple(cfg.get("cost_input_size") or cfg.model.data_preprocessor.get("size")
                 or cfg.get("crop_size"))  # fmt: skip


def space_and_table(cfg: Config) -> tuple[Any, Any]:
    """The search space and the FLOPs/params table of a supernet config, at
    :func:`cost_input_size`."""
    from raynas.core.complexity import PathComplexity
    from raynas.core.seg_space import space_from_model_cfg

    size = cost_input_size(cfg)
    return space_from_model_cfg(cfg.model), PathComplexity.from_model_cfg(cfg.model, size)


def _unformatted(cfg: Config) -> Config:
    """``cfg`` with mmengine's ``format_python_code=False``: its text is not run through yapf.

    A Runner writes its config's text when it starts and into every checkpoint; yapf takes
    0.5-2.5 s for each on 2 cores (an exported subnet's config), so a trial's text stays
    unformatted. ``Config.fromfile`` of mmengine 0.10 does not pass the flag on.
    """
    return Config(cfg.to_dict(), cfg_text=cfg.text, filename=cfg.filename,
                  format_python_code=False)  # fmt: skip


def formatted_text(cfg: Config) -> str:
    """``cfg``'s text formatted by yapf, for the files that people read."""
    return Config(cfg.to_dict()).pretty_text  # no filename: Config() would read that file


def config_from_text(text: str, options: dict[str, Any] | None = None) -> Config:
    """A config from its dumped text (``Config.pretty_text``), with ``--cfg-options``."""
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as f:
        f.write(text)
    try:
        cfg = Config.fromfile(f.name)
    finally:
        os.unlink(f.name)
    if options:
        cfg.merge_from_dict(dict(options))
    return _unformatted(cfg)


_AMP_DTYPES = {"bf16": "bfloat16", "fp16": "float16"}


def mixed_precision(cfg: Config, amp: str | None) -> None:
    """Trains ``cfg`` in mixed precision: mmengine's ``AmpOptimWrapper`` around the config's
    optimizer, in bfloat16, or float16 with dynamic loss scaling (``amp=None``: unchanged).
    Weights, BN statistics and their recalibration stay float32."""
    if amp is None:
        return
    wrapper = dict(cfg.optim_wrapper, type="AmpOptimWrapper", dtype=_AMP_DTYPES[amp])
    if amp == "fp16":
        wrapper["loss_scale"] = "dynamic"
    cfg.optim_wrapper = wrapper


def load_config(path: str | os.PathLike, options: dict[str, Any] | None = None) -> Config:
    """Loads an mmseg config, applies ``--cfg-options`` and makes data roots absolute.

    Raises:
        MissingInputError: No config at ``path``, or a base file it names.
        InvalidValueError: ``path`` is not a config mmengine reads, or has a Python error.
    """
    path = Path(path)
    if not path.is_file():
        raise MissingInputError(f"config {path} not found")
    cfg = _fromfile(path)
    if options:
        cfg.merge_from_dict(options)
    absolutize_data_roots(cfg)
    return _unformatted(cfg)


def _fromfile(path: Path) -> Config:
    """``Config.fromfile``, its input errors raised as raynas input errors naming file and line."""
    if path.suffix not in (".py", ".yml", ".yaml", ".json"):
        raise InvalidValueError(
            f"{path} is not a config file: mmengine reads .py, .yml, .yaml and .json configs"
        )
    try:
        return Config.fromfile(str(path))
    except SyntaxError as err:  # mmengine re-raises some without the line; ours parses first
        line = err.lineno or _syntax_line(path)
        raise InvalidValueError(f"config {path}, line {line}: syntax error: {err.msg}") from err
    except FileNotFoundError as err:
        raise MissingInputError(f"config {path}: {err}") from err
    except (NameError, ModuleNotFoundError) as err:
        raise InvalidValueError(f"config {path}: {type(err).__name__}: {err}") from err


def _syntax_line(path: Path) -> int | None:
    try:
        compile(path.read_text(), str(path), "exec")
    except SyntaxError as err:
        return err.lineno
    return None


def absolutize_data_roots(cfg: Config, base: str | os.PathLike | None = None) -> None:
    """Resolves every dataloader's relative ``data_root`` against ``base`` (default: cwd).

    Ray trials run in other working directories, so paths must not depend on the cwd.
    """
    base = Path(base or os.getcwd())
    for key in ("data_root", "train_dataloader", "val_dataloader", "test_dataloader"):
        if key == "data_root" and isinstance(cfg.get(key), str):
            cfg[key] = str((base / cfg[key]).resolve())
            continue
        dataset = (cfg.get(key) or {}).get("dataset") if isinstance(cfg.get(key), dict) else None
        for ds in _datasets(dataset):
            if isinstance(ds.get("data_root"), str):
                ds["data_root"] = str((base / ds["data_root"]).resolve())


def _datasets(dataset: Any) -> Sequence[dict]:
    if not isinstance(dataset, dict):
        return []
    inner = dataset.get("datasets") or ([dataset.get("dataset")] if "dataset" in dataset else [])
    return [dataset, *[d for sub in inner for d in _datasets(sub)]]


def dataset_suffixes(dataset: Mapping[str, Any]) -> tuple[str, str]:
    """Image and mask suffixes of a dataset config: its own, else its class's defaults."""
    import inspect

    from mmseg.registry import DATASETS

    import mmseg_plugins  # noqa: F401  (registers SynthSegDataset)

    cls = DATASETS.get(dataset["type"])
    params = inspect.signature(cls).parameters if cls is not None else {}

    def suffix(key: str, fallback: str) -> str:
        default = params[key].default if key in params else fallback
        return dataset.get(key, fallback if default is inspect.Parameter.empty else default)

    return suffix("img_suffix", ".jpg"), suffix("seg_map_suffix", ".png")


def _folder(dataset: Mapping[str, Any], key: str) -> Path:
    """A folder dataset's ``data_prefix[key]`` under its ``data_root``."""
    return Path(dataset.get("data_root") or ".") / dataset.get("data_prefix", {}).get(key, "")


def dataset_files(dataset: Mapping[str, Any]) -> tuple[list[Path], list[Path]]:
    """Images and masks of a folder dataset, in mmseg's order (sorted image paths)."""
    img_dir, ann_dir = _folder(dataset, "img_path"), _folder(dataset, "seg_map_path")
    img_suffix, seg_suffix = dataset_suffixes(dataset)
    images = sorted(p for p in img_dir.rglob(f"*{img_suffix}") if p.is_file())
    masks = [
        ann_dir / p.relative_to(img_dir).with_name(p.name[: -len(img_suffix)] + seg_suffix)
        for p in images
    ]
    return images, masks


def apply_selection_split(cfg: Config) -> None:
    """Carves ``cfg.selection_split = dict(fraction=..., seed=...)`` from the training set.

    Afterwards ``train_dataloader`` keeps the other training images, ``val_dataloader`` reads
    the selection split (so validation during training, proxies, search scores and the choice
    of the best model select on it) and ``test_dataloader`` keeps the validation set, which
    only reports. Applied once (``selection_split.applied``); a config without the key is left
    as it is.
    """
    import copy

    from raynas.data.split import class_presence, stratified_selection

    spec = cfg.get("selection_split")
    if not spec or spec.get("applied"):
        return
    train = cfg.train_dataloader.dataset
    if train.get("ann_file") or train.get("indices") is not None:
        raise InvalidValueError(
            "selection_split needs a folder training dataset without ann_file or indices; "
            "set selection_split=None and pass a selection split as val_dataloader yourself"
        )
    images, masks = dataset_files(train)
    if len(images) < 2:
        raise MissingInputError(
            f"selection_split: {len(images)} training images in "
            f"{_folder(train, 'img_path').resolve()}; "
            "check train_dataloader.dataset.data_root (a relative one is read from the "
            "current directory, the repository root for the shipped configs)"
        )
    ignore = cfg.model.decode_head.get("ignore_index", 255)
    img_dir = _folder(train, "img_path")
    groups = [str(p.parent.relative_to(img_dir)) for p in images]  # Cityscapes: the city
    selected = stratified_selection(class_presence(masks, ignore), spec["fraction"],
                                    spec.get("seed", 0), groups)  # fmt: skip
    kept = sorted(set(range(len(masks))) - set(selected))
    val = copy.deepcopy(cfg.val_dataloader)
    selection = copy.deepcopy(train)
    selection.pipeline = copy.deepcopy(val.dataset.pipeline)
    selection.indices = selected
    cfg.test_dataloader = val
    cfg.test_evaluator = copy.deepcopy(cfg.val_evaluator)
    cfg.val_dataloader = dict(val, dataset=selection)
    cfg.train_dataloader.dataset.indices = kept
    cfg.selection_split = dict(spec, applied=True, num_selection=len(selected),
                               num_train=len(kept))  # fmt: skip
