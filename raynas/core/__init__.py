"""The pure search core: path samplers, proxies, Pareto selection, stage scheduling.

Nothing here imports ray, mmengine or mmseg (enforced by tests/test_layering.py).
"""

from raynas.core.sampler import PathSampler, UniformSampler, build_sampler

__all__ = ["PathSampler", "UniformSampler", "build_sampler"]
