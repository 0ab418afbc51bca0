"""The Python API's arguments, checked at the door (stdlib only).

Every public call (`rnngen.load`, `compare`, `tokenize`, `train`, `LanguageModel.generate`
and `score`) is wrapped by `checked`: before any work, each argument is checked against its
annotation, and an RnngenError raised inside the call that names a CLI option (the library's
range checks are shared with the CLI, so they say `--temp`) names the keyword the caller
wrote instead (`temperature`). A wrong type, a bool where a number belongs, 2.5 where a count
belongs, text that cannot be encoded (a lone surrogate), an unknown keyword: one RnngenError
with a one-line message naming the argument, never a TypeError, an AttributeError or torch's
RuntimeError from deep inside.

The annotations are the specification, read as written (strings, with `from __future__
import annotations`), one `|` alternative at a time:

    int            an integer: not a bool, not 2.5 (numpy's integers pass, as int)
    float          a real number but a bool, as float (NaN and inf go on to the range checks)
    str            text: it must encode as UTF-8
    Path           with `str | Path`: a path, a str or os.PathLike, neither empty nor with NUL
    bool, None     themselves
    Iterable[str]  any iterable but a str or bytes, taken whole as a tuple, each item text
    Callable       anything callable
    a class name   an instance of that class (checked by name, so nothing is imported)
"""

from __future__ import annotations

import difflib
import functools
import inspect
import numbers
import os
import re

from rnngen.errors import RnngenError, called_from_cli

_DESCRIPTIONS = {"int": "an integer", "float": "a number", "str": "a str", "bool": "True or False",
                 "None": "None", "Path": "a path (str or pathlib.Path)",
                 "Iterable[str]": "an iterable of str", "Callable": "callable"}  # fmt: skip
# A CLI option in a message: --name (or -o), not inside a word or at the start of a quoted
# path.
_OPTION = re.compile(r"(?<![\w'\"-])(--[a-z][a-z0-9-]*|-o)(?![\w-])")


class _Reject(Exception):
    """This alternative of the annotation does not take the value."""


def checked(*, rename: dict[str, str] | None = None, options: dict[str, str] | None = None):
    """Check a public call's arguments against its annotations (see the module's docstring)
    and name the caller's keywords in its errors. `rename` maps the CLI options the library's
    messages name to this call's keywords where they are not simply `--the-keyword`;
    `options` gives the annotations of a `**options` parameter's keywords (unknown ones are
    refused)."""

    def wrap(function):
        signature = inspect.signature(function)
        names = dict(rename or {})
        for name in [*signature.parameters, *(options or {})]:
            names.setdefault("--" + name.replace("_", "-"), name)

        @functools.wraps(function)
        def call(*args, **kwargs):
            arguments = _bind(function.__name__, signature, options, args, kwargs)
            try:
                result = function(**arguments)
            except RnngenError as e:
                if called_from_cli():  # the caller typed options: keep their names
                    raise
                raise _renamed(e, names) from None
            return _renaming(result, names) if inspect.isgenerator(result) else result

        return call

    return wrap


def _bind(function: str, signature: inspect.Signature, options, args, kwargs) -> dict:
    """The call's arguments by name, each checked and converted (a TypeError of Python's own
    for a call that does not fit the signature, as one RnngenError)."""
    try:
        bound = signature.bind(*args, **kwargs)
    except TypeError as e:
        raise RnngenError(f"{function}(): {e}") from None
    arguments = {}
    for name, value in bound.arguments.items():
        parameter = signature.parameters[name]
        if parameter.kind is inspect.Parameter.VAR_KEYWORD:
            for key, option in value.items():
                if key not in (options or {}):
                    near = difflib.get_close_matches(key, list(options or {}), n=1)
                    hint = f"; did you mean {near[0]!r}?" if near else ""
                    raise RnngenError(f"{function}() has no option {key!r}{hint}")
                arguments[key] = check(key, option, options[key])
        elif name == "self" or parameter.annotation is inspect.Parameter.empty:
            arguments[name] = value
        else:
            arguments[name] = check(name, value, parameter.annotation)
    return arguments


