"""Known-harmless notices of the host packages, kept off the console.

onedl-mmsegmentation announces on import that its optional OneDL dataset is unavailable
(``print_log('Could not import OneDL', level=logging.DEBUG)``): with no logger, mmengine's
``print_log`` prints whatever the level, once per process and so once per Ray worker. raynas
does not use that dataset, so the first import of mmseg's datasets goes through
:func:`import_mmseg_datasets`, which drops ``print_log`` messages below INFO that have no logger.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
from collections.abc import Iterator
from typing import Any

import mmengine.logging

__all__ = ["import_mmseg_datasets"]


@contextlib.contextmanager
def _debug_print_log_dropped() -> Iterator[None]:
    original = mmengine.logging.print_log

    def print_log(msg: Any, logger: Any = None, level: int = logging.INFO) -> None:
        if logger is None and level < logging.INFO:
            return
        original(msg, logger=logger, level=level)

    mmengine.logging.print_log = print_log
    try:
        yield
    finally:
        mmengine.logging.print_log = original


def import_mmseg_datasets() -> None:
    """Imports ``mmseg.datasets`` (and its transforms) without the host's debug notices."""
    with _debug_print_log_dropped():
        importlib.import_module("mmseg.datasets")
