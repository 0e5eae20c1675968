"""The docs match the code: the configuration reference lists every option, cited paths exist,
the README stays a manual, and benchmarks/ stays a small set of scripts on one harness."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from raynas.tune import options as o
from raynas.tune.options_reference import DOCS, markdown, options

ROOT = Path(__file__).resolve().parents[1]
# what a path is cited from: code, configs and the docs people read (results tables and the
# changelog are records of their time and keep the paths of then)
CITING = [*ROOT.glob("*.md"), *ROOT.glob("docs/**/*.md"), *ROOT.glob("configs/**/*.py"),
          *ROOT.glob("raynas/**/*.py"), *ROOT.glob("mmseg_plugins/**/*.py"),
          *ROOT.glob("benchmarks/*.py"), *ROOT.glob("benchmarks/*.sh"),
          *ROOT.glob("experiments/*/*.py"), *ROOT.glob("experiments/*/README.md"),
          *ROOT.glob("cluster/*"), *ROOT.glob("scripts/*")]  # fmt: skip
CITING = [p for p in CITING if p.name != "CHANGELOG.md"]
CITED = re.compile(r"(?<![\w/.-])((?:benchmarks|experiments)/[\w./<>*-]*[\w>*])")


def _every_key() -> set[str]:
    keys = {f"{phase}.{key}" for phase, opts in o.DEFAULTS.items() for key in opts}
    keys |= {f"resources.{k}" for k in o.RESOURCES} | {f"tse.{k}" for k in o.TSE}
    return keys | {f"ssr.{k}" for k in o.SSR}


def test_reference_lists_every_option_with_a_description() -> None:
    page = markdown()
    rows = {opt.name: opt for opt in options()}
    assert set(rows) == _every_key()
    assert set(DOCS) == _every_key(), set(DOCS) ^ _every_key()  # no option undocumented
    for name, opt in rows.items():
        assert opt.doc and opt.allowed, name
        assert f"| `{name.partition('.')[2]}` |" in page, name
    assert "| `top_k` | `2` | integer >= 1 |" in page  # defaults and ranges from the validator
    assert "| `init` | `'inherit'` | 'inherit', 'scratch' |" in page
    assert "| `threshold` | `0.1` | number >= 0 |" in page


def test_reference_follows_a_new_option(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(o.DEFAULTS["retrain"], "brand_new", 3)
    assert "retrain.brand_new" in {opt.name for opt in options()}
    assert not next(opt for opt in options() if opt.name == "retrain.brand_new").doc


def test_readme_is_a_manual() -> None:
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 200
    first = readme[: readme.index("```bash") + 400]
    assert "raynas run configs/quickstart.py" in first and 'pytest -m "not slow"' in first
    ci = (ROOT / ".ci/run").read_text()
    assert 'python3 -m pytest -m "not slow" -q' in ci  # CI runs the README's test command


@pytest.mark.parametrize("path", CITING, ids=lambda p: str(p.relative_to(ROOT)))
def test_cited_paths_exist(path: Path) -> None:
    for cited in CITED.findall(path.read_text(errors="ignore")):
        # <placeholders>, NAME / X and {json,md} are patterns, not names
        pattern = re.sub(r"<[^>]*>|\b[A-Z][A-Z_]*\b", "*", cited.rstrip(".").split("{")[0])
        assert list(ROOT.glob(pattern)) or list(ROOT.glob(pattern + "*")), (path.name, cited)


def test_benchmarks_are_few_and_on_one_harness() -> None:
    scripts = [p for p in (ROOT / "benchmarks").glob("*") if p.suffix in (".py", ".sh")]
    scripts = [p for p in scripts if p.name != "__init__.py"]
    # one script per question of docs/benchmarks.md's table (gpu_check is a .py and its .sh)
    assert len(scripts) <= 11, sorted(p.name for p in scripts)
    for path in [*scripts, *(ROOT / "experiments").rglob("*.py")]:
        text = path.read_text()
        assert "sys.path" not in text, path
        if path.suffix == ".py" and path.name not in ("harness.py", "__init__.py"):
            assert "harness" in text or "from benchmarks" in text, path
    for path in (ROOT / "benchmarks").glob("*.py"):  # no benchmark reads another's results
        for line in path.read_text().splitlines():
            assert not ("RESULTS" in line and "read" in line), (path.name, line)
    for folder in (ROOT / "experiments").iterdir():
        if folder.is_dir() and not folder.name.startswith("_"):
            assert (folder / "README.md").is_file(), folder
