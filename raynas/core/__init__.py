"""The pure search core: path samplers, proxies, Pareto selection, stage scheduling, errors.

Nothing here imports ray, mmengine or mmseg (enforced by tests/test_layering.py). The package
itself imports nothing, so that any module of it can be imported on its own.
"""
