"""The files of one training run at OUTPUT: claimed, locked, logged to, saved, released.

OUTPUT (the best model), OUTPUT.state.safetensors (what --resume needs) and
OUTPUT.metrics.jsonl belong to one run at a time: `RunFiles.claim` checks the path, takes an
exclusive lock on it (`OutputLock`, below), removes what killed runs left behind, and refuses
to overwrite an input of the run or (without --force) an earlier run. A new run's metrics go
to a hidden temporary file that replaces the old ones only at the run's first save, so the
history of a checkpoint that --force has yet to replace survives a run that dies before then.

Under torchrun only rank 0 (`main`) reads or writes these files; the other ranks get the
same object, whose writes do nothing, so that every rank runs the same code.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import torch

from rnngen.atomic import describe, remove_stale_temporaries, temporary_name
from rnngen.checkpoint import FORMAT, STATE_FORMAT, file_format, save_model
from rnngen.errors import RnngenError
from rnngen.run_paths import lock_path, metrics_path, output_path, state_path
from rnngen.training.resume_file import load_state, save_state


class RunFiles:
    """One run's output files; a context manager that releases them (see `release`)."""

    def __init__(self, output: Path, resume: bool, main: bool = True):
        self.output, self.resume, self.main = output, resume, main
        self.state = state_path(output)
        self.metrics_file = metrics_path(output)
        self.lock = None  # held while the run owns its output (rank 0)
        self.metrics: MetricsLog | None = None  # open while the run trains
        self.metrics_tmp: Path | None = None  # a new run's metrics until its first save

    @classmethod
    def claim(cls, output, corpus: str, *, resume: bool, force: bool, inputs=(), main=True):
        """Check -o and lock it for this run (rank 0); `inputs` are the run's other files."""
        files = cls(output_path(corpus, output), resume, main)
        if not main:  # only rank 0 reads or writes the output
            return files
        try:
            files._claim([corpus, *inputs], force)
        except OSError as e:
            files.release()
            raise RnngenError(f"cannot use -o {str(files.output)!r}: {describe(e)}") from None
        except BaseException:
            files.release()
            raise
        return files

    def _claim(self, inputs: list, force: bool) -> None:
        out, state = self.output, self.state
        longest = len(os.fsencode(f".{state.name}.4294967296.01234567.tmp"))
        if longest > 255:
            raise RnngenError(f"-o {str(out)!r}: the file name is too long ({longest} bytes "
                              "with the suffixes rnngen adds; at most 255)")  # fmt: skip
        if out.is_dir():
            raise RnngenError(f"-o {str(out)!r} is a directory; give a file name")
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError):
            raise RnngenError(
                f"cannot write to {str(out.parent)!r}: a file is in the way of that directory"
            ) from None
        except OSError as e:
            raise RnngenError(f"cannot write to {str(out.parent)!r}: {e.strerror}") from None
        self.lock = lock_output(out)  # a second run on this output stops here
        remove_stale_temporaries(out.parent)  # what killed runs left behind
        for path in (out, state, self.metrics_file):
            for given in inputs:
                if given in (None, "-") or not (path.exists() and Path(given).exists()):
                    continue
                if os.path.samefile(given, path):
                    raise RnngenError(
                        f"-o {str(out)!r} would overwrite {str(given)!r}, an input of this "
                        "run; give another -o"
                    )
        if self.resume:
            if not state.exists():
                raise RnngenError(f"nothing to resume: {str(state)!r} does not exist")
            return
        existing = [p for p in (out, state) if p.exists()]
        if existing and not force:
            raise RnngenError(
                f"{str(existing[0])!r} exists; use --resume to continue it, --force to replace "
                "it, or -o another path"
            )
        for path, kind in ((out, FORMAT), (state, STATE_FORMAT)):
            if path in existing and file_format(path) != kind:
                raise RnngenError(
                    f"--force replaces only rnngen files, and {str(path)!r} is not one "
                    f"({'a model' if kind == FORMAT else 'a resume file'} was expected); "
                    "move it away or give another -o"
                )

    def resume_state(self, group) -> tuple[dict[str, torch.Tensor], dict] | None:
        """The saved run to continue (rank 0 reads the file; the others receive it), or None
        when this run starts afresh."""
        if not self.resume:
            return None
        return group.broadcast_state(load_state(self.output) if self.main else None)

    def open_metrics(self) -> MetricsLog:
        """NAME.metrics.jsonl: appended to when resuming, else a temporary file (above)."""
        if not self.main:
            self.metrics = MetricsLog(Path(os.devnull), "a")
        elif self.resume:
            self.metrics = MetricsLog(self.metrics_file, "a")
        else:
            self.metrics_tmp = temporary_name(self.metrics_file)
            self.metrics = MetricsLog(self.metrics_tmp, "x", shown=self.metrics_file)
        return self.metrics

    def save_model(self, model, tokenizer, metadata: dict) -> None:
        if self.main:
            save_model(self.output, model, tokenizer, metadata)
            self._published()

    def save_state(self, tensors: dict[str, torch.Tensor], info: dict) -> None:
        if self.main:
            save_state(self.output, tensors, info)
            self._published()

    def _published(self) -> None:
        """After the run's first save, its metrics take the place of the old ones."""
        if self.metrics_tmp is None:
            return
        if self.metrics is not None:
            self.metrics.flush()
        try:
            os.replace(self.metrics_tmp, self.metrics_file)
        except OSError as e:
            raise RnngenError(f"cannot write {str(self.metrics_file)!r}: {describe(e)}") from None
        self.metrics_tmp = None

    def release(self) -> None:
        """Unlock the output; drop a metrics file this run never moved into place."""
        if self.metrics_tmp is not None:
            self.metrics_tmp.unlink(missing_ok=True)
            self.metrics_tmp = None
        if self.lock is not None:
            self.lock.release()
            self.lock = None

    def __enter__(self) -> RunFiles:
        return self

    def __exit__(self, *exc) -> None:
        self.release()


