"""What the segment builder computes and writes, through the segments package's own
compiler (count, sample, overlap) and loader: nothing here compiles a condition itself.

- :func:`preview`: the live count, a count per top-level group and after each one, a sample
  (masked per role by ``compiler.sample``), overlap with other segments, a breakdown;
- :func:`why`: which condition one person meets;
- :func:`save`: ``segments/NAME.yml`` checked by the project's loader, then written inside
  the project folder, never over another file without confirmation.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ibis
import ibis.expr.datatypes as dt

from passerelle.core import Project
from passerelle.errors import PasserelleError, Problem, Problems
from passerelle.project.paths import confine
from passerelle.project.segments_models import SegmentConfig
from passerelle.project.yaml_edit import edited
from passerelle.runlog import utcnow
from passerelle.segments import activity, compiler
from passerelle.segments.kinds import PROFILE_KINDS, SegmentError, trait_kinds
from passerelle.web.segment_form import (
    Builder,
    FormError,
    document,
    file_hash,
    file_text,
    group_condition,
    segment_of,
    where_of,
)

DRAFT = "web_builder_draft"
# Columns a breakdown never groups by: they name or reach a person.
PERSONAL = frozenset({"person_id", "email", "phone", "first_name", "last_name", "address",
                      "postcode", "birth_date"})
MAX_BREAKDOWN = 12
MAX_CHOICES = 200


@dataclass
class Choices:
    """What the builder's selects offer, read from the project and its warehouse."""

    fields: dict[str, str] = field(default_factory=dict)  # name -> kind
    traits: dict[str, str] = field(default_factory=dict)
    events: list[str] = field(default_factory=list)
    categories: list[str] = field(default_factory=list)
    segments: list[str] = field(default_factory=list)

    @property
    def breakdowns(self) -> list[str]:
        return [f for f, k in self.fields.items() if f not in PERSONAL and k != "date"
                and not f.endswith("__source") and not f.endswith("_at")] + \
               [f"trait:{t}" for t in self.traits]


def saved_segments(project: Project) -> dict[str, SegmentConfig]:
    defs = project.definition.segments
    return dict(defs.segments) if defs is not None else {}


def kinds_of_traits(project: Project) -> dict[str, str]:
    traits = project.definition.traits
    return trait_kinds(traits) if traits is not None else {}


def choices(project: Project, activity_values: bool = True) -> Choices:
    """What the selects offer; ``activity_values``: the event names and categories too
    (two queries the breakdown does not need)."""
    engine = project.engine
    out = Choices(fields=dict(PROFILE_KINDS), traits=kinds_of_traits(project),
                  segments=sorted(saved_segments(project)))
    if engine.exists(compiler.PROFILES):
        from passerelle.segments.kinds import schema_kinds

        out.fields = {k: v for k, v in schema_kinds(
            engine.table(compiler.PROFILES).schema().items()).items() if k != "person_id"}
    if not activity_values:
        return out
    for table, column, target in ((activity.EVENTS, "event", out.events),
                                  (activity.PURCHASES, "category", out.categories)):
        if engine.exists(table):
            t = engine.table(table)
            expr = t.select(column).distinct().filter(t[column].notnull()).order_by(column)
            target += [r for r in engine.to_arrow(expr.limit(MAX_CHOICES)).column(0)
                       .to_pylist()]
    return out


def draft(project: Project, b: Builder) -> tuple[SegmentConfig, list[SegmentConfig]]:
    """The builder as a segment, and one segment per top-level group (for their counts);
    raises FormError or SegmentError."""
    ch_fields = dict(PROFILE_KINDS)
    t_kinds = kinds_of_traits(project)
    where = where_of(b, ch_fields, t_kinds)
    whole = segment_of(DRAFT, where)
    parts = [segment_of(f"{DRAFT}_{i}", group_condition(g, ch_fields, t_kinds))
             for i, g in enumerate(b.groups)]
    return whole, parts


def _others(project: Project, b: Builder) -> dict[str, SegmentConfig]:
    """Saved segments the draft may reference (the one being edited left out)."""
    return {n: s for n, s in saved_segments(project).items() if n not in (b.name, b.original)}


@dataclass
class Preview:
    count: int | None = None
    total: int | None = None
    groups: list[dict[str, Any]] = field(default_factory=list)
    sample: list[dict[str, Any]] = field(default_factory=list)
    overlap: dict[str, Any] | None = None
    breakdown: list[dict[str, Any]] = field(default_factory=list)
    breakdown_by: str = ""
    error: str | None = None  # an English message id (translated by the page)
    error_values: dict[str, Any] = field(default_factory=dict)
    hint: str | None = None
    blank: bool = False  # no condition filled in yet: everyone is counted


