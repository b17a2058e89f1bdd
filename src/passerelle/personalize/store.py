"""The serving store a decision reads: people (ids, template values, eligible offers) and
caps. Two implementations of each: the warehouse's indexed tables (:mod:`.tables`), and
Redis when configured (:mod:`.redis_store`).

Caps are taken atomically: every counter of a message below its limit, then all
incremented, or none. In the warehouse that is one transaction of conditional upserts
(``INSERT ... ON CONFLICT DO UPDATE ... WHERE n < limit RETURNING n``): PostgreSQL's row
locks serialise two decisions on one counter, and a lock in the process serialises the one
DuckDB connection. A store that cannot be reached fails closed: no capped message is shown,
and :meth:`DecisionStore.health` says so.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Protocol

import sqlglot as sg
import sqlglot.expressions as sge

from passerelle.engines.base import Engine
from passerelle.personalize.bandit import DRAWS, Posteriors
from passerelle.personalize.caps import Counter
from passerelle.personalize.tables import COUNTERS, ELIGIBILITY, IDS, PEOPLE, TRAIT_PREFIX
from passerelle.personalize.templates import Renderer
from passerelle.project.offers_models import OfferDefinitions


@dataclass
class PersonRecord:
    person_id: str
    values: dict[str, Any]  # golden fields and traits, by the names templates use
    offers: set[str]  # offers the person is eligible for


class StoreUnavailable(Exception):
    """The store did not answer (Redis down, warehouse locked)."""


class People(Protocol):
    def lookup(self, any_id: str) -> PersonRecord | None: ...


class Caps(Protocol):
    def take(self, counters: list[Counter]) -> bool: ...

    def take_first(self, groups: list[list[Counter]], wanted: int) -> list[bool | None]: ...


def take_in_turn(caps: Caps, groups: list[list[Counter]], wanted: int) -> list[bool | None]:
    """Each group of counters taken atomically, in turn, until ``wanted`` groups passed:
    for each group, True (taken), False (a counter at its limit: none taken) or None (not
    tried: enough had passed). A store with one round trip for all does the same."""
    out: list[bool | None] = []
    passed = 0
    for counters in groups:
        if passed >= wanted:
            out.append(None)
            continue
        ok = caps.take(counters)
        passed += ok
        out.append(ok)
    return out


def plain(value: Any) -> Any:
    """Template values the same whatever the store: dates as ISO text, decimals as floats."""
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    return value


def normalise_id(any_id: str) -> str:
    text = any_id.strip()
    return text.lower() if "@" in text else text


def split_values(row: dict[str, Any]) -> dict[str, Any]:
    return {k.removeprefix(TRAIT_PREFIX): plain(v) for k, v in row.items()
            if k != "person_id"}


class OwnConnection:
    """A DuckDB connection of its own onto the warehouse, for the decisions of a server:
    DuckDB's snapshots let it read the serving tables while the server's connection writes
    (a refresh, a job), so a decision never waits for them. What the store classes need of
    an engine: ``execute`` and, at opening, ``table``."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.cursor = engine.con.con.cursor()

    def execute(self, statement: sge.Expression) -> list[tuple]:
        result = self.cursor.execute(statement.sql(dialect="duckdb"))
        return result.fetchall() if result.description else []

    def table(self, name: str) -> Any:
        return self.engine.table(name)  # its columns, read once (under the server's lock)


class WarehousePeople:
    """People from the warehouse's serving tables (three indexed look-ups)."""

    def __init__(self, engine: Engine | OwnConnection, lock: threading.Lock) -> None:
        self.engine, self.lock = engine, lock
        self.columns = list(engine.table(PEOPLE).columns)

    def _select(self, table: str, columns: list[str], key: str, value: str) -> list[tuple]:
        query = sg.select(*[sg.column(c, quoted=True) for c in columns]).from_(
            sg.table(table, quoted=True)).where(sg.column(key, quoted=True).eq(
                sge.convert(value)))
        return self.engine.execute(query)

    def lookup(self, any_id: str) -> PersonRecord | None:
        with self.lock:
            found = self._select(IDS, ["person_id"], "id", normalise_id(any_id))
            if not found:
                return None
            pid = found[0][0]
            rows = self._select(PEOPLE, self.columns, "person_id", pid)
            offers = {r[0] for r in self._select(ELIGIBILITY, ["offer"], "person_id", pid)}
        values = split_values(dict(zip(self.columns, rows[0], strict=True))) if rows else {}
        return PersonRecord(pid, values, offers)


_TAKE = sg.parse_one(
    f"INSERT INTO {COUNTERS} (key, n, expires_at) VALUES (:key, 1, :expires) "
    f"ON CONFLICT (key) DO UPDATE SET n = {COUNTERS}.n + 1 WHERE {COUNTERS}.n < :lim "
    "RETURNING n", read="postgres")


class WarehouseCaps:
    """Counters in ``decision_counters``, taken in one transaction."""

    def __init__(self, engine: Engine | OwnConnection, lock: threading.Lock) -> None:
        self.engine, self.lock = engine, lock

    def take(self, counters: list[Counter]) -> bool:
        if not counters:
            return True
        with self.lock:
            self.engine.execute(sge.Transaction())
            try:
                for c in counters:
                    expires = sge.null() if c.expires_at is None else sge.cast(
                        sge.convert(c.expires_at.replace(tzinfo=None).isoformat(sep=" ")),
                        sge.DataType.build("timestamp"))
                    stmt = sge.replace_placeholders(
                        _TAKE.copy(), key=sge.convert(c.key), expires=expires,
                        lim=sge.convert(c.limit))
                    if not self.engine.execute(stmt):
                        self.engine.execute(sge.Rollback())
                        return False
            except Exception as exc:
                self.engine.execute(sge.Rollback())
                raise StoreUnavailable(str(exc)) from exc
            self.engine.execute(sge.Commit())
            return True

    def take_first(self, groups: list[list[Counter]], wanted: int) -> list[bool | None]:
        return take_in_turn(self, groups, wanted)


@dataclass
class DecisionStore:
    """What :func:`passerelle.personalize.decide` reads and counts with."""

    definitions: OfferDefinitions
    people: People
    caps: Caps
    timezone: str = "UTC"
    kind: str = "warehouse"
    renderer: Renderer = field(default_factory=Renderer)
    problems: dict[str, str] = field(default_factory=dict)  # part -> last failure
    # learned ranking: (placement, cell, offer) -> (impressions, rewards), read at opening
    posteriors: Posteriors = field(default_factory=dict)
    draws: int = DRAWS

    def health(self) -> dict[str, Any]:
        """``ok`` false while a part failed on its last use (caps then fail closed)."""
        return {"store": self.kind, "ok": not self.problems, "problems": dict(self.problems)}


def warehouse_store(engine: Engine, definitions: OfferDefinitions,
                    timezone: str = "UTC") -> DecisionStore:
    """A store over the warehouse's serving tables (built by ``refresh_decision_store``)."""
    from passerelle.personalize.context import PersonalizeError

    if not engine.exists(PEOPLE) or not engine.exists(COUNTERS):
        raise PersonalizeError("The decision store has not been built in this warehouse.",
                               "Run refresh_decision_store (`passerelle run` will do it).")
    lock = threading.Lock()
    return DecisionStore(definitions, WarehousePeople(engine, lock),
                         WarehouseCaps(engine, lock), timezone)
