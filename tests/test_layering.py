"""The layering of ARCHITECTURE.md, checked on every module's imports (lazy ones included).

- ``raynas.core`` and ``raynas.data`` (the pure core) import neither ray, mmengine, mmseg nor
  mmcv, and nothing of raynas outside themselves;
- ``mmseg_plugins`` imports no ray and nothing of ``raynas.tune``, ``raynas.cli``;
- only ``raynas.tune`` imports ray; only ``mmseg_plugins`` registers into mm registries;
- no import cycles between modules.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("raynas", "mmseg_plugins")
HOSTS = {"ray", "mmengine", "mmseg", "mmcv"}
PURE = ("raynas.core", "raynas.data")


def _modules() -> dict[str, Path]:
    mods = {}
    for pkg in PACKAGES:
        for path in (ROOT / pkg).rglob("*.py"):
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            mods[name.removesuffix(".__init__")] = path
    return mods


MODULES = _modules()


def _walk(node: ast.AST):
    """``ast.walk`` minus ``if TYPE_CHECKING:`` blocks (imports for annotations only)."""
    for child in ast.iter_child_nodes(node):
        test = child.test if isinstance(child, ast.If) else None
        if test is not None and "TYPE_CHECKING" in ast.unparse(test):
            continue
        yield child
        yield from _walk(child)


def _imports(path: Path) -> set[str]:
    """Every module a file imports, at any depth of its code (``from X import Y`` gives X.Y
    when that is a module of ours, else X)."""
    found = set()
    for node in _walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                found.add(sub if sub in MODULES else node.module)
    return found


IMPORTS = {name: _imports(path) for name, path in MODULES.items()}


def _ours(target: str) -> str | None:
    while target and target not in MODULES:
        target = target.rpartition(".")[0]
    return target or None


def _in(module: str, prefixes: tuple[str, ...] | str) -> bool:
    prefixes = (prefixes,) if isinstance(prefixes, str) else prefixes
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def test_every_module_is_checked() -> None:
    assert {"raynas.core.sampler", "raynas.core.dps", "raynas.core.pada"} <= set(MODULES)
    assert "raynas.core.predictor" in MODULES and "mmseg_plugins.hooks.path_sampling" in MODULES
    assert len(MODULES) > 50


@pytest.mark.parametrize("module", sorted(m for m in MODULES if _in(m, PURE)))
def test_pure_core_imports_no_host_and_no_upper_layer(module: str) -> None:
    bad = {
        t
        for t in IMPORTS[module]
        if t.split(".")[0] in HOSTS
        or (t.split(".")[0] in PACKAGES and not _in(t, PURE) and t != "raynas")
    }
    assert not bad, f"{module} imports {sorted(bad)}"


def test_mmseg_plugins_import_no_ray_and_no_orchestration() -> None:
    bad = {
        (m, t)
        for m in MODULES
        if _in(m, "mmseg_plugins")
        for t in IMPORTS[m]
        if t.split(".")[0] == "ray" or _in(t, ("raynas.tune", "raynas.cli"))
    }
    assert not bad, sorted(bad)


def test_only_orchestration_imports_ray() -> None:
    bad = {
        (m, t)
        for m, targets in IMPORTS.items()
        for t in targets
        if t.split(".")[0] == "ray" and not _in(m, "raynas.tune")
    }
    assert not bad, sorted(bad)


def test_only_mmseg_plugins_registers() -> None:
    bad = [m for m, p in MODULES.items() if "register_module" in p.read_text()]
    assert bad and all(_in(m, "mmseg_plugins") for m in bad), bad


def _graph() -> dict[str, set[str]]:
    """Module -> modules of ours it imports (a module's own ancestors left out: Python
    initialises a package before its submodules)."""
    graph = {}
    for m, targets in IMPORTS.items():
        edges = {_ours(t) for t in targets} - {None, m}
        graph[m] = {t for t in edges if not m.startswith(t + ".")}
    return graph


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return cycles


def test_no_import_cycles() -> None:
    assert find_cycles(_graph()) == []


def test_cycle_finder_sees_a_lazy_cycle() -> None:
    graph = {"a.sampler": {"a.dps"}, "a.dps": {"a.sampler"}, "a.x": set()}
    assert find_cycles(graph) == [["a.dps", "a.sampler"]]


def test_pure_core_loads_without_hosts() -> None:
    modules = sorted(m for m in MODULES if _in(m, PURE))
    code = f"import sys; import {', '.join(modules)}; print(' '.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = set(out.stdout.split())
    assert set(modules) <= loaded
    assert not {m for m in loaded if m.split(".")[0] in HOSTS}


def test_mmseg_plugins_loads_without_ray() -> None:
    code = "import sys, mmseg_plugins; print(' '.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = set(out.stdout.split())
    assert "mmseg_plugins.models.backbone" in loaded
    assert not {m for m in loaded if m.split(".")[0] == "ray"}


def test_architecture_md_names_every_module_and_only_existing_ones() -> None:
    text = (ROOT / "ARCHITECTURE.md").read_text()
    named = {p for p in MODULES.values() if str(p.relative_to(ROOT)) in text}
    assert set(MODULES.values()) - named == set()
    import re

    cited = set(re.findall(r"`((?:raynas|mmseg_plugins)/[\w/]+\.py)`", text))
    assert cited and {c for c in cited if not (ROOT / c).is_file()} == set()


def test_no_module_over_400_lines() -> None:
    long = {m: n for m, p in MODULES.items() if (n := len(p.read_text().splitlines())) > 400}
    assert long == {}
