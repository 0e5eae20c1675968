"""The install: either OpenMMLab stack, the mmseg:: config scope on the maintained one, and the
doctor's report of what is installed."""

from __future__ import annotations

import base64
import hashlib
import importlib.metadata as metadata
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from raynas.mmseg_alias import ALIAS, MAINTAINED, build_wheel, needed
from raynas.tune.doctor import STACKS, check_stack, installed_stack

ROOT = Path(__file__).resolve().parents[1]


def test_alias_wheel_is_a_valid_metadata_only_distribution(tmp_path: Path) -> None:
    wheel = build_wheel("1.4.2", tmp_path)
    assert wheel.name == "mmsegmentation-1.4.2+onedl-py3-none-any.whl"
    with zipfile.ZipFile(wheel) as whl:
        names = set(whl.namelist())
        info = "mmsegmentation-1.4.2+onedl.dist-info"
        assert names == {f"{info}/{f}" for f in ("METADATA", "WHEEL", "top_level.txt", "RECORD")}
        meta = whl.read(f"{info}/METADATA").decode()
        assert "Name: mmsegmentation\n" in meta and "Version: 1.4.2+onedl\n" in meta
        assert f"Requires-Dist: {MAINTAINED}==1.4.2\n" in meta
        assert whl.read(f"{info}/top_level.txt") == b"mmseg\n"  # how mmengine finds mmseg
        for line in whl.read(f"{info}/RECORD").decode().splitlines():
            name, digest, size = line.split(",")
            if name.endswith("RECORD"):
                continue
            data = whl.read(name)
            want = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
            assert digest == f"sha256={want.decode()}" and int(size) == len(data)


def test_mmseg_scope_resolves_without_raynas_imported() -> None:
    """Plain ``Config.fromfile`` of our configs with mmseg:: bases, in a fresh process."""
    baseline = ROOT / "configs/baselines/bisenetv2_fcn_1xb8-1k_synthseg-128x128.py"
    code = (
        "import sys\n"
        "from mmengine import Config\n"
        "assert 'raynas' not in sys.modules\n"
        f"c = Config.fromfile({str(baseline)!r})\n"
        "assert c.model.backbone.type == 'BiSeNetV2', c.model.backbone.type\n"
        f"c = Config.fromfile({str(ROOT / 'configs/quickstart.py')!r})\n"
        "assert c.default_hooks.logger.type == 'LoggerHook'  # mmseg::_base_/default_runtime\n"
        "print('resolved')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0 and "resolved" in out.stdout, out.stderr[-2000:]
    assert needed() is None  # the alias is installed where the maintained stack is


def test_doctor_names_the_installed_stack_and_finds_nothing_wrong() -> None:
    stack = installed_stack()
    for dist in STACKS[stack]:
        metadata.version(dist)  # every distribution of the detected stack is installed
    checks = {c.name: c for c in check_stack()}
    assert checks["stack"].value == stack
    assert checks["mmseg:: scope"].value == "resolves"
    assert all(c.ok for c in checks.values()), [c.line() for c in checks.values() if not c.ok]
    if stack == "onedl":
        assert ALIAS in checks and checks["mmcv.ops"].value.startswith("not compiled")
    else:
        assert checks["mmcv.ops"].value.startswith("ops built")


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [(["--bogus"], 2, "unknown option --bogus"), (["--help"], 0, "--upstream")],
)
def test_install_script_options(args: list[str], code: int, message: str) -> None:
    out = subprocess.run(["bash", str(ROOT / "scripts/install.sh"), *args],
                         capture_output=True, text=True)  # fmt: skip
    assert out.returncode == code and message in out.stdout + out.stderr
