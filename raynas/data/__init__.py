"""Datasets shipped with raynas (no download needed)."""

from raynas.data.synth import CLASSES, PALETTE, SynthSpec, ensure_synth_dataset, generate

__all__ = ["CLASSES", "PALETTE", "SynthSpec", "ensure_synth_dataset", "generate"]
