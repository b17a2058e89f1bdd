"""The decision log: decisions and their outcomes come back as Segment track events through
the collector, and SQL over the ``events`` table joins them.

Events (every property a plain value; lists of offer names are comma-separated text, as
offer names never hold a comma):

- ``Decision Made``, one per decision: ``decision_id``, ``person_id`` (Passerelle's, empty
  for an unknown person), ``placement``, ``group`` (treated or holdout), ``ranking`` (rules
  or learned), ``offer`` (the first message; empty for the default experience),
  ``offers`` (every message), ``probability`` (of the first message), ``cell`` (where a
  learned placement learns), ``candidates`` (the eligible offers, by priority: what
  another policy could have chosen) and ``explored``;
- ``Offer Viewed``, ``Offer Clicked`` (and any reward event a placement declares, e.g. a
  conversion): ``decision_id``, ``offer``, ``placement``, ``group``, ``probability``.

From them: :func:`decision_log` (one row per decision with its reward) feeds the
off-policy read-out and the exploration share; :func:`posterior_counts` (impressions and
rewards per placement, cell and offer) feeds the bandit; the holdout comparison reads the
``Decision Made`` events with the experiments module (:mod:`.uplift`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import ibis
import ibis.expr.datatypes as dt
import ibis.expr.types as ir

from passerelle.engines.base import Engine

DECISION_MADE, OFFER_VIEWED, OFFER_CLICKED = "Decision Made", "Offer Viewed", "Offer Clicked"
POSTERIORS = "decision_posteriors"
POSTERIORS_SCHEMA = ibis.schema({"placement": dt.string, "cell": dt.string,
                                 "offer": dt.string, "trials": dt.int64, "rewards": dt.int64})
_DECISION_FIELDS = {"decision_id": dt.string, "person_id": dt.string, "placement": dt.string,
                    "group": dt.string, "ranking": dt.string, "offer": dt.string,
                    "probability": dt.float64, "cell": dt.string, "candidates": dt.string,
                    "explored": dt.boolean}


def decision_event(decision: Any, *, user_id: str | None = None,
                   anonymous_id: str | None = None) -> dict[str, Any]:
    """The ``Decision Made`` track call of a decision (to send to the collector), under the
    identifier the application knows the person by."""
    first = decision.messages[0] if decision.messages else None
    props = {"decision_id": decision.decision_id, "person_id": decision.person_id,
             "placement": decision.placement, "group": decision.group,
             "ranking": decision.ranking, "offer": first.offer if first else None,
             "offers": ",".join(m.offer for m in decision.messages if m.offer),
             "probability": first.probability if first else 1.0, "cell": decision.cell,
             "candidates": ",".join(decision.candidates), "explored": decision.explored}
    return _track(DECISION_MADE, props, decision.decided_at, user_id, anonymous_id)


def outcome_event(decision: Any, event: str, offer: str | None, *, at: Any = None,
                  user_id: str | None = None,
                  anonymous_id: str | None = None) -> dict[str, Any]:
    """An ``Offer Viewed``, ``Offer Clicked`` or reward call for one message of a decision."""
    message = next((m for m in decision.messages if m.offer == offer), None)
    props = {"decision_id": decision.decision_id, "offer": offer,
             "placement": decision.placement, "group": decision.group,
             "probability": message.probability if message else None}
    return _track(event, props, at or decision.decided_at, user_id, anonymous_id)


def _track(event: str, props: dict[str, Any], at: Any, user_id: str | None,
           anonymous_id: str | None) -> dict[str, Any]:
    call: dict[str, Any] = {"type": "track", "event": event, "properties": props,
                            "timestamp": at.isoformat()}
    if user_id:
        call["userId"] = user_id
    if anonymous_id:
        call["anonymousId"] = anonymous_id
    return call


def _json(events: ir.Table) -> ir.JSONValue:
    return events.properties.cast("json")


def decisions(events: ir.Table, placement: str | None = None) -> ir.Table:
    """One row per decision (a decision sent twice counts once), with ``decided_at``."""
    e = events.filter(events.event == DECISION_MADE)
    p = _json(e)
    e = e.mutate(**{k: p[k].unwrap_as(t) for k, t in _DECISION_FIELDS.items()})
    e = e.filter(e.decision_id.notnull())
    if placement is not None:
        e = e.filter(e.placement == placement)
    first = {k: e[k].argmin(e.timestamp) for k in _DECISION_FIELDS if k != "decision_id"}
    out = e.group_by("decision_id").aggregate(decided_at=e.timestamp.min(), **first)
    # the default experience is the action "" (a policy may choose it too)
    return out.mutate(offer=out.offer.fill_null(""), candidates=out.candidates.fill_null(""),
                      cell=out.cell.fill_null(""))


def outcomes(events: ir.Table, event: str) -> ir.Table:
    """(decision_id, offer) of every message that had ``event`` (counted once)."""
    e = events.filter(events.event == event)
    p = _json(e)
    e = e.select(decision_id=p["decision_id"].unwrap_as("string"),
                 offer=p["offer"].unwrap_as("string").fill_null(""))
    return e.filter(e.decision_id.notnull()).distinct()


def decision_log(events: ir.Table, placement: str, reward_event: str) -> ir.Table:
    """The decisions of ``placement``, each with ``reward`` 1 when its first message (or
    its default) got ``reward_event``, else 0."""
    d = decisions(events, placement)
    r = outcomes(events, reward_event)
    joined = d.left_join(r, [d.decision_id == r.decision_id, d.offer == r.offer])
    return joined.select(*[d[c] for c in d.columns],
                         reward=r.decision_id.notnull().cast(dt.int64))


def posterior_counts(events: ir.Table, placements: Mapping[str, str]) -> ir.Table:
    """(placement, cell, offer, trials, rewards) for the learned placements (name -> reward
    event): a trial is a message viewed (or rewarded: a click implies a view), in the cell
    of its treated decision."""
    parts = []
    for name, reward_event in sorted(placements.items()):
        d = decisions(events, name)
        d = d.filter((d.group == "treated") & (d.ranking == "learned"))
        rewarded = outcomes(events, reward_event)
        shown = ibis.union(outcomes(events, OFFER_VIEWED), rewarded, distinct=True)
        shown = shown.filter(shown.offer != "")
        flagged = shown.left_join(rewarded, [shown.decision_id == rewarded.decision_id,
                                             shown.offer == rewarded.offer]).select(
            decision_id=shown.decision_id, offer=shown.offer,
            won=rewarded.decision_id.notnull().cast(dt.int64))
        mine = flagged.join(d.select("decision_id", "cell"), "decision_id")
        parts.append(mine.group_by(["cell", "offer"]).aggregate(
            trials=mine.count().cast(dt.int64), rewards=mine.won.sum().cast(dt.int64),
        ).mutate(placement=ibis.literal(name, type=dt.string)))
    if not parts:
        return ibis.memtable([], schema=POSTERIORS_SCHEMA)
    every = ibis.union(*parts, distinct=False) if len(parts) > 1 else parts[0]
    return every.select(*POSTERIORS_SCHEMA.names).cast(POSTERIORS_SCHEMA)


def write_posteriors(engine: Engine, placements: Mapping[str, str]) -> int:
    """Rebuild ``decision_posteriors`` from the events (empty without events); returns
    its rows."""
    if placements and engine.exists("events"):
        engine.replace_table(POSTERIORS, posterior_counts(engine.table("events"), placements))
    else:
        engine.replace_table(POSTERIORS, ibis.memtable([], schema=POSTERIORS_SCHEMA))
    return engine.count(POSTERIORS)


def read_posteriors(engine: Engine) -> dict[tuple[str, str, str], tuple[int, int]]:
    """The posterior counts decisions rank with (a few rows: placements x cells x offers)."""
    if not engine.exists(POSTERIORS):
        return {}
    rows = engine.to_arrow(engine.table(POSTERIORS)).to_pylist()
    return {(r["placement"], r["cell"], r["offer"]): (int(r["trials"]), int(r["rewards"]))
            for r in rows}


def learned_placements(defs: Any) -> dict[str, str]:
    """Learned placement -> its reward event."""
    return {n: p.reward_event for n, p in defs.placements.items() if p.ranking == "learned"}


__all__ = ["DECISION_MADE", "OFFER_CLICKED", "OFFER_VIEWED", "POSTERIORS", "decision_event",
           "decision_log", "decisions", "learned_placements", "outcome_event", "outcomes",
           "posterior_counts", "read_posteriors", "write_posteriors"]
