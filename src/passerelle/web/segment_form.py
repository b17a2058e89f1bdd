"""The segment builder's form: rows of conditions in groups, read from the posted fields,
turned into the segment language (``segments/*.yml``) and back.

A builder is a list of top-level groups joined by AND (or OR); a group is one or more rows
joined by AND (or OR), and may be negated; a row is one condition (a profile field, a trait,
an event with a count, a window and a property, a purchase, another segment), and may be
negated too, so "did A but not B" is two rows, the second one negated. Two levels cover what
a form can show; a file nested deeper is edited in git.

Field names of the form: ``top``, ``g0_match``, ``g0_not``, ``g0_r1_kind``,
``g0_r1_name``... Values are typed by the kind of the field or trait they compare with.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from typing import Any, Literal

import yaml
from pydantic import BaseModel, Field, ValidationError

from passerelle.project.segments_models import (
    LIST_OPS,
    NO_VALUE_OPS,
    AllCondition,
    AnyCondition,
    BoughtCondition,
    DidCondition,
    FieldCondition,
    InSegmentCondition,
    NotCondition,
    SegmentConfig,
    TraitCondition,
)

MAX_GROUPS = 8
MAX_ROWS = 6
MAX_TEXT = 200
KINDS = ("field", "trait", "did", "bought", "segment")
OPS = ("=", "!=", "<", "<=", ">", ">=", "in", "not_in", "between", "contains", "starts_with",
       "is_null", "not_null")
Kind = Literal["field", "trait", "did", "bought", "segment"]
Match = Literal["all", "any"]
_ROW = re.compile(r"^g(\d)_r(\d)_(\w+)$")
_GROUP = re.compile(r"^g(\d)_(match|not)$")


class FormError(ValueError):
    """A value of the form that cannot become a condition (shown beside the builder):
    ``message`` is the English message id the page translates, filled with ``values``."""

    def __init__(self, message: str, **values: object) -> None:
        super().__init__(message % values if values else message)
        self.message, self.values = message, values


# The messages of FormError, for the French catalogue's test.
MESSAGES = (
    "“%(text)s” is not a whole number.", "“%(text)s” is not a number.",
    "“%(text)s” is not yes or no.", "Write the values separated by commas.",
    "“between” needs a low and a high value.", "A condition needs a value.",
    "Choose what the condition is about.", "Choose an event.", "%(where)s: %(problem)s",
    "The name must start with a lower-case letter and use only a-z, 0-9 and _ (63 "
    "characters at most).",
    "Write who is in the segment (description) and who answers for it (owner).",
    "The segment “%(name)s” is defined in %(file)s: edit it there, or choose another name.",
)


class Row(BaseModel):
    kind: Kind = "field"
    negate: bool = False
    name: str = ""  # field, trait or segment name
    op: str = "="
    value: str = ""
    value2: str = ""  # the upper bound of `between`
    event: str = ""
    at_least: int = Field(1, ge=1, le=1_000_000)
    days: int | None = Field(None, ge=1, le=36600)
    prop: str = ""
    propval: str = ""
    category: str = ""


class Group(BaseModel):
    match: Match = "all"
    negate: bool = False
    rows: list[Row] = Field(default_factory=lambda: [Row()], min_length=1, max_length=MAX_ROWS)


class Builder(BaseModel):
    name: str = ""
    description: str = ""
    owner: str = ""
    refresh_every: str = "1d"
    top: Match = "all"
    groups: list[Group] = Field(default_factory=lambda: [Group()], min_length=1,
                                max_length=MAX_GROUPS)
    original: str = ""  # the segment being edited, if any
    base_hash: str = ""  # hash of its file when the builder opened it
    overlap: list[str] = Field(default_factory=list, max_length=7)  # segments to compare
    breakdown: str = ""  # a field or ``trait:NAME`` to count the members by


def _int(text: str, default: int | None) -> int | None:
    text = text.strip()
    if not text:
        return default
    try:
        return int(text)
    except ValueError:
        raise FormError("“%(text)s” is not a whole number.", text=text[:20]) from None


def parse_form(fields: Mapping[str, str]) -> Builder:
    """The builder described by a posted form (unknown fields ignored, every text cut);
    raises FormError for a count or a window out of bounds."""
    try:
        return _parse(fields)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise FormError("%(where)s: %(problem)s", problem=first["msg"],
                        where=".".join(str(p) for p in first["loc"])) from None


def _parse(fields: Mapping[str, str]) -> Builder:
    groups: dict[int, dict[str, Any]] = {}
    for key, raw in fields.items():
        value = raw[:MAX_TEXT]
        if m := _GROUP.match(key):
            groups.setdefault(int(m.group(1)), {"rows": {}})[m.group(2)] = value
        elif m := _ROW.match(key):
            g = groups.setdefault(int(m.group(1)), {"rows": {}})
            g["rows"].setdefault(int(m.group(2)), {})[m.group(3)] = value
    out = []
    for gi in sorted(groups)[:MAX_GROUPS]:
        g = groups[gi]
        rows = []
        for ri in sorted(g["rows"])[:MAX_ROWS]:
            r = g["rows"][ri]
            kind = r.get("kind", "field")
            rows.append(Row(
                kind=kind if kind in KINDS else "field", negate=r.get("not") == "1",
                name=r.get("name", "").strip(), op=r.get("op", "=") if r.get("op") in OPS
                else "=", value=r.get("value", ""), value2=r.get("value2", ""),
                event=r.get("event", "").strip(), at_least=_int(r.get("at_least", ""), 1) or 1,
                days=_int(r.get("days", ""), None), prop=r.get("prop", "").strip(),
                propval=r.get("propval", ""), category=r.get("category", "").strip()))
        out.append(Group(match="any" if g.get("match") == "any" else "all",
                         negate=g.get("not") == "1", rows=rows or [Row()]))
    return Builder(
        name=fields.get("name", "").strip()[:63], description=fields.get(
            "description", "").strip()[:MAX_TEXT], owner=fields.get("owner", "").strip()[:100],
        refresh_every=fields.get("refresh_every", "1d").strip()[:10] or "1d",
        top="any" if fields.get("top") == "any" else "all", groups=out or [Group()],
        original=fields.get("original", "")[:63], base_hash=fields.get("base_hash", "")[:64],
        overlap=[v[:63] for k, v in sorted(fields.items()) if k.startswith("overlap_")][:7],
        breakdown=fields.get("breakdown", "")[:70])


def apply_action(b: Builder, action: str) -> Builder:
    """``add_group``, ``add_row:G``, ``del_row:G:R``, ``del_group:G``: the form changed."""
    parts = action.split(":")
    try:
        idx = [int(p) for p in parts[1:]]
    except ValueError:
        return b
    if parts[0] == "add_group" and len(b.groups) < MAX_GROUPS:
        b.groups.append(Group())
    elif parts[0] == "add_row" and idx and idx[0] < len(b.groups) \
            and len(b.groups[idx[0]].rows) < MAX_ROWS:
        b.groups[idx[0]].rows.append(Row())
    elif parts[0] == "del_group" and idx and idx[0] < len(b.groups) and len(b.groups) > 1:
        del b.groups[idx[0]]
    elif parts[0] == "del_row" and len(idx) == 2 and idx[0] < len(b.groups):
        rows = b.groups[idx[0]].rows
        if idx[1] < len(rows):
            del rows[idx[1]]
        if not rows:
            del b.groups[idx[0]]
        if not b.groups:
            b.groups.append(Group())
    return b


# ------------------------------------------------------------------------- to the language
def _typed(text: str, kind: str | None) -> Any:
    text = text.strip()
    if kind == "number":
        try:
            number = float(text.replace(",", ".").replace("\u202f", "").replace(" ", ""))
        except ValueError:
            raise FormError("“%(text)s” is not a number.", text=text) from None
        return int(number) if number.is_integer() else number
    if kind == "boolean":
        low = text.lower()
        if low in ("true", "yes", "oui", "1", "vrai"):
            return True
        if low in ("false", "no", "non", "0", "faux"):
            return False
        raise FormError("“%(text)s” is not yes or no.", text=text)
    return text


def _comparison(r: Row, kind: str | None) -> dict[str, Any]:
    if r.op in NO_VALUE_OPS:
        return {"op": r.op}
    if r.op in LIST_OPS:
        values = [_typed(v, kind) for v in r.value.split(",") if v.strip()]
        if not values:
            raise FormError("Write the values separated by commas.")
        return {"op": r.op, "value": values}
    if r.op == "between":
        if not r.value.strip() or not r.value2.strip():
            raise FormError("“between” needs a low and a high value.")
        return {"op": r.op, "value": [_typed(r.value, kind), _typed(r.value2, kind)]}
    if not r.value.strip():
        raise FormError("A condition needs a value.")
    return {"op": r.op, "value": _typed(r.value, kind)}


def row_condition(r: Row, kinds: Mapping[str, str], trait_kinds: Mapping[str, str]
                  ) -> dict[str, Any]:
    """One row in the segment language (a plain mapping, as the file writes it)."""
    if r.kind in ("field", "trait", "segment") and not r.name:
        raise FormError("Choose what the condition is about.")
    if r.kind == "field":
        cond: dict[str, Any] = {"field": r.name, **_comparison(r, kinds.get(r.name))}
    elif r.kind == "trait":
        cond = {"trait": r.name, **_comparison(r, trait_kinds.get(r.name))}
    elif r.kind == "did":
        if not r.event:
            raise FormError("Choose an event.")
        spec: dict[str, Any] = {"event": r.event}
        if r.at_least > 1:
            spec["at_least"] = r.at_least
        if r.days:
            spec["in_last_days"] = r.days
        if r.prop:
            spec["properties"] = {r.prop: _typed(r.propval, None)}
        cond = {"did": spec}
    elif r.kind == "bought":
        spec = {}
        if r.category:
            spec["category"] = r.category
        if r.at_least > 1:
            spec["at_least"] = r.at_least
        if r.days:
            spec["in_last_days"] = r.days
        cond = {"bought": spec}
    else:
        cond = {"in_segment": r.name}
    return {"not": cond} if r.negate else cond


def group_condition(g: Group, kinds: Mapping[str, str], trait_kinds: Mapping[str, str]
                    ) -> dict[str, Any]:
    conds = [row_condition(r, kinds, trait_kinds) for r in g.rows]
    cond = conds[0] if len(conds) == 1 else {g.match: conds}
    return {"not": cond} if g.negate else cond


def where_of(b: Builder, kinds: Mapping[str, str], trait_kinds: Mapping[str, str]
             ) -> dict[str, Any]:
    conds = [group_condition(g, kinds, trait_kinds) for g in b.groups]
    return conds[0] if len(conds) == 1 else {b.top: conds}


def segment_of(name: str, where: dict[str, Any], description: str = "draft",
               owner: str = "web", refresh_every: str = "1d",
               audiences: list[dict[str, Any]] | None = None) -> SegmentConfig:
    """A segment from its parts, checked by the language's own models."""
    try:
        return SegmentConfig.model_validate({
            "name": name, "description": description or "draft", "owner": owner or "web",
            "where": where, "refresh_every": refresh_every, "audiences": audiences or []})
    except ValidationError as exc:
        first = exc.errors()[0]
        where_ = ".".join(str(p) for p in first["loc"])
        raise FormError("%(where)s: %(problem)s", where=where_, problem=first["msg"]) from None


