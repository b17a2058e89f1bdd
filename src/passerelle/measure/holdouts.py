"""Incrementality from audience holdouts: what the sends of an audience *caused*.

An audience (``segments/*.yml``) keeps a random holdout: eligible people who are never
sent. Comparing the people sent with the people held out gives the effect of the sends
themselves, free of the sales that would have happened anyway. That is the number the CFO
should see; ROAS and attributed revenue are not.

Where the groups come from (all written by Passerelle itself):

- **treated**: people in ``activation_log_members`` of the audience's exports that reached
  their destination (status ``delivered`` or ``partial``); their clock starts at the first
  export that contained them;
- **held out**: people in ``audience_holdouts``; their clock starts at the first such export
  of the audience at or after they were first held out (the send they were kept out of).
  Held-out people with no export after them were never "not sent": they are left out.
  Held-out people who were later sent anyway (the salt or percentage changed) count as
  treated, and are counted in a note.

Per person, conversions (orders attributed to the person by ``person_orders``, cancelled
orders left out, refunds counted negative) within ``[start, start + window)``. The engine
returns, per audience and group, people, converters, Σ revenue and Σ revenue²
(:func:`passerelle.measure.campaigns.holdout_stats`); the estimators are those of
:func:`passerelle.measure.campaigns.incrementality`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import ibis
import ibis.expr.datatypes as dt
import ibis.expr.types as ir
import pyarrow as pa

from passerelle.engines.base import Engine
from passerelle.errors import PasserelleError
from passerelle.formatting import DEFAULT, Formatter
from passerelle.measure.campaigns import (
    _check_window,
    check_currencies,
    holdout_stats,
    incrementality,
    spend_totals,
)
from passerelle.measure.intervals import Interval, MeasureError

AUDIENCE_HOLDOUTS = "audience_holdouts"  # written by passerelle.segments.audience
ACTIVATION_LOG = "activation_log"  # written by passerelle.activation.log
ACTIVATION_LOG_MEMBERS = "activation_log_members"
SENT_STATUSES = ("delivered", "partial")
TREATED, HOLDOUT = "treated", "holdout"
CFO_LABEL = "Incremental ROI: the number the CFO should see"


def _exports(log: ir.Table) -> ir.Table:
    ok = log.filter(log.status.isin(list(SENT_STATUSES)))
    return ok.select(_export_id=ok.export_id, _audience=ok.audience,
                     _sent_at=ok.started_at.cast("timestamp"))


def audience_groups(holdouts: ir.Table, log: ir.Table, members: ir.Table,
                    audiences: Sequence[str] | None = None) -> ir.Table:
    """Treated and held-out people of each audience, with the start of their window.

    Columns ``campaign_id`` (the audience), ``person_id``, ``group`` (treated / holdout),
    ``assigned_at``: the input of :func:`holdout_stats`.
    """
    ex = _exports(log)
    h = holdouts.select(_aud=holdouts.audience, _pid=holdouts.person_id.cast("string"),
                        _held=holdouts.first_held_at.cast("timestamp"))
    if audiences is not None:
        ex = ex.filter(ex._audience.isin(list(audiences)))
        h = h.filter(h._aud.isin(list(audiences)))
    m = members.join(ex, members.export_id == ex._export_id)
    sent = m.group_by(_aud=m._audience, _pid=m.person_id.cast("string")).aggregate(
        assigned_at=m._sent_at.min())
    hj = h.join(ex, [h._aud == ex._audience, ex._sent_at >= h._held])
    held = hj.group_by([hj._aud, hj._pid]).aggregate(assigned_at=hj._sent_at.min())
    held = held.anti_join(sent, ["_aud", "_pid"])
    out = [t.select(campaign_id=t._aud, person_id=t._pid,
                    group=ibis.literal(g, type=dt.string), assigned_at=t.assigned_at)
           for t, g in ((sent, TREATED), (held, HOLDOUT))]
    return out[0].union(out[1], distinct=False)


def audience_sends(holdouts: ir.Table, log: ir.Table, members: ir.Table) -> ir.Table:
    """Per audience: ``exports, first_sent, last_sent, held, held_then_sent,
    held_after_last_send`` (the bookkeeping behind the groups, for notes)."""
    ex = _exports(log)
    sends = ex.group_by(audience=ex._audience).aggregate(
        exports=ex.count(), first_sent=ex._sent_at.min(), last_sent=ex._sent_at.max())
    m = members.join(ex, members.export_id == ex._export_id)
    sent = m.select(_aud=m._audience, _pid=m.person_id.cast("string")).distinct()
    h = holdouts.select(_aud=holdouts.audience, _pid=holdouts.person_id.cast("string"),
                        _held=holdouts.first_held_at.cast("timestamp"))
    h = h.left_join(sends, h._aud == sends.audience)
    h = h.mutate(_later=ibis.ifelse(h.last_sent.notnull() & (h.last_sent >= h._held), 0, 1))
    h = h.left_join(sent.mutate(_was_sent=ibis.literal(1)), ["_aud", "_pid"])
    held = h.group_by(audience=h._aud).aggregate(
        held=h.count(), held_then_sent=h._was_sent.fill_null(0).sum(),
        held_after_last_send=h._later.sum())
    return sends.outer_join(held, sends.audience == held.audience).select(
        audience=ibis.coalesce(sends.audience, held.audience),
        exports=sends.exports.fill_null(0), first_sent=sends.first_sent,
        last_sent=sends.last_sent, held=held.held.fill_null(0),
        held_then_sent=held.held_then_sent.fill_null(0),
        held_after_last_send=held.held_after_last_send.fill_null(0))


def audience_spend(ad_spend: ir.Table, campaigns: Mapping[str, str], currency: str,
                   rates: Mapping[str, float] | None, to_rows: Any) -> dict[str, float]:
    """Spend of each audience's campaign (``campaigns``: audience -> ``ad_spend.campaign_id``),
    in ``currency``. Spend of other campaigns is not read, so their currency does not matter."""
    wanted = sorted(set(campaigns.values()))
    if not wanted:
        return {}
    s = ad_spend.filter(ad_spend.campaign_id.isin(wanted))
    check_currencies([r["currency"] for r in to_rows(s.select("currency").distinct())],
                     currency, rates)
    by_campaign = {r["campaign_id"]: float(r["spend"] or 0.0)
                   for r in to_rows(spend_totals(s, currency, rates, by=("campaign_id",)))}
    return {a: by_campaign[c] for a, c in campaigns.items() if c in by_campaign}


_EXAMPLES = {"AUDIENCE=CAMPAIGN_ID": "vip_email=spring_sale",
             "AUDIENCE=AMOUNT": "vip_email=1200", "CURRENCY=RATE": "USD=0.92"}


def parse_pairs(values: Sequence[str] | None, what: str) -> dict[str, Any]:
    """``["a=b", ...]`` (CLI options, API query) -> ``{"a": "b"}``; amounts and rates
    (``what`` ``AUDIENCE=AMOUNT``, ``CURRENCY=RATE``) as numbers."""
    number = what in ("AUDIENCE=AMOUNT", "CURRENCY=RATE")
    out: dict[str, Any] = {}
    for item in values or []:
        key, sep, value = item.partition("=")
        try:
            if not (sep and key.strip() and value.strip()):
                raise ValueError(item)
            out[key.strip()] = float(value) if number else value.strip()
        except ValueError as exc:
            raise PasserelleError(f"'{item}' is not {what}.",
                                  f"Write it as {what}, e.g. {_EXAMPLES.get(what, 'a=b')}."
                                  ) from exc
        if number and not math.isfinite(out[key.strip()]):
            raise PasserelleError(f"'{item}' is not a finite number.", f"e.g. {_EXAMPLES[what]}.")
    return out


def _iv(i: Interval | None) -> dict[str, float] | None:
    if i is None:
        return None
    return {"estimate": i.estimate, "low": i.low, "high": i.high}


def _stat(row: Mapping[str, Any] | None) -> tuple[float, float, float, float]:
    if row is None:
        return (0.0, 0.0, 0.0, 0.0)
    return tuple(float(row[k] or 0) for k in ("people", "converters", "revenue_sum",
                                              "revenue_sq"))  # type: ignore[return-value]


def audience_result(audience: str, treated: Mapping[str, Any] | None,
                    holdout: Mapping[str, Any] | None, spend: float | None,
                    level: float = 0.95, currency: str = "EUR") -> dict[str, Any]:
    """One audience's incrementality as a plain dict (``error`` set when there is no answer).

    ``treated`` / ``holdout`` are :func:`holdout_stats` rows (or None for an empty group).
    """
    tstat, hstat = _stat(treated), _stat(holdout)
    out: dict[str, Any] = {"audience": audience, "treated_people": int(tstat[0]),
                           "holdout_people": int(hstat[0]), "spend": spend, "notes": [],
                           "error": None}
    try:
        inc = incrementality(tstat, hstat, spend, level)
    except MeasureError as exc:
        out["error"] = {"reason": exc.reason, "instruction": exc.instruction}
        out["headline"] = f"{audience}: no answer. {exc.reason}"
        return out
    out.update({
        "treated_converters": int(tstat[1]), "holdout_converters": int(hstat[1]),
        "conversion_rate_treated": _iv(inc.conversion_treated),
        "conversion_rate_holdout": _iv(inc.conversion_holdout),
        "revenue_per_person_treated": _iv(inc.revenue_treated),
        "revenue_per_person_holdout": _iv(inc.revenue_holdout),
        "conversion_lift_points": _iv(inc.absolute_lift),
        "conversion_lift_relative": _iv(inc.relative_lift),
        "revenue_per_person_lift": _iv(inc.revenue_per_person_lift),
        "revenue_per_person_lift_relative": _iv(inc.revenue_relative_lift),
        "incremental_conversions": _iv(inc.incremental_conversions),
        "incremental_revenue": _iv(inc.incremental_revenue),
        "incremental_roi": _iv(inc.incremental_roi),
        "notes": list(inc.notes),
    })
    if spend is None:
        out["notes"].append("No spend found for this audience's campaign: incremental ROI "
                            "needs one (give the campaign id or the spend).")
    out["headline"] = headline(out, currency)
    return out


def headline(result: Mapping[str, Any], currency: str, fmt: Formatter = DEFAULT) -> str:
    """One audience's answer in a sentence, from :func:`audience_result`'s values, written
    with ``fmt`` (the project's locale in the CLI)."""
    if result.get("error"):
        return f"{result['audience']}: no answer. {result['error']['reason']}"

    def pct(iv: Mapping[str, float]) -> tuple[str, str, str]:
        return tuple(fmt.percent(iv[k], sign=True) for k in ("estimate", "low", "high"))

    def money(iv: Mapping[str, float]) -> tuple[str, str, str]:
        return tuple(fmt.money(iv[k], currency) for k in ("estimate", "low", "high"))

    parts = [f"{result['audience']}:"]
    if (rel := result.get("conversion_lift_relative")) is not None:
        e, lo, hi = pct(rel)
        parts.append(f"{e} buyers caused by the sends (interval {lo} to {hi});")
    else:
        a = result["conversion_lift_points"]
        e, lo, hi = (fmt.number(a[k] * 100, 2) for k in ("estimate", "low", "high"))
        parts.append(f"{e} points of conversion (interval {lo} to {hi});")
    if (rev := result.get("incremental_revenue")) is not None:
        e, lo, hi = money(rev)
        parts.append(f"incremental revenue {e} ({lo} to {hi});")
    if (roi := result.get("incremental_roi")) is not None:
        e, lo, hi = pct(roi)
        parts.append(f"{CFO_LABEL}: {e} (interval {lo} to {hi}).")
    elif result.get("spend") is None or result["spend"] <= 0:
        parts.append("no incremental ROI (no spend).")
    else:
        parts.append("no incremental ROI (no revenue lift to set against the spend).")
    return " ".join(parts)


def incrementality_from_tables(groups: ir.Table, conversions: ir.Table, engine: Engine,
                               window: timedelta = timedelta(days=14),
                               spend: Mapping[str, float] | None = None,
                               level: float = 0.95, currency: str = "EUR",
                               audiences: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """:func:`audience_result` for every audience of ``groups`` (an :func:`audience_groups`
    table, or any table of that shape) and every name of ``audiences``."""
    _check_window(window)
    rows = engine.to_arrow(holdout_stats(groups, conversions, window)).to_pylist()
    by: dict[str, dict[str, Any]] = {}
    for r in rows:
        by.setdefault(r["campaign_id"], {})[r["group"]] = r
    names = sorted(set(by) | set(audiences or ()))
    spend = spend or {}
    return [audience_result(a, by.get(a, {}).get(TREATED), by.get(a, {}).get(HOLDOUT),
                            spend.get(a), level, currency) for a in names]


def _defined_audiences(project: Any) -> dict[str, Any]:
    defs = getattr(project.definition, "segments", None)
    return dict(defs.audiences) if defs is not None and defs.audiences else {}


def incrementality_report(project: Any, engine: Engine, window: timedelta = timedelta(days=14),
                          audiences: Sequence[str] | None = None,
                          campaigns: Mapping[str, str] | None = None,
                          spend: Mapping[str, float] | None = None,
                          rates: Mapping[str, float] | None = None,
                          level: float = 0.95) -> dict[str, Any]:
    """Incrementality of every audience with a holdout (or of ``audiences``).

    Spend: ``spend`` (audience -> amount in the project currency) when given, else the
    ``ad_spend`` rows whose ``campaign_id`` is ``campaigns[audience]`` (default: the
    audience's name), converted with ``rates``. Returns ``{"window_days", "level",
    "currency", "label", "data_until", "audiences": [...]}``, one dict per audience (see
    :func:`audience_result`) with the send bookkeeping added.
    """
    from passerelle.measure import warehouse as jr

    _check_window(window)
    defined = _defined_audiences(project)
    unknown = sorted(set(audiences or ()) - set(defined))
    holdouts_exist = engine.exists(AUDIENCE_HOLDOUTS)
    sends_exist = engine.exists(ACTIVATION_LOG) and engine.exists(ACTIVATION_LOG_MEMBERS)
    if unknown:
        known_rows: set[str] = set()
        if holdouts_exist:
            h = engine.table(AUDIENCE_HOLDOUTS)
            known_rows = set(engine.to_arrow(h.filter(h.audience.isin(unknown)).select(
                "audience").distinct()).column(0).to_pylist())
        missing = [a for a in unknown if a not in known_rows]
        if missing:
            known = ", ".join(sorted(defined)) or "none"
            raise PasserelleError(f"There is no audience named '{missing[0]}'.",
                                  f"Audiences of this project: {known} (under `audiences:` "
                                  "in segments/*.yml).")
    jr.require_tables(engine, ["orders", "person_map"])
    currency = getattr(project.config, "currency", None) or "EUR"
    to_rows = lambda e: engine.to_arrow(e).to_pylist()  # noqa: E731
    names = list(audiences) if audiences else sorted(defined)
    book: dict[str, dict[str, Any]] = {}
    if sends_exist:
        log, mem = engine.table(ACTIVATION_LOG), engine.table(ACTIVATION_LOG_MEMBERS)
        h = engine.table(AUDIENCE_HOLDOUTS) if holdouts_exist else _no_holdouts()
        book = {r["audience"]: r for r in to_rows(audience_sends(h, log, mem))}
        if not audiences:
            names = sorted(set(names) | set(book))
    results: list[dict[str, Any]] = []
    measurable = [a for a in names if _measurable(a, defined, book) is None]
    if measurable:
        costs = dict(spend or {})
        if engine.exists("ad_spend"):
            wanted = {a: (campaigns or {}).get(a, a) for a in measurable if a not in costs}
            costs = {**audience_spend(engine.table("ad_spend"), wanted, currency, rates,
                                      to_rows), **costs}
        groups = audience_groups(engine.table(AUDIENCE_HOLDOUTS), engine.table(ACTIVATION_LOG),
                                 engine.table(ACTIVATION_LOG_MEMBERS), measurable)
        conv = jr.conversions(engine, project.sources)
        found = {r["audience"]: r for r in incrementality_from_tables(
            groups, conv, engine, window, costs, level, currency, measurable)}
        data_until = to_rows(conv.aggregate(last=conv.conversion_time.max()))[0]["last"]
    else:
        found, data_until = {}, None
    for a in names:
        cfg = defined.get(a)
        row: dict[str, Any] = {"audience": a, "segment": getattr(cfg, "segment", None),
                               "channel": getattr(cfg, "channel", None),
                               "holdout_percent": getattr(cfg, "holdout_percent", None)}
        b = book.get(a, {})
        row.update({k: b.get(k) for k in ("exports", "first_sent", "last_sent")})
        why = _measurable(a, defined, book)
        if why is not None:
            row.update({"error": {"reason": why[0], "instruction": why[1]},
                        "headline": f"{a}: no answer. {why[0]}", "notes": []})
            results.append(row)
            continue
        row.update(found[a])
        row["spend_campaign"] = None if spend and a in spend else (campaigns or {}).get(a, a)
        row["notes"] = _send_notes(b, window, data_until) + row["notes"]
        results.append(row)
    return {"window_days": window.total_seconds() / 86400, "level": level,
            "currency": currency, "label": CFO_LABEL, "data_until": data_until,
            "audiences": results}


def _no_holdouts() -> ir.Table:
    """An empty ``audience_holdouts`` (no audience was ever built with a holdout)."""
    return ibis.memtable(pa.table({"audience": pa.array([], pa.string()),
                                   "person_id": pa.array([], pa.string()),
                                   "first_held_at": pa.array([], pa.timestamp("us"))}))


def _measurable(audience: str, defined: Mapping[str, Any],
                book: Mapping[str, Mapping[str, Any]]) -> tuple[str, str] | None:
    """None when the audience can be measured, else (reason, instruction)."""
    cfg = defined.get(audience)
    b = book.get(audience)
    if cfg is not None and cfg.holdout_percent <= 0 and not (b and b.get("held")):
        return ("This audience keeps no holdout (holdout_percent: 0), so what its sends caused "
                "cannot be measured.", "Set holdout_percent (10 is usual) in its segment file.")
    if not b or not b.get("exports"):
        return ("This audience was never sent (no delivered export in the activation log), so "
                "there is nothing to measure yet.", "Send it with `passerelle export`.")
    if not b.get("held"):
        return ("This audience has no held-out people yet.",
                "Build it with a holdout (`passerelle run` or `passerelle audience build`), "
                "then send it.")
    return None


def _send_notes(b: Mapping[str, Any], window: timedelta,
                data_until: datetime | None) -> list[str]:
    notes: list[str] = []
    if b.get("held_then_sent"):
        notes.append(f"{b['held_then_sent']:,} held-out people were later sent (the holdout's "
                     "salt or percentage changed); they count as treated.")
    if b.get("held_after_last_send"):
        notes.append(f"{b['held_after_last_send']:,} people held out after the last send are "
                     "not counted (no send they were kept out of yet).")
    last = b.get("last_sent")
    if last is not None and (data_until is None or last + window > data_until):
        notes.append(f"The window of the last send ends after the latest order in the warehouse "
                     f"({data_until or 'none'}): conversions of recent sends are still coming, "
                     "so rates are understated in both groups.")
    return notes


def incrementality_text(report: Mapping[str, Any], fmt: Formatter = DEFAULT) -> str:
    """The report in plain words, one block per audience (what the CLI prints), figures
    written with ``fmt``."""
    currency = report["currency"]
    lines = [f"Incrementality from holdouts: {fmt.number(report['window_days'])}-day window "
             f"after each send, {fmt.percent(report['level'], 0)} intervals, amounts in "
             f"{currency}.",
             f"{report['label']}: (incremental revenue − spend) / spend.", ""]
    for r in report["audiences"]:
        lines.append(headline(r, currency, fmt))
        if r.get("error"):
            lines.append(f"  → {r['error']['instruction']}")
        else:
            ct, ch = r["conversion_rate_treated"], r["conversion_rate_holdout"]
            lines.append(f"  sent {fmt.count(r['treated_people'], 'person', 'people')}, "
                         f"converted {fmt.percent(ct['estimate'], 2)}; held out "
                         f"{fmt.number(r['holdout_people'])}, converted "
                         f"{fmt.percent(ch['estimate'], 2)}")
            rt, rh = r["revenue_per_person_treated"], r["revenue_per_person_holdout"]
            lines.append(f"  revenue per person: sent {fmt.money(rt['estimate'], currency)}, "
                         f"held out {fmt.money(rh['estimate'], currency)}; spend "
                         + ("none" if r["spend"] is None else fmt.money(r["spend"], currency)))
        for note in r.get("notes") or []:
            lines.append(f"  note: {note}")
        lines.append("")
    if not report["audiences"]:
        lines.append("No audience with a holdout in this project (segments/*.yml `audiences:`).")
    return "\n".join(lines).rstrip() + "\n"


__all__ = [
    "CFO_LABEL",
    "audience_groups",
    "audience_result",
    "audience_sends",
    "audience_spend",
    "headline",
    "incrementality_from_tables",
    "incrementality_report",
    "incrementality_text",
    "parse_pairs",
]

