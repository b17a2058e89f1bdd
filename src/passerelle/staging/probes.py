"""Questions staging asks of a source's raw rows before it builds its query: whether a
record may appear twice (the keep-the-latest window is needed) and which boolean columns
are checkboxes."""

from __future__ import annotations

import ibis
import ibis.expr.types as ir

from passerelle.engines.base import Engine
from passerelle.model import Entity, Kind
from passerelle.project.models import SourceConfig


def may_repeat_records(engine: Engine, raw: ir.Table, source: SourceConfig,
                        entity: Entity) -> bool:
    """False when no record key appears twice in the raw table, so the costly keep-the-latest
    window (it sorts every column of every row) can be skipped: the common case of
    append-only sources such as events. Exact only for identifier keys, which staging only
    trims; any other key kind (dates, numbers) is always deduplicated."""
    mappings = source.mappings()
    # a key column missing from the raw rows (e.g. a wrong delimiter) is reported by the
    # staging query's own checks, in the user's words: not decided here
    if any(entity.field(k).kind != Kind.CODE or k not in mappings or mappings[k].column is None
           or mappings[k].column not in raw.columns for k in entity.key):
        return True
    keys = [engine.strip(raw[mappings[k].column].cast("string")).nullif("")
            for k in entity.key]
    key = keys[0] if len(keys) == 1 else ibis.ifelse(
        ibis.or_(*[k.isnull() for k in keys]), ibis.null("string"),
        ibis.literal("\x1f").join(keys))
    # one pass: non-null keys and distinct keys (a hash aggregate over the key column only)
    counts = engine.to_arrow(raw.aggregate(rows=key.count(), distinct=key.nunique())
                             ).to_pylist()[0]
    return counts["rows"] != counts["distinct"]


def checkbox_fields(engine: Engine, raw: ir.Table, source: SourceConfig,
                    entity: Entity) -> frozenset[str]:
    """The boolean fields whose text column holds an "x" (any case, trimmed) in some row
    of the raw table ``raw``: read as checkboxes, their blanks mean no."""
    columns = {name: m.column for name, m in source.mappings().items()
               if name in entity.field_names and entity.field(name).kind == Kind.BOOLEAN
               and m.column is not None and m.column in raw.columns
               and raw[m.column].type().is_string()}
    if not columns:
        return frozenset()
    found = engine.to_arrow(raw.aggregate(**{
        f"c{i}": (engine.strip(raw[c]).lower() == "x").any()
        for i, c in enumerate(columns.values())
    })).to_pylist()[0]
    return frozenset(name for i, name in enumerate(columns) if found[f"c{i}"])
