"""Which traits can be skipped: their inputs, definition and time did not move since they
were last computed.

A trait's value is a function of (its definition, the rows it reads, person_map, ``now``).
Its fingerprint covers each part:

- the definition (``model_dump_json``) and :data:`VERSION` (bumped when the computation
  itself changes);
- for every source of the entities it reads (order lines also read orders; attribution reads
  the customer sources through ``customer_records``): the source's configuration, its load
  ledger summary (:func:`passerelle.state.raw_state`) and the fingerprint its staging step
  remembered (which also covers the timezone and region);
- a summary of ``person_map`` (rows, persons, latest ``assigned_at``: a record that moves to
  another person gets a new ``assigned_at``, one that disappears changes the count);
- the part of ``now`` the trait depends on (:func:`time_key`).

Without a load ledger (tables written by hand, as in tests) nothing says whether rows changed,
so no fingerprint is given and the trait is recomputed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from passerelle import state
from passerelle.engines.base import Engine
from passerelle.identity.attribution import PERSON_MAP
from passerelle.project.models import SourceConfig
from passerelle.project.traits_models import (
    BUILTIN_ENTITY,
    TIME_COLUMN,
    AggregateTrait,
    BuiltinTrait,
)
from passerelle.sources import LOADS_TABLE

VERSION = "traits-2"
# built-ins whose value moves with the run's *day* even without new rows
DAILY_BUILTINS = frozenset({"days_since_last_visit", "rfm", "clv", "churn_risk"})

Trait = AggregateTrait | BuiltinTrait


def entities(trait: Trait) -> set[str]:
    """The entity tables a trait reads (besides person_map and customer_records)."""
    entity = trait.entity if isinstance(trait, AggregateTrait) else BUILTIN_ENTITY[trait.builtin]
    return {entity, "orders"} if entity == "order_lines" else {entity}


def time_key(trait: Trait, now: datetime, future_rows: bool) -> str:
    """What of ``now`` the trait's value depends on.

    - ``window_days`` set: the window ``(now - N days, now]`` moves with every run, even
      without new data, so the exact instant (a daily run always recomputes it);
    - RFM, CLV, churn risk, days since last visit: whole days since a date, so the day;
    - the rest (counts, sums, firsts, lasts, modes over the whole history): nothing, unless
      rows dated after ``now`` exist (they enter the trait as time passes), then the instant.
    """
    if getattr(trait, "window_days", None) is not None or future_rows:
        return now.isoformat()
    if isinstance(trait, BuiltinTrait) and trait.builtin in DAILY_BUILTINS:
        return now.date().isoformat()
    return "any"


def fingerprints(engine: Engine, traits: Sequence[Trait], sources: Mapping[str, SourceConfig],
                 now: datetime) -> dict[str, str | None]:
    """trait name -> fingerprint of what its values depend on (None: cannot tell)."""
    if not engine.exists(LOADS_TABLE) or not engine.exists(PERSON_MAP):
        return {t.name: None for t in traits}
    persons = _person_map_state(engine)
    needed = set().union(*(entities(t) for t in traits)) if traits else set()
    future = {e: _has_rows_after(engine, e, now) for e in needed}
    loads, remembered = _ledger(engine), _remembered(engine)
    source_parts: dict[str, list[str]] = {}

    def part(entity: str) -> list[str]:
        if entity not in source_parts:
            names = sorted(n for n, s in sources.items() if s.entity == entity)
            source_parts[entity] = [
                p for n in names for p in (n, sources[n].model_dump_json(),
                                           loads.get(n, "0:None"),
                                           remembered.get(f"stage:{n}", "none"))]
        return source_parts[entity]

    out: dict[str, str | None] = {}
    for trait in traits:
        read = sorted(entities(trait))
        parts = [VERSION, trait.model_dump_json(), persons, *part("customers")]
        for entity in read:
            parts += [entity, *part(entity)]
        parts.append(time_key(trait, now, any(future[e] for e in read)))
        out[trait.name] = state.fingerprint(*parts)
    return out


def current(engine: Engine, prints: Mapping[str, str | None]) -> set[str]:
    """The traits whose fingerprint equals the one remembered after their last computation."""
    remembered = _remembered(engine)
    return {name for name, p in prints.items()
            if p is not None and remembered.get(step(name)) == p}


def remember(engine: Engine, prints: Mapping[str, str | None], names: Sequence[str],
             run_id: str) -> None:
    for name in names:
        if prints.get(name) is not None:
            state.remember(engine, step(name), prints[name], run_id)  # type: ignore[arg-type]


def step(name: str) -> str:
    return f"trait:{name}"


def _person_map_state(engine: Engine) -> str:
    pm = engine.table(PERSON_MAP)
    row = engine.to_arrow(pm.aggregate(n=pm.count(), persons=pm.person_id.nunique(),
                                       last=pm.assigned_at.max())).to_pylist()[0]
    return f"{row['n']}:{row['persons']}:{row['last']}"


def _ledger(engine: Engine) -> dict[str, str]:
    """source -> committed loads summary, as :func:`passerelle.state.raw_state` gives it (one
    query for every source)."""
    loads = engine.table(LOADS_TABLE)
    rows = engine.to_arrow(loads.group_by("source").aggregate(
        n=loads.count(), last=loads.load_id.max())).to_pylist()
    return {r["source"]: f"{r['n']}:{r['last']}" for r in rows}


def _remembered(engine: Engine) -> dict[str, str]:
    """step -> fingerprint remembered by :func:`passerelle.state.remember`."""
    if not engine.exists(state.STATE_TABLE):
        return {}
    rows = engine.to_arrow(engine.table(state.STATE_TABLE).select("step", "fingerprint"))
    return {r["step"]: r["fingerprint"] for r in rows.to_pylist()}


def _has_rows_after(engine: Engine, entity: str, now: datetime) -> bool:
    """Rows dated after ``now`` come into the traits as time passes (a day's orders loaded
    with a future timestamp, a clock skew): their presence makes every trait time-bound."""
    table_name = "orders" if entity == "order_lines" else entity
    if not engine.exists(table_name):
        return False
    table = engine.table(table_name)
    value = engine.to_arrow(table.aggregate(m=table[TIME_COLUMN[table_name]].max())
                            ).to_pylist()[0]["m"]
    return value is not None and value > now
