"""Spool -> warehouse, in bulk: one spool unit becomes one load of ``raw_<source>``.

Each unit (a sealed segment file, or a batch of NATS / Redis messages) is parsed by a private
in-memory DuckDB (``read_json``: C++, no Python loop over events), flattened into the columns
of :data:`RAW_COLUMNS`, and appended through ``engine.append_arrow`` with the usual lineage
columns. In the same transaction the loader records the unit in ``_passerelle_loads`` (its
name as ``source_file``), appends its tracking-plan violations to ``event_violations`` and
its identifier pairs to the alias log. Only after the commit is the unit released from the
spool, so a crash anywhere loads it again, and the ledger makes that second load a no-op:
every event reaches ``raw_<source>`` once (``stg_<source>`` is deduplicated on ``message_id``
in any case, which also absorbs a client that re-sends an event).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import ibis
import pyarrow as pa

from passerelle.collect.plan import VIOLATIONS_TABLE
from passerelle.collect.spool import Spool, Unit, open_spool
from passerelle.engines.base import Engine
from passerelle.project.models import CollectorConnector, SourceConfig
from passerelle.sources import bookkeeping as books
from passerelle.sources.stream import LineageStream

#: Columns of ``raw_<source>`` for a collector source (all text; JSON objects as JSON text).
RAW_COLUMNS = {
    "messageId": "messageId",
    "type": "type",
    "event": "event",
    "userId": "userId",
    "anonymousId": "anonymousId",
    "previousId": "previousId",
    "groupId": "groupId",
    "name": "name",
    "category": "category",
    "email": "coalesce(traits->>'email', context->'traits'->>'email')",
    "timestamp": "strftime(epoch_ms(timestamp), '%Y-%m-%dT%H:%M:%S.%gZ')",
    "originalTimestamp": "originalTimestamp",
    "sentAt": "sentAt",
    "receivedAt": "strftime(epoch_ms(receivedAt), '%Y-%m-%dT%H:%M:%S.%gZ')",
    "channel": "context->'campaign'->>'medium'",
    "campaign": "context->'campaign'->>'name'",
    "properties": "properties",
    "traits": "traits",
    "context": "context",
    "integrations": "integrations",
    "extra": "_extra",
    "violations": "_violations",
}
#: What the spool lines hold, as ``read_json`` should type it.
_SPOOL_TYPES = {
    **{c: "VARCHAR" for c in ("messageId", "type", "event", "userId", "anonymousId",
                              "previousId", "groupId", "name", "category",
                              "originalTimestamp", "sentAt")},
    "timestamp": "BIGINT", "receivedAt": "BIGINT",
    **{c: "JSON" for c in ("properties", "traits", "context", "integrations", "_extra",
                           "_violations")},
}
#: A source file mapping these columns stages into the ``events`` entity unchanged.
DEFAULT_MAPPING = {
    "message_id": "messageId", "type": "type", "event": "event", "user_id": "userId",
    "anonymous_id": "anonymousId", "email": "email", "timestamp": "timestamp",
    "channel": "channel", "campaign_id": "campaign", "properties": "properties",
    "context": "context",
}

ALIAS_LOG = "_identity_alias_log"
ALIASES_VIEW = "identity_aliases"
ALIAS_SCHEMA = ibis.schema({
    "source": "string", "anonymous_id": "string", "user_id": "string", "previous_id": "string",
    "first_seen": "timestamp", "last_seen": "timestamp", "_load_id": "string",
})
VIOLATIONS_SCHEMA = ibis.schema({
    "source": "string", "message_id": "string", "event": "string", "rule": "string",
    "field": "string", "message": "string", "received_at": "timestamp", "_load_id": "string",
})
_VIOLATION_TYPE = '[{"rule":"VARCHAR","field":"VARCHAR","message":"VARCHAR"}]'


@dataclass
class DrainResult:
    source: str
    units_loaded: int = 0
    units_skipped: int = 0  # already in the ledger: released without loading again
    rows_loaded: int = 0
    busy: bool = False  # another loader held the spool: nothing done
    messages: list[str] = field(default_factory=list)


def _parse(path: Path) -> duckdb.DuckDBPyConnection:
    """A private DuckDB holding the unit as table ``seg`` (spool columns, torn lines dropped)."""
    con = duckdb.connect()
    columns = "{" + ", ".join(f"'{c}': '{t}'" for c, t in _SPOOL_TYPES.items()) + "}"
    con.execute(
        "CREATE TEMP TABLE seg AS SELECT * FROM read_json(?, format='newline_delimited', "
        f"columns={columns}, ignore_errors=true) WHERE messageId IS NOT NULL",
        [str(path)],
    ).fetchall()
    return con


def _arrow(con: duckdb.DuckDBPyConnection, sql: str, params: list | None = None) -> pa.Table:
    return con.execute(sql, params or []).to_arrow_table()


def _raw_rows(con: duckdb.DuckDBPyConnection) -> pa.Table:
    select = ", ".join(f"CAST({expr} AS VARCHAR) AS \"{name}\""
                       for name, expr in RAW_COLUMNS.items())
    return _arrow(con, f"SELECT {select} FROM seg")


def _violations(con: duckdb.DuckDBPyConnection, source: str, load_id: str) -> pa.Table:
    return _arrow(con, f"""
        SELECT ? AS source, messageId AS message_id, coalesce(event, type) AS event,
               v.rule, v.field, v.message, epoch_ms(receivedAt) AS received_at,
               ? AS _load_id
        FROM (SELECT *, unnest(from_json(_violations, '{_VIOLATION_TYPE}')) AS v
              FROM seg WHERE _violations IS NOT NULL)""", [source, load_id])


def _aliases(con: duckdb.DuckDBPyConnection, source: str, load_id: str) -> pa.Table:
    """Identifier pairs seen together: identify and alias calls, and any call with both ids."""
    return _arrow(con, """
        SELECT ? AS source, anonymousId AS anonymous_id, userId AS user_id,
               previousId AS previous_id, min(epoch_ms(timestamp)) AS first_seen,
               max(epoch_ms(timestamp)) AS last_seen, ? AS _load_id
        FROM seg
        WHERE (type = 'alias' AND previousId IS NOT NULL)
           OR (userId IS NOT NULL AND anonymousId IS NOT NULL)
        GROUP BY anonymousId, userId, previousId""", [source, load_id])


def ensure_tables(engine: Engine) -> None:
    """The violations table, the alias log and the ``identity_aliases`` view over it."""
    books.ensure_tables(engine)
    engine.create_empty(VIOLATIONS_TABLE, VIOLATIONS_SCHEMA)
    if not engine.exists(ALIAS_LOG):
        engine.create_empty(ALIAS_LOG, ALIAS_SCHEMA)
    log = engine.table(ALIAS_LOG)
    view = log.group_by(["source", "anonymous_id", "user_id", "previous_id"]).aggregate(
        first_seen=log.first_seen.min(), last_seen=log.last_seen.max())
    if ALIASES_VIEW not in engine.list_tables():
        engine.con.create_view(ALIASES_VIEW, view, overwrite=True)


def _load_unit(engine: Engine, source: SourceConfig, unit: Unit, run_id: str) -> int:
    raw = f"raw_{source.name}"
    load_id, started = books.new_load_id(), books.utcnow()
    con = _parse(unit.path)
    try:
        rows = _raw_rows(con)
        violations = _violations(con, source.name, load_id)
        aliases = _aliases(con, source.name, load_id)
    finally:
        con.close()
    stream = LineageStream(rows.to_reader(), load_id=load_id, loaded_at=started,
                           source_file=unit.name)
    with engine.transaction():
        if not engine.exists(raw):
            engine.create_empty(raw, ibis.Schema.from_pyarrow(stream.schema))
        count = engine.append_arrow(raw, stream.reader())
        if violations.num_rows:
            engine.append_arrow(VIOLATIONS_TABLE, violations.to_reader())
        if aliases.num_rows:
            engine.append_arrow(ALIAS_LOG, aliases.to_reader())
        books.record_load(engine, load_id=load_id, run_id=run_id, source=source.name,
                          source_file=unit.name, fingerprint=None,
                          size_bytes=unit.path.stat().st_size, rows=count,
                          high_water_mark=unit.position, started_at=started)
    return count


def _ledger(engine: Engine, source: str) -> tuple[set[str], str | None]:
    """Unit names already loaded for ``source``, and the last spool position committed."""
    loads = engine.table(books.LOADS_TABLE)
    mine = loads.filter(loads.source == source)
    names = engine.to_arrow(mine.select("source_file", "high_water_mark")).to_pylist()
    positions = [r["high_water_mark"] for r in names if r["high_water_mark"]]
    return {r["source_file"] for r in names}, (max(positions, key=_position_key)
                                              if positions else None)


def _position_key(position: str) -> tuple[int, ...]:
    return tuple(int(p) for p in position.replace("-", ".").split("."))


def drain(engine: Engine, project_root: Path, source: SourceConfig, run_id: str = "collector",
          spool: Spool | None = None, max_units: int | None = None) -> DrainResult:
    """Load every spooled unit of a collector ``source`` into ``raw_<source>``.

    Safe to call from several processes: one drains, the others return ``busy``.
    """
    if not isinstance(source.connector, CollectorConnector):
        raise TypeError(f"{source.name} is not a collector source")
    own = spool is None
    spool = spool or open_spool(source.connector.spool, project_root)
    result = DrainResult(source.name)
    try:
        with spool.reader_lock(source.name) as mine:
            if not mine:
                result.busy = True
                result.messages.append("Another loader is draining this spool now.")
                return result
            ensure_tables(engine)
            removed = books.recover(engine, source.name, f"raw_{source.name}")
            if removed:
                result.messages.append(f"Removed {removed} row(s) of an unfinished load.")
            loaded, position = _ledger(engine, source.name)
            for unit in spool.units(source.name, position):
                try:
                    if unit.name in loaded:
                        result.units_skipped += 1
                    else:
                        result.rows_loaded += _load_unit(engine, source, unit, run_id)
                        result.units_loaded += 1
                    unit.done()
                finally:
                    unit.cleanup()
                if max_units is not None and result.units_loaded >= max_units:
                    break
    finally:
        if own:
            spool.close()
    return result


class Loader(threading.Thread):
    """Drains the spools of collector sources every ``interval`` seconds, in the background.

    The warehouse is opened for each round and closed after it, so a DuckDB file stays free
    for ``passerelle run`` between rounds (a round that finds it locked waits for the next).
    """

    def __init__(self, open_engine, project_root: Path, sources: list[SourceConfig],
                 spools: dict[str, Spool], interval: float = 0.5) -> None:
        super().__init__(name="collector-loader", daemon=True)
        self.open_engine, self.project_root = open_engine, project_root
        self.sources, self.spools, self.interval = sources, spools, interval
        self.stopping = threading.Event()
        self.rounds = 0
        self.last_error: BaseException | None = None

    def run(self) -> None:
        while not self.stopping.wait(self.interval):
            self.round()
        self.round(force=True)  # what the writer sealed while stopping

    def round(self, force: bool = False) -> None:
        engine = None
        try:
            for source in self.sources:
                spool = self.spools[source.name]
                if spool.kind == "file" and not any(True for _ in spool.units(source.name,
                                                                              None)):
                    continue  # nothing sealed: do not even open the warehouse
                if spool.kind != "file" and not force and spool.backlog() == 0:
                    continue
                engine = engine or self.open_engine()
                drain(engine, self.project_root, source, spool=spool)
            self.last_error = None
        except Exception as exc:
            self.last_error = exc
        finally:
            if engine is not None:
                engine.close()
        self.rounds += 1

    def stop(self) -> None:
        self.stopping.set()
        self.join()
