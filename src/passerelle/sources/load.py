"""Load one source into its raw table, incrementally and idempotently.

A *load unit* is one file (identified by its path, versioned by its SHA-256) or one database
table. Each unit is appended and recorded in ``_passerelle_loads`` inside one transaction;
a unit already recorded with the same content is skipped, so running twice loads nothing
the second time. See ``bookkeeping`` for the crash-recovery rule.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import ibis
import numpy as np
import pyarrow as pa
import sqlglot as sg
import sqlglot.expressions as sge

from passerelle.engines.base import Engine
from passerelle.errors import ConnectorError, PasserelleError
from passerelle.project.models import FILE_CONNECTORS, CsvConnector, SourceConfig
from passerelle.reporter import Reporter
from passerelle.sources import bookkeeping as books
from passerelle.sources import csvdialect, databases, files
from passerelle.sources.columns import source_columns  # noqa: F401  (re-exported)
from passerelle.sources.stream import LineageStream


@dataclass
class LoadResult:
    """What ``load_source`` did. ``units_loaded`` includes the replaced units."""

    source: str
    raw_table: str
    units_loaded: int = 0
    units_skipped: int = 0
    units_replaced: int = 0
    rows_loaded: int = 0
    rows_rejected: int = 0
    empty_units: int = 0
    csv_dialect: dict | None = None
    messages: list[str] = field(default_factory=list)


def raw_table_name(source: SourceConfig) -> str:
    return f"raw_{source.name}"


def _prepare_raw(engine: Engine, raw: str, schema: pa.Schema) -> tuple[list[str], list[str]]:
    """Create the raw table or add the columns this unit brings; report both differences."""
    wanted = ibis.Schema.from_pyarrow(schema)
    if not engine.exists(raw):
        engine.create_empty(raw, wanted)
        return [], []
    added = engine.add_missing_columns(raw, wanted)
    missing = [c for c in engine.table(raw).columns if c not in schema.names]
    return added, missing


def _append(engine: Engine, raw: str, stream: LineageStream, unit: str,
            result: LoadResult) -> int:
    added, missing = _prepare_raw(engine, raw, stream.schema)
    if added:
        result.messages.append(f"{unit} brings new column(s) {', '.join(added)}: added.")
    if missing:
        result.messages.append(
            f"{unit} lacks column(s) {', '.join(missing)} that earlier loads had: NULL there."
        )
    try:
        return engine.append_arrow(raw, stream.reader())
    except Exception as exc:
        if isinstance(stream.error, ConnectorError):
            raise stream.error from exc
        if stream.error is not None:
            raise ConnectorError(
                f"Reading {unit} failed: {str(stream.error).strip()}",
                "Fix the source (the position is named above), then run again.",
            ) from exc
        raise


def _renumber(engine: Engine, raw: str, load_id: str, rejected_rows: list[int]) -> None:
    """Give loaded rows their real row number in the file once rejected rows are known.

    Rows are numbered as they stream; the k-th good row is really row k plus the number of
    rejected rows before it. The shifts are ranges (few: one per run of rejected rows),
    applied with one UPDATE ... FROM (VALUES ...).
    """
    rejected = np.unique(np.asarray(rejected_rows, dtype=np.int64))
    good_before = rejected - np.arange(len(rejected)) - 1
    lows, counts = np.unique(good_before, return_counts=True)
    shifts = np.cumsum(counts)
    highs = np.append(lows[1:], np.iinfo(np.int64).max)
    table = sg.table(raw, quoted=True)
    row = sg.column("_source_row", table=raw, quoted=True)
    for start in range(0, len(lows), 1000):
        tuples = [sge.Tuple(expressions=[sge.convert(int(v)) for v in values])
                  for values in zip(lows[start:start + 1000], highs[start:start + 1000],
                                    shifts[start:start + 1000], strict=True)]
        ranges = sge.Values(expressions=tuples, alias=sge.TableAlias(
            this=sg.to_identifier("r"),
            columns=[sg.to_identifier(c) for c in ("lo", "hi", "delta")],
        ))
        condition = sge.and_(
            sge.EQ(this=sg.column("_load_id", table=raw, quoted=True),
                   expression=sge.convert(load_id)),
            sge.GT(this=row, expression=sg.column("lo", table="r")),
            sge.LTE(this=row, expression=sg.column("hi", table="r")),
        )
        engine.execute(sge.Update(
            this=table,
            expressions=[sge.EQ(this=sg.column("_source_row", quoted=True),
                                expression=sge.Add(this=row, expression=sg.column("delta",
                                                                                  table="r")))],
            from_=sge.From(this=ranges),
            where=sge.Where(this=condition),
        ))


# ----------------------------------------------------------------------------- files
def read_as(connector, dialect: csvdialect.Dialect | None = None,
            key: str | None = None) -> str:
    """How a unit is read, as the ledger's ``read_as`` JSON. For a CSV file the dialect
    actually used (what 'auto' resolved to), so writing out what was detected reloads
    nothing while any setting that parses the file differently does."""
    settings: dict[str, object] = {"type": connector.type}
    if dialect is not None:
        settings.update(delimiter=dialect.delimiter, encoding=dialect.encoding,
                        quote=dialect.quote, header=dialect.header)
    if not isinstance(connector, FILE_CONNECTORS):
        settings["incremental_key"] = key
    return json.dumps(settings, sort_keys=True)


def _read_change(before: str | None, now: str) -> str | None:
    """Why a unit must be re-read with today's settings, or None. A ledger row written
    before ``read_as`` existed (NULL) is unknown and kept as it is (see docs/sources.md)."""
    if before is None or before == now:
        return None
    old, new = json.loads(before), json.loads(now)
    changes = [f"{k} {old.get(k)!r} -> {new.get(k)!r}" for k in sorted(set(old) | set(new))
               if old.get(k) != new.get(k)]
    return "is read with different settings since its last load (" + ", ".join(changes) + ")"


def _load_files(engine: Engine, project_root: Path, source: SourceConfig, run_id: str,
                reporter: Reporter, result: LoadResult, reload: bool) -> None:
    connector = source.connector
    units = files.resolve(project_root, connector.path)
    history = books.last_units(engine, source.name)
    dialects: dict[str, csvdialect.Dialect] = {}
    with reporter.step(f"Loading {source.name}", total=len(units)) as progress:
        for unit in units:
            digest = files.fingerprint(unit.path)
            previous = history.get(unit.name)
            dialect = None
            if isinstance(connector, CsvConnector):
                # every file, even an unchanged one: its dialect is part of how it was read
                dialect = csvdialect.detect(unit.path, connector)  # reads 1 MB at most
                dialects[unit.name] = dialect
                result.csv_dialect = result.csv_dialect or dialect.as_dict()
            settings = read_as(connector, dialect)
            why = None
            if previous is not None:
                if reload:
                    why = "was reloaded on request (--reload)"
                elif previous[0].fingerprint != digest:
                    if connector.on_change == "error":
                        raise ConnectorError(
                            f"{unit.name} changed since it was loaded "
                            f"(load {previous[0].load_id}).",
                            "Restore the original file and add new data as a new file, or "
                            "set `on_change: replace` in the source's connector to replace "
                            "its rows.",
                        )
                    why = "changed since its last load"
                else:
                    why = _read_change(previous[0].read_as, settings)
                if why is None:
                    result.units_skipped += 1
                    progress.advance(1)
                    continue
            _load_file(engine, source, unit, digest, dialect, settings, previous, why, run_id,
                       result)
            progress.advance(1)
    if result.units_replaced:
        offered = {c for unit in units
                   for c in files.file_columns(unit, connector, dialects.get(unit.name))}
        _drop_vanished_columns(engine, result, offered)


def _drop_vanished_columns(engine: Engine, result: LoadResult, offered: set[str]) -> None:
    """Drop the raw columns that only replaced loads had: no file offers them any more and
    no row holds a value. Staging then names a mapped column that is gone, as `validate`
    does, instead of staging NULLs (a file first read with the wrong delimiter)."""
    raw = engine.table(result.raw_table)
    candidates = [c for c in raw.columns if c not in offered and c not in books.LINEAGE.names]
    if not candidates:
        return
    counts = engine.to_arrow(raw.aggregate(**{f"n{i}": raw[c].count()
                                              for i, c in enumerate(candidates)})).to_pylist()[0]
    empty = [c for i, c in enumerate(candidates) if counts[f"n{i}"] == 0]
    if empty:
        engine.drop_columns(result.raw_table, empty)
        result.messages.append(f"Column(s) {', '.join(empty)} of {result.raw_table} came only "
                               "from the replaced loads: dropped.")


def _load_file(engine: Engine, source: SourceConfig, unit: files.FileUnit, digest: str,
               dialect: csvdialect.Dialect | None, settings: str,
               previous: tuple[books.UnitRecord, list[str]] | None, why: str | None,
               run_id: str, result: LoadResult) -> None:
    raw = result.raw_table
    load_id, started = books.new_load_id(), books.utcnow()
    with files.open_file(unit, source.connector, dialect) as opened:
        stream = LineageStream(opened.reader, load_id=load_id, loaded_at=started,
                               source_file=unit.name)
        with engine.transaction():
            rows = _append(engine, raw, stream, unit.name, result)
            # after the append: DuckDB cannot commit a DELETE followed by the ALTER TABLE
            # that adds a column the new rows bring (a file read with another delimiter)
            if previous is not None:
                books.forget_loads(engine, source.name, raw, previous[1])
            rejects = opened.collect_rejects()
            if rejects:
                _renumber(engine, raw, load_id, [r.row for r in rejects])
                books.write_quarantine(engine, [
                    {"source": source.name, "load_id": load_id, "source_file": unit.name,
                     "source_row": r.row,
                     "reason": "csv_" + r.error_type.lower().replace(" ", "_"),
                     "detail": reject_detail(unit.name, r.row, r.message, r.line)}
                    for r in rejects
                ])
            books.record_load(engine, load_id=load_id, run_id=run_id, source=source.name,
                              source_file=unit.name, fingerprint=digest, size_bytes=unit.size,
                              rows=rows, high_water_mark=None, started_at=started,
                              read_as=settings)
    result.units_loaded += 1
    result.rows_loaded += rows
    if previous is not None:
        result.units_replaced += 1
        result.messages.append(f"{unit.name} {why}: its rows were replaced.")
    if rows == 0 and not rejects:
        result.empty_units += 1
        result.messages.append(f"{unit.name} is empty (no data rows).")
    if rejects:
        result.rows_rejected += len(rejects)
        first = rejects[0]
        result.messages.append(
            f"{unit.name}: {len(rejects)} malformed line(s) sent to quarantine "
            f"(first: row {first.row}, {first.error_type.lower()})."
        )


# ------------------------------------------------------------------------- databases
def _hwm_text(value: object) -> str:
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat(sep=" ") if isinstance(value, dt.datetime) else value.isoformat()
    if isinstance(value, Decimal):
        return format(value, "f")
    return str(value)


def _load_table(engine: Engine, source: SourceConfig, run_id: str, reporter: Reporter,
                result: LoadResult, reload: bool) -> None:
    connector = source.connector
    unit = databases.unit_name(connector)
    key = source.incremental.key
    settings = read_as(connector, key=key)
    history = books.last_units(engine, source.name)
    previous = history.get(unit)
    why = None
    if previous is not None and key is not None:  # a snapshot replaces everything anyway
        why = ("was reloaded on request (--reload)" if reload
               else _read_change(previous[0].read_as, settings))
    if why is not None:
        result.messages.append(f"{unit} {why}: every row is read again and replaces the "
                               "earlier loads.")
    hwm = previous[0].high_water_mark if (previous is not None and key and why is None) \
        else None
    load_id, started = books.new_load_id(), books.utcnow()
    with reporter.step(f"Loading {source.name}") as progress, \
            databases.open_table(connector, key, hwm, f"passerelle {run_id}") as reader:
        stream = LineageStream(reader, load_id=load_id, loaded_at=started, source_file=unit,
                               key=key, on_batch=progress.advance)
        with engine.transaction():
            rows = _append(engine, result.raw_table, stream, unit, result)
            if key is None or why is not None:  # the new copy replaces every earlier one
                earlier = [i for _, ids in history.values() for i in ids]
                books.forget_loads(engine, source.name, result.raw_table, earlier)  # after
                # the append, as in _load_file
            if rows == 0 and key is not None and previous is not None and why is None:
                result.units_skipped += 1
                return  # nothing new: the transaction commits nothing worth recording
            new_hwm = _hwm_text(stream.key_max) if stream.key_max is not None else hwm
            books.record_load(engine, load_id=load_id, run_id=run_id, source=source.name,
                              source_file=unit, fingerprint=None, size_bytes=None, rows=rows,
                              high_water_mark=new_hwm, started_at=started, read_as=settings)
    result.units_loaded += 1
    result.rows_loaded += rows
    if rows == 0:
        result.empty_units += 1
        result.messages.append(f"{unit} has no rows.")
    elif key is not None:
        result.messages.append(f"{unit}: {rows} new row(s), {key} up to {new_hwm}.")


# ------------------------------------------------------------------------------ API
def load_source(engine: Engine, project_root: Path, source: SourceConfig, run_id: str,
                reporter: Reporter, reload: bool = False) -> LoadResult:
    """Load what is new in ``source`` into ``raw_<source.name>``; ``reload`` reads every
    file (or the whole table) again, replacing the rows of its earlier loads."""
    result = LoadResult(source=source.name, raw_table=raw_table_name(source))
    books.ensure_tables(engine)
    removed = books.recover(engine, source.name, result.raw_table)
    if removed:
        message = f"Removed {removed} row(s) left by an unfinished earlier load of {source.name}."
        result.messages.append(message)
        reporter.warning(message)
    if source.connector.type == "collector":  # events spooled by `passerelle serve`
        from passerelle.collect.loader import drain

        if reload:
            raise PasserelleError(
                f"{source.name} cannot be reloaded: a collector source's events are moved "
                "from the spool into the warehouse once and not kept in the spool.",
                "Reload file or database sources only.")

        drained = drain(engine, Path(project_root), source, run_id)
        result.units_loaded, result.rows_loaded = drained.units_loaded, drained.rows_loaded
        result.units_skipped = drained.units_skipped
        result.messages.extend(drained.messages)
    elif source.is_file:
        _load_files(engine, Path(project_root), source, run_id, reporter, result, reload)
    else:
        _load_table(engine, source, run_id, reporter, result, reload)
    for message in result.messages[1 if removed else 0:]:
        reporter.info(message)
    if result.rows_rejected:
        reporter.warning(f"{result.rows_rejected} malformed line(s) of {source.name} were sent "
                         f"to the {books.QUARANTINE_TABLE} table.")
    return result


def check_connection(source: SourceConfig, project_root: Path | None = None) -> None:
    """Raise :class:`ConnectorError` if the source cannot be reached (file or database)."""
    if source.connector.type == "collector":
        return  # the spool is checked when the collector starts
    if source.is_file:
        files.resolve(Path(project_root or "."), source.connector.path)
    else:
        databases.check_connection(source.connector)


def csv_dialect(project_root: Path, source: SourceConfig) -> dict | None:
    """Delimiter, encoding and decimal mark of a CSV source (its first file), else None."""
    if not isinstance(source.connector, CsvConnector):
        return None
    first = files.resolve(Path(project_root), source.connector.path)[0]
    return csvdialect.detect(first.path, source.connector).as_dict()


def reject_detail(file: str, row: int, message: str, line: str) -> str:
    """A line the CSV reader refused, said in the user's words with file, row and the line."""
    import re

    where = f"{file}, row {row}"
    columns = re.search(r"Expected Number of Columns: (\d+) Found: (\d+)", message)
    if columns:
        expected, found = columns.groups()
        what = (f"{found} columns where the header has {expected}: a separator too many "
                "(an unquoted ; or ,?) or a missing one")
    elif "unterminated quotes" in message.lower():
        what = "a quote opened and never closed"
    else:
        what = message.split("\n")[0]
    return f"{where}: {what}. The line: {line.strip()[:2000]}"
