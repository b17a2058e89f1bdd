"""Editing a project file the way a person would: new values written into the existing
text, its comments, key order and quoting kept wherever the value did not change.

The web app saves files that IT reviews in git (a segment from the builder); rewriting them
from scratch would drop the comments IT wrote and reorder keys, so every save would show as
a rewrite in review. ruamel.yaml's round-trip mode keeps what it can: a mapping is updated
key by key (removed keys go, new keys come last), a list of the same length item by item,
and anything else is replaced whole (its inner comments then go with it).
"""

from __future__ import annotations

import io
import itertools
from collections.abc import Mapping
from typing import Any


def edited(text: str, doc: Mapping[str, Any], implied: tuple[str, ...] = (),
           width: int = 100) -> str | None:
    """``text`` with its top-level mapping made equal to ``doc``; None when ``text`` is not
    a YAML mapping (the caller then writes the file afresh). Keys in ``implied`` that the
    file leaves out stay out (``name``, which the file's stem gives)."""
    from ruamel.yaml import YAML
    from ruamel.yaml.comments import CommentedMap
    from ruamel.yaml.error import YAMLError
    from ruamel.yaml.util import load_yaml_guess_indent

    try:
        _, indent, dash = load_yaml_guess_indent(text)  # the file's own indentation
        yaml = YAML(typ="rt")
        yaml.preserve_quotes = True
        yaml.width = width
        yaml.indent(mapping=_mapping_indent(text), sequence=indent or 4,
                    offset=2 if dash is None else dash)
        data = yaml.load(text)
    except YAMLError:
        return None
    if not isinstance(data, CommentedMap):
        return None
    _update(data, {k: v for k, v in doc.items() if k in data or k not in implied})
    out = io.StringIO()
    yaml.dump(data, out)
    return out.getvalue()


def _mapping_indent(text: str) -> int:
    """How far the file indents a mapping inside a mapping (2 when it never does)."""
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    for above, below in itertools.pairwise(lines):
        if above.rstrip().endswith(":") and not below.lstrip().startswith("-"):
            step = (len(below) - len(below.lstrip())) - (len(above) - len(above.lstrip()))
            if step > 0:
                return step
    return 2


def _same(old: Any, new: Any) -> bool:
    """Equal scalars of the same kind (``True`` is not ``1``, ``"1"`` is not ``1``)."""
    return isinstance(old, bool) == isinstance(new, bool) and \
        isinstance(old, str) == isinstance(new, str) and old == new


def _update(node: Any, new: Any) -> Any:
    """``node`` changed in place into ``new`` where their shapes agree, else ``new``."""
    from ruamel.yaml.comments import CommentedMap, CommentedSeq

    if isinstance(node, CommentedMap) and isinstance(new, Mapping):
        for key in [k for k in node if k not in new]:
            del node[key]
        for key, value in new.items():
            node[key] = _update(node[key], value) if key in node else value
        return node
    if isinstance(node, CommentedSeq) and isinstance(new, list | tuple) \
            and len(node) == len(new):
        for i, value in enumerate(new):
            node[i] = _update(node[i], value)
        return node
    if isinstance(node, CommentedMap | CommentedSeq) or isinstance(new, Mapping | list):
        return new
    return node if _same(node, new) else new
