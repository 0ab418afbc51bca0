"""Every third-party package the code imports is declared in pyproject.toml.

A fresh install resolves today's releases, not the ones a developer's machine happens to hold:
typer 0.29 stopped depending on click, and a direct `import click` that had worked for months
broke every command. This test parses the imports (ast) of every module that ships or runs in
CI and maps each top-level name to the distribution that provides it.
"""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: the check runs on 3.11+
    tomllib = None
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def top_level_imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def third_party(paths: list[Path], local: set[str]) -> dict[str, list[str]]:
    """Top-level import name -> the files importing it, for names that are neither the
    standard library nor the project's own."""
    found: dict[str, list[str]] = {}
    for path in paths:
        for name in top_level_imports(path):
            if name in sys.stdlib_module_names or name in local or name == "__future__":
                continue
            found.setdefault(name, []).append(str(path.relative_to(ROOT)))
    return found


def normalize(distribution: str) -> str:
    return re.sub(r"[-_.]+", "-", distribution).lower()


def declared(extra: str | None = None) -> set[str]:
    if tomllib is None:
        pytest.skip("reading pyproject.toml needs Python 3.11's tomllib")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = list(project["dependencies"])
    if extra:
        requirements += project["optional-dependencies"][extra]
    return {normalize(re.split(r"[<>=!~;\[ ]", r, maxsplit=1)[0]) for r in requirements}


def undeclared(paths: list[Path], allowed: set[str], local: set[str]) -> list[str]:
    providers = importlib.metadata.packages_distributions()
    problems = []
    for name, files in sorted(third_party(paths, local).items()):
        distributions = {normalize(d) for d in providers.get(name, [])}
        if not distributions:
            problems.append(f"{name} (imported by {files[0]}) is not installed at all")
        elif not distributions & allowed:
            problems.append(f"{name} (imported by {files[0]}) comes from {distributions}")
    return problems


# Optional extras: what `rnngen export` and `rnngen train --log` need, imported only there.
OPTIONAL_EXTRAS = ("export", "logging")


def test_the_package_imports_only_declared_dependencies():
    paths = sorted((ROOT / "rnngen").rglob("*.py"))
    assert len(paths) > 10, "found too few modules: has the package moved?"
    allowed = declared().union(*(declared(extra) for extra in OPTIONAL_EXTRAS))
    assert undeclared(paths, allowed, local={"rnngen"}) == []


def test_optional_extras_are_imported_only_where_needed():
    """A module-level import of an extra's package would break `import rnngen` without it."""
    optional = set().union(*(declared(extra) for extra in OPTIONAL_EXTRAS)) - declared()
    assert optional, "no optional extras found in pyproject.toml"
    providers = importlib.metadata.packages_distributions()
    for path in sorted((ROOT / "rnngen").rglob("*.py")):
        for node in ast.parse(path.read_text()).body:
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            for name in names:
                distributions = {normalize(d) for d in providers.get(name.split(".")[0], [])}
                assert not distributions & optional, f"{path}: {name} at module level"


def test_tests_and_benchmarks_import_only_declared_test_dependencies():
    paths = sorted([*(ROOT / "tests").glob("*.py"), *(ROOT / "benchmarks").glob("*.py")])
    assert len(paths) > 5, "found too few test files"
    local = {"rnngen", "conftest"} | {p.stem for p in paths}
    assert undeclared(paths, declared("test"), local=local) == []


def test_the_check_itself_catches_an_undeclared_import(tmp_path):
    module = tmp_path / "uses_click.py"
    module.write_text("import click\nimport json\nfrom rnngen import errors\n")
    global ROOT
    root, ROOT = ROOT, tmp_path
    try:
        problems = undeclared([module], allowed={"typer"}, local={"rnngen"})
    finally:
        ROOT = root
    assert len(problems) == 1 and problems[0].startswith("click")
