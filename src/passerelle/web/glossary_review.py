"""Writing an approved metric or trait definition into the project's YAML.

The definition replaces the entry of the same name in the file that holds it (a new one
goes at the end of the kind's first file, or a new file), by splicing text: every other
line of the file, its comments and its other definitions, stays as it was. Before the file
is written, the whole set of leaf files with the change is read by the project's own
loader (``passerelle.leaves.load_leaves``) in a temporary copy: a definition that the
loader refuses, or that breaks another one, is never written. Files are confined to the
project folder.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from passerelle.errors import PasserelleError
from passerelle.project.paths import confine
from passerelle.project.yamlio import YamlSyntaxError, read_yaml

FOLDERS = {"metric": "metrics", "trait": "traits"}
COPY_LIMIT = 2_000_000  # bytes of YAML copied for the check: project files are small
_SKIP_DIRS = {"data", "node_modules", "__pycache__"}


class DefinitionRefused(PasserelleError):
    """The definition does not parse, or the project's loader refuses it."""


@dataclass(frozen=True)
class Located:
    file: str  # project-relative, e.g. metrics/sales.yml
    index: int | None  # position in the file's list; None: a new entry


def parse_definition(kind: str, name: str, text: str) -> dict[str, Any]:
    """One definition as a mapping whose ``name`` is ``name``."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark else ""
        raise DefinitionRefused(f"The definition is not valid YAML{where}: "
                                f"{getattr(exc, 'problem', exc)}.",
                                "Write one mapping: name: ..., then its fields.") from None
    if not isinstance(data, dict):
        raise DefinitionRefused("The definition must be one mapping (name: ..., type: ...).",
                                f"See docs/{FOLDERS[kind]}.md for the fields of a {kind}.")
    if data.get("name") != name:
        raise DefinitionRefused(f"The definition's name is {data.get('name')!r}, not "
                                f"{name!r}.", "Give the same name in both places.")
    return data


def _files(root: Path, kind: str) -> list[Path]:
    folder = root / FOLDERS[kind]
    return sorted(p for p in folder.glob("*.y*ml") if p.is_file()) if folder.is_dir() else []


def locate(root: Path, kind: str, name: str) -> Located:
    """Where ``name`` is defined today, or where a new definition goes."""
    key = FOLDERS[kind]
    files = _files(root, kind)
    for path in files:
        rel = path.relative_to(root).as_posix()
        try:
            data = read_yaml(path, rel).data
        except (YamlSyntaxError, OSError):
            continue
        items = data.get(key) if isinstance(data, dict) else None
        for i, item in enumerate(items if isinstance(items, list) else []):
            if isinstance(item, dict) and item.get("name") == name:
                return Located(rel, i)
    target = files[0].relative_to(root).as_posix() if files else f"{key}/glossary.yml"
    return Located(target, None)


def current_text(root: Path, kind: str, name: str) -> str | None:
    """The YAML of ``name``'s definition today, as a standalone mapping (to start from)."""
    at = locate(root, kind, name)
    if at.index is None:
        return None
    data = read_yaml(root / at.file, at.file).data
    return yaml.safe_dump(data[FOLDERS[kind]][at.index], sort_keys=False, allow_unicode=True,
                          width=100)


def _end_of(lines: list[str], start: int, indent: int) -> int:
    """Index (0-based, exclusive) of the end of the list item starting at ``start``:
    the next line indented no deeper than its dash, blank and comment lines left out."""
    end = len(lines)
    for j in range(start + 1, len(lines)):
        text = lines[j]
        stripped = text.strip()
        if stripped and not stripped.startswith("#") and \
                len(text) - len(text.lstrip()) <= indent:
            end = j
            break
    while end > start + 1 and (not lines[end - 1].strip()
                               or lines[end - 1].strip().startswith("#")):
        end -= 1
    return end


def _as_item(data: dict[str, Any], indent: int) -> list[str]:
    body = yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=100).splitlines()
    pad = " " * indent
    return [f"{pad}- {body[0]}", *(f"{pad}  {line}" for line in body[1:])]