def check(name: str, value, annotation: str):
    """`value` as the annotation takes it, or an RnngenError naming `name`."""
    kinds = [kind.strip() for kind in str(annotation).split("|")]
    reasons = []
    for kind in kinds:
        try:
            return _take(name, value, kind, "Path" in kinds)
        except _Reject as reason:
            if reason.args:
                reasons.append(reason.args[0])
    if reasons:  # the value has the right type but cannot be used: say why
        raise RnngenError(reasons[0])
    if "Path" in kinds and "str" in kinds:  # str is how a path is spelt, not an alternative
        kinds.remove("str")
    wanted = " or ".join(_DESCRIPTIONS.get(kind, f"a {kind}") for kind in kinds)
    raise RnngenError(f"{name} must be {wanted}, not {_show(value)}")


def _take(name: str, value, kind: str, path: bool):
    """`value` converted for one alternative of an annotation; _Reject (with a reason when
    the type is right but the value is not) otherwise."""
    if kind == "None":
        if value is None:
            return None
    elif kind == "bool":
        if _is_bool(value):
            return bool(value)
    elif _is_bool(value):
        pass  # True is no number, no text, no path
    elif kind == "int":
        if isinstance(value, numbers.Integral):
            return int(value)
    elif kind == "float":
        if isinstance(value, numbers.Real):
            try:
                return float(value)
            except OverflowError:
                raise _Reject(f"{name} is too large: {_show(value)}") from None
    elif kind == "str" and path:
        if isinstance(value, str):
            return _path(name, value)
    elif kind == "Path":
        if isinstance(value, os.PathLike):
            return _path(name, value)
    elif kind == "str":
        if isinstance(value, str):
            return _text(name, value)
    elif kind == "Iterable[str]":
        if isinstance(value, str | bytes):  # iterable, but surely not what was meant
            raise _Reject(
                f"{name} must be an iterable of str such as a list, not a "
                f"{type(value).__name__}; give [text] for one"
            )
        else:
            try:
                items = tuple(value)
            except TypeError:
                raise _Reject() from None
            for index, item in enumerate(items):
                if not isinstance(item, str):
                    raise _Reject(f"{name}[{index}] must be a str, not {_show(item)}")
                _text(f"{name}[{index}]", item)
            return items
    elif kind == "Callable":
        if callable(value):
            return value
    elif kind in (cls.__name__ for cls in type(value).__mro__):
        return value
    raise _Reject()


def _is_bool(value) -> bool:
    """Python's bool, or numpy's (np.bool_, which is no subclass of it)."""
    kind = type(value)
    return isinstance(value, bool) or (
        kind.__module__ == "numpy" and kind.__name__ in ("bool", "bool_")
    )


def _text(name: str, value: str) -> str:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as e:
        raise _Reject(
            f"{name} is not text that can be encoded as UTF-8: a lone surrogate "
            f"U+{ord(value[e.start]):04X} at character {e.start}"
        ) from None
    return value


def _path(name: str, value):
    text = os.fspath(value)
    if not isinstance(text, str):  # a PathLike of bytes
        raise _Reject(f"{name} must be a path as str or pathlib.Path, not bytes")
    if not text:
        raise _Reject(f"{name} is empty; give a file's path")
    if "\0" in text:
        raise _Reject(f"{name} holds a NUL character, which no path can")
    return value


def _show(value) -> str:
    """The value in an error message: short, one line."""
    if value is None or isinstance(value, bool | int | float | str | bytes):
        shown = repr(value)
        return shown if len(shown) <= 40 else shown[:37] + "..."
    kind = type(value).__name__
    return f"{'an' if kind[0] in 'aeiou' else 'a'} {kind}"


def _renamed(error: RnngenError, names: dict[str, str]) -> RnngenError:
    """The same error, its CLI options named as this call's keywords (`--no-tie` as
    `tie=False`)."""

    def keyword(match: re.Match) -> str:
        option = match.group()
        if option in names:
            return names[option]
        if option.startswith("--no-") and "--" + option[5:] in names:
            return f"{names['--' + option[5:]]}=False"
        return option

    error.args = (_OPTION.sub(keyword, str(error)), *error.args[1:])
    return error


def _renaming(events, names: dict[str, str]):
    """A generator's items, its errors renamed as the call's are."""
    try:
        yield from events
    except RnngenError as e:
        if called_from_cli():
            raise
        raise _renamed(e, names) from None
