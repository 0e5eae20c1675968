"""Storage on a filesystem that is not the local one (pyarrow's ``SubTreeFileSystem`` over a
folder stands in for S3/GCS): downloads are made once per process and removed."""

from __future__ import annotations

from pathlib import Path

import pyarrow.fs as pafs

from raynas.tune.storage import Storage, remove_local_copies


def test_remote_folders_are_downloaded_once_and_cleaned_up(tmp_path: Path) -> None:
    (tmp_path / "remote" / "ckpt").mkdir(parents=True)
    (tmp_path / "remote" / "ckpt" / "checkpoint.pth").write_bytes(b"weights")
    storage = Storage(tmp_path / "remote")
    storage.fs, storage.root = pafs.SubTreeFileSystem(str(tmp_path / "remote"),
                                                      pafs.LocalFileSystem()), ""  # fmt: skip
    assert not storage.is_local
    copy = storage.local_copy("ckpt")
    assert (copy / "checkpoint.pth").read_bytes() == b"weights"
    assert copy != tmp_path / "remote" / "ckpt" and storage.local_copy("ckpt") == copy
    remove_local_copies()
    assert not copy.exists()
    again = storage.local_copy("ckpt")  # downloaded anew after a cleanup
    assert (again / "checkpoint.pth").is_file()
    remove_local_copies()