def splice(text: str, rel: str, key: str, index: int | None, data: dict[str, Any]) -> str:
    """``text`` (a file's content) with item ``index`` of its ``key`` list replaced by
    ``data``, or ``data`` added at the end of the list (``index`` None)."""
    lines = text.splitlines()
    if text.strip():
        with tempfile.NamedTemporaryFile("w", suffix=".yml", delete=False) as tmp:
            tmp.write(text)
        try:
            doc = read_yaml(Path(tmp.name), rel)
        finally:
            os.unlink(tmp.name)
        items = doc.data.get(key) if isinstance(doc.data, dict) else None
    else:
        doc, items = None, None
    if isinstance(items, list) and not items:  # `key: []`: the list written out instead
        at = doc.line_of((key,)) - 1
        if re.fullmatch(rf"{key}:\s*\[\s*\]\s*(#.*)?", lines[at]):
            return "\n".join([*lines[:at], f"{key}:", *_as_item(data, 2),
                              *lines[at + 1:]]) + "\n"
    if not isinstance(items, list) or not items:
        if doc is not None and isinstance(doc.data, dict) and key in doc.data:
            raise DefinitionRefused(f"{rel}: `{key}:` is not a list of definitions.",
                                    "Fix the file in the project first.")
        new = [*lines, *([""] if lines and lines[-1].strip() else []), f"{key}:",
               *_as_item(data, 2)]
        return "\n".join(new) + "\n"
    where = len(items) - 1 if index is None else index
    start = doc.line_of((key, where)) - 1
    dash = len(lines[start]) - len(lines[start].lstrip())  # the item's "- " column
    end = _end_of(lines, start, dash)
    if index is None:
        new = [*lines[:end], *_as_item(data, dash), *lines[end:]]
    else:
        new = [*lines[:start], *_as_item(data, dash), *lines[end:]]
    return "\n".join(new) + "\n"


def _copy_definitions(root: Path, into: Path) -> None:
    """The project's YAML files (not its data), to read them again with one changed."""
    total = 0
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if not d.startswith(".") and d not in _SKIP_DIRS]
        for f in files:
            if not f.endswith((".yml", ".yaml")):
                continue
            source = Path(folder) / f
            total += source.stat().st_size
            if total > COPY_LIMIT:
                raise DefinitionRefused("The project's YAML files are too large to check.",
                                        f"Keep them under {COPY_LIMIT} bytes in all.")
            target = into / source.relative_to(root)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)


def _errors(root: Path) -> tuple[set[tuple[str, str]], set[tuple[str, str]], list[Any]]:
    from passerelle.leaves import load_leaves

    out = load_leaves(root)
    errors = {(p.file, p.message) for p in out.problems if p.severity == "error"}
    skipped = {(s.kind, s.name) for s in out.skipped}
    return errors, skipped, out.problems


def check(root: Path, rel: str, new_text: str, kind: str, name: str) -> None:
    """Read every leaf file with ``rel`` changed, in a temporary copy; refuse a definition
    the loader rejects or skips, and one that breaks anything that worked before."""
    with tempfile.TemporaryDirectory(prefix="passerelle-glossary-") as tmp:
        copy = Path(tmp) / "project"
        copy.mkdir()
        _copy_definitions(root, copy)
        before, skipped_before, _ = _errors(copy)
        (copy / rel).parent.mkdir(parents=True, exist_ok=True)
        (copy / rel).write_text(new_text, encoding="utf-8")
        after, skipped_after, problems = _errors(copy)
    new_errors = after - before
    if new_errors:
        lines = [f"{p.location()}: {p.message}" for p in problems
                 if (p.file, p.message) in new_errors]
        raise DefinitionRefused("The project's loader refuses the definition: "
                                + "; ".join(lines[:5]),
                                "Correct the definition (the file and line are those it "
                                "would have once written) and propose it again.")
    label = {"metric": "metric", "trait": "trait"}[kind]
    newly = skipped_after - skipped_before
    if (label, name) in skipped_after or newly:
        names = ", ".join(f"{k} {n}" for k, n in sorted(newly or {(label, name)}))
        raise DefinitionRefused(f"With this definition the loader would leave out: {names}.",
                                "Check the names it refers to.")


def write_definition(root: Path, kind: str, name: str, text: str) -> str:
    """Validate, then write the definition into the project; returns the file written."""
    root = Path(root).resolve()
    data = parse_definition(kind, name, text)
    at = locate(root, kind, name)
    path = confine(root, at.file, what="glossary file", roots=(root,))
    current = path.read_text(encoding="utf-8") if path.exists() else ""
    new_text = splice(current, at.file, FOLDERS[kind], at.index, data)
    check(root, at.file, new_text, kind, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", encoding="utf-8", dir=path.parent, delete=False,
                                     prefix=f".{path.name}.", suffix=".tmp") as tmp:
        tmp.write(new_text)
    os.replace(tmp.name, path)
    return at.file


def preview(root: Path, kind: str, name: str, text: str) -> str:
    """Check a proposed definition without writing it; returns the file it would go to."""
    root = Path(root).resolve()
    data = parse_definition(kind, name, text)
    at = locate(root, kind, name)
    path = confine(root, at.file, what="glossary file", roots=(root,))
    current = path.read_text(encoding="utf-8") if path.exists() else ""
    check(root, at.file, splice(current, at.file, FOLDERS[kind], at.index, data), kind, name)
    return at.file
