"""Read ``segments/*.yml`` and check every segment with the file and line of each problem.

Pydantic checks shapes (unknown keys, empty ``all``/``any``, bad windows, a ``between``
without two bounds). This module checks what needs the rest of the project: fields of the
golden record and traits that exist (with a did-you-mean), literals of the right type,
references to segments that exist, and no cycle between segments.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import TypeAdapter, ValidationError

from passerelle.errors import Problems
from passerelle.project.segments_models import (
    AllCondition,
    AnyCondition,
    AudienceConfig,
    BoughtCondition,
    Condition,
    DidCondition,
    FieldCondition,
    InSegmentCondition,
    NotCondition,
    SegmentConfig,
    TraitCondition,
)
from passerelle.segments.kinds import PROFILE_KINDS, SegmentError, close_names, mismatch

Loc = tuple[str | int, ...]


@dataclass
class SegmentDefinitions:
    """The segments and audiences of a project, each with the file and line it came from."""

    segments: dict[str, SegmentConfig] = field(default_factory=dict)
    audiences: dict[str, AudienceConfig] = field(default_factory=dict)
    origin: dict[str, tuple[str, int | None]] = field(default_factory=dict)  # segment name


def walk(condition: object, loc: Loc = ("where",)) -> Iterator[tuple[object, Loc]]:
    """Every condition of a tree with its key path in the file (for line numbers)."""
    yield condition, loc
    if isinstance(condition, AllCondition):
        for i, c in enumerate(condition.all):
            yield from walk(c, (*loc, "all", i))
    elif isinstance(condition, AnyCondition):
        for i, c in enumerate(condition.any):
            yield from walk(c, (*loc, "any", i))
    elif isinstance(condition, NotCondition):
        yield from walk(condition.not_, (*loc, "not"))


def references(segment: SegmentConfig) -> list[str]:
    return [c.in_segment for c, _ in walk(segment.where) if isinstance(c, InSegmentCondition)]


def activity_conditions(name: str, segments: Mapping[str, SegmentConfig]
                        ) -> list[DidCondition | BoughtCondition]:
    """Every event and order condition of a segment and of the segments it references."""
    todo, seen, found = [name], set(), []
    while todo:
        current = todo.pop()
        if current in seen or current not in segments:
            continue
        seen.add(current)
        found.extend(c for c, _ in walk(segments[current].where)
                     if isinstance(c, (DidCondition, BoughtCondition)))
        todo.extend(references(segments[current]))
    return found


def check_segment(segment: SegmentConfig, profile_kinds: Mapping[str, str],
                  trait_kinds: Mapping[str, str] | None,
                  segment_names: set[str]) -> list[tuple[Loc, str, str | None]]:
    """Problems of one segment as (key path, message, hint). ``trait_kinds`` None: traits
    are not checked (their kind is then taken from the literal)."""
    found: list[tuple[Loc, str, str | None]] = []
    for cond, loc in walk(segment.where):
        if isinstance(cond, FieldCondition):
            kind = profile_kinds.get(cond.field)
            if kind is None:
                found.append(((*loc, "field"), f"'{cond.field}' is not a field of profiles",
                              close_names(cond.field, profile_kinds)))
                continue
            bad = mismatch(cond.op, cond.value, kind, f"field '{cond.field}'")
        elif isinstance(cond, TraitCondition):
            if trait_kinds is None:
                continue
            kind = trait_kinds.get(cond.trait)
            if kind is None:
                found.append(((*loc, "trait"), f"'{cond.trait}' is not a trait of this project",
                              close_names(cond.trait, trait_kinds)
                              or f"traits: {', '.join(sorted(trait_kinds)) or 'none'}"))
                continue
            bad = mismatch(cond.op, cond.value, kind, f"trait '{cond.trait}'")
        elif isinstance(cond, InSegmentCondition):
            if cond.in_segment not in segment_names:
                found.append(((*loc, "in_segment"), f"unknown segment '{cond.in_segment}'",
                              close_names(cond.in_segment, segment_names)))
            continue
        else:
            continue
        if bad:
            found.append(((*loc, "value" if cond.value is not None else "op"), *bad))
    return found


def find_cycle(name: str, segments: Mapping[str, SegmentConfig]) -> list[str] | None:
    """The first reference cycle reachable from ``name`` (``[a, b, a]``), or None."""

    def visit(current: str, path: list[str]) -> list[str] | None:
        if current in path:
            return [*path[path.index(current):], current]
        seg = segments.get(current)
        if seg is None:
            return None
        for ref in references(seg):
            cycle = visit(ref, [*path, current])
            if cycle:
                return cycle
        return None

    return visit(name, [])


def check_all(segments: Mapping[str, SegmentConfig], profile_kinds: Mapping[str, str],
              trait_kinds: Mapping[str, str] | None) -> None:
    """Compile-time check: raises :class:`SegmentError` listing the problems found."""
    messages = []
    for seg in segments.values():
        for _, message, hint in check_segment(seg, profile_kinds, trait_kinds, set(segments)):
            messages.append(f"segment '{seg.name}': {message}" + (f" ({hint})" if hint else ""))
        cycle = find_cycle(seg.name, segments)
        if cycle:
            messages.append(f"segment '{seg.name}': circular reference {' -> '.join(cycle)}")
    if messages:
        raise SegmentError("; ".join(dict.fromkeys(messages)),
                           "Fix the segment definition (see docs/segments.md).")


_CONDITION: TypeAdapter = TypeAdapter(Condition)


def _where_alone(data: object) -> object | None:
    """The condition of a file whose other keys failed, when it is valid on its own."""
    try:
        return _CONDITION.validate_python(data) if data is not None else None
    except ValidationError:
        return None  # its own problems are already reported with the file's


def read_segments(root: Path | str, problems: Problems,
                  trait_kinds: Mapping[str, str] | None = None) -> SegmentDefinitions:
    """Parse and check ``segments/*.yml``; problems go to ``problems`` with file and line.

    ``trait_kinds`` (from :func:`passerelle.segments.kinds.trait_kinds` over the project's
    traits) enables the trait checks; without it trait names are not checked.
    """
    from passerelle.project.load import parse_document, read_documents

    root = Path(root).resolve()
    defs = SegmentDefinitions()
    docs = {}
    unparsed: set[str] = set()  # named in a file that failed: not reported as unknown
    partial: list[SegmentConfig] = []  # the file failed, its condition parsed: checked too
    for doc in read_documents(root, "segments/*", problems,
                              expected="expected a mapping with name, description, owner, "
                                       "where"):
        doc.data.setdefault("name", Path(doc.file).stem)
        seg = parse_document(SegmentConfig, doc, problems)
        if seg is None:
            unparsed.add(str(doc.data["name"]))
            where = _where_alone(doc.data.get("where"))
            if where is not None:  # a missing owner must not hide the condition's problems
                docs[str(doc.data["name"])] = doc
                partial.append(SegmentConfig.model_construct(name=str(doc.data["name"]),
                                                             where=where))
            continue
        if seg.name in defs.segments:
            file, line = defs.origin[seg.name]
            problems.add(doc.file, f"segment name '{seg.name}' is used twice",
                         doc.line_of(("name",)), f"first defined in {file}:{line}")
            continue
        defs.segments[seg.name] = seg
        defs.origin[seg.name] = (doc.file, doc.line_of(("name",)))
        docs[seg.name] = doc
        for i, audience in enumerate(seg.audiences):
            if audience.name in defs.audiences:
                problems.add(doc.file, f"audience name '{audience.name}' is used twice",
                             doc.line_of(("audiences", i, "name")))
                continue
            defs.audiences[audience.name] = audience
    reported: set[frozenset[str]] = set()
    for seg in partial:
        doc = docs[seg.name]
        for loc, message, hint in check_segment(seg, PROFILE_KINDS, trait_kinds,
                                                set(defs.segments) | unparsed):
            problems.add(doc.file, message, doc.line_of(loc), hint)
    for name, seg in defs.segments.items():
        doc = docs[name]
        for loc, message, hint in check_segment(seg, PROFILE_KINDS, trait_kinds,
                                                set(defs.segments) | unparsed):
            problems.add(doc.file, message, doc.line_of(loc), hint)
        cycle = find_cycle(name, defs.segments)
        if cycle and frozenset(cycle) not in reported and cycle[0] == name:
            reported.add(frozenset(cycle))
            refs = [loc for c, loc in walk(seg.where) if isinstance(c, InSegmentCondition)
                    and c.in_segment == cycle[1]]
            problems.add(doc.file, f"circular segment reference: {' -> '.join(cycle)}",
                         doc.line_of((*refs[0], "in_segment")) if refs else None,
                         "a segment cannot contain itself, directly or through others")
    return defs
