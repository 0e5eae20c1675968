"""ONNX export of found subnets: every operator choice of the quickstart's and the realtime
space (ops, dilations, zooms, the head's fusions and detail branch) exports, checks and
reproduces PyTorch's logits (rtol 1e-3, atol 1e-4) at the export size and two others, static
and dynamic; the exported file runs in a process that cannot import torch or raynas."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import torch

from raynas.export import build_supernet, export_subnet
from raynas.onnx_export import export_onnx, onnx_latency_ms

pytestmark = pytest.mark.integration  # about 40 exports, ~1 min on 2 cores
SPACES = {"quickstart": "quickstart.py", "realtime": "realtime.py",
          "base space (every dilation and zoom)": "ssr_quickstart.py"}  # fmt: skip


def _covering(space: Any) -> list[dict]:
    """Paths that together take every choice of every kind of label: the largest path with
    every layer's op (dilation, zoom) set to each choice in turn, and each head choice."""
    base = dict(space.extreme(True))
    archs = []
    for suffix in ("op", "dilation", "zoom"):
        labels = [k for k in space.choices if k.endswith(f".{suffix}")]
        for choice in space.choices[labels[0]] if labels else []:
            archs.append({**base, **{k: choice for k in labels}})
    for label in ("head.fusion", "head.detail", "head.channels"):
        for choice in space.choices.get(label, []):
            archs.append({**base, label: choice})
    archs.append(dict(space.extreme(False)))
    return [space.canonical(a) for a in archs]


@pytest.mark.parametrize(  # the wider spaces take ~15 s each: slow tier
    "name", [n if n == "quickstart" else pytest.param(n, marks=pytest.mark.slow) for n in SPACES]
)
def test_every_choice_exports_and_matches_pytorch(name, make_cfg, tmp_path) -> None:
    from mmseg_plugins import search_space

    cfg = make_cfg(SPACES[name], tmp_path / "work")
    torch.manual_seed(0)
    model = build_supernet(cfg).eval()
    space = search_space(model)
    archs = _covering(space)
    kinds = ("op", "dilation", "zoom", "fusion", "detail")
    for label, choices in space.choices.items():  # every choice of every kind is exported
        if label.rsplit(".", 1)[-1] in kinds:
            assert {a[label] for a in archs if label in a} == set(choices), label
    for i, arch in enumerate(archs):
        sub = export_subnet(cfg, "random-init", arch, tmp_path / f"s{i}", calib_batches=0,
                            model=model)  # fmt: skip
        out = tmp_path / f"s{i}.onnx"
        done = export_onnx(sub.config, sub.checkpoint, out, dynamic=i % 2 == 0)
        assert done["max_abs_diff"] <= 1e-4 + 1e-3 and Path(done["path"]).is_file()
        assert len(done["checked_sizes"]) == (3 if done["dynamic"] else 1)


def test_onnx_runs_without_torch_or_raynas(make_cfg, tmp_path) -> None:
    from mmseg_plugins import search_space

    cfg = make_cfg("quickstart.py", tmp_path / "work")
    torch.manual_seed(0)
    model = build_supernet(cfg).eval()
    arch = search_space(model).extreme(False)
    sub = export_subnet(cfg, "random-init", arch, tmp_path / "sub", calib_batches=0, model=model)
    done = export_onnx(sub.config, sub.checkpoint, tmp_path / "model.onnx")
    image = np.random.default_rng(0).standard_normal((1, 3, 96, 160)).astype(np.float32)
    np.save(tmp_path / "image.npy", image)
    code = (
        "import sys, json\n"
        "sys.modules['torch'] = sys.modules['raynas'] = sys.modules['mmseg'] = None\n"
        "import numpy as np, onnxruntime as ort\n"
        f"s = ort.InferenceSession({str(done['path'])!r}, providers=['CPUExecutionProvider'])\n"
        f"out = s.run(None, {{'image': np.load({str(tmp_path / 'image.npy')!r})}})[0]\n"
        "meta = s.get_modelmeta().custom_metadata_map\n"
        "np.save(sys.argv[1], out)\n"
        "print(json.dumps({k: json.loads(v) for k, v in meta.items()}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "out.npy")],
                         capture_output=True, text=True)  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    meta = json.loads(out.stdout.strip().splitlines()[-1])
    assert meta["mean"] == [123.675, 116.28, 103.53] and meta["bgr_to_rgb"] is True
    from mmseg.apis import init_model

    with torch.no_grad():
        seg = init_model(str(sub.config), str(sub.checkpoint), device="cpu").eval()
        want = torch.nn.functional.interpolate(
            seg._forward(torch.from_numpy(image)), size=(96, 160), mode="bilinear"
        ).numpy()
    got = np.load(tmp_path / "out.npy")
    assert got.shape == (1, 8, 96, 160) and np.allclose(got, want, rtol=1e-3, atol=1e-4)


