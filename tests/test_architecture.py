"""The import rules of DESIGN.md, checked by parsing the source rather than trusting it."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "rnngen"
TORCH_FREE = {
    "ngram", "ngram_estimate", "ngram_kenlm", "config", "errors", "textio", "__init__",
    "__main__", "synth", "synth_choice", "synth_grammar", "synth_tables", "synth_lexicon",
}  # fmt: skip


def imports_of(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def library_modules():
    return [p for p in PACKAGE.glob("*.py") if p.stem != "__main__"]


def test_nothing_imports_the_cli():
    for path in library_modules():
        assert not any(n.startswith("rnngen.cli") for n in imports_of(path)), path.name


def test_train_does_not_save_checkpoints():
    assert (
        "rnngen.checkpoint" not in imports_of(PACKAGE / "train.py")
        if (PACKAGE / "train.py").exists()
        else True
    )


def test_torch_free_modules():
    for path in library_modules():
        if path.stem in TORCH_FREE:
            assert not any(n.split(".")[0] == "torch" for n in imports_of(path)), path.name


def test_only_the_tokenizer_imports_sentencepiece():
    for path in [*library_modules(), *PACKAGE.glob("cli/*.py")]:
        if path.stem != "tokenizer":
            assert "sentencepiece" not in imports_of(path), path.name


def test_nothing_unpickles():
    for path in PACKAGE.rglob("*.py"):
        source = path.read_text()
        assert "torch.load(" not in source and "pickle" not in imports_of(path), path.name


def test_help_does_not_import_torch():
    code = (
        "import sys\n"
        "from rnngen.cli import app\n"
        "try:\n    app(['--help'], prog_name='rnngen')\nexcept SystemExit:\n    pass\n"
        "for cmd in ['tokenize','train','eval','sample','score','ngram','synth','info']:\n"
        "    try:\n        app([cmd, '--help'], prog_name='rnngen')\n"
        "    except SystemExit:\n        pass\n"
        "assert 'torch' not in sys.modules, 'torch imported by --help'\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
