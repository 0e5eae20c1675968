"""raynas: neural architecture search for efficient semantic segmentation.

Importing ``raynas`` is light: it pulls in neither ray nor mmengine. The pure search core
lives in :mod:`raynas.core.space` and :mod:`raynas.core`; Ray orchestration lives in
:mod:`raynas.tune` and is imported on demand.
"""

from __future__ import annotations

import warnings

# mmengine 0.10.x imports pkg_resources at run time; setuptools (held < 81 for it) warns that
# the API is deprecated, once per process and so once per Ray worker. Harmless while pinned.
warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=UserWarning)
# mmseg 1.2.2's own decode heads call its deprecated build_loss (mmseg/models/builder.py)
warnings.filterwarnings(
    "ignore", message="``build_loss`` would be deprecated", category=UserWarning
)

# onedl-mmcv is built without compiled ops; mmcv's transformer bricks warn on import that one of
# them is missing. raynas and mmseg's models used here need none of them.
warnings.filterwarnings("ignore", message="Fail to import ``MultiScaleDeformableAttention``")

__version__ = "0.2.0"

__all__ = ["__version__"]
