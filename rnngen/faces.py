"""A package's face: the names it hands on from its modules, each imported on first use.

Importing one room of a package (`rnngen.corpus.textio`) runs the package's `__init__` first,
so a face that imported its modules at once would make every room pay for all the others
(torch, for a reader of text). A face is therefore a map, name -> the module that defines it,
and the module-level `__getattr__` made here (PEP 562) imports that module when the name is
first asked for. Standard library only: every face may use it.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from importlib import import_module


def lazy_names(package: str, names: dict[str, str]) -> Callable[[str], object]:
    """The `__getattr__` of `package`: `names` maps each public name to the module that
    defines it, a module of the package ("textio") or a whole dotted path ("rnngen.api").
    A name is looked up once; later uses find it on the package."""

    def __getattr__(name: str) -> object:
        if name not in names:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        module = names[name] if "." in names[name] else f"{package}.{names[name]}"
        value = getattr(import_module(module), name)
        setattr(sys.modules[package], name, value)
        return value

    return __getattr__
