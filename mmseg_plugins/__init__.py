"""MMSegmentation 1.x modules of raynas, registered in mmseg's registries.

Use from any mmseg config with ``custom_imports = dict(imports=['mmseg_plugins'])``. Importing
this package also makes mmengine checkpoints load safely on torch >= 2.6 (see
:mod:`mmseg_plugins.safe_load`).
"""

import raynas  # noqa: F401  (first: silences known-harmless warnings of the host packages)
from mmseg_plugins import safe_load
from mmseg_plugins.host_notices import import_mmseg_datasets

safe_load.enable()
import_mmseg_datasets()

from mmseg_plugins.arch import (  # noqa: E402
    build_subnet,
    current_arch,
    search_space,
    set_arch,
    subnet_state_dict,
)
from mmseg_plugins.bn_calib import recalibrate_bn  # noqa: E402
from mmseg_plugins.datasets import SynthSegDataset  # noqa: E402
from mmseg_plugins.hooks import (  # noqa: E402
    CaLRHook,
    DataImportanceHook,
    MomentumSeparationHook,
    PathSamplingHook,
)
from mmseg_plugins.importance_sampling import ImportanceSampler  # noqa: E402
from mmseg_plugins.loops import PathValLoop  # noqa: E402
from mmseg_plugins.models import FixedHead, SearchableHead, SegSubNet, SegSuperNet  # noqa: E402

__all__ = [
    "CaLRHook",
    "DataImportanceHook",
    "FixedHead",
    "ImportanceSampler",
    "MomentumSeparationHook",
    "PathSamplingHook",
    "PathValLoop",
    "SearchableHead",
    "SegSubNet",
    "SegSuperNet",
    "SynthSegDataset",
    "build_subnet",
    "current_arch",
    "recalibrate_bn",
    "search_space",
    "set_arch",
    "subnet_state_dict",
]
