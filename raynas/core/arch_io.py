"""Architectures as YAML or JSON files (pure Python)."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from raynas.core.errors import MissingInputError, closest
from raynas.core.space import Arch, InvalidArchError, SearchSpace

__all__ = ["dump_arch", "load_arch", "resolve_arch"]


def dump_arch(
    arch: Mapping[str, Any], path: str | os.PathLike, provenance: Mapping[str, Any] | None = None
) -> Path:
    """Writes ``{'arch': arch, 'provenance': ...}`` as YAML (``.yaml``/``.yml``) or JSON."""
    path = Path(path)
    doc: dict[str, Any] = {"arch": dict(arch)}
    if provenance:
        doc["provenance"] = dict(provenance)
    if path.suffix == ".json":
        text = json.dumps(doc, indent=2)
    else:
        text = yaml.safe_dump(doc, sort_keys=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def load_arch(path: str | os.PathLike) -> Arch:
    """Reads an arch written by :func:`dump_arch` (or a bare label -> choice mapping)."""
    path = Path(path)
    if not path.is_file():
        raise MissingInputError(f"architecture file {path} not found")
    text = path.read_text()
    try:
        doc = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as err:
        raise InvalidArchError(f"{path} is not valid {path.suffix[1:] or 'YAML'}: {err}") from err
    if not isinstance(doc, dict):
        raise InvalidArchError(f"{path}: expected a mapping, got {type(doc).__name__}")
    arch = doc.get("arch", doc)
    if not isinstance(arch, dict):
        raise InvalidArchError(f"{path}: 'arch' must be a mapping of label -> choice")
    return dict(arch)


def resolve_arch(space: SearchSpace, spec: str | os.PathLike | Mapping[str, Any]) -> Arch:
    """``'largest'``, ``'smallest'``, an arch file or a label -> choice mapping, as a checked
    arch of ``space``.

    Raises:
        InvalidArchError: An unknown, missing or bad label, naming the valid choices.
        MissingInputError: A file that does not exist.
    """
    if isinstance(spec, Mapping):
        return space.validate(spec)
    names = ("largest", "smallest")
    if str(spec) in names:
        return space.extreme(str(spec) == "largest")
    if not Path(spec).is_file():
        raise MissingInputError(
            f"architecture file {str(spec)!r} not found (nor is it {names[0]!r} or "
            f"{names[1]!r}){closest(str(spec), names)}"
        )
    return space.validate(load_arch(spec))
