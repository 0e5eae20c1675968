"""Experiment-directory I/O through pyarrow filesystems (local paths, NFS, ``file://``, ``s3://``,
``gs://``...), so the driver, the trials and ``raynas report`` read and write the same place."""

from __future__ import annotations

import atexit
import contextlib
import os
import posixpath
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.fs as pafs

from raynas.core.errors import InputError, InvalidValueError

__all__ = ["Storage", "StorageWriteError", "remove_local_copies"]


class StorageWriteError(InputError, OSError):
    """The experiment storage cannot be written (read-only, missing, full)."""


_COPIES: dict[str, Path] = {}  # remote folder -> its local download in this process


def remove_local_copies() -> None:
    """Deletes this process's downloads of remote folders (at exit, or when called)."""
    while _COPIES:
        shutil.rmtree(_COPIES.popitem()[1], ignore_errors=True)


class Storage:
    """A folder on a pyarrow filesystem.

    Args:
        uri: A local path or a URI that ``pyarrow.fs.FileSystem.from_uri`` understands.
    """

    def __init__(self, uri: str | os.PathLike) -> None:
        uri = str(uri)
        if "://" not in uri:
            uri = str(Path(uri).expanduser().resolve())
        self.uri = uri
        try:
            self.fs, self.root = pafs.FileSystem.from_uri(uri)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OSError) as err:
            raise InvalidValueError(
                f"storage {uri!r} is not a path or a URI that pyarrow can open ({err}); use a "
                "local path, file://, s3://BUCKET/PATH or gs://BUCKET/PATH"
            ) from err

    @property
    def is_local(self) -> bool:
        return isinstance(self.fs, pafs.LocalFileSystem)

    def path(self, *parts: str) -> str:
        return posixpath.join(self.root, *parts)

    def child(self, *parts: str) -> Storage:
        if self.is_local:
            return Storage(self.path(*parts))
        scheme = self.uri.split("://", 1)[0]
        return Storage(f"{scheme}://{self.path(*parts)}")

    def exists(self, *parts: str) -> bool:
        return self.fs.get_file_info(self.path(*parts)).type != pafs.FileType.NotFound

    def makedirs(self, *parts: str) -> None:
        with self._writing(*parts):
            self.fs.create_dir(self.path(*parts), recursive=True)

    @contextlib.contextmanager
    def _writing(self, *parts: str) -> Iterator[None]:
        try:
            yield
        except OSError as err:
            raise StorageWriteError(
                f"cannot write {self.path(*parts)} in storage {self.uri} ({err}); check that it "
                "exists, is writable and has free space (or choose another --storage)"
            ) from err

    def read_text(self, *parts: str) -> str:
        with self.fs.open_input_stream(self.path(*parts)) as f:
            return f.read().decode()

    def write_text(self, text: str, *parts: str) -> None:
        """Writes atomically: a temporary file renamed over the target."""
        target = self.path(*parts)
        tmp = posixpath.join(posixpath.dirname(target), f".tmp-{posixpath.basename(target)}")
        with self._writing(*parts):
            self.fs.create_dir(posixpath.dirname(target), recursive=True)
            with self.fs.open_output_stream(tmp) as f:
                f.write(text.encode())
            self.fs.move(tmp, target)

    def listdir(self, *parts: str) -> list[str]:
        selector = pafs.FileSelector(self.path(*parts), allow_not_found=True)
        return sorted(posixpath.basename(i.path) for i in self.fs.get_file_info(selector))

    def upload(self, local_dir: str | os.PathLike, *parts: str) -> str:
        """Copies a local folder into the storage; returns its storage path."""
        target = self.path(*parts)
        with self._writing(*parts):
            self.fs.create_dir(target, recursive=True)
            pafs.copy_files(
                str(Path(local_dir).resolve()),
                target,
                source_filesystem=pafs.LocalFileSystem(),
                destination_filesystem=self.fs,
            )
        return target

    def local_copy(self, *parts: str) -> Path:
        """A local folder holding the storage folder: itself when local, else a download,
        made once per process and removed when the process exits (the folders read this
        way, checkpoints and exported subnets, are never rewritten)."""
        if self.is_local:
            return Path(self.path(*parts))
        key = f"{type(self.fs).__name__}:{self.path(*parts)}"
        if key in _COPIES and _COPIES[key].is_dir():
            return _COPIES[key]
        if not _COPIES:
            atexit.register(remove_local_copies)
        dest = Path(tempfile.mkdtemp(prefix="raynas-"))
        _COPIES[key] = dest
        pafs.copy_files(
            self.path(*parts),
            str(dest),
            source_filesystem=self.fs,
            destination_filesystem=pafs.LocalFileSystem(),
        )
        return dest
