"""The raynas command line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import raynas
from raynas.cli import main

ROOT = Path(__file__).resolve().parents[1]


def test_help_and_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0 and raynas.__version__ in capsys.readouterr().out
    out = subprocess.run(["raynas", "--help"], capture_output=True, text=True, check=True).stdout
    for command in ("data", "space", "train", "export"):
        assert command in out


def test_data_synth(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = [
        "data",
        "synth",
        "--out",
        str(tmp_path / "d"),
        "--size",
        "32",
        "--num-train",
        "3",
        "--num-val",
        "2",
    ]
    assert main(args) == 0
    assert len(list((tmp_path / "d" / "img_dir" / "train").glob("*.png"))) == 3
    assert main(args) == 2  # refuses to overwrite
    assert "--overwrite" in capsys.readouterr().err


def test_space_prints_labels_and_size(capsys: pytest.CaptureFixture[str]) -> None:
    cfg = ROOT / "configs/supernet/segsupernet_uniform_1xb8-2k_synthseg-128x128.py"
    assert main(["space", str(cfg)]) == 0
    out = capsys.readouterr().out
    assert "backbone.stage0.layer0.op" in out and "['fr', 'ir3', 'ir6']" in out
    (line,) = [x for x in out.splitlines() if x.endswith("distinct architectures")]
    assert float(line.split()[2]) >= 1e12
    assert "note: at the 128x128 input" in out  # then the degenerate dilations


def test_space_rejects_unknown_arch_settings_key(capsys: pytest.CaptureFixture[str]) -> None:
    cfg = ROOT / "configs/supernet/segsupernet_uniform_1xb8-2k_synthseg-128x128.py"
    assert main(["space", str(cfg), "--cfg-options", "model.backbone.arch_settings.depth=3"]) == 2
    err = capsys.readouterr().err
    assert "unknown arch_settings key(s) ['depth']" in err and "max_depths" in err


def test_missing_config_is_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["space", "nope.py"]) == 2
    assert "config nope.py not found" in capsys.readouterr().err


def test_module_entry_point() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "raynas.cli", "--version"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.startswith("raynas ")