class MetricsLog:
    """NAME.metrics.jsonl, one JSON object a line; a failed write is one line naming it."""

    def __init__(self, path: Path, mode: str, shown: Path | None = None):
        self.shown = shown or path
        try:
            self.file = open(path, mode, encoding="utf-8")  # noqa: SIM115 (closed in __exit__)
        except OSError as e:
            raise RnngenError(f"cannot write {str(self.shown)!r}: {describe(e)}") from None

    def write(self, text: str) -> None:
        self._guard(self.file.write, text)

    def flush(self) -> None:
        self._guard(self.file.flush)

    def _guard(self, action, *args) -> None:
        try:
            action(*args)
        except OSError as e:
            raise RnngenError(f"cannot write {str(self.shown)!r}: {describe(e)}") from None

    def __enter__(self) -> MetricsLog:
        return self

    def __exit__(self, *exc) -> None:
        try:
            self.file.close()
        except OSError:
            if exc[0] is None:
                raise RnngenError(f"cannot write {str(self.shown)!r}") from None


class OutputLock:
    """An exclusive lock on a run's output, held for the run's duration.

    `flock` on `.NAME.lock` next to the checkpoint, which holds the owner's pid: a second
    run on the same output fails at once, naming that pid. The kernel drops the lock when
    its process dies (kill -9 included), so a stale lock file never blocks a later run; the
    file is removed on release.
    """

    def __init__(self, path: Path):
        self.path = lock_path(path)
        self.fd: int | None = None
        try:
            import fcntl
        except ImportError:  # no flock (Windows): no lock
            return
        for _ in range(10):  # the file may be removed by its owner between open and flock
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
                os.close(fd)
                raise RnngenError(
                    f"{str(path)!r} is being trained by pid {holder}; wait for that run to "
                    "end, or give another -o"
                ) from None
            except BaseException:
                os.close(fd)
                raise
            try:
                same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                os.ftruncate(fd, 0)
                os.write(fd, f"{os.getpid()}\n".encode())
                self.fd = fd
                return
            os.close(fd)
        raise RnngenError(f"cannot lock {str(path)!r}: its lock file keeps changing")

    def release(self) -> None:
        if self.fd is None:
            return
        with contextlib.suppress(OSError):
            self.path.unlink()
        os.close(self.fd)
        self.fd = None


def lock_output(path: Path) -> OutputLock:
    """Lock `path` for one run (see OutputLock); an OSError is one line naming the folder."""
    try:
        return OutputLock(path)
    except OSError as e:
        raise RnngenError(f"cannot write to {str(Path(path).parent)!r}: {describe(e)}") from None
