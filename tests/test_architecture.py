"""The import rules of DESIGN.md, checked by parsing the source rather than trusting it.

Rules are by folder and by layer (LAYERS: the pipeline's order, every module placed), and
every rule first asserts that it found files: a module that moves or a folder that is renamed
makes the rule fail loudly instead of pass vacuously.
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
SHARED_HELPERS = {"rnngen.errors", "rnngen.atomic", "rnngen.corpus.textio", "rnngen.metrics",
                  "rnngen.faces"}  # fmt: skip
ENGINES = ("ngram", "synth")  # folders that import nothing of rnngen but SHARED_HELPERS

# The pipeline's layers, lowest first: text in -> ids -> model -> checkpoint -> scoring /
# sampling -> training -> the API -> the front ends. A unit is a top-level module or folder
# of rnngen; it may import itself and the units of LOWER layers, never one of its own layer or
# a higher one (so no circle can form between units either). Every unit must be listed: a new
# module has to be given its place.
LAYERS = [
    {"errors", "metrics", "faces"},  # stdlib only
    {"config", "atomic", "arguments", "hardware", "threads", "run_paths"},  # the foundations
    {"corpus"},  # text in, ids out (no torch)
    {"ngram", "synth", "adaptive", "word_vectors"},  # the engines; the model's parts
    {"model"},  # the network: RNNLM, the window LM built on it, their state
    {"checkpoint"},  # the model file
    {"plot"},  # figures of runs (what training wrote) and of gradient flow
    {"sampling", "scoring"},  # what reads a trained model
    {"training", "onnx_export"},  # what writes one (training validates with scoring)
    {"api"},  # the one door
    {"serve"},  # front ends: the HTTP server, then the command line over everything
    {"cli"},
    {"__main__"},
]
# Imports that still run the wrong way, each with the move that removes it. The test fails
# when one is gone too, so that its line goes with it.
DEBTS = {
    # api/serving.py starts the HTTP server for `rnngen serve`, so that the CLI has one door;
    # the server (a front end over the API's face) never imports api.serving back.
    ("rnngen.api.serving", "rnngen.serve.app"),
    ("rnngen.api.serving", "rnngen.serve.server"),
}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def unit_of(module: str) -> str:
    """`rnngen.training.loop` -> training; the package itself (its version) -> errors' layer."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "errors"


def layer_of(unit: str) -> int:
    found = [i for i, layer in enumerate(LAYERS) if unit in layer]
    assert len(found) == 1, f"{unit} is in {len(found)} layers of LAYERS: give it one place"
    return found[0]


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
                      "    from ..window import x\n    import rnngen.api.sampling\n")  # fmt: skip
    assert cli_imports(module) == {
        "rnngen.api", "rnngen.threads", "rnngen.window", "rnngen.api.sampling"}  # fmt: skip


def test_the_training_loop_does_not_save_checkpoints():
    assert "rnngen.checkpoint" not in imports_of(files_in(PACKAGE / "training", "loop.py")[0])


def rnngen_imports() -> dict[str, set[str]]:
    """module -> the rnngen modules it imports, lazily too (a package's face is a module of
    its own: `from rnngen.ngram import pages` imports rnngen.ngram.pages, not the face)."""
    paths = files_in(PACKAGE, "**/*.py")
    modules = {module_name(p) for p in paths}
    graph = {}
    for path in paths:
        names = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                for alias in node.names:
                    inner = f"{node.module}.{alias.name}"
                    names.add(inner if inner in modules else node.module)
        graph[module_name(path)] = {n for n in names if top(n) == "rnngen"}
    assert len(graph) > 50, "found too few modules: has the package moved?"
    return graph


def test_every_module_has_a_layer():
    units = {unit_of(m) for m in rnngen_imports() if m != "rnngen"}
    listed = set().union(*LAYERS)
    assert units - listed == set(), "give each new module or folder its place in LAYERS"
    assert listed - units == set(), "LAYERS names a unit that no longer exists"
    for unit in units:
        layer_of(unit)


def test_imports_run_down_the_layers():
    """A unit imports itself and lower layers only (the package root only hands on names)."""
    wrong = set()
    for module, names in rnngen_imports().items():
        if module == "rnngen":
            continue
        for name in names:
            here, there = unit_of(module), unit_of(name)
            if here != there and layer_of(there) >= layer_of(here):
                wrong.add((module, name))
    assert wrong - DEBTS == set(), "an import runs up or sideways: see LAYERS"
    assert DEBTS - wrong == set(), "a debt is paid: strike its line from DEBTS"


def test_no_circles_between_modules():
    """No two modules import each other, however far round (lazy imports count too)."""
    imports = rnngen_imports()
    graph = {m: {n for n in names if n in imports} for m, names in imports.items()}
    order, low, stack, on_stack, circles = {}, {}, [], set(), []

    def visit(m: str) -> None:  # Tarjan's strongly connected components
        order[m] = low[m] = len(order)
        stack.append(m)
        on_stack.add(m)
        for n in graph[m]:
            if (m, n) in DEBTS:
                continue
            if n not in order:
                visit(n)
                low[m] = min(low[m], low[n])
            elif n in on_stack:
                low[m] = min(low[m], order[n])
        if low[m] == order[m]:
            component = set()
            while True:
                n = stack.pop()
                on_stack.discard(n)
                component.add(n)
                if n == m:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for m in sorted(graph):
        if m not in order:
            visit(m)
    assert circles == []


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
        *folders, stem = module.split(".")[1:]
        path = files_in(PACKAGE.joinpath(*folders), stem + ".py")[0]
        for name in imports_of(path):
            assert name in SHARED_HELPERS or top(name) in sys.stdlib_module_names, (path, name)
        for folder in folders:  # importing the module runs its package's face first
            face = PACKAGE / folder / "__init__.py"
            for name in imports_of(face, top_level_only=True):
                assert top(name) in sys.stdlib_module_names or name in SHARED_HELPERS, (face, name)


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
