"""The import rules of DESIGN.md, checked by parsing the source rather than trusting it.

Rules are by folder, and every rule first asserts that it found files: a module that moves
or a folder that is renamed makes the rule fail loudly instead of pass vacuously.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "rnngen"
# The stdlib-only helpers the self-contained engines may use (errors, and the writers every
# output goes through, and the figures every report shows).
SHARED_HELPERS = {"rnngen.errors", "rnngen.atomic", "rnngen.textio", "rnngen.metrics"}
ENGINES = ("ngram", "synth")  # folders that import nothing of rnngen but SHARED_HELPERS


def imports_of(path: Path, *, top_level_only: bool = False) -> set[str]:
    """Every module a file imports; `from rnngen import x` counts as `rnngen.x`."""
    tree = ast.parse(path.read_text())
    nodes = tree.body if top_level_only else ast.walk(tree)
    names = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module == "rnngen":
            names |= {f"rnngen.{alias.name}" for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def files_in(folder: Path, pattern: str = "*.py") -> list[Path]:
    """The files a rule applies to; never none, so that a rule cannot pass vacuously."""
    found = sorted(folder.glob(pattern))
    assert found, f"no {pattern} under {folder}: the rule would check nothing"
    return found


def library_modules() -> list[Path]:
    """Every module of the library: the package and its folders, without the CLI."""
    return [
        p
        for p in files_in(PACKAGE, "**/*.py")
        if "cli" not in p.relative_to(PACKAGE).parts and p.name != "__main__.py"
    ]


def top(name: str) -> str:
    return name.split(".")[0]


def test_nothing_imports_the_cli():
    for path in library_modules():
        assert not any(n.startswith("rnngen.cli") for n in imports_of(path)), path


# What the CLI may import of the library: the API's face, the one error type, and the config
# (defaults and option values). Everything else is reached through rnngen.api: one door.
CLI_MAY_IMPORT = {"rnngen.api", "rnngen.errors", "rnngen.config"}


def cli_imports(path: Path) -> set[str]:
    """Every rnngen module a CLI file imports, at the top and inside functions alike;
    relative imports resolved, `from rnngen.api import x` counted as rnngen.api."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = "rnngen.cli" if node.level == 1 else "rnngen" if node.level else ""
            module = ".".join(part for part in (base, node.module) if part)
            if module == "rnngen":  # `from rnngen import api` names the module rnngen.api
                names |= {f"rnngen.{alias.name}" for alias in node.names}
            else:
                names.add(module)
    return {name for name in names if top(name) == "rnngen"}


def test_the_cli_reaches_the_library_through_the_api_only():
    files = files_in(PACKAGE / "cli")
    assert len(files) >= 10, files  # the rule found the command modules
    for path in files:
        for name in cli_imports(path):
            inside = name == "rnngen.cli" or name.startswith("rnngen.cli.")
            assert inside or name in CLI_MAY_IMPORT, (path.name, name)


def test_the_cli_rule_sees_imports_inside_functions(tmp_path):
    module = tmp_path / "command.py"
    module.write_text("from rnngen import api\ndef f():\n    from rnngen.threads import running\n"
                      "    from ..sample import x\n    import rnngen.api.sampling\n")  # fmt: skip
    assert cli_imports(module) == {
        "rnngen.api", "rnngen.threads", "rnngen.sample", "rnngen.api.sampling"}  # fmt: skip


def test_train_does_not_save_checkpoints():
    assert "rnngen.checkpoint" not in imports_of(files_in(PACKAGE, "trainer.py")[0])


@pytest.mark.parametrize("engine", ENGINES)
def test_engines_are_self_contained(engine):
    """ngram/ and synth/: no torch, no sentencepiece, nothing of rnngen outside the folder but
    errors and the stdlib-only writers."""
    for path in files_in(PACKAGE / engine):
        for name in imports_of(path):
            assert top(name) not in ("torch", "sentencepiece"), (path, name)
            if top(name) == "rnngen":
                inside = name == f"rnngen.{engine}" or name.startswith(f"rnngen.{engine}.")
                assert inside or name in SHARED_HELPERS, (path, name)


def test_shared_helpers_need_only_the_standard_library():
    """What the engines may import must not bring anything in with it."""
    for module in SHARED_HELPERS:
        path = files_in(PACKAGE, module.split(".")[1] + ".py")[0]
        for name in imports_of(path):
            assert name in SHARED_HELPERS or top(name) in sys.stdlib_module_names, (path, name)


def test_config_and_the_package_face_import_no_torch():
    for stem in ("config", "errors", "__init__"):
        path = files_in(PACKAGE, f"{stem}.py")[0]
        assert "torch" not in {top(n) for n in imports_of(path, top_level_only=True)}, path


def test_a_rule_fails_when_its_folder_is_empty(tmp_path):
    (tmp_path / "ngram").mkdir()
    with pytest.raises(AssertionError, match="would check nothing"):
        files_in(tmp_path / "ngram")


def test_only_the_tokenizer_imports_sentencepiece():
    for path in files_in(PACKAGE, "**/*.py"):
        if path.stem != "tokenizer":
            assert "sentencepiece" not in imports_of(path), path


def test_nothing_unpickles():
    for path in files_in(PACKAGE, "**/*.py"):
        source = path.read_text()
        assert "torch.load(" not in source and "pickle" not in imports_of(path), path


def test_help_does_not_import_torch():
    code = (
        "import sys\n"
        "from rnngen.cli import app\n"
        "try:\n    app(['--help'], prog_name='rnngen')\nexcept SystemExit:\n    pass\n"
        "for cmd in ['tokenize','train','eval','sample','score','ngram','synth','info',"
        "'export','neighbors']:\n"
        "    try:\n        app([cmd, '--help'], prog_name='rnngen')\n"
        "    except SystemExit:\n        pass\n"
        "assert 'torch' not in sys.modules, 'torch imported by --help'\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_tokenize_does_not_import_torch(tmp_path):
    """Two seconds of start-up out of a tokenize run that may take five (torch is only for
    models)."""
    corpus = tmp_path / "c.txt"
    corpus.write_text("a few words of text\n" * 50)
    code = (
        "import sys\n"
        "from rnngen.cli import app\n"
        f"try:\n    app(['tokenize', {str(corpus)!r}, '-o', {str(tmp_path / 'o')!r}, '-q'],"
        " prog_name='rnngen')\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
        "assert 'torch' not in sys.modules, 'torch imported by tokenize'\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
