"""``raynas doctor``: the host stack checked against raynas' pins, and optionally a Ray cluster.

In the spirit of mmengine's ``collect_env``: one line per component with its version and
what is wrong with it, if anything, and the command that fixes it.
"""

from __future__ import annotations

import importlib
import importlib.metadata as metadata
import socket
import sys
from collections.abc import Callable
from dataclasses import dataclass

from packaging.requirements import Requirement

__all__ = ["Check", "check_cluster", "check_stack", "main", "unreachable"]

INSTALL = "bash scripts/install.sh"
_COMMON = ("torch", "ray", "pyarrow")
# the OpenMMLab distributions of each stack (scripts/install.sh; --upstream for the second)
STACKS = {
    "onedl": ("onedl-mmcv", "onedl-mmengine", "onedl-mmsegmentation", "mmsegmentation"),
    "upstream": ("mmcv", "mmengine", "mmsegmentation", "setuptools"),
}


@dataclass
class Check:
    """One line of the report.

    Attributes:
        name: The component.
        value: What was found (a version, a device list).
        problem: What is wrong, empty when nothing is.
        fix: How to fix it.
    """

    name: str
    value: str
    problem: str = ""
    fix: str = ""

    @property
    def ok(self) -> bool:
        return not self.problem

    def line(self) -> str:
        status = "ok" if self.ok else f"PROBLEM: {self.problem}; fix: {self.fix}"
        return f"{self.name:<21} {self.value:<44} {status}"


def installed_stack() -> str:
    """'onedl' (the maintained releases) or 'upstream', by which mmcv distribution is installed."""
    try:
        metadata.version("onedl-mmcv")
        return "onedl"
    except metadata.PackageNotFoundError:
        return "upstream"


def _pins(stack: str) -> dict[str, Requirement]:
    """raynas' requirements: the unconditional ones and those of the ``stack`` extra."""
    try:
        requires = metadata.requires("raynas") or []
    except metadata.PackageNotFoundError:
        return {}
    pins = [Requirement(r) for r in requires]
    ours = [r for r in pins if not r.marker or r.marker.evaluate({"extra": stack})]
    return {r.name.lower(): r for r in ours}


def _version_check(name: str, pins: dict[str, Requirement]) -> Check:
    try:
        version = metadata.version(name)
    except metadata.PackageNotFoundError:
        return Check(name, "not installed", "missing", INSTALL)
    pin = pins.get(name)
    if pin is not None and not pin.specifier.contains(version, prereleases=True):
        spec = f"{name}{pin.specifier}"
        return Check(name, version, f"raynas needs {spec}", f"pip install '{spec}'")
    return Check(name, version)


def _import_check(name: str, module: str, fix: str) -> Check | None:
    try:
        importlib.import_module(module)
    except Exception as err:  # any import failure is what the doctor reports
        return Check(name, f"import {module}", f"{type(err).__name__}: {err}", fix)
    return None


def _torch_check() -> Check:
    import torch

    cuda = torch.version.cuda or "CPU build"
    return Check("torch.cuda", f"{cuda}, available={torch.cuda.is_available()}")


def _mmcv_ops_check(stack: str) -> Check:
    import torch

    try:
        from mmcv.ops import get_compiler_version, get_compiling_cuda_version
    except ImportError:
        if stack == "onedl":  # built without compiled ops; raynas and mmseg's models need none
            return Check("mmcv.ops", "not compiled (not needed by raynas)")
        fix = f"pip uninstall -y mmcv && {INSTALL} --upstream"
        return Check("mmcv.ops", "import mmcv.ops", "mmcv's compiled ops do not import", fix)

    cuda_ops = get_compiling_cuda_version()
    value = f"ops built ({get_compiler_version()}), CUDA ops: {cuda_ops}"
    if torch.cuda.is_available() and cuda_ops in ("not available", ""):
        return Check(
            "mmcv.ops",
            value,
            "a GPU is visible but mmcv's ops were built without CUDA",
            f"pip uninstall -y mmcv && {INSTALL} (with nvcc on PATH)",
        )
    return Check("mmcv.ops", value)


def _gpus_check() -> Check:
    import torch

    n = torch.cuda.device_count()
    names = ", ".join(torch.cuda.get_device_name(i) for i in range(n))
    return Check("GPUs", f"{n}" + (f": {names}" if names else ""))


def _scope_check() -> Check:
    from raynas.mmseg_alias import ALIAS, needed

    if needed():
        return Check(
            "mmseg:: scope",
            f"no {ALIAS} distribution",
            "configs with mmseg:: bases fail to load",
            "python -m raynas.mmseg_alias",
        )
    return Check("mmseg:: scope", "resolves")


def check_stack() -> list[Check]:
    """Python, the installed OpenMMLab stack against raynas' pins, mmcv's ops and the GPUs."""
    stack = installed_stack()
    flag = "" if stack == "onedl" else " --upstream"
    checks = [Check("python", sys.version.split()[0]), Check("stack", stack)]
    pins = _pins(stack)
    if not pins:
        checks.append(Check("raynas", "not installed", "no package metadata", INSTALL + flag))
    checks += [_version_check(name, pins) for name in (*_COMMON, *STACKS[stack])]
    follow_ups: list[tuple[str, str, str, Callable[[], Check | None]]] = [
        ("mmseg", "mmseg", INSTALL + flag, _scope_check),
        ("torch.cuda", "torch", INSTALL, _torch_check),
        ("mmcv", "mmcv", INSTALL + flag, lambda: _mmcv_ops_check(stack)),
        ("GPUs", "torch", INSTALL, _gpus_check),
    ]
    if stack == "upstream":
        follow_ups.insert(0, ("pkg_resources", "pkg_resources", "pip install 'setuptools<81'",
                              lambda: None))  # fmt: skip
    for name, module, fix, detail in follow_ups:
        failed = _import_check(name, module, fix)
        found = failed or detail() or Check(name, "imports")
        checks.append(found)
    return checks


def unreachable(address: str, timeout: float = 5.0) -> str:
    """Empty when ``host:port`` accepts a TCP connection, else the reason."""
    hostport = address.split("://", 1)[-1]
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        return f"not HOST:PORT or ray://HOST:PORT: {address!r}"
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            return ""
    except OSError as err:
        return f"{host}:{port} does not answer ({err})"


def check_cluster(address: str) -> list[Check]:
    """Whether the Ray cluster at ``address`` answers, and its nodes and resources."""
    import ray

    if address != "auto":
        problem = unreachable(address)
        if problem:
            fix = "start the cluster (`ray start --head`) or pass its address from `ray status`"
            return [Check("ray cluster", address, problem, fix)]
    try:
        ray.init(address=address, logging_level="ERROR", log_to_driver=False)
    except Exception as err:  # Ray raises several types for an absent cluster
        fix = "start the cluster (`ray start --head`) or check the address"
        return [Check("ray cluster", address, f"{type(err).__name__}: {err}", fix)]
    try:
        nodes = [n for n in ray.nodes() if n.get("Alive")]
        resources = {k: v for k, v in ray.cluster_resources().items() if "node:" not in k}
    finally:
        ray.shutdown()
    return [Check("ray cluster", f"{address}: {len(nodes)} node(s) alive, {resources}")]


def main(address: str | None = None) -> int:
    """Prints the report; 0 when everything is fine, 1 when something needs fixing."""
    checks = check_stack()
    if address:
        checks += check_cluster(address)
    for check in checks:
        print(check.line())
    bad = [c for c in checks if not c.ok]
    print(f"\n{len(bad)} problem(s)" if bad else "\nall good")
    return 1 if bad else 0