def preview(project: Project, b: Builder, role: str, overlap_with: list[str],
            breakdown_by: str, sample_size: int = 10) -> Preview:
    """The live figures of the builder (one error message instead of figures when the form
    does not make a segment yet)."""
    out = Preview(breakdown_by=breakdown_by)
    engine, now, kinds = project.engine, utcnow(), kinds_of_traits(project) or None
    if _blank(b):
        out.blank = True
        if engine.exists(compiler.PROFILES):
            out.count = out.total = int(engine.to_arrow(
                engine.table(compiler.PROFILES).count()).as_py())
        return out
    try:
        whole, parts = draft(project, b)
    except FormError as exc:
        out.error, out.error_values = exc.message, exc.values
        return out
    others = _others(project, b)
    try:
        # one scan of profiles for every group: the regions of the groups' overlap give
        # each group's count alone and the count with the groups above (AND or OR)
        regions = compiler.overlap(engine, parts, others, now, kinds)["regions"]
        names = [part.name for part in parts]
        p = engine.table(compiler.PROFILES)
        out.total = int(engine.to_arrow(p.count()).as_py())
        for i, name in enumerate(names):
            above = set(names[:i + 1])
            alone = sum(r["people"] for r in regions if name in r["in"])
            so_far = sum(r["people"] for r in regions
                         if (above <= set(r["in"]) if b.top == "all" else above & set(r["in"])))
            out.groups.append({"index": i, "alone": alone, "so_far": so_far})
        out.count = out.groups[-1]["so_far"]
        out.sample = compiler.sample(engine, whole, others, now, n=sample_size, role=role,
                                     trait_kinds=kinds)
        picked = [n for n in overlap_with if n in others][:compiler.MAX_OVERLAP - 1]
        if picked:
            out.overlap = compiler.overlap(engine, [whole, *(others[n] for n in picked)],
                                           others, now, kinds)
        if breakdown_by:
            out.breakdown = breakdown(project, whole, others, breakdown_by)
    except (SegmentError, PasserelleError) as exc:
        out.error, out.hint = exc.reason, exc.instruction
    return out


def _blank(b: Builder) -> bool:
    """A new builder: one row, nothing chosen in it yet."""
    if len(b.groups) != 1 or len(b.groups[0].rows) != 1:
        return False
    r = b.groups[0].rows[0]
    return r.kind in ("field", "trait", "segment") and not r.name


def breakdown(project: Project, seg: SegmentConfig, others: Mapping[str, SegmentConfig],
              by: str) -> list[dict[str, Any]]:
    """Members counted by a profile field or a trait (``trait:NAME``), largest first."""
    engine, now = project.engine, utcnow()
    members = compiler.compile_segment(engine, seg, others, now,
                                       kinds_of_traits(project) or None)
    ch = choices(project, activity_values=False)
    if by not in ch.breakdowns:
        raise PasserelleError(f"The members cannot be broken down by '{by}'.",
                              "Choose a field or a trait of the list.")
    if by.startswith("trait:"):
        name = by.removeprefix("trait:")
        kind = ch.traits[name]
        t = engine.table(compiler.TRAITS)
        column = compiler.VALUE_COLUMN.get(kind, "value_text")
        values = t.filter(t.trait == ibis.literal(name, type=dt.string)).select(
            "person_id", value=t[column].cast(dt.string))
        joined = members.left_join(values, "person_id")
        grouped = joined.group_by(joined.value).aggregate(people=joined.count())
    else:
        p = engine.table(compiler.PROFILES)
        joined = p.semi_join(members, "person_id")
        grouped = joined.group_by(value=joined[by].cast(dt.string)).aggregate(
            people=joined.count())
    rows = engine.to_arrow(grouped.order_by([ibis.desc("people"), "value"])
                           .limit(MAX_BREAKDOWN)).to_pylist()
    return rows


def why(project: Project, b: Builder, person_id: str) -> dict[str, Any]:
    """For one person: in or out of the draft, and which row and group they meet."""
    from passerelle.web.segment_form import row_condition

    engine, now, kinds = project.engine, utcnow(), kinds_of_traits(project)
    others = _others(project, b)
    p = engine.table(compiler.PROFILES)
    found = engine.to_arrow(p.filter(p.person_id == ibis.literal(person_id, type=dt.string))
                            .count()).as_py()
    if not found:
        raise PasserelleError(f"There is no customer with the id '{person_id}'.",
                              "Copy the id from a customer's page or from the sample.")

    def meets(where: dict[str, Any], label: str) -> bool:
        seg = segment_of(f"{DRAFT}_{label}", where)
        members = compiler.compile_segment(engine, seg, others, now, kinds or None)
        hit = members.filter(members.person_id == ibis.literal(person_id, type=dt.string))
        return bool(engine.to_arrow(hit.count()).as_py())

    groups = []
    for gi, g in enumerate(b.groups):
        rows = [{"index": ri, "meets": meets(row_condition(r, PROFILE_KINDS, kinds),
                                             f"r{gi}_{ri}")} for ri, r in enumerate(g.rows)]
        groups.append({"index": gi, "meets": meets(group_condition(g, PROFILE_KINDS, kinds),
                                                   f"g{gi}"), "rows": rows})
    return {"person_id": person_id, "groups": groups,
            "in": meets(where_of(b, PROFILE_KINDS, kinds), "whole")}


