"""The embedded synthseg dataset as an mmseg dataset (generated on first use)."""

from __future__ import annotations

from typing import Any

from mmengine.logging import print_log
from mmseg.datasets import BaseSegDataset
from mmseg.registry import DATASETS

from raynas.core.errors import InvalidValueError
from raynas.data.synth import CLASSES, PALETTE, SynthSpec, ensure_synth_dataset


@DATASETS.register_module()
class SynthSegDataset(BaseSegDataset):
    """mmseg's ``BaseSegDataset`` over synthseg PNGs, generating them when missing.

    Args:
        synth: Generation parameters (:class:`raynas.data.SynthSpec` fields). When given and
            ``data_root`` holds no dataset, it is generated there first (logged). None never
            generates.
        **kwargs: Passed to ``BaseSegDataset`` (``data_root``, ``data_prefix``, ``pipeline``...).
    """

    METAINFO = dict(classes=CLASSES, palette=PALETTE)

    def __init__(
        self,
        synth: dict[str, Any] | None = None,
        img_suffix: str = ".png",
        seg_map_suffix: str = ".png",
        **kwargs: Any,
    ) -> None:
        if synth is not None:
            if not kwargs.get("data_root"):
                raise InvalidValueError(
                    "SynthSegDataset: `synth` needs a `data_root` to generate into"
                )
            ensure_synth_dataset(
                kwargs["data_root"], SynthSpec(**synth), log=lambda m: print_log(m, "current")
            )
        kwargs.setdefault("reduce_zero_label", False)
        super().__init__(img_suffix=img_suffix, seg_map_suffix=seg_map_suffix, **kwargs)
