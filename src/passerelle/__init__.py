"""Passerelle: a warehouse-native customer data platform shared by marketing and IT.

>>> import passerelle
>>> project = passerelle.open("passerelle-demo")  # doctest: +SKIP
>>> result = project.run()  # doctest: +SKIP
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from passerelle.errors import PasserelleError, ProjectError

if TYPE_CHECKING:
    from passerelle.core import Project
    from passerelle.core import open_project as open

__version__ = "0.1.0"
__all__ = ["PasserelleError", "Project", "ProjectError", "__version__", "open"]


def __getattr__(name: str) -> Any:
    # The engine layer pulls in ibis, pyarrow and numpy (about a second): import it when a
    # project is opened, not when `passerelle --help` or a collector process starts.
    if name in ("Project", "open"):
        from passerelle import core

        return core.Project if name == "Project" else core.open_project
    raise AttributeError(f"module 'passerelle' has no attribute {name!r}")
