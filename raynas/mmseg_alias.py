"""The ``mmseg::`` config scope on the maintained OpenMMLab stack.

mmengine resolves ``_base_ = ['mmseg::...']`` through the *distribution* named in
``mmengine.config.utils.MODULE2PACKAGE`` (``mmseg`` -> ``mmsegmentation``). The maintained
release installs the same ``mmseg`` package as the distribution ``onedl-mmsegmentation``, so
every config with an ``mmseg::`` base fails with "mmsegmentation is not installed". This module
builds and installs a metadata-only wheel named ``mmsegmentation`` (no files of its own; its
``top_level.txt`` names ``mmseg``, which is how mmengine finds the package folder), so that
plain ``mmengine.Config.fromfile`` loads such configs in any process, raynas imported or not.

Run ``python -m raynas.mmseg_alias`` (``scripts/install.sh`` does); ``pip uninstall
mmsegmentation`` removes it. With upstream mmsegmentation installed it does nothing.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.metadata as metadata
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

__all__ = ["ALIAS", "MAINTAINED", "build_wheel", "install", "needed"]

ALIAS = "mmsegmentation"
MAINTAINED = "onedl-mmsegmentation"


def needed() -> str | None:
    """The maintained release's version when it is installed without the alias, else None."""
    try:
        metadata.version(ALIAS)
        return None
    except metadata.PackageNotFoundError:
        pass
    try:
        return metadata.version(MAINTAINED)
    except metadata.PackageNotFoundError:
        return None


def _record_line(name: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def build_wheel(version: str, out_dir: Path) -> Path:
    """Writes the alias wheel for ``onedl-mmsegmentation==version`` into ``out_dir``."""
    dist_info = f"{ALIAS}-{version}+onedl.dist-info"
    files = {
        f"{dist_info}/METADATA": (
            f"Metadata-Version: 2.1\nName: {ALIAS}\nVersion: {version}+onedl\n"
            f"Summary: alias of {MAINTAINED} for mmengine's mmseg:: config scope\n"
            f"Requires-Dist: {MAINTAINED}=={version}\n"
        ),
        f"{dist_info}/WHEEL": (
            "Wheel-Version: 1.0\nGenerator: raynas\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        ),
        f"{dist_info}/top_level.txt": "mmseg\n",
    }
    record = [_record_line(name, text.encode()) for name, text in files.items()]
    record.append(f"{dist_info}/RECORD,,")
    files[f"{dist_info}/RECORD"] = "\n".join(record) + "\n"
    path = out_dir / f"{ALIAS}-{version}+onedl-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as whl:
        for name, text in files.items():
            whl.writestr(name, text)
    return path


def install(python: str = sys.executable) -> str:
    """Installs the alias where it is needed; returns what was done, for the install log."""
    version = needed()
    if version is None:
        return f"{ALIAS} distribution present: the mmseg:: config scope resolves"
    with tempfile.TemporaryDirectory() as tmp:
        wheel = build_wheel(version, Path(tmp))
        cmd = [python, "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)]
        subprocess.run(cmd, check=True)
    return f"installed {ALIAS} {version}+onedl, an alias of {MAINTAINED} for the mmseg:: scope"


if __name__ == "__main__":
    print(install())