def test_bench_times_an_export_on_both_backends(make_cfg, tmp_path, capsys) -> None:
    from mmseg_plugins import search_space
    from raynas.cli import main

    cfg = make_cfg("quickstart.py", tmp_path / "work")
    model = build_supernet(cfg).eval()
    arch = search_space(model).extreme(False)
    sub = export_subnet(cfg, "random-init", arch, tmp_path / "best", calib_batches=0, model=model)
    export_onnx(sub.config, sub.checkpoint, tmp_path / "best" / "model.onnx")
    for backend in ("torch", "onnxruntime"):
        argv = ["bench", str(tmp_path / "best"), "--backend", backend, "--size", "64", "96"]
        assert main(argv) == 0
        out = capsys.readouterr().out
        assert f"on {backend} (cpu, 1 thread(s), 64x96, batch 1): median" in out
        assert "over 50 runs" in out
    assert main(["bench", str(tmp_path / "best"), "--runs", "5"]) == 2
    assert "--runs must be >= 50" in capsys.readouterr().err
    assert main(["bench", str(tmp_path / "work"), "--backend", "onnxruntime"]) == 2
    assert "raynas export ... --format onnx" in capsys.readouterr().err


def test_onnx_runtime_latency_of_a_path_as_the_search_measures_it(make_cfg, tmp_path) -> None:
    """``latency_backend='onnxruntime'``: a path's static subnet timed whole in ONNX Runtime;
    the largest path is slower than the smallest, on 1 thread and on 2."""
    from mmseg_plugins import search_space
    from mmseg_plugins.arch import build_subnet

    cfg = make_cfg("quickstart.py", tmp_path / "work")
    model = build_supernet(cfg).eval()
    space = search_space(model)
    subs = {big: build_subnet(model, space.extreme(big), cfg.model).eval() for big in (1, 0)}
    for threads in (1, 2):
        times = {
            big: onnx_latency_ms(sub, (128, 128), threads, runs=10) for big, sub in subs.items()
        }
        assert 0 < times[0] < times[1], times


def test_predict_matches_mmsegs_inference_model(make_cfg, synth_root, tmp_path, capsys) -> None:
    from mmseg.apis import inference_model, init_model

    from mmseg_plugins import search_space
    from raynas.cli import main
    from raynas.predict import colorize

    cfg = make_cfg("quickstart.py", tmp_path / "work")
    torch.manual_seed(0)
    model = build_supernet(cfg).eval()
    arch = search_space(model).extreme(True)
    sub = export_subnet(cfg, "random-init", arch, tmp_path / "best", calib_batches=2, model=model)
    export_onnx(sub.config, sub.checkpoint, tmp_path / "best" / "model.onnx")
    images = sorted((synth_root / "img_dir" / "val").glob("*.png"))[:3]
    assert main(["predict", str(tmp_path / "best"), *map(str, images), "--out",
                 str(tmp_path / "masks")]) == 0  # fmt: skip
    assert "wrote 3 colour mask(s)" in capsys.readouterr().out
    seg = init_model(str(sub.config), str(sub.checkpoint), device="cpu")
    palette = seg.dataset_meta["palette"]
    for image in images:
        want = inference_model(seg, str(image)).pred_sem_seg.data[0].numpy().astype(np.uint8)
        got = cv2.imread(str(tmp_path / "masks" / image.name))[..., ::-1]
        expected = colorize(want, palette)
        assert (got == expected).all(-1).mean() >= 0.999  # the same class on 99.9% of pixels
        assert len(np.unique(want)) > 1  # a mask with more than one class
