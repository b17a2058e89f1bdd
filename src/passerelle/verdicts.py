"""Verdicts of the expression checks a project load makes, kept between commands.

Loading a project checks every user-written expression of its leaf files (a trait's
``where``, a measure's ``expr``, a metric's ``filter``): parsed with sqlglot, and a trait
filter type-checked with Ibis against the staged columns. Importing the two libraries costs
more than the rest of a read-only command (`passerelle segment count`, `profile`...), and
the verdict only changes when the expression, its context or the checking code does. So each
verdict is kept in the project's ``.passerelle/expression-checks.json``, keyed by the check's
kind, the expression and its context, for one version of the checking code (Passerelle's
files that check, and the versions of Ibis and sqlglot); any other code starts afresh.

A verdict only decides what a load reports: the SQL a command runs is always built from a
fresh parse of the text (the safe subset is enforced there, whatever this file says).
A file that cannot be read or written is no error: the checks then run.

The same keeping serves other results a read-only command would otherwise compute with
those libraries (a metric's lineage for the glossary): each kind has its file and names the
code it depends on.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

FILE = Path(".passerelle") / "expression-checks.json"
MAX_KEPT = 4096  # verdicts kept (a project has tens of expressions)
# The files whose code makes a verdict (relative to the passerelle package).
CODE = ("verdicts.py", "metrics/expr.py", "metrics/load.py", "traits/expr.py",
        "traits/files.py", "staging/types.py", "project/traits_models.py", "model.py")
_LIBRARIES = ("ibis-framework", "sqlglot")


@functools.cache
def code_version(files: Sequence[str] = CODE) -> str:
    """What the verdicts depend on besides their inputs: the checking code and libraries."""
    from importlib.metadata import version

    from passerelle import __version__

    digest = hashlib.sha256(__version__.encode())
    for name in _LIBRARIES:
        digest.update(f"{name} {version(name)}".encode())
    package = Path(__file__).parent
    for file in files:
        digest.update(file.encode())
        digest.update((package / file).read_bytes())
    return digest.hexdigest()


class Verdicts:
    """The kept verdicts of one project folder (``root``), in ``file`` (under it), for the
    code in ``code`` (files of the passerelle package); :meth:`save` writes new ones."""

    def __init__(self, root: Path, file: Path = FILE, code: Sequence[str] = CODE) -> None:
        self.path = Path(root) / file
        self.code = code_version(tuple(code))
        self.kept: dict[str, Any] = read_kept(self.path, "code", self.code, "verdicts")
        self.added = 0

    def of(self, kind: str, text: str, context: Any, check: Callable[[], Any]) -> Any:
        """The verdict of ``check()`` (JSON: text, numbers, lists, None) for ``kind``,
        ``text`` and ``context`` (anything with a stable ``repr``): kept, or made now."""
        key = hashlib.sha256(repr((kind, text, context)).encode()).hexdigest()
        if key in self.kept:
            return self.kept[key]
        verdict = json.loads(json.dumps(check()))  # as it will read back: lists, not tuples
        if len(self.kept) >= MAX_KEPT:  # verdicts of expressions edited away: start again
            self.kept.clear()
        self.kept[key] = verdict
        self.added += 1
        return verdict

    def save(self) -> None:
        if not self.added:
            return
        write_kept(self.path, {"code": self.code, "verdicts": self.kept})
        self.added = 0


def read_kept(path: Path, stamp_key: str, stamp: str, body_key: str) -> dict[str, Any]:
    """The ``body_key`` mapping of a kept JSON file, if its ``stamp_key`` is ``stamp``
    (the code or versions it was made by); empty when missing, unreadable or stale."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    fresh = isinstance(data, dict) and data.get(stamp_key) == stamp \
        and isinstance(data.get(body_key), dict)
    return data[body_key] if fresh else {}


def write_kept(path: Path, payload: dict[str, Any]) -> None:
    """Write a kept JSON file atomically; a file that cannot be written is no error (what
    it keeps is computed again next time)."""
    temporary = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary.write_text(json.dumps(payload), encoding="utf-8")
        os.replace(temporary, path)  # readers see the old file or the new one
    except OSError:
        temporary.unlink(missing_ok=True)


def no_verdicts() -> Any:
    """A stand-in that keeps nothing: every check runs (a load without a project folder)."""
    return _Nothing()


class _Nothing:
    def of(self, kind: str, text: str, context: Any, check: Callable[[], Any]) -> Any:
        return json.loads(json.dumps(check()))

    def save(self) -> None:
        pass
