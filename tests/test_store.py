"""Issue 16, tokenized directories and the token cache: damage is detected as one line (never
an IndexError mid-training), a damaged cache entry is rebuilt, and what killed runs left is
cleaned up, without touching a live run's work or a user's files."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from conftest import run_cli
from rnngen.cli import app
from rnngen.config import TokenizerConfig
from rnngen.corpus.cache import cache_root, cached_tokenize
from rnngen.corpus.splits import split_tail
from rnngen.corpus.store import load_tokenized
from rnngen.corpus.workdir import remove_stale_work
from rnngen.errors import RnngenError


@pytest.fixture(scope="module")
def tokenized(tmp_path_factory) -> Path:
    from conftest import tiny_text

    root = tmp_path_factory.mktemp("tok")
    (root / "corpus.txt").write_text(tiny_text(300))
    result = CliRunner().invoke(
        app, ["tokenize", str(root / "corpus.txt"), "-o", str(root / "good"), "--kind", "char"]
    )
    assert result.exit_code == 0, result.output
    return root / "good"


def edit_meta(path: Path, change) -> None:
    meta = json.loads((path / "meta.json").read_text())
    change(meta)
    (path / "meta.json").write_text(json.dumps(meta))


def set_id(path: Path, file: str, value: int) -> None:
    ids = np.fromfile(path / file, dtype=np.uint16)
    ids[3] = value
    ids.tofile(path / file)


DAMAGE = {
    "no splits": lambda p: edit_meta(p, lambda m: m.pop("splits")),
    "no tokenizer key": lambda p: edit_meta(p, lambda m: m.pop("tokenizer")),
    "no train split": lambda p: edit_meta(p, lambda m: m["splits"].pop("train")),
    "tokens not a count": lambda p: edit_meta(p, lambda m: m["splits"]["train"].update(tokens="x")),
    "file outside": lambda p: edit_meta(
        p, lambda m: m["splits"]["train"].update(file="../../etc/passwd")
    ),
    "bad dtype": lambda p: edit_meta(p, lambda m: m.update(dtype="float64")),
    "meta not an object": lambda p: (p / "meta.json").write_text("[1, 2]"),
    "meta not json": lambda p: (p / "meta.json").write_text("{oops"),
    "missing bin": lambda p: (p / "train.bin").unlink(),
    "empty bin": lambda p: (p / "valid.bin").write_bytes(b""),
    "odd-sized bin": lambda p: (p / "train.bin").write_bytes((p / "train.bin").read_bytes()[:-1]),
    "id out of range": lambda p: set_id(p, "train.bin", 60000),
    "empty tokenizer": lambda p: (p / "tokenizer.model").write_bytes(b""),
    "random tokenizer": lambda p: (p / "tokenizer.model").write_bytes(os.urandom(200)),
    "missing tokenizer": lambda p: (p / "tokenizer.model").unlink(),
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_a_damaged_tokenized_dir_is_one_line(tokenized, tmp_path, damage):
    broken = tmp_path / "broken"
    shutil.copytree(tokenized, broken)
    DAMAGE[damage](broken)
    with pytest.raises(RnngenError) as caught:
        load_tokenized(broken)
    assert "\n" not in str(caught.value) and str(broken) in str(caught.value)
    result = CliRunner().invoke(app, ["info", str(broken)])
    assert result.exit_code == 1 and result.stderr.startswith("error: ")
    assert len(result.stderr.splitlines()) == 1, result.stderr


def test_ids_out_of_range_never_reach_training(tokenized, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(tokenized, broken)
    set_id(broken, "train.bin", 60000)
    result = run_cli("train", str(broken), "--max-steps", "1", "--hidden", "8", "--embed", "8",
                     "-o", str(tmp_path / "m.safetensors"))  # fmt: skip
    assert result.returncode == 1 and "IndexError" not in result.stderr
    assert "train.bin holds id 60000, out of range" in result.stderr


def test_a_damaged_cache_entry_is_rebuilt(tiny_corpus):
    spans = split_tail(tiny_corpus, 0.1, 0.0)
    config = TokenizerConfig(kind="char")
    first = cached_tokenize(spans, config)
    good = np.array(first.ids("train"))
    for damage in ("id out of range", "odd-sized bin", "meta not json", "missing tokenizer"):
        DAMAGE[damage](first.path)
        again = cached_tokenize(spans, config)
        assert again.path == first.path
        assert np.array_equal(np.array(again.ids("train")), good), damage


def dead_pid() -> int:
    return int(
        subprocess.run(
            [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
        ).stdout
    )


def make_dir(path: Path, *files: str) -> Path:
    path.mkdir()
    for name in files:
        (path / name).write_bytes(b"x")
    return path


def test_stale_work_of_dead_processes_is_removed_and_nothing_else(tmp_path):
    dead, live = dead_pid(), os.getpid()
    stale = [
        make_dir(tmp_path / f".out.{dead}.0123abcd.tmp", "tokenizer.model", "train.bin"),
        make_dir(tmp_path / f".out.{dead}.rnngen-old", "meta.json", "valid.bin"),
    ]
    (tmp_path / f".out.txt.{dead}.0123abcd.tmp").write_text("a dead writer's temporary")
    legacy = make_dir(tmp_path / ".out.tmp-abcd1234", "train.bin")
    os.utime(legacy, (0, 0))  # untouched since 1970: stale
    kept = [
        make_dir(tmp_path / f".out.{live}.0123abcd.tmp", "train.bin"),  # a live run's
        make_dir(tmp_path / f".mine.{dead}.0123abcd.tmp", "notes.txt"),  # not tokenize's files
        make_dir(tmp_path / ".config.2023.old", "meta.json"),  # a user's backup
        make_dir(tmp_path / ".fresh.tmp-abcd1234", "train.bin"),  # legacy, but recent
        tmp_path / f".out.txt.{live}.0123abcd.tmp",
    ]
    kept[-1].write_text("a live writer's temporary")
    removed = remove_stale_work(tmp_path)
    assert len(removed) == 4
    assert not any(p.exists() for p in [*stale, legacy])
    assert not (tmp_path / f".out.txt.{dead}.0123abcd.tmp").exists()
    assert all(p.exists() for p in kept)


def test_tokenize_cleans_up_after_a_killed_run(tiny_corpus, tmp_path):
    leftover = make_dir(tmp_path / f".tok.{dead_pid()}.0123abcd.tmp", "tokenizer.model")
    result = CliRunner().invoke(
        app, ["tokenize", str(tiny_corpus), "-o", str(tmp_path / "tok"), "-q", "--kind", "char"]
    )
    assert result.exit_code == 0 and not leftover.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny.txt", "tok"]


def test_the_cache_is_where_rnngen_cache_says():
    assert str(cache_root()) == os.environ["RNNGEN_CACHE"]
