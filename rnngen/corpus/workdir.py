"""A tokenized directory written whole or not at all: it is built in a work directory beside
its target, which replaces the target (only an earlier rnngen output, or an empty directory)
when complete; what killed runs left behind is removed by the next run, never a live run's
work or a user's files.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from pathlib import Path

from rnngen.atomic import describe, process_alive, remove_stale_temporaries
from rnngen.errors import RnngenError


def check_replaceable(target: Path) -> None:
    """Only an earlier rnngen output (or an empty directory) may be replaced."""
    try:
        ok = not target.exists() or (
            target.is_dir() and ((target / "meta.json").exists() or not any(target.iterdir()))
        )
    except OSError as e:
        raise RnngenError(f"cannot use {str(target)!r} as output: {describe(e)}") from None
    if not ok:
        raise RnngenError(
            f"{str(target)!r} exists and is not an rnngen tokenized directory; choose another -o"
        )


def replace_dir(new: Path, target: Path) -> None:
    """Move a finished directory into place, replacing an earlier rnngen output there."""
    if target.exists():
        check_replaceable(target)
        old = target.with_name(f".{target.name}.{os.getpid()}{OLD_SUFFIX}")
        os.replace(target, old)
        try:
            os.replace(new, target)
        except OSError:
            os.replace(old, target)  # put the earlier output back
            raise
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(new, target)


def remove_stale_work(directory: Path) -> list[Path]:
    """Remove what killed runs left in `directory`; return what was removed.

    That is: temporary files (`.NAME.PID.RANDOM.tmp`), half-written tokenized directories
    (the same form), replaced ones (`.NAME.PID.rnngen-old`), when their process is gone; and
    half-written directories of the older form `.NAME.tmp-RANDOM` (no pid) untouched for a
    day. Only directories holding nothing but tokenize's own files are removed, and a live
    run's work is never touched.
    """
    removed = remove_stale_temporaries(directory)
    try:
        candidates = [p for p in Path(directory).glob(".*") if p.is_dir() and not p.is_symlink()]
    except OSError:
        return removed
    for candidate in candidates:
        parts = candidate.name.rsplit(".", 3)
        try:
            if _WORK_NAME.fullmatch(candidate.name):
                stale = not process_alive(int(parts[1]))
            elif candidate.name.endswith(OLD_SUFFIX) and parts[-2].isdigit():
                stale = not process_alive(int(parts[-2]))
            elif _LEGACY_WORK_NAME.fullmatch(candidate.name):
                stale = time.time() - candidate.stat().st_mtime > 86400
            else:
                continue
            stale = stale and all(_is_work_file(p) for p in candidate.iterdir())
        except OSError:
            continue
        if stale:
            shutil.rmtree(candidate, ignore_errors=True)
            removed.append(candidate)
    return removed


_WORK_NAME = re.compile(r"\..+\.[0-9]+\.[0-9a-f]{8}\.tmp")
_LEGACY_WORK_NAME = re.compile(r"\..+\.tmp-[a-z0-9_]{8}")
OLD_SUFFIX = ".rnngen-old"


def _is_work_file(path: Path) -> bool:
    name = path.name
    return path.is_file() and (
        name in ("tokenizer.model", "meta.json")
        or name.endswith(".bin")
        or (name.startswith(".") and name.endswith(".tmp"))
    )
