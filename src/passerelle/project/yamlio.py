"""YAML reading that remembers where every value came from, so errors can name the line."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

Path_ = tuple[str | int, ...]
_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


@dataclass
class YamlDoc:
    """A parsed YAML file: its data plus the line of every key path (1-based)."""

    file: str
    data: Any
    lines: dict[Path_, int] = field(default_factory=dict)

    def _resolve(self, loc: Path_) -> tuple[Path_, int | None]:
        best: int | None = self.lines.get(())
        node, path = self.data, ()
        for part in loc:
            in_dict = isinstance(node, dict) and part in node
            in_list = isinstance(node, list) and isinstance(part, int) and part < len(node)
            if in_dict or in_list:
                node, path = node[part], (*path, part)
                best = self.lines.get(path, best)
        return path, best

    def line_of(self, loc: Path_) -> int | None:
        """Line of the deepest part of ``loc`` that exists in the file.

        ``loc`` is a pydantic error location; parts that are not keys of the data
        (discriminator tags like ``'csv'``) are skipped.
        """
        return self._resolve(loc)[1]

    def present(self, loc: Path_) -> Path_:
        """The parts of ``loc`` that are keys in the file (drops discriminator tags)."""
        return self._resolve(loc)[0]


class YamlSyntaxError(ValueError):
    def __init__(self, file: str, line: int | None, message: str) -> None:
        super().__init__(message)
        self.file, self.line, self.message = file, line, message


def _walk(node: yaml.Node, path: Path_, lines: dict[Path_, int]) -> None:
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = key_node.value
            lines[(*path, key)] = key_node.start_mark.line + 1
            _walk(value_node, (*path, key), lines)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _walk(item, (*path, i), lines)


def substitute_env(value: Any, missing: list[str]) -> Any:
    """Replace ``${VAR}`` and ``${VAR:-default}`` in strings; names of unset vars go to missing."""
    if isinstance(value, str):

        def repl(m: re.Match[str]) -> str:
            name, default = m.group(1), m.group(2)
            if name in os.environ:
                return os.environ[name]
            if default is not None:
                return default
            missing.append(name)
            return ""

        return _ENV.sub(repl, value)
    if isinstance(value, dict):
        return {k: substitute_env(v, missing) for k, v in value.items()}
    if isinstance(value, list):
        return [substitute_env(v, missing) for v in value]
    return value


# libyaml's parser when PyYAML was built with it (ten times faster), the same safe loader else
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def read_yaml(path: Path, display_name: str) -> YamlDoc:
    """Parse a YAML file; raises :class:`YamlSyntaxError` with the line on bad syntax."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise YamlSyntaxError(display_name, None, f"not UTF-8 text ({exc.reason})") from exc
    try:
        # one parse: the node tree gives the lines, the same tree gives the data
        loader = _Loader(text)
        try:
            node = loader.get_single_node()
            data = loader.construct_document(node) if node is not None else None
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        msg = " ".join(str(x) for x in (exc.context, exc.problem) if x)
        raise YamlSyntaxError(display_name, line, f"YAML syntax error: {msg}") from exc
    except RecursionError:  # PyYAML composes recursively: a few hundred nested levels
        raise YamlSyntaxError(display_name, None, "nested too deeply (hundreds of levels): "
                              "no project file needs that many") from None
    lines: dict[Path_, int] = {}
    if node is not None:
        _walk(node, (), lines)
    return YamlDoc(display_name, data, lines)
