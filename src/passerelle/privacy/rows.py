"""Removing a source's rows for good: from the staged table, and from the raw table they
were loaded into (every version of each record), so that no later staging brings them back.

Used by erasure and the suppression list (rows carrying an erased person's identifiers) and
by retention (rows older than the project keeps them).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import ibis.expr.types as ir
import sqlglot as sg
import sqlglot.expressions as sge

from passerelle.engines.base import Engine
from passerelle.model import ENTITIES, Kind
from passerelle.project.models import SourceConfig

_MATCHED = "_privacy_matched"


@dataclass
class Removed:
    source: str
    staged_rows: int = 0
    raw_rows: int = 0
    record_ids: list[str] = field(default_factory=list)  # of the staged rows matched


def remove_rows(engine: Engine, source: SourceConfig,
                condition: Callable[[ir.Table], ir.BooleanValue | None],
                dry_run: bool = False) -> Removed:
    """Delete the rows of ``stg_<source>`` where ``condition(stg)`` holds, and their raw
    rows; ``dry_run`` only counts. A None condition matches nothing."""
    out = Removed(source.name)
    stg_name, raw_name = f"stg_{source.name}", f"raw_{source.name}"
    if not engine.exists(stg_name):
        return out
    stg = engine.table(stg_name)
    where = condition(stg)
    if where is None:
        return out
    engine.replace_table(_MATCHED, stg.filter(where).select("_record_id", "_load_id",
                                                            "_source_row"))
    try:
        out.record_ids = engine.to_arrow(engine.table(_MATCHED)._record_id).to_pylist()
        out.staged_rows = len(out.record_ids)
        if not out.record_ids:
            return out
        raw_where = _raw_condition(raw_name, source) if engine.exists(raw_name) else None
        if raw_where is not None:
            count = sg.select(sge.Count(this=sge.Star())).from_(
                sg.table(raw_name, quoted=True)).where(raw_where)
            out.raw_rows = int(engine.execute(count)[0][0])
        if dry_run:
            return out
        with engine.transaction():
            if raw_where is not None:
                engine.execute(sge.delete(sg.table(raw_name, quoted=True), where=raw_where))
            engine.execute(sge.delete(sg.table(stg_name, quoted=True), where=sg.column(
                "_record_id", quoted=True).isin(query=sg.select("_record_id").from_(
                    sg.table(_MATCHED, quoted=True)))))
    finally:
        engine.drop(_MATCHED)
    return out


def _raw_condition(raw_name: str, source: SourceConfig) -> sge.Expression:
    """Raw rows of the matched records: the staged version (by its lineage) and, for
    identifier keys, every older version of the record (same trimmed key)."""
    def col(name: str, table: str) -> sge.Column:
        return sg.column(name, table=table, quoted=True)

    same_row = sge.Exists(this=sg.select("1").from_(sg.table(_MATCHED, quoted=True)).where(
        sge.and_(col("_load_id", _MATCHED).eq(col("_load_id", raw_name)),
                 col("_source_row", _MATCHED).eq(col("_source_row", raw_name)))))
    entity = ENTITIES[source.entity]
    mappings = source.mappings()
    columns = [mappings[k].column if k in mappings else None for k in entity.key]
    if any(c is None for c in columns) or any(
            entity.field(k).kind != Kind.CODE for k in entity.key):
        return same_row
    # staging only trims identifier keys, and joins several with "|"
    parts = [sge.Trim(this=sge.Cast(this=col(c, raw_name), to=sge.DataType.build("text")))
             for c in columns if c is not None]
    key = parts[0] if len(parts) == 1 else sge.Concat(expressions=[
        p for i, part in enumerate(parts) for p in ((sge.convert("|"), part) if i else (part,))])
    return sge.or_(same_row, key.isin(query=sg.select("_record_id").from_(
        sg.table(_MATCHED, quoted=True))))
