from mmseg_plugins.datasets.synthseg import SynthSegDataset

__all__ = ["SynthSegDataset"]
