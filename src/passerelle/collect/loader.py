"""Spool -> warehouse, in bulk: one spool unit becomes one load of ``raw_<source>``.

Each unit (a sealed segment file, or a batch of NATS / Redis messages) is parsed by DuckDB's
``read_json`` (C++, no Python loop over events) and flattened into the columns of
:data:`RAW_COLUMNS` with the usual lineage columns: on a DuckDB warehouse by the warehouse
itself (``INSERT ... SELECT`` from the segment file), elsewhere by a private in-memory DuckDB
whose Arrow output goes through ``engine.append_arrow``. In the same transaction the loader
records the unit in ``_passerelle_loads`` (its name as ``source_file``), appends its
tracking-plan violations to ``event_violations`` and its identifier pairs to the alias log.
Only after the commit is the unit released from the spool, so a crash anywhere loads it
again, and the ledger makes that second load a no-op: every event reaches ``raw_<source>``
once (``stg_<source>`` is deduplicated on ``message_id`` in any case, which also absorbs a
client that re-sends an event).
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import pickle
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import ibis
import pyarrow as pa
import sqlglot as sg

import passerelle.sources.bookkeeping as books
from passerelle.collect.plan import VIOLATIONS_TABLE
from passerelle.collect.spool import Spool, Unit
from passerelle.collect.spools import open_spool, open_spools
from passerelle.engines.base import Engine
from passerelle.project.models import CollectorConnector, SourceConfig
from passerelle.sources.stream import LineageStream

#: Columns of ``raw_<source>`` for a collector source (all text; JSON objects as JSON text),
#: as expressions over the spool lines (see :mod:`passerelle.collect.events`: ``e`` is the
#: event, the other keys what the collector decided).
RAW_COLUMNS = {
    "messageId": "m",
    "type": "e.type",
    "event": "e.event",
    "userId": "e.userId",
    "anonymousId": "e.anonymousId",
    "previousId": "e.previousId",
    "groupId": "e.groupId",
    "name": "e.name",
    "category": "e.category",
    "email": "coalesce(e.traits->>'email', e.context->'traits'->>'email')",
    "timestamp": "strftime(epoch_ms(t), '%Y-%m-%dT%H:%M:%S.%gZ')",
    "originalTimestamp": "o",
    "sentAt": "s",
    "receivedAt": "strftime(epoch_ms(r), '%Y-%m-%dT%H:%M:%S.%gZ')",
    "channel": "e.context->'campaign'->>'medium'",
    "campaign": "e.context->'campaign'->>'name'",
    "properties": "e.properties",
    "traits": "e.traits",
    "context": "e.context",
    "integrations": "e.integrations",
    "extra": "x",
    "violations": "v",
}
#: What the spool lines hold, as ``read_json`` should type it: one parse of each line, the
#: known fields of the event picked out (JSON objects kept as JSON text).
_EVENT_TYPE = "STRUCT(" + ", ".join(
    [f'"{c}" VARCHAR' for c in ("type", "event", "userId", "anonymousId", "previousId",
                                "groupId", "name", "category")]
    + [f'"{c}" JSON' for c in ("properties", "traits", "context", "integrations")]) + ")"
_SPOOL_TYPES = {
    "m": "VARCHAR", "t": "BIGINT", "r": "BIGINT", "o": "VARCHAR", "s": "VARCHAR",
    "x": "JSON", "v": "JSON", "e": _EVENT_TYPE,
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
        f"columns={columns}, ignore_errors=true) WHERE m IS NOT NULL",
        [str(path)],
    ).fetchall()
    return con


def _arrow(con: duckdb.DuckDBPyConnection, sql: str, params: list | None = None) -> pa.Table:
    return con.execute(sql, params or []).to_arrow_table()


def _raw_rows(con: duckdb.DuckDBPyConnection) -> pa.Table:
    select = ", ".join(f"CAST({expr} AS VARCHAR) AS \"{name}\""
                       for name, expr in RAW_COLUMNS.items())
    return _arrow(con, f"SELECT {select} FROM seg")


def _violations_sql() -> str:
    """The violations of the unit in ``seg`` (parameters: source, load id)."""
    return f"""
        SELECT ? AS source, m AS message_id, coalesce(e.event, e.type) AS event,
               f.rule, f.field, f.message, epoch_ms(r) AS received_at, ? AS _load_id
        FROM (SELECT *, unnest(from_json(v, '{_VIOLATION_TYPE}')) AS f
              FROM seg WHERE v IS NOT NULL)"""


def _violations(con: duckdb.DuckDBPyConnection, source: str, load_id: str) -> pa.Table:
    return _arrow(con, _violations_sql(), [source, load_id])


#: Identifier pairs seen together: identify and alias calls, and any call with both ids
#: (parameters: source, load id).
_ALIASES_SQL = """
        SELECT ? AS source, anonymous_id, user_id, previous_id,
               min(epoch_ms(t)) AS first_seen, max(epoch_ms(t)) AS last_seen, ? AS _load_id
        FROM (SELECT e.anonymousId AS anonymous_id, e.userId AS user_id,
                     e.previousId AS previous_id, e.type AS type, t FROM seg)
        WHERE (type = 'alias' AND previous_id IS NOT NULL)
           OR (user_id IS NOT NULL AND anonymous_id IS NOT NULL)
        GROUP BY anonymous_id, user_id, previous_id"""


def _aliases(con: duckdb.DuckDBPyConnection, source: str, load_id: str) -> pa.Table:
    """Identifier pairs seen together: identify and alias calls, and any call with both ids."""
    return _arrow(con, _ALIASES_SQL, [source, load_id])


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


def _load_unit_duckdb(engine: Engine, source: SourceConfig, unit: Unit, run_id: str) -> int:
    """The same load as :func:`_load_unit`, done by the warehouse's own DuckDB: it reads the
    unit and inserts with SQL, with no private database and no Arrow copy in between (a
    third less CPU an event, which the collector shares the cores with)."""
    con = engine.con.con  # the duckdb connection underneath Ibis
    load_id, started = books.new_load_id(), books.utcnow()
    raw = sg.to_identifier(f"raw_{source.name}", quoted=True).sql("duckdb")
    columns = "{" + ", ".join(f"'{c}': '{t}'" for c, t in _SPOOL_TYPES.items()) + "}"
    select = ", ".join(f"CAST({expr} AS VARCHAR) AS \"{name}\""
                       for name, expr in RAW_COLUMNS.items())
    lineage = ("?::VARCHAR AS _load_id, ?::TIMESTAMP AS _loaded_at, "
               "?::VARCHAR AS _source_file, (rowid + 1)::BIGINT AS _source_row")
    # outside the transaction: then the temporary table's rowid is the rank of the line
    # among the lines read (a torn or unparsable line is skipped and not counted)
    con.execute("DROP TABLE IF EXISTS temp.seg")
    con.execute(
        "CREATE TEMP TABLE seg AS SELECT * FROM read_json(?, format='newline_delimited', "
        f"columns={columns}, ignore_errors=true) WHERE m IS NOT NULL", [str(unit.path)])
    try:
        with engine.transaction():
            params = [load_id, started, unit.name]
            con.execute(f"CREATE TABLE IF NOT EXISTS {raw} AS SELECT {select}, {lineage} "
                        "FROM seg LIMIT 0", params)
            count = con.execute(f"INSERT INTO {raw} BY NAME SELECT {select}, {lineage} "
                                "FROM seg", params).fetchone()[0]
            for table, sql in ((VIOLATIONS_TABLE, _violations_sql()), (ALIAS_LOG, _ALIASES_SQL)):
                target = sg.to_identifier(table, quoted=True).sql("duckdb")
                con.execute(f"INSERT INTO {target} BY NAME {sql}",
                            [source.name, load_id]).fetchall()
            books.record_load(engine, load_id=load_id, run_id=run_id, source=source.name,
                              source_file=unit.name, fingerprint=None,
                              size_bytes=unit.path.stat().st_size, rows=int(count),
                              high_water_mark=unit.position, started_at=started)
    finally:
        con.execute("DROP TABLE IF EXISTS temp.seg")
    return int(count)


def _load_unit(engine: Engine, source: SourceConfig, unit: Unit, run_id: str) -> int:
    if engine.name == "duckdb":
        return _load_unit_duckdb(engine, source, unit, run_id)
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


def _last_position(engine: Engine, source: str) -> str | None:
    """The last spool position committed for ``source`` (a NATS sequence or a Redis id
    ``ms-seq``; file spools record none), compared as numbers in SQL: the load ledger grows
    with every unit, a round must not read it all."""
    loads = engine.table(books.LOADS_TABLE)
    mark = loads.high_water_mark
    mine = loads.filter((loads.source == source) & mark.notnull())
    parts = [mark.split("-")[i].cast("int64") for i in (0, 1)]
    last = mine.order_by([ibis.desc(parts[0]), ibis.desc(parts[1].fill_null(0))]).limit(1)
    rows = engine.to_arrow(last.select("high_water_mark")).to_pylist()
    return rows[0]["high_water_mark"] if rows else None


def _was_loaded(engine: Engine, source: str, name: str) -> bool:
    loads = engine.table(books.LOADS_TABLE)
    found = loads.filter((loads.source == source) & (loads.source_file == name)).limit(1)
    return engine.to_arrow(found.select("load_id")).num_rows > 0


def drain(engine: Engine, project_root: Path, source: SourceConfig, run_id: str = "collector",
          spool: Spool | None = None, max_units: int | None = None,
          setup: bool = True) -> DrainResult:
    """Load every spooled unit of a collector ``source`` into ``raw_<source>``.

    Safe to call from several processes: one drains, the others return ``busy``.
    ``setup=False`` skips creating the tables and removing the rows of unfinished loads
    (the collector's loader does both once, not every round).
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
            if setup:
                ensure_tables(engine)
                removed = books.recover(engine, source.name, f"raw_{source.name}")
                if removed:
                    result.messages.append(f"Removed {removed} row(s) of an unfinished load.")
            position = _last_position(engine, source.name)
            for unit in spool.units(source.name, position):
                try:
                    if _was_loaded(engine, source.name, unit.name):
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


class Loader:
    """Drains the spools of collector sources in rounds, each round as soon as a spool says
    events became loadable (or every ``POLL_SECONDS``), at most one round every ``interval``.

    The warehouse is opened for each round and closed after it, so a DuckDB file stays free
    for ``passerelle run`` between rounds (a round that finds it locked waits for the next).
    """

    POLL_SECONDS = 2.0

    def __init__(self, open_engine, project_root: Path, sources: list[SourceConfig],
                 spools: dict[str, Spool], interval: float = 0.25) -> None:
        self.open_engine, self.project_root = open_engine, project_root
        self.sources, self.spools, self.interval = sources, spools, interval
        self.rounds = 0
        self.last_error: BaseException | None = None
        self.on_round: Callable[[], None] | None = None
        # told the rows a round committed (when it committed any): what depends on new
        # events (the decision store of the people they touch) is refreshed after them
        self.on_loaded: Callable[[int], None] | None = None
        self._ready: set[str] = set()  # sources whose tables were set up in this loader
        self.one_thread = False
        # NATS / Redis: fetch on every round, not only when this process's own appends say
        # events wait (a loader in its own process never sees them; another collector on the
        # same stream, or a redelivery after ack_wait, never says so)
        self.poll_servers = False

    def _open(self) -> Engine:
        engine = self.open_engine()
        if engine.name == "duckdb":
            con = engine.con.con
            con.execute("SET enable_progress_bar = false")  # no bars in the server's log
            if self.one_thread:
                # the loader shares the cores with the collector: one DuckDB thread spends
                # about half the CPU an event that two do (no parallel overhead)
                con.execute("SET threads TO 1")
        return engine

    def loop(self, work, stopping, alive=lambda: True) -> None:
        """Rounds until ``stopping()``; ``work`` is the Event the spools set."""
        last = 0.0
        while True:
            woke = work.wait(self.POLL_SECONDS)
            if stopping() or not alive():
                break
            work.clear()
            pause = self.interval - (time.monotonic() - last)
            if pause > 0:
                time.sleep(pause)  # what arrives meanwhile joins this round
            last = time.monotonic()
            self.round(force=woke or self.last_error is not None)
        if alive():
            self.round(force=True)  # what the writer sealed while stopping

    def round(self, force: bool = False) -> None:
        engine = None
        loaded = 0
        try:
            for source in self.sources:
                spool = self.spools[source.name]
                if spool.kind == "file" and not any(True for _ in spool.units(source.name,
                                                                              None)):
                    continue  # nothing sealed: do not even open the warehouse
                if spool.kind != "file" and not (force or self.poll_servers) \
                        and spool.backlog() == 0:
                    continue
                engine = engine or self._open()
                result = drain(engine, self.project_root, source, spool=spool,
                               setup=source.name not in self._ready)
                loaded += result.rows_loaded
                if not result.busy:  # another loader drained: the setup was not done
                    self._ready.add(source.name)
            self.last_error = None
        except Exception as exc:
            self.last_error = exc
            self._ready.clear()  # check the tables and unfinished loads again
        finally:
            if engine is not None:
                engine.close()
        self.rounds += 1
        if loaded and self.on_loaded is not None:
            self.on_loaded(loaded)
        if self.on_round is not None:
            self.on_round()


class LoaderThread(threading.Thread):
    """The loader inside the collector process: for ``passerelle serve``, whose API opens
    the same DuckDB warehouse (a DuckDB file admits one process at a time)."""

    def __init__(self, open_engine, project_root: Path, sources: list[SourceConfig],
                 spools: dict[str, Spool], interval: float = 0.25) -> None:
        super().__init__(name="collector-loader", daemon=True)
        self.loader = Loader(open_engine, project_root, sources, spools, interval)
        self.work, self.stopping = threading.Event(), threading.Event()

    @property
    def last_error(self) -> BaseException | None:
        return self.loader.last_error

    def wake(self) -> None:
        self.work.set()

    def run(self) -> None:
        self.loader.loop(self.work, self.stopping.is_set)

    def stop(self) -> None:
        self.stopping.set()
        self.work.set()
        self.join()


class _Wakeup:
    """What the collector sets to wake a loader process, and what that process waits on.

    Not a ``multiprocessing.Event``: its ``set()`` waits until every process sleeping on it
    has woken, so a loader killed while it slept would hang the collector for good. A
    semaphore's ``release()`` never waits."""

    def __init__(self, semaphore) -> None:
        self.semaphore = semaphore

    def set(self) -> None:
        self.semaphore.release()

    def wait(self, timeout: float) -> bool:
        return self.semaphore.acquire(timeout=timeout)

    def clear(self) -> None:
        while self.semaphore.acquire(False):
            pass


class LoaderProcess:
    """The loader in a process of its own, so its Python work (Ibis, Arrow, bookkeeping)
    never holds the collector's GIL and the OS shares the cores between them. It opens its
    own reader side of each spool; it dies with the collector (a kill -9 of the collector
    leaves no loader behind holding the warehouse)."""

    def __init__(self, open_engine, project_root: Path, sources: list[SourceConfig],
                 interval: float = 0.25) -> None:
        ctx = mp.get_context("spawn")
        self._work, self._stop = _Wakeup(ctx.Semaphore(0)), ctx.Event()
        self._errors, errors = ctx.Pipe(duplex=False)
        self._error: str | None = None
        self._proc = ctx.Process(
            target=_loader_main, name="passerelle-loader", daemon=True,
            args=(open_engine, project_root, sources, interval, self._work.semaphore,
                  self._stop, errors, os.getpid()))

    @staticmethod
    def can_run(open_engine) -> bool:
        try:
            pickle.dumps(open_engine)
        except Exception:
            return False
        return True

    def start(self) -> None:
        self._proc.start()

    def wake(self) -> None:
        with contextlib.suppress(AttributeError):  # stopped already
            self._work.set()

    @property
    def last_error(self) -> str | None:
        with contextlib.suppress(EOFError, OSError):
            while self._errors.poll():
                self._error = self._errors.recv()
        with contextlib.suppress(ValueError):  # closed: stopped on purpose
            if not self._stop.is_set() and self._proc.exitcode is not None:
                return (f"the loader process exited (code {self._proc.exitcode}); events are "
                        "spooled but not loaded until the collector restarts")
        return self._error

    def stop(self, timeout: float = 60.0) -> None:
        self._stop.set()
        self._work.set()
        with contextlib.suppress(ValueError, AssertionError):  # never started
            self._proc.join(timeout)
            if self._proc.is_alive():  # a round stuck past the timeout: the spool keeps
                self._proc.kill()      # what it did not load, the next loader takes it
                self._proc.join()
        with contextlib.suppress(ValueError):
            self._proc.close()
        self.last_error  # noqa: B018 - read what the last rounds reported before closing
        self._errors.close()
        # the events' semaphores are named OS objects: release them now, not at exit
        del self._work, self._stop


def _die_with_parent() -> None:
    """Linux: the kernel kills this process when its parent dies (even by SIGKILL)."""
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _loader_main(open_engine, project_root: Path, sources: list[SourceConfig],
                 interval: float, semaphore, stop, errors, parent: int) -> None:
    _die_with_parent()
    # acknowledging events comes first; loading takes the CPU the answers leave (the
    # backlog it lets grow is bounded: the collector answers 503 past max_backlog)
    with contextlib.suppress(OSError):
        os.nice(5)
    # the collector decides when to stop (Ctrl-C in a terminal reaches us too)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if os.getppid() != parent:
        return
    spools = open_spools(sources, project_root)
    loader = Loader(open_engine, project_root, sources, spools, interval)
    loader.one_thread = loader.poll_servers = True
    reported: list[str | None] = [None]

    def report() -> None:
        error = str(loader.last_error) if loader.last_error else None
        if error != reported[0]:
            reported[0] = error
            errors.send(error)

    loader.on_round = report
    try:
        loader.round(force=True)  # what a previous collector left
        loader.loop(_Wakeup(semaphore), stop.is_set, lambda: os.getppid() == parent)
    finally:
        for spool in {id(sp): sp for sp in spools.values()}.values():
            spool.close()