def document(b: Builder, where: dict[str, Any],
             audiences: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The content of ``segments/NAME.yml``."""
    doc: dict[str, Any] = {"name": b.name, "description": b.description, "owner": b.owner,
                           "refresh_every": b.refresh_every, "where": where}
    if audiences:
        doc["audiences"] = audiences
    return doc


def file_text(b: Builder, where: dict[str, Any], author: str,
              audiences: list[dict[str, Any]] | None = None) -> str:
    """``segments/NAME.yml`` as IT reviews it in git, written afresh."""
    doc = document(b, where, audiences)
    head = (f"# Saved from the web segment builder by {author}. Reference: "
            "docs/segments.md.\n")
    return head + yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, width=100)


def file_hash(text: str | None) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:32] if text else ""


# ------------------------------------------------------------------------ from the language
def _row_of(cond: object) -> Row | None:
    negate = False
    if isinstance(cond, NotCondition):
        negate, cond = True, cond.not_
    if isinstance(cond, FieldCondition | TraitCondition):
        value, value2 = cond.value, ""
        if isinstance(value, list) and cond.op == "between":
            value, value2 = value[0], value[1]
        text = ", ".join(map(_text, value)) if isinstance(value, list) else _text(value)
        return Row(kind="field" if isinstance(cond, FieldCondition) else "trait",
                   negate=negate,
                   name=cond.field if isinstance(cond, FieldCondition) else cond.trait,
                   op=cond.op, value=text, value2=_text(value2))
    if isinstance(cond, DidCondition):
        s = cond.did
        prop, propval = next(iter(s.properties.items()), ("", ""))
        if len(s.properties) > 1:
            return None
        return Row(kind="did", negate=negate, event=s.event, at_least=s.at_least,
                   days=s.in_last_days, prop=prop, propval=_text(propval))
    if isinstance(cond, BoughtCondition):
        s = cond.bought
        return Row(kind="bought", negate=negate, category=s.category or "",
                   at_least=s.at_least, days=s.in_last_days)
    if isinstance(cond, InSegmentCondition):
        return Row(kind="segment", negate=negate, name=cond.in_segment)
    return None


def _text(v: object) -> str:
    if v is None or v == "":
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def _group_of(cond: object) -> Group | None:
    negate = False
    if isinstance(cond, NotCondition) and isinstance(cond.not_, AllCondition | AnyCondition):
        negate, cond = True, cond.not_
    if isinstance(cond, AllCondition | AnyCondition):
        items = cond.all if isinstance(cond, AllCondition) else cond.any
        rows = [_row_of(c) for c in items]
        if any(r is None for r in rows) or len(rows) > MAX_ROWS:
            return None
        return Group(match="all" if isinstance(cond, AllCondition) else "any",
                     negate=negate, rows=rows)  # type: ignore[arg-type]
    row = _row_of(cond)
    return Group(rows=[row]) if row is not None else None


def builder_of(seg: SegmentConfig, text: str | None) -> Builder | None:
    """The builder that edits ``seg``; None when its conditions nest deeper than a form."""
    where = seg.where
    tops = None
    top: Match = "all"
    if isinstance(where, AllCondition | AnyCondition):
        tops = where.all if isinstance(where, AllCondition) else where.any
        top = "all" if isinstance(where, AllCondition) else "any"
        groups = [_group_of(c) for c in tops]
        if any(g is None for g in groups) or len(groups) > MAX_GROUPS:
            group = _group_of(where)
            groups = [group] if group else [None]
    else:
        groups = [_group_of(where)]
    if any(g is None for g in groups):
        return None
    return Builder(name=seg.name, description=seg.description, owner=seg.owner,
                   refresh_every=seg.refresh_every, top=top,
                   groups=groups,  # type: ignore[arg-type]
                   original=seg.name, base_hash=file_hash(text))
