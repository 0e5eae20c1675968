"""The Parquet archive: atomic per-evaluation files, and compaction of a finished phase."""

from __future__ import annotations

import shutil
from pathlib import Path

from raynas.tune.archive import Archive


def _rows(trial: int, it: int) -> list[dict]:
    return [dict(path=p, arch={"op": p}, mIoU=10.0 * trial + it, split="selection", flops=1)
            for p in ("largest", "smallest")]  # fmt: skip


def _fill(archive: Archive, phase: str, trials: int, iters: int) -> None:
    for t in range(trials):
        for it in range(1, iters + 1):
            archive.write(phase, f"t{t}", it, _rows(t, it))


def _keys(archive: Archive, phase: str | None = None) -> list[tuple]:
    frame = archive.read(phase).to_pandas()
    return sorted(zip(frame.phase, frame.trial_id, frame.iteration, frame.path, frame.mIoU))


def test_compaction_keeps_every_row_in_one_file(tmp_path: Path) -> None:
    archive = Archive(tmp_path)
    _fill(archive, "search", 5, 3)
    _fill(archive, "retrain", 1, 2)
    before = _keys(archive)
    assert len(before) == 2 * (15 + 2)
    assert archive.compact("search") == 15
    assert archive.files("search") == ["search-compacted.parquet"]
    assert len(archive.files("retrain")) == 2  # other phases untouched
    assert _keys(archive) == before
    assert archive.compact("search") == 0 and _keys(archive) == before  # idempotent
    assert archive.reconcile("search", known_trials=set()) == 0  # the merged file stays


def test_an_interrupted_compaction_neither_duplicates_nor_loses_rows(tmp_path: Path) -> None:
    archive = Archive(tmp_path)
    _fill(archive, "search", 4, 2)
    before = _keys(archive, "search")
    saved = tmp_path / "saved"
    shutil.copytree(tmp_path / "archive", saved)
    archive.compact("search")
    for f in saved.iterdir():  # killed after the merged file, before the deletions
        shutil.copy(f, tmp_path / "archive" / f.name)
    assert len(list((tmp_path / "archive").glob("search-*.parquet"))) == 9
    assert _keys(archive, "search") == before  # the leftovers are not read twice
    assert archive.compact("search") == 0
    assert [f.name for f in (tmp_path / "archive").iterdir()] == ["search-compacted.parquet"]
    assert _keys(archive, "search") == before
