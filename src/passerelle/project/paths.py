"""Every path a project file or a request names stays inside the project folder.

Source files, the Splink model, export files, the warehouse file, the collector's spool and
tracking plan: each is resolved (``..`` and symbolic links followed) and must then lie in
the project folder, or in a folder IT lists under ``allowed_paths`` in ``passerelle.yml``.
Otherwise an absolute path or a ``../`` in a file anyone can propose (a candidate
``identity.yml`` sent to the API) would let Passerelle read or overwrite any file the server
can reach.

Fields holding such a path are typed :data:`ProjectPath`: the loader finds them in every
parsed file (:func:`check_paths`) and reports the ones outside with file and line; the code
that opens or writes a path calls :func:`confine` again, because a symbolic link can change
after validation. The allowed folders are read from ``passerelle.yml`` on disk, so every
caller that knows the project folder (CLI, server, loader process) applies the same rule.
"""

from __future__ import annotations

import re
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel

from passerelle.errors import PasserelleError, Problems
from passerelle.project.yamlio import YamlDoc, YamlSyntaxError, read_yaml, substitute_env

PROJECT_FILE = "passerelle.yml"
HINT = ("use a path inside the project folder, or ask IT to list the folder under "
        "`allowed_paths` in passerelle.yml")
INSTRUCTION = ("Use a path inside the project folder, or ask IT to list the folder under "
               "`allowed_paths` in passerelle.yml.")


class _PathField:
    """Marks a model field whose value is a path (see :data:`ProjectPath`)."""


_MARK = _PathField()
#: A path relative to the project folder (absolute only inside an ``allowed_paths`` folder).
ProjectPath = Annotated[str, _MARK]


class PathNotAllowed(PasserelleError):
    """A path named by a project file or a request leaves the folders Passerelle may use."""


def allowed_roots(root: Path | str) -> tuple[Path, ...]:
    """The project folder and the folders ``allowed_paths`` lists, resolved.

    A ``passerelle.yml`` that cannot be read adds nothing: the loader reports its problems."""
    root = Path(root).resolve()
    try:
        data = read_yaml(root / PROJECT_FILE, PROJECT_FILE).data
    except (OSError, UnicodeDecodeError, YamlSyntaxError):
        return (root,)
    listed = data.get("allowed_paths") if isinstance(data, dict) else None
    if not isinstance(listed, list):
        return (root,)
    extra = []
    for entry in listed:
        missing: list[str] = []
        value = substitute_env(entry, missing)
        if isinstance(value, str) and value.strip() and not missing:
            extra.append((root / value).resolve())
    return (root, *extra)


def outside(root: Path | str, value: str | Path, roots: tuple[Path, ...] | None = None
            ) -> Path | None:
    """``value`` resolved (relative to ``root`` unless absolute) when it leaves ``roots``
    (default: :func:`allowed_roots`), else None."""
    path = (Path(root).resolve() / value).resolve()  # an absolute value replaces the root
    return None if any(path.is_relative_to(r) for r in roots or allowed_roots(root)) else path


def confine(root: Path | str, value: str | Path, *, what: str,
            roots: tuple[Path, ...] | None = None) -> Path:
    """``value`` resolved against the project folder; raises :class:`PathNotAllowed` when the
    result (symbolic links followed) is outside the allowed folders."""
    escaped = outside(root, value, roots)
    if escaped is not None:
        raise PathNotAllowed(
            f"The {what} {str(value)!r} is outside the project folder ({escaped}).", INSTRUCTION)
    return (Path(root).resolve() / value).resolve()


def check_paths(problems: Problems, doc: YamlDoc, model: BaseModel, root: Path | str,
                roots: tuple[Path, ...] | None = None) -> None:
    """Report every :data:`ProjectPath` of ``model`` (parsed from ``doc``) that leaves the
    allowed folders, with its file and line. ``{placeholders}`` of templates (an export's
    ``{audience}``) are checked as a plain name."""
    roots = roots or allowed_roots(root)
    for loc, value in _path_fields(model):
        escaped = outside(root, re.sub(r"\{[^{}/]*\}", "x", value), roots)
        if escaped is not None:
            where = ".".join(str(p) for p in loc)
            problems.add(doc.file, f"{where}: {value!r} is outside the project folder "
                         f"({escaped})", doc.line_of(loc), HINT)


def _path_fields(model: BaseModel, loc: tuple[Any, ...] = ()
                 ) -> Iterator[tuple[tuple[Any, ...], str]]:
    for name, info in type(model).model_fields.items():
        value = getattr(model, name)
        here = (*loc, info.alias or name)
        if isinstance(value, str) and _marked(info):
            yield here, value
        elif isinstance(value, BaseModel):
            yield from _path_fields(value, here)
        elif isinstance(value, list | dict):
            items = value.items() if isinstance(value, dict) else enumerate(value)
            for key, item in items:
                if isinstance(item, BaseModel):
                    yield from _path_fields(item, (*here, key))


def _marked(info: Any) -> bool:
    if _MARK in info.metadata:
        return True
    # ProjectPath | None keeps the mark inside the union
    return any(_MARK in getattr(arg, "__metadata__", ()) for arg in typing.get_args(
        info.annotation))
