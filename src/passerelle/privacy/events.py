"""Events of a person: found by every identifier they carry, not only by their columns.

A collector event names its person in many ways: a ``userId`` (an e-shop account id, which
the events source's ``customer_source`` may or may not declare), a device (``anonymousId``)
stitched to them, an e-mail in ``traits`` or a phone in ``properties``. Erasure adds two
kinds of identifier to the footprint, both applied to every events source by the suppression
list (so they are removed now, and again when a reloaded file brings them back):

- ``event``: ``<source>:<message id>`` of the events whose JSON (``properties``,
  ``context``, and the collector's ``traits`` in ``raw_``) holds one of the person's own
  e-mails or phones, as a JSON string (``"marie@example.fr"``: an exact value, not a part
  of a longer one), under its normalised form or any spelling the sources used for it;
- ``user_id``: the user ids of those events and of the person's devices (events and the
  collector's alias log), unless a device or customer record of someone else also carries
  them. Every event with such a ``user_id`` is theirs, past and future.

The search is SQL on the JSON text (the value is a literal of the query, never SQL text),
run in the engine.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import ibis
import ibis.expr.datatypes as dt
import ibis.expr.types as ir

from passerelle.engines.base import Engine
from passerelle.identity.anonymous import ALIASES_VIEW, ANONYMOUS_IDS
from passerelle.identity.tables import PERSON_MAP
from passerelle.project.models import SourceConfig

JSON_FIELDS = ("properties", "context")
RAW_ONLY_JSON = ("traits",)  # the collector's raw column that staging does not keep


def add_event_identifiers(engine: Engine, sources: Mapping[str, SourceConfig],
                          fp: Any) -> None:
    """Add ``event`` and ``user_id`` identifiers to the footprint ``fp`` (a
    :class:`passerelle.privacy.footprint.Footprint`, which calls this), in place."""
    events = [s for s in sources.values() if s.entity == "events"]
    needles = _needles(engine, fp.identifiers)
    matched: list[ir.Table] = []  # (source, message_id, user_id)
    for source in events:
        matched += _json_matches(engine, source, needles)
    devices = fp.identifiers.get("anonymous_id", [])
    emails = fp.identifiers.get("email", [])
    users: list[ir.Table] = []
    if engine.exists("events"):
        ev = engine.table("events")
        by_id = ev.anonymous_id.isin(devices) if devices else ibis.literal(False)
        if emails:
            by_id |= ev.email.isin(emails)
        users.append(ev.filter(by_id).select(user_id=ev.user_id.cast(dt.string)))
    if devices and engine.exists(ALIASES_VIEW):
        log = engine.table(ALIASES_VIEW)
        users.append(log.filter(log.anonymous_id.isin(devices) | log.previous_id.isin(devices))
                     .select(user_id=log.user_id.cast(dt.string)))
    found_events: list[str] = []
    if matched:
        union = matched[0].union(*matched[1:]) if len(matched) > 1 else matched[0]
        rows = engine.to_arrow(union.distinct()).to_pylist()
        found_events = sorted({f"{r['source']}:{r['message_id']}" for r in rows})
        users.append(union.select("user_id"))
    fp.identifiers["event"] = found_events
    if not users:
        fp.identifiers["user_id"] = []
        return
    candidates = users[0].union(*users[1:]) if len(users) > 1 else users[0]
    candidates = candidates.filter(candidates.user_id.notnull() & (candidates.user_id != ""))
    others = _others_user_ids(engine, sources, fp)
    if others is not None:
        flagged = candidates.distinct().mutate(shared=candidates.user_id.isin(others))
    else:
        flagged = candidates.distinct().mutate(shared=ibis.literal(False))
    rows = engine.to_arrow(flagged.order_by("user_id")).to_pylist()
    fp.identifiers["user_id"] = [r["user_id"] for r in rows if not r["shared"]]
    if any(r["shared"] for r in rows):
        fp.shared["user_id"] = sum(1 for r in rows if r["shared"])


def _needles(engine: Engine, identifiers: dict[str, list[str]]) -> list[str]:
    """The person's own e-mails and phones as JSON strings: the normalised values and the
    spellings the sources used for them (read from the normalisation dictionaries)."""
    from passerelle.staging.dictionaries import EMAIL_TABLE, PHONE_TABLE

    values: set[str] = set()
    for table, kind in ((EMAIL_TABLE, "email"), (PHONE_TABLE, "phone")):
        own = identifiers.get(kind, [])
        values.update(own)
        if own and engine.exists(table):
            t = engine.table(table)
            values.update(engine.to_arrow(t.filter(t.value.isin(own)).select("raw"))
                          .column("raw").to_pylist())
    # compared with the lower-cased JSON text: an e-mail's case means nothing
    return sorted({f'"{v.strip().lower()}"' for v in values if v and v.strip()})


def _json_matches(engine: Engine, source: SourceConfig, needles: list[str]) -> list[ir.Table]:
    """(source, message_id, user_id) of the staged and raw events of ``source`` whose JSON
    holds one of ``needles``."""
    if not needles:
        return []
    out = []
    stg_name, raw_name = f"stg_{source.name}", f"raw_{source.name}"
    if engine.exists(stg_name):
        stg = engine.table(stg_name)
        columns = [c for c in JSON_FIELDS if c in stg.columns]
        if columns:
            hit = _holds(stg, columns, needles)
            out.append(stg.filter(hit).select(source=ibis.literal(source.name),
                                              message_id=stg._record_id.cast(dt.string),
                                              user_id=stg.user_id.cast(dt.string)))
    mappings = source.mappings()
    if engine.exists(raw_name) and "message_id" in mappings:
        raw = engine.table(raw_name)
        names = {mappings[f].column for f in JSON_FIELDS if f in mappings} | set(RAW_ONLY_JSON)
        columns = sorted(c for c in names if c and c in raw.columns)
        user = mappings["user_id"].column if "user_id" in mappings else None
        if columns:
            hit = _holds(raw, columns, needles)
            out.append(raw.filter(hit).select(
                source=ibis.literal(source.name),
                message_id=raw[mappings["message_id"].column].cast(dt.string).strip(),
                user_id=(raw[user].cast(dt.string).strip() if user in raw.columns
                         else ibis.null(dt.string))))
    return out


def _holds(table: ir.Table, columns: list[str], needles: list[str]) -> ir.BooleanValue:
    texts = [table[c].cast(dt.string).lower() for c in columns]
    return ibis.or_(*[text.contains(ibis.literal(n)) for text in texts for n in needles])


def _others_user_ids(engine: Engine, sources: Mapping[str, SourceConfig],
                     fp: Any) -> ir.Column | None:
    """User ids that designate someone else too: a customer record of another person (in
    the events sources' customer sources), or seen with a device stitched to another."""
    parts: list[ir.Table] = []
    customer_sources = sorted({s.customer_source for s in sources.values()
                               if s.entity == "events" and s.customer_source})
    if customer_sources and engine.exists(PERSON_MAP):
        pm = engine.table(PERSON_MAP)
        parts.append(pm.filter(pm.source.isin(customer_sources) & ~pm.node.isin(fp.nodes))
                     .select(user_id=pm.record_id.cast(dt.string)))
    if engine.exists(ANONYMOUS_IDS):
        anon = engine.table(ANONYMOUS_IDS)
        theirs = anon.filter(anon.person_id != ibis.literal(fp.person_id)).anonymous_id
        if engine.exists("events"):
            ev = engine.table("events")
            parts.append(ev.filter(ev.anonymous_id.isin(theirs))
                         .select(user_id=ev.user_id.cast(dt.string)))
        if engine.exists(ALIASES_VIEW):
            log = engine.table(ALIASES_VIEW)
            parts.append(log.filter(log.anonymous_id.isin(theirs) | log.previous_id.isin(theirs))
                         .select(user_id=log.user_id.cast(dt.string)))
    if not parts:
        return None
    union = parts[0].union(*parts[1:]) if len(parts) > 1 else parts[0]
    return union.user_id