# ------------------------------------------------------------------------------- saving
@dataclass
class SaveOutcome:
    saved: bool
    path: str = ""
    problems: list[Problem] = field(default_factory=list)
    needs_confirmation: str | None = None  # why writing needs "overwrite" ticked


def segment_file(project: Project, name: str) -> Path:
    return confine(project.root, Path("segments") / f"{name}.yml", what="segment file")


def current_text(project: Project, name: str) -> str | None:
    path = segment_file(project, name)
    return path.read_text("utf-8") if path.is_file() else None


def check_with_loader(project: Project, name: str, text: str) -> list[Problem]:
    """Problems the project's loader finds in ``text`` as ``segments/NAME.yml`` beside the
    project's other segment, trait and destination files (read in a scratch folder)."""
    from passerelle.leaves import load_leaves
    from passerelle.project.consent_models import read_consent

    root = project.root
    with tempfile.TemporaryDirectory(prefix="passerelle-segment-") as tmp:
        scratch = Path(tmp)
        for folder in ("segments", "traits", "destinations"):
            if (root / folder).is_dir():
                shutil.copytree(root / folder, scratch / folder,
                                ignore=shutil.ignore_patterns(".*"))
        for single in ("consent.yml", "passerelle.yml"):
            if (root / single).is_file():
                shutil.copy(root / single, scratch / single)
        (scratch / "segments").mkdir(exist_ok=True)
        (scratch / "segments" / f"{name}.yml").write_text(text, "utf-8")
        leaves = load_leaves(scratch)
        problems = Problems()
        read_consent(scratch, project.definition.sources, problems, leaves)
    mine = f"segments/{name}.yml"
    found = [p for p in [*leaves.problems, *problems.items]
             if p.file == mine and p.severity == "error"]
    found += [Problem(s.where.split(":")[0] if s.where else mine, s.reason)
              for s in leaves.skipped if s.name == name and not any(
                  p.message == s.reason for p in found)]
    return found


def save(project: Project, b: Builder, author: str, confirm: bool,
         audiences: list[dict[str, Any]] | None = None) -> SaveOutcome:
    """Check ``b`` as a file with the loader, then write ``segments/NAME.yml``.

    Writing needs ``confirm`` when the file exists and is not the one the builder opened
    (another segment of that name, or the same file changed since it was opened)."""
    from passerelle.project.models import _check_name

    try:
        _check_name(b.name)
    except ValueError as exc:
        raise FormError("The name must start with a lower-case letter and use only a-z, 0-9 "
                        "and _ (63 characters at most).") from exc
    if not b.description or not b.owner:
        raise FormError("Write who is in the segment (description) and who answers for it "
                        "(owner).")
    defs = project.definition.segments
    if defs is not None and b.name in defs.origin:
        file, _ = defs.origin[b.name]
        if Path(file).name != f"{b.name}.yml":
            raise FormError("The segment “%(name)s” is defined in %(file)s: edit it there, or "
                            "choose another name.", name=b.name, file=file)
    where = where_of(b, PROFILE_KINDS, kinds_of_traits(project))
    existing = saved_segments(project).get(b.original or b.name)
    if audiences is None:
        audiences = [a.model_dump(exclude={"segment"}, exclude_none=True)
                     for a in existing.audiences] if existing and b.original == b.name else []
    path = segment_file(project, b.name)
    on_disk = path.read_text("utf-8") if path.is_file() else None
    text = file_text(b, where, author, audiences)
    if on_disk is not None and b.original == b.name:
        # the builder edits this very file: its comments and key order stay
        text = edited(on_disk, document(b, where, audiences), implied=("name",)) or text
    problems = check_with_loader(project, b.name, text)
    if problems:
        return SaveOutcome(False, problems=problems)
    if on_disk is not None and not confirm:
        if b.original != b.name:
            return SaveOutcome(False, needs_confirmation="another")
        if b.base_hash and file_hash(on_disk) != b.base_hash:
            return SaveOutcome(False, needs_confirmation="changed")
    path.parent.mkdir(exist_ok=True)
    scratch = path.with_name(f".{path.name}.tmp")
    scratch.write_text(text, "utf-8")
    scratch.replace(path)  # a reader never sees half a file
    return SaveOutcome(True, path=f"segments/{b.name}.yml")


def reload_definitions(*projects: Project) -> None:
    """The server's projects read the project files again (a saved segment is then known to
    the pages, the API and the jobs)."""
    from passerelle.definition import read_project

    if not projects:
        return
    definition, _ = read_project(projects[0].root)
    if definition is None:
        return
    for p in projects:
        p.definition = definition


def audience_entry(name: str, channel: str, purpose: str | None, holdout: float,
                   ) -> dict[str, Any]:
    entry: dict[str, Any] = {"name": name, "channel": channel, "holdout_percent": holdout}
    if purpose:
        entry["purpose"] = purpose
    return entry
