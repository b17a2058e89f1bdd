"""Re-export a package's names without importing its submodules until one is used.

A command that only needs ``passerelle.segments.kinds`` must not pay for scipy because
``passerelle/segments/__init__.py`` re-exports the audience builder; packages declare their
public names here instead, and each submodule is imported on first access.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from typing import Any


def lazy_exports(package: str, exports: dict[str, str]
                 ) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for ``package``; ``exports`` maps each submodule to its
    public names, separated by spaces."""
    where = {name: module for module, names in exports.items() for name in names.split()}

    def __getattr__(name: str) -> Any:
        module = where.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        loaded = importlib.import_module(f"{package}.{module}")
        # Bind every name of the submodule now: importing it set the package attribute of
        # the submodule's own name (``metrics.lineage``) to the module, which would hide a
        # function of that name from the next ``from package import``.
        for exported in exports[module].split():
            setattr(sys.modules[package], exported, getattr(loaded, exported))
        return getattr(loaded, name)

    def __dir__() -> list[str]:
        return sorted(set(where) | set(vars(sys.modules[package])))

    return __getattr__, __dir__
