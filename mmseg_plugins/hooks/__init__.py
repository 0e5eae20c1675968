"""mmengine hooks of raynas, registered in mmseg's HOOKS: path sampling (the supernet's
training strategy), CaLR, momentum separation, PA&DA's data importance, RNG states, SSR
search, the channels-last memory format and the config's lr after a resume (PBT)."""

from mmseg_plugins.hooks.calr import CaLRHook
from mmseg_plugins.hooks.channels_last import ChannelsLastHook
from mmseg_plugins.hooks.data_importance import DataImportanceHook
from mmseg_plugins.hooks.lr_from_config import LRFromConfigHook
from mmseg_plugins.hooks.momentum import MomentumSeparationHook
from mmseg_plugins.hooks.path_sampling import PathSamplingHook
from mmseg_plugins.hooks.rng_state import RNGStateHook
from mmseg_plugins.hooks.ssr import SSRHook

__all__ = [
    "CaLRHook",
    "ChannelsLastHook",
    "DataImportanceHook",
    "LRFromConfigHook",
    "MomentumSeparationHook",
    "PathSamplingHook",
    "RNGStateHook",
    "SSRHook",
]
