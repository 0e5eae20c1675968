"""Bad input: a message naming the problem (and the fix), exit code 2, nothing changed.

Each case runs the real CLI in-process against a real experiment folder (created by
``Pipeline.create``, no Ray) and asserts the exit code, the message and that every file of the
experiments' storage is byte-identical afterwards. Internal errors are exit 1, never 2.
"""

from __future__ import annotations

import copy
import hashlib
import json
import pickle
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from raynas.cli import main
from raynas.core.arch_io import dump_arch
from raynas.tune.pipeline import Pipeline

pytestmark = pytest.mark.integration  # ~50 CLI runs against real experiments: ~20 s

ROOT = Path(__file__).resolve().parents[2]
QUICKSTART = ROOT / "configs" / "quickstart.py"
SUPERNET = ROOT / "configs/supernet/segsupernet_uniform_1xb8-2k_synthseg-128x128.py"


class Foreign:
    """A class no checkpoint allow-list knows."""


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, small_options: dict) -> dict[str, Path]:
    """An experiment folder, a supernet checkpoint, a valid arch file and bad datasets."""
    from raynas.config import load_config
    from raynas.core.seg_space import space_from_model_cfg
    from raynas.export import build_supernet

    tmp = tmp_path_factory.mktemp("bad")
    options = {k: None if k.endswith(".synth") else v for k, v in small_options.items()}
    Pipeline.create(QUICKSTART, str(tmp / "runs"), "exp", options)
    (tmp / "runs" / "exp" / "archive").mkdir()
    (tmp / "runs" / "exp" / "archive" / "search-abc-1.parquet").write_bytes(b"PAR1 not parquet")
    cfg = load_config(SUPERNET)
    model = build_supernet(cfg)
    torch.save({"state_dict": model.state_dict(), "meta": {}}, tmp / "sup.pth")
    good = (tmp / "sup.pth").read_bytes()
    (tmp / "truncated.pth").write_bytes(good[: len(good) // 2])
    (tmp / "garbage.pth").write_bytes(b"\x80\x04 this is not a checkpoint" * 10)
    torch.save({"state_dict": {}, "meta": {"x": Foreign()}}, tmp / "foreign.pth")
    other = copy.deepcopy(cfg)
    other.model.backbone.arch_settings.max_depths = (2, 2, 2)
    torch.save({"state_dict": build_supernet(other).state_dict()}, tmp / "other.pth")
    arch = space_from_model_cfg(cfg.model).extreme(True)
    dump_arch(arch, tmp / "good.yaml")
    dump_arch({**arch, "backbone.stage0.layer0.opp": "fr"}, tmp / "label.yaml")
    dump_arch({**arch, "backbone.stage0.depth": 9}, tmp / "choice.yaml")
    (tmp / "broken.yaml").write_text("arch: {backbone.stage0.depth: [1,\n")
    _bad_datasets(tmp, Path(options["data_root"]))
    (tmp / "a_file").write_text("not a folder")
    (tmp / "syntax.py").write_text('_base_ = ["quickstart.py"]\nmodel = dict(\n  x=]\n')
    (tmp / "notes.txt").write_text("not a config")
    return {"tmp": tmp, "runs": tmp / "runs", "exp": tmp / "runs" / "exp"}


def _bad_datasets(tmp: Path, good: Path) -> None:
    (tmp / "empty" / "img_dir" / "train").mkdir(parents=True)
    (tmp / "empty" / "ann_dir" / "train").mkdir(parents=True)
    for name in ("labels", "sizes"):
        shutil.copytree(good, tmp / name)
    mask = sorted((tmp / "labels" / "ann_dir" / "train").glob("*.png"))[0]
    seg = np.asarray(Image.open(mask)).copy()
    seg[0, 0] = 42
    Image.fromarray(seg).save(mask)
    mask = sorted((tmp / "sizes" / "ann_dir" / "train").glob("*.png"))[0]
    Image.fromarray(np.asarray(Image.open(mask))[:64]).save(mask)


def _snapshot(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _run(*opts: str, name: str = "new") -> Callable[[dict], list[str]]:
    def argv(w: dict) -> list[str]:
        args = ["run", str(QUICKSTART), "--storage", str(w["runs"]), "--name", name]
        return [*args, "--cfg-options", *opts] if opts else args

    return argv


def _data(root: str) -> Callable[[dict], list[str]]:
    def argv(w: dict) -> list[str]:
        path = root if root.startswith("/") else str(w["tmp"] / root)
        keys = [f"{s}_dataloader.dataset.{k}" for s in ("train", "val") for k in ("data_root",)]
        synth = [f"{s}_dataloader.dataset.synth=None" for s in ("train", "val")]
        return _run(*[f"{k}={path}" for k in keys], *synth)(w)

    return argv


def _export(checkpoint: str, arch: str = "good.yaml") -> Callable[[dict], list[str]]:
    def argv(w: dict) -> list[str]:
        t = w["tmp"]
        return ["export", str(SUPERNET), "--checkpoint", str(t / checkpoint), "--arch",
                str(t / arch), "--out", str(t / "out"), "--calib-batches", "0"]  # fmt: skip

    return argv


def _edit_state(text: str) -> Callable[[dict], list[str]]:
    def argv(w: dict) -> list[str]:
        bad = w["tmp"] / "edited"
        if bad.exists():
            shutil.rmtree(bad)
        shutil.copytree(w["exp"], bad)
        state = json.loads((w["exp"] / "pipeline.json").read_text())
        (bad / "pipeline.json").write_text(text.replace("STATE", json.dumps(state)[1:-1]))
        return ["resume", str(bad)]

    return argv


# name -> (argv, message fragments)
CASES: dict[str, tuple[Callable[[dict], list[str]], tuple[str, ...]]] = {
    "phase typo": (_run("tune_cfg.serach.num_candidates=3"), ("'serach'", "'search'?")),
    "option typo": (_run("tune_cfg.search.num_candidate=3"), ("'num_candidates'?",)),
    "searcher typo": (
        _run("tune_cfg.search.searcher.populaton_size=4"),
        ("populaton_size", "'population_size'?"),
    ),
    "resources typo": (_run("tune_cfg.supernet.resources.cpus=2"), ("'cpus'", "'cpu'?")),
    "constraint typo": (_run("tune_cfg.search.constraints.flop=(None,1e8)"), ("'flops'?",)),
    "scheduler type typo": (_run("tune_cfg.supernet.scheduler.type=ashaa"), ("'asha'?",)),
    "scheduler arg typo": (
        _run("tune_cfg.supernet.scheduler.type=asha", "tune_cfg.supernet.scheduler.grace_perod=1"),
        ("grace_perod", "'grace_period'?"),
    ),
    "param_space typo": (
        _run("tune_cfg.supernet.param_space.cfg_optons.seed=1"),
        ("'cfg_optons'", "'cfg_options'?"),
    ),
    "search type typo": (_run("tune_cfg.search.type=samplng"), ("'sampling'?",)),
    "ray typo": (_run("tune_cfg.ray.num_cpu=2"), ("'num_cpus'?",)),
    "negative iters": (_run("tune_cfg.supernet.iters=-5"), ("supernet.iters", ">= 1", "-5")),
    "top_k 0": (_run("tune_cfg.retrain.top_k=0"), ("tune_cfg.retrain.top_k", ">= 1")),
    "population 1": (
        _run("tune_cfg.search.searcher.population_size=1"),
        ("population_size", ">= 2"),
    ),
    "string count": (_run("tune_cfg.search.num_candidates=ten"), ("num_candidates", "'ten'")),
    "negative gpu": (_run("tune_cfg.supernet.resources.gpu=-1"), ("resources.gpu", ">= 0")),
    "threads 0": (_run("tune_cfg.supernet.resources.threads=0"), ("resources.threads", "'auto'")),
    "threads in search": (
        _run("tune_cfg.search.resources.threads=2"),
        ("search.resources.threads", "supernet and retrain"),
    ),
    "interval > iters": (_run("tune_cfg.retrain.report_interval=100000"), ("exceeds",)),
    "low > high": (_run("tune_cfg.search.constraints.flops=(2e8,1e8)"), ("low", "> high")),
    "flops unreachable": (
        _run("tune_cfg.search.constraints.flops=(None,1e3)"),
        ("admits no architecture", "cheapest path"),
    ),
    "params unreachable": (
        _run("tune_cfg.search.constraints.params=(1e9,None)"),
        ("admits no architecture", "dearest path"),
    ),
    "retrain init": (_run("tune_cfg.retrain.init=pretrained"), ("'inherit' or 'scratch'",)),
    "search cost": (_run("tune_cfg.search.cost=params"), ("'flops' or 'latency_ms'",)),
    "latency backend": (
        _run("tune_cfg.search.latency_backend=ort"),
        ("tune_cfg.search.latency_backend must be one of ['torch', 'onnxruntime']",),
    ),
    "start_with name": (
        _run("tune_cfg.search.start_with=[largets]"),
        ("start_with[0]", "did you mean 'largest'?"),
    ),
    "start_with label": (
        lambda w: _run(f"tune_cfg.search.start_with=[{w['tmp'] / 'label.yaml'}]")(w),
        ("start_with[0]", "'backbone.stage0.layer0.opp'"),
    ),
    "start_with not a list": (_run("tune_cfg.search.start_with=5"), ("must be a list",)),
    "latency not bool": (_run("tune_cfg.search.latency=maybe"), ("True or False",)),
    "existing experiment": (_run(name="exp"), ("exists", "raynas resume")),
    "dataset missing": (_data("/nonexistent/data"), ("dataset not found", "data_root")),
    "dataset empty": (_data("empty"), ("holds no .png image",)),
    "labels above num_classes": (_data("labels"), ("label(s) [42]", "num_classes=8")),
    "mask size differs": (_data("sizes"), ("masks must match", "128x64")),
    "unknown label": (
        _export("sup.pth", "label.yaml"),
        ("'backbone.stage0.layer0.opp'", "did you mean 'backbone.stage0.layer0.op'?"),
    ),
    "bad choice": (_export("sup.pth", "choice.yaml"), ("bad choice 9", "[1, 2, 3, 4]")),
    "arch not yaml": (_export("sup.pth", "broken.yaml"), ("broken.yaml is not valid",)),
    "arch missing": (_export("sup.pth", "nope.yaml"), ("architecture file", "not found")),
    "truncated checkpoint": (_export("truncated.pth"), ("truncated or corrupted",)),
    "garbage checkpoint": (_export("garbage.pth"), ("truncated or corrupted",)),
    "foreign class": (_export("foreign.pth"), ("refused to load", "Foreign")),
    "other space": (_export("other.pth"), ("does not match this config's supernet",)),
    "missing checkpoint": (_export("nope.pth"), ("checkpoint", "not found")),
    "corrupt parquet": (
        lambda w: ["report", str(w["exp"])],
        ("search-abc-1.parquet is corrupt", "raynas resume"),
    ),
    "state not json": (_edit_state("{STATE"), ("not valid JSON",)),
    "state other version": (_edit_state('{STATE, "version": 99}'), ("format version 99",)),
    "state unknown phase": (
        _edit_state('{"version": 1, "phases": {"serach": {}}}'),
        ("unknown phase(s) ['serach']",),
    ),
    "resume non-experiment": (lambda w: ["resume", str(w["tmp"])], ("not a raynas experiment",)),
    "address unreachable": (
        lambda w: [*_run()(w), "--address", "127.0.0.1:1"],
        ("127.0.0.1:1 does not answer", "ray start --head"),
    ),
    "config syntax error": (
        lambda w: ["run", str(w["tmp"] / "syntax.py"), "--storage", str(w["runs"])],
        ("syntax.py, line 3: syntax error",),
    ),
    "space of a non-config": (
        lambda w: ["space", str(w["tmp"] / "notes.txt")],
        ("notes.txt is not a config file", ".py"),
    ),
    "space of a non-supernet": (
        lambda w: ["space", str(ROOT / "configs/_base_/datasets/synthseg.py")],
        ("defines no supernet model", "configs/quickstart.py"),
    ),
    "synth negative size": (
        lambda w: ["data", "synth", "--size", "-3", "--out", str(w["tmp"] / "out")],
        ("synthseg size", ">= 32", "-3"),
    ),
    "storage uri": (
        lambda w: [*_run()(w)[:3], "bogus://bucket/x", "--name", "new"],
        ("storage 'bogus://bucket/x'",),
    ),
    "storage not writable": (
        lambda w: [*_run()(w)[:3], str(w["tmp"] / "a_file" / "runs"), "--name", "new"],
        ("cannot write", "writable"),
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_refused(case: str, world: dict, capsys: pytest.CaptureFixture) -> None:
    argv, fragments = CASES[case]
    args = argv(world)
    before = _snapshot(world["runs"])
    code = main(args)
    err = capsys.readouterr().err
    assert code == 2, err
    for fragment in fragments:
        assert fragment in err, (fragment, err)
    assert "internal error" not in err
    assert _snapshot(world["runs"]) == before
    assert not (world["runs"] / "new").exists() and not (world["tmp"] / "out").exists()


def test_enough_cases() -> None:
    assert len(CASES) >= 30


def test_internal_error_is_exit_1_with_a_hint(monkeypatch, capsys) -> None:
    import raynas.core.seg_space

    def broken(*args: Any) -> None:
        raise KeyError("a bug, not your input")

    monkeypatch.setattr(raynas.core.seg_space, "space_from_model_cfg", broken)
    assert main(["space", str(SUPERNET)]) == 1
    err = capsys.readouterr().err
    assert "internal error KeyError" in err and "RAYNAS_DEBUG=1" in err
    monkeypatch.setenv("RAYNAS_DEBUG", "1")
    with pytest.raises(KeyError):
        main(["space", str(SUPERNET)])


def test_foreign_class_is_not_loaded_even_by_pickle_protocol(world: dict) -> None:
    from mmseg_plugins.safe_load import UnsafeCheckpointError, load_local

    with pytest.raises(UnsafeCheckpointError):
        load_local(str(world["tmp"] / "foreign.pth"))
    assert isinstance(UnsafeCheckpointError("x"), pickle.UnpicklingError)


def test_unknown_baseline_is_refused_with_the_closest_name() -> None:
    from raynas.core.errors import UnknownKeyError
    from raynas.tune.options import resolve_tune_cfg

    with pytest.raises(UnknownKeyError, match="fastscnn"):
        resolve_tune_cfg({"report": {"baselines": ["fastscn"]}})
    assert resolve_tune_cfg({"report": {"baselines": ["cgnet"]}})["report"]["baselines"] == [
        "cgnet"
    ]


def test_bad_tse_options_are_refused_by_name() -> None:
    from raynas.core.errors import InvalidValueError, UnknownKeyError
    from raynas.tune.options import resolve_tune_cfg

    with pytest.raises(UnknownKeyError, match="candidates"):
        resolve_tune_cfg({"search": {"tse": {"candidate": 3}}})
    with pytest.raises(InvalidValueError, match=r"tse\.lr"):
        resolve_tune_cfg({"search": {"tse": {"lr": -1}}})
    for key in ("schedule", "score"):
        with pytest.raises(InvalidValueError, match=rf"tse\.{key} must be one of"):
            resolve_tune_cfg({"search": {"tse": {key: "cosine"}}})
    tse = resolve_tune_cfg({"search": {"tse": {"candidates": 4}}})["search"]["tse"]
    assert tse["candidates"] == 4 and tse["iters"] == 50 and tse["lr"] == 1e-3


def test_bad_ssr_options_are_refused_by_name() -> None:
    from raynas.config import load_config
    from raynas.core.errors import InvalidValueError, UnknownKeyError
    from raynas.tune.checks import check_ssr
    from raynas.tune.options import resolve_tune_cfg

    def ssr(**search: Any) -> dict:
        return resolve_tune_cfg({"search": {"type": "ssr", **search}})["search"]

    with pytest.raises(UnknownKeyError, match="shrink_interval"):
        ssr(ssr={"shrink_intreval": 10})
    with pytest.raises(UnknownKeyError, match="'ops'"):  # an unknown decision type
        ssr(ssr={"loss_weights": {"op": 1.0}})
    with pytest.raises(InvalidValueError, match=r"loss_weights\.depth"):  # weights < 0
        ssr(ssr={"loss_weights": {"depth": -1.0}})
    with pytest.raises(InvalidValueError, match=r"ssr\.target_flops"):
        ssr(ssr={"target_flops": -5})
    with pytest.raises(InvalidValueError, match=r"ssr\.iters must be an integer >= 1"):
        ssr(ssr={"iters": 2.5})
    with pytest.raises(UnknownKeyError, match="target_flops"):
        ssr(param_space={"ssr": {"target_flop": {"grid": [1e6]}}})
    cfg = load_config(Path(__file__).parents[2] / "configs" / "ssr_quickstart.py")
    opts = resolve_tune_cfg(cfg.tune_cfg)["search"]
    check_ssr(cfg, opts)  # the shipped targets are reachable
    assert opts["ssr"]["arch_optimizer"] == {"lr": 0.5} and opts["ssr"]["threshold"] == 0.1
    for where in ({"ssr": {"target_flops": 1e12}},
                  {"param_space": {"ssr": {"target_flops": {"grid": [30e6, 1e3]}}}}):  # fmt: skip
        with pytest.raises(InvalidValueError, match=r"target_flops=.*reached by no"):
            check_ssr(cfg, ssr(**where))
    with pytest.raises(InvalidValueError, match=r"ssr\.cost must be one of .*'latency_ms'"):
        ssr(ssr={"cost": "latency"})
    with pytest.raises(InvalidValueError, match=r"ssr\.target_latency_ms must be > 0"):
        ssr(ssr={"cost": "latency_ms", "target_latency_ms": 0})
    with pytest.raises(InvalidValueError, match="set target_flops=None"):  # two targets
        check_ssr(cfg, ssr(ssr={"cost": "latency_ms", "target_latency_ms": 3.0,
                                "target_flops": 30e6}))  # fmt: skip
    check_ssr(cfg, ssr(ssr={"cost": "latency_ms", "target_latency_ms": 3.0}))  # checked in trials


def test_a_cfg_option_mmengine_cannot_read_is_refused_by_name(capsys) -> None:
    from raynas.cli import main

    value = "tune_cfg.retrain.scheduler=dict(type=successive_halving,eta=3)"
    with pytest.raises(SystemExit) as exit_info:  # mmengine alone recursed until RecursionError
        main(["check", str(ROOT / "configs/quickstart.py"), "--cfg-options", value])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert repr(value) in err and "KEY.SUB=VALUE" in err
