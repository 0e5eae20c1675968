"""Safe loading of mmengine checkpoints on torch >= 2.6 (``weights_only=True``).

mmengine 0.10.x pickles its ``HistoryBuffer`` and numpy scalars/arrays (message hub state) into
every checkpoint, which torch's weights-only unpickler refuses. :func:`enable` allow-lists exactly
those types and replaces mmengine's local-file loader with one that keeps ``weights_only=True``
and turns torch's refusal of any other pickled class into :class:`UnsafeCheckpointError`.
"""

from __future__ import annotations

import logging
import os.path as osp
import pickle
import re
from typing import Any

import numpy as np
import torch
from mmengine.logging import print_log
from mmengine.logging.history_buffer import HistoryBuffer
from mmengine.runner.checkpoint import CheckpointLoader

from raynas.core.errors import InputError, MissingInputError

__all__ = ["SAFE_GLOBALS", "UnsafeCheckpointError", "enable", "load_local"]

_np_core = getattr(np, "_core", None) or np.core
# Exactly what mmengine's Runner writes besides tensors: message-hub HistoryBuffers, whose
# state holds numpy arrays, numpy scalars and their dtypes, and the buffer's statistics methods,
# which pickle as ``getattr(HistoryBuffer, 'mean')``. Allowing ``getattr`` lets the unpickler
# read attributes of already-allowed objects; it still refuses to *call* anything not listed.
SAFE_GLOBALS: list[Any] = [
    HistoryBuffer,
    getattr,
    np.ndarray,
    np.dtype,
    _np_core.multiarray._reconstruct,
    _np_core.multiarray.scalar,
    *{type(np.dtype(t)) for t in ("float64", "float32", "int64", "int32", "bool")},
]
_SUPPORTED = hasattr(torch.serialization, "add_safe_globals")
_enabled = False


class UnsafeCheckpointError(pickle.UnpicklingError, InputError):
    """A checkpoint holds a pickled object that raynas does not allow-list."""


class CorruptCheckpointError(InputError):
    """A checkpoint file that is not a complete torch checkpoint."""


def load_local(filename: str, map_location: Any = None) -> Any:
    """Loads a local checkpoint with ``weights_only=True`` and the mmengine allow-list.

    Args:
        filename: Path of the checkpoint.
        map_location: As in ``torch.load``.

    Returns:
        The loaded object.

    Raises:
        MissingInputError: No such file.
        CorruptCheckpointError: A truncated or corrupted file.
        UnsafeCheckpointError: The file holds a pickled class outside the allow-list.
    """
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise MissingInputError(f"checkpoint {filename} not found")
    if not _SUPPORTED:  # torch < 2.4 has no allow-list; it also defaults to full unpickling
        return torch.load(filename, map_location=map_location)
    try:
        return torch.load(filename, map_location=map_location, weights_only=True)
    except (RuntimeError, EOFError) as err:  # torch's errors for a truncated zip or pickle
        raise CorruptCheckpointError(_corrupt(filename, err)) from err
    except pickle.UnpicklingError as err:
        if "Unsupported global" not in str(err):
            raise CorruptCheckpointError(_corrupt(filename, err)) from err
        found = re.search(r"Unsupported global: GLOBAL (\S+)", str(err))
        detail = f"the first refused global is {found.group(1)}" if found else str(err)
        raise UnsafeCheckpointError(
            f"refused to load checkpoint {filename!r}: it contains a pickled object that is not "
            "an mmengine checkpoint type, and loading it would run arbitrary code. raynas "
            f"allow-lists only {', '.join(_name(g) for g in SAFE_GLOBALS)}. If you trust this "
            "file, allow-list the class with torch.serialization.add_safe_globals([...]) before "
            f"loading ({detail})."
        ) from err


def _corrupt(filename: str, err: BaseException) -> str:
    return (
        f"checkpoint {filename!r} is truncated or corrupted ({type(err).__name__}: "
        f"{str(err).splitlines()[0] if str(err) else ''}); use another checkpoint, or resume "
        "the run that wrote it from its previous checkpoint"
    )


def _name(obj: Any) -> str:
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', obj)}"


def _load_checkpoint(cls: type, filename: str, map_location: Any = None,
                     logger: Any = "current") -> Any:  # fmt: skip
    """``CheckpointLoader.load_checkpoint`` with its per-load notice at DEBUG level: every trial
    loads checkpoints, and mmengine printed "Loads checkpoint by ... backend" on the console
    each time (with ``logger=None``, as the Runner passes it, ``print_log`` prints)."""
    loader = cls._get_checkpoint_loader(filename)
    print_log(f"Loads checkpoint by {loader.__name__} from path: {filename}",
              logger="current", level=logging.DEBUG)  # fmt: skip
    return loader(filename, map_location)


def enable() -> None:
    """Allow-lists mmengine's checkpoint types and installs :func:`load_local` (idempotent)."""
    global _enabled
    if _enabled:
        return
    if _SUPPORTED:
        torch.serialization.add_safe_globals(SAFE_GLOBALS)
    CheckpointLoader.register_scheme(prefixes="", loader=load_local, force=True)
    CheckpointLoader.load_checkpoint = classmethod(_load_checkpoint)
    _enabled = True
