"""mmengine hooks of raynas, registered in mmseg's HOOKS: path sampling (the supernet's
training strategy), CaLR, momentum separation and PA&DA's data importance."""

from mmseg_plugins.hooks.calr import CaLRHook
from mmseg_plugins.hooks.data_importance import DataImportanceHook
from mmseg_plugins.hooks.momentum import MomentumSeparationHook
from mmseg_plugins.hooks.path_sampling import PathSamplingHook

__all__ = ["CaLRHook", "DataImportanceHook", "MomentumSeparationHook", "PathSamplingHook"]
