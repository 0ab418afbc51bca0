"""The one exception type the user sees, and reading JSON that came from outside.

An RnngenError is a failure the user can fix (a missing file, a bad option value, a foreign
checkpoint). The CLI prints its message verbatim as `error: <message>` on stderr and exits 1
(2 for a UsageError: options that contradict each other), with no traceback. Anything else
that escapes is a bug and keeps its traceback.
"""

from __future__ import annotations

import contextlib
import contextvars
import json


class RnngenError(Exception):
    """A user-fixable failure; the message is shown verbatim, on one line."""


# Who is calling: the API's checks (rnngen/arguments.py) name the caller's keywords in their
# messages (`temperature`), but under the CLI the caller typed options (`--temp`), so while a
# command runs the messages keep the options they were written with.
_CLI_CALLER = contextvars.ContextVar("rnngen_cli_caller", default=False)


@contextlib.contextmanager
def cli_caller():
    """While inside: the library is called by the CLI, so errors name its options."""
    token = _CLI_CALLER.set(True)
    try:
        yield
    finally:
        _CLI_CALLER.reset(token)


def called_from_cli() -> bool:
    return _CLI_CALLER.get()


class UsageError(RnngenError):
    """Options that contradict each other: the CLI exits 2 (a usage error), as Typer does for
    its own; the message names both options."""


def contradiction(first: str, second: str, why: str = "give one of them") -> UsageError:
    """The error for two options given together that cannot both hold."""
    return UsageError(f"{first} and {second} contradict each other: {why}")


# JSON from a file or a checkpoint header is walked by code that recurses (the decoder, the
# encoder when it is written again): nesting this deep is never rnngen's and is refused.
MAX_JSON_DEPTH = 100


def parse_json(text: str | bytes, what: str, *, object_only: bool = False):
    """`text` decoded, or one RnngenError naming `what`: text that is not JSON (or with
    `object_only`, not a JSON object), and JSON nested deeper than MAX_JSON_DEPTH (the
    decoder's RecursionError, or a value that would meet one later), never a traceback."""
    wanted = "a JSON object" if object_only else "JSON"
    try:
        value = json.loads(text)
    except RecursionError:
        raise RnngenError(f"{what} is nested too deeply") from None
    except (ValueError, TypeError):  # TypeError: neither str nor bytes
        raise RnngenError(f"{what} is not {wanted}") from None
    if object_only and not isinstance(value, dict):
        raise RnngenError(f"{what} is not {wanted}")
    if json_depth(value) > MAX_JSON_DEPTH:
        raise RnngenError(f"{what} is nested more than {MAX_JSON_DEPTH} levels deep")
    return value


def json_depth(value) -> int:
    """How deeply lists and objects nest in a decoded JSON value (a scalar is 0), without
    recursing."""
    deepest, stack = 0, [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            item = item.values()
        elif not isinstance(item, list):
            continue
        deepest = max(deepest, depth + 1)
        stack.extend((child, depth + 1) for child in item)
    return deepest
