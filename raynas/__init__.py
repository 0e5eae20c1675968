"""raynas: neural architecture search for efficient semantic segmentation.

Importing ``raynas`` is light: it pulls in neither ray nor mmengine. The pure search core
lives in :mod:`raynas.space` and :mod:`raynas.core`; Ray orchestration lives in
:mod:`raynas.tune` and is imported on demand.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
