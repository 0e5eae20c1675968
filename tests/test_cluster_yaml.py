"""cluster/: launcher YAMLs validate against Ray's schema, the KubeRay RayJob is well formed,
every image and version is the pinned Ray's, the Dockerfile installs through
scripts/install.sh, and no placeholder remains."""

from __future__ import annotations

import json
import re
from importlib.metadata import version
from pathlib import Path

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
CLUSTER = ROOT / "cluster"
LAUNCHER = sorted(p for p in CLUSTER.glob("*.yaml") if not p.name.startswith("kuberay"))
RAY = version("ray")


def _schema() -> dict:
    import ray.autoscaler

    return json.loads((Path(ray.autoscaler.__file__).parent / "ray-schema.json").read_text())


def _image() -> str:
    """The image the Dockerfile documents building and pushing."""
    return re.search(r"docker push (\S+)", (CLUSTER / "Dockerfile").read_text()).group(1)


@pytest.mark.parametrize("path", LAUNCHER, ids=lambda p: p.name)
def test_launcher_yaml_is_valid_and_runs_the_raynas_image(path: Path) -> None:
    doc = yaml.safe_load(path.read_text())
    jsonschema.validate(doc, _schema())
    assert doc["docker"]["image"] == _image()
    assert not doc.get("setup_commands")  # nothing installed or compiled per node


def test_schema_rejects_typos() -> None:
    doc = yaml.safe_load((CLUSTER / "onprem.yaml").read_text())
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**doc, "setup_comands": []}, _schema())


def test_rayjob_manifest_is_well_formed() -> None:
    doc = yaml.safe_load((CLUSTER / "kuberay-rayjob.yaml").read_text())
    assert doc["apiVersion"] == "ray.io/v1" and doc["kind"] == "RayJob"
    spec = doc["spec"]
    assert spec["entrypoint"].startswith("raynas run ") and "--address auto" in spec["entrypoint"]
    cluster = spec["rayClusterSpec"]
    assert cluster["rayVersion"] == RAY
    groups = [cluster["headGroupSpec"], *cluster["workerGroupSpecs"]]
    images = {c["image"] for g in groups for c in g["template"]["spec"]["containers"]}
    assert images == {_image()}
    for group in cluster["workerGroupSpecs"]:
        assert group["minReplicas"] <= group["replicas"] <= group["maxReplicas"]


def test_every_ray_version_is_the_pinned_one() -> None:
    pin = re.search(r'"ray\[[^\]]*\]>=([\d.]+),<([\d.]+)"', (ROOT / "pyproject.toml").read_text())
    low, high = (tuple(int(x) for x in v.split(".")) for v in pin.groups())
    assert low <= tuple(int(x) for x in RAY.split(".")[:2]) < high
    docker = (CLUSTER / "Dockerfile").read_text()
    assert re.search(r"^FROM rayproject/ray:(\S+)-py", docker, re.M).group(1) == RAY
    assert f"ray{RAY}" in _image()
    for path in CLUSTER.glob("*"):
        for found in re.findall(r"ray(?:project/ray)?[:=-]{1,2}(\d+\.\d+\.\d+)", path.read_text()):
            assert found == RAY, (path.name, found)


def test_dockerfile_installs_like_install_sh() -> None:
    docker = (CLUSTER / "Dockerfile").read_text()
    install = (ROOT / "scripts" / "install.sh").read_text()
    assert "bash scripts/install.sh" in docker
    torch_default = re.search(r"RAYNAS_TORCH:-([^}]+)\}", install).group(1)
    assert f'ARG RAYNAS_TORCH="{torch_default}"' in docker
    assert "pip install" not in docker  # every pin comes from install.sh and its constraints


def test_no_placeholder_remains() -> None:
    bad = re.compile(r"example\.(invalid|com)|your-|<[a-z_-]+>|TODO|changeme|x\.x\.x", re.I)
    for path in CLUSTER.glob("*"):
        text = path.read_text()
        if path.suffix == ".md":  # prose may name a config key like tune_cfg.<phase>
            text = re.sub(r"`[^`]*`", "", text)
        assert not bad.search(text), path.name


def _documented_runs() -> list[tuple[str, list[str]]]:
    """Every ``raynas run`` of cluster/ (README, launcher headers, the RayJob's entrypoint):
    (where, argv after ``raynas``)."""
    found = []
    for path in sorted(CLUSTER.glob("*")):
        text = path.read_text()
        if path.name.startswith("kuberay"):
            text = yaml.safe_load(text)["spec"]["entrypoint"]
        text = re.sub(r"\\\n[#\s]*", " ", text)  # join continued lines (of comments too)
        for match in re.finditer(r"raynas (run \S+\.py[^\n`]*)", text):
            found.append((path.name, match.group(1).split()))
    return found


def test_image_tag_is_the_package_version() -> None:
    import raynas

    assert _image().split(":")[1].startswith(f"{raynas.__version__}-ray{RAY}")
    for path in CLUSTER.glob("*"):
        for tag in re.findall(r"ghcr\.io/raynas/raynas:(\S+?)-ray", path.read_text()):
            assert tag == raynas.__version__, (path.name, tag)


@pytest.mark.parametrize("where, argv", _documented_runs(), ids=lambda x: str(x)[:40])
def test_every_documented_run_gives_every_phase_a_gpu(where: str, argv: list[str]) -> None:
    from raynas.cli import build_parser
    from raynas.config import load_config
    from raynas.tune.options import resolve_tune_cfg, trial_resources

    args = build_parser().parse_args(argv)
    assert args.address == "auto", where
    cfg = load_config(ROOT / args.config, args.cfg_options)
    opts = resolve_tune_cfg(cfg.get("tune_cfg"))
    for phase in ("supernet", "search", "retrain"):
        res = opts[phase]["resources"]
        gpus = trial_resources(opts[phase]).get("gpu", 0) or res.get("gpu_per_worker", 0)
        assert gpus > 0, (where, phase, res)
    roots = {cfg[f"{s}_dataloader"].dataset.data_root for s in ("train", "val", "test")}
    assert len(roots) == 1 and "/mnt/" in roots.pop(), where  # the data every node mounts


def test_every_cluster_file_documents_a_gpu_run() -> None:
    assert {where for where, _ in _documented_runs()} >= {
        "README.md", "aws-gpu.yaml", "onprem.yaml", "kuberay-rayjob.yaml"}  # fmt: skip
