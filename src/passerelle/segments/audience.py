"""Audiences: a segment for one channel and one purpose, with a reachable identifier and a
holdout.

Who may be contacted: the people whose current consent grants the audience's purpose
(``purpose:``, else its channel's: email -> ``email_marketing``, sms -> ``sms_marketing``,
ads -> ``ad_audiences``, push -> ``push_notifications``; see
:mod:`passerelle.consent.grants`) and who can be reached on the channel:

- ``email``: ``email`` is known;
- ``sms``: ``phone`` is known;
- ``push``: the app's user id (``customer_id``) addresses the device (its permission is
  checked by the push tool);
- ``ads``: customer-match uploads hashed e-mails and phones: a person counts when one is
  known.

An ads or push audience of a project that declares no ``ad_audiences`` /
``push_notifications`` purpose keeps the rule it had before purposes: a marketing consent
(``email_marketing`` or ``sms_marketing``) and, for ads, only the identifiers consented to
(the e-mail with ``email_marketing``, the phone with ``sms_marketing``).

A consent never expressed is no consent. Among eligible people a holdout
(default 10 %) is drawn by hashing the audience salt and the person id
(:func:`passerelle.measure.design.assign_expr`, identical in Python and SQL), so a person
stays in or out of the holdout across refreshes; holdout people are written with
``group = 'holdout'`` and must never be sent. Raising the percentage keeps everyone who
was already held out (the holdout takes the lowest hash buckets).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import datetime

import ibis
import ibis.expr.datatypes as dt
import ibis.expr.types as ir
import sqlglot as sg
import sqlglot.expressions as sge

from passerelle.consent.grants import granted
from passerelle.engines.base import Engine
from passerelle.measure.design import assign, assign_expr
from passerelle.project.consent_models import audience_purpose
from passerelle.project.segments_models import AudienceConfig, SegmentConfig
from passerelle.segments.compiler import PROFILES, compile_segment
from passerelle.segments.freshness import audience_rows, last_changes
from passerelle.segments.kinds import SegmentError
from passerelle.segments.membership import MEMBERSHIP
from passerelle.tables import AUDIENCE_BUILDS_TABLE, AUDIENCE_MEMBERS_TABLE

AUDIENCE_MEMBERS = AUDIENCE_MEMBERS_TABLE
AUDIENCE_HOLDOUTS = "audience_holdouts"
# One row a build, even an empty one: "built, nobody eligible" must not read as "never
# built", and the exclusion counts stay readable after the build (no personal data here).
AUDIENCE_BUILDS = AUDIENCE_BUILDS_TABLE
# The two groups, named as measurement names them (passerelle.measure.campaigns).
HOLDOUT, TREATED = "holdout", "treated"
_TS = dt.Timestamp()
MEMBERS_SCHEMA = ibis.schema({
    "audience": dt.string, "person_id": dt.string, "group": dt.string, "email": dt.string,
    "phone": dt.string, "run_id": dt.string, "built_at": _TS})
HOLDOUTS_SCHEMA = ibis.schema({
    "audience": dt.string, "person_id": dt.string, "salt": dt.string,
    "first_held_at": _TS, "run_id": dt.string})
BUILDS_SCHEMA = ibis.schema({
    "audience": dt.string, "segment": dt.string, "channel": dt.string, "run_id": dt.string,
    "built_at": _TS, "segment_members": dt.int64, "no_consent": dt.int64,
    "no_identifier": dt.int64, "eligible": dt.int64, "holdout": dt.int64,
    "treated": dt.int64, "purpose": dt.string})


@dataclass
class AudienceSummary:
    audience: str
    segment: str
    channel: str
    segment_members: int
    no_consent: int  # excluded: the purpose is not granted
    no_identifier: int  # excluded: consent, but no address to reach them on
    eligible: int
    holdout: int
    treated: int  # people to send to
    purpose: str | None = None  # None: the ads/push rule of the marketing flags

    def as_dict(self) -> dict:
        return asdict(self)


def _rules(engine: Engine, p: ir.Table, channel: str, purpose: str | None,
           ) -> tuple[ir.BooleanValue, ir.BooleanValue, ir.Value, ir.Value]:
    """(has consent, reachable, email written, phone written) for a channel and purpose."""
    def ok(name: str) -> ir.BooleanValue:
        g = granted(engine, p, name)
        return g if g is not None else ibis.literal(False)

    null = ibis.null(dt.string)
    if channel not in ("email", "sms", "push", "ads"):
        raise SegmentError(f"Unknown channel '{channel}'.", "Use email, sms, push or ads.")
    if purpose is None:  # ads and push before purposes: either marketing consent
        email_ok, sms_ok = ok("email_marketing"), ok("sms_marketing")
        if channel == "push":
            return email_ok | sms_ok, p.customer_id.notnull(), null, null
        email = ibis.ifelse(email_ok, p.email, null)
        phone = ibis.ifelse(sms_ok, p.phone, null)
        return email_ok | sms_ok, email.notnull() | phone.notnull(), email, phone
    consent = ok(purpose)
    # the other identifier is written only under its own consent (a Brevo file's SMS column
    # beside the e-mail), never without it
    if channel == "email":
        return consent, p.email.notnull(), p.email, ibis.ifelse(ok("sms_marketing"), p.phone,
                                                                null)
    if channel == "sms":
        return consent, p.phone.notnull(), ibis.ifelse(ok("email_marketing"), p.email, null), \
            p.phone
    if channel == "push":
        return consent, p.customer_id.notnull(), null, null
    return consent, p.email.notnull() | p.phone.notnull(), p.email, p.phone


def _segment_members(engine: Engine, audience: AudienceConfig, now: datetime,
                     segments: Mapping[str, SegmentConfig] | None,
                     trait_kinds: Mapping[str, str] | None) -> ir.Table:
    if audience.segment is None:
        raise SegmentError(f"Audience '{audience.name}' names no segment.",
                           "Declare the audience under its segment's `audiences:`.")
    if segments is not None:
        if audience.segment not in segments:
            raise SegmentError(f"Audience '{audience.name}': unknown segment "
                               f"'{audience.segment}'.", "Check the segment name.")
        return compile_segment(engine, segments[audience.segment], segments, now, trait_kinds)
    if not engine.exists(MEMBERSHIP):
        raise SegmentError(f"Segment '{audience.segment}' has never been refreshed.",
                           "Run `passerelle run` (or `passerelle segment refresh`) first.")
    m = engine.table(MEMBERSHIP)
    return m.filter(m.segment == ibis.literal(audience.segment, type=dt.string)).select(
        "person_id")


def build_audience(engine: Engine, audience: AudienceConfig, now: datetime, *,
                   segments: Mapping[str, SegmentConfig] | None = None,
                   trait_kinds: Mapping[str, str] | None = None,
                   run_id: str = "") -> tuple[ir.Table, AudienceSummary]:
    """The audience's people (eligible ones, each with ``group`` holdout or treated) and the
    count excluded and why.

    With ``segments`` the segment is compiled live as of ``now``; without, the members of
    its last refresh (``segment_membership``) are used.
    """
    members = _segment_members(engine, audience, now, segments, trait_kinds).distinct()
    p = engine.table(PROFILES)
    j = members.join(p, members.person_id == p.person_id)
    purpose = audience_purpose(audience.channel, audience.purpose)
    consent, reachable, email, phone = _rules(engine, j, audience.channel, purpose)
    flagged = j.select(person_id=members.person_id, _consent=consent,
                       _reach=consent & reachable, email=email, phone=phone)
    eligible = flagged.filter(flagged._reach)
    out = eligible.select(
        audience=ibis.literal(audience.name, type=dt.string), person_id=eligible.person_id,
        group=_group_expr(eligible.person_id, audience),
        email=eligible.email.cast(dt.string), phone=eligible.phone.cast(dt.string),
        run_id=ibis.literal(run_id, type=dt.string), built_at=ibis.literal(now, type=_TS))
    g = _group_expr(flagged.person_id, audience)
    stats = flagged.aggregate(
        n=flagged.count(),
        no_consent=(~flagged._consent).sum(),
        no_identifier=(flagged._consent & ~flagged._reach).sum(),
        eligible=flagged._reach.sum(),
        holdout=(flagged._reach & (g == HOLDOUT)).sum())
    row = engine.to_arrow(stats).to_pylist()[0]
    eligible_n = int(row["eligible"] or 0)
    held = int(row["holdout"] or 0)
    summary = AudienceSummary(
        audience=audience.name, segment=audience.segment or "", channel=audience.channel,
        segment_members=int(row["n"] or 0), no_consent=int(row["no_consent"] or 0),
        no_identifier=int(row["no_identifier"] or 0), eligible=eligible_n, holdout=held,
        treated=eligible_n - held, purpose=purpose)
    return out.cast(MEMBERS_SCHEMA), summary


def write_audience(engine: Engine, audience: AudienceConfig, now: datetime, run_id: str, *,
                   segments: Mapping[str, SegmentConfig] | None = None,
                   trait_kinds: Mapping[str, str] | None = None) -> AudienceSummary:
    """Build the audience and store it: ``audience_members`` (this audience's rows replaced)
    and ``audience_holdouts`` (people held out, appended the first time, kept for
    measurement even after they leave the segment)."""
    rows, summary = build_audience(engine, audience, now, segments=segments,
                                   trait_kinds=trait_kinds, run_id=run_id)
    engine.create_empty(AUDIENCE_MEMBERS, MEMBERS_SCHEMA)
    engine.create_empty(AUDIENCE_HOLDOUTS, HOLDOUTS_SCHEMA)
    ensure_builds(engine)
    staged = f"_audience_next_{hashlib.sha256(audience.name.encode()).hexdigest()[:10]}"
    engine.replace_table(staged, rows)
    new = engine.table(staged)
    held = new.filter(new.group == HOLDOUT)
    known = engine.table(AUDIENCE_HOLDOUTS)
    known = known.filter(known.audience == ibis.literal(audience.name, type=dt.string))
    fresh = held.anti_join(known, "person_id").select(
        audience=held.audience, person_id=held.person_id,
        salt=ibis.literal(audience.holdout_salt, type=dt.string), first_held_at=held.built_at,
        run_id=held.run_id).cast(HOLDOUTS_SCHEMA)
    with engine.transaction():
        engine.delete_where_in(AUDIENCE_MEMBERS, "audience", [audience.name])
        engine.con.insert(AUDIENCE_MEMBERS, new.select(*MEMBERS_SCHEMA.names))
        engine.con.insert(AUDIENCE_HOLDOUTS, fresh)
        engine.delete_where_in(AUDIENCE_BUILDS, "audience", [audience.name])
        engine.con.insert(AUDIENCE_BUILDS, ibis.memtable(
            [{**summary.as_dict(), "run_id": run_id, "built_at": now}],
            schema=BUILDS_SCHEMA).select(*BUILDS_SCHEMA.names))
    engine.drop(staged)
    return summary


def ensure_builds(engine: Engine) -> None:
    """Create ``audience_builds``. Builds stored before it existed (members only) are
    recorded from ``audience_members``, their exclusion counts unknown (NULL), and their
    sent group, once named 'target', renamed 'treated': they stay sendable as they were."""
    if engine.exists(AUDIENCE_BUILDS):
        if "purpose" not in engine.table(AUDIENCE_BUILDS).columns:  # built before purposes
            engine.add_missing_columns(AUDIENCE_BUILDS, BUILDS_SCHEMA)
        return
    if not engine.exists(AUDIENCE_MEMBERS):
        engine.create_empty(AUDIENCE_BUILDS, BUILDS_SCHEMA)
        return
    with engine.transaction():
        group = sg.column("group", quoted=True)
        engine.execute(sge.Update(this=sg.table(AUDIENCE_MEMBERS, quoted=True),
                                  expressions=[group.eq(sge.convert(TREATED))],
                                  where=sge.Where(this=group.eq(sge.convert("target")))))
        a = engine.table(AUDIENCE_MEMBERS)
        per = a.group_by(["audience", "run_id"]).aggregate(
            built_at=a.built_at.max(), treated=(a.group == TREATED).sum().cast("int64"),
            holdout=(a.group == HOLDOUT).sum().cast("int64"))
        unknown = ibis.null(dt.int64)
        engine.replace_table(AUDIENCE_BUILDS, per.select(
            audience=per.audience, segment=ibis.null(dt.string), channel=ibis.null(dt.string),
            run_id=per.run_id, built_at=per.built_at, segment_members=unknown,
            no_consent=unknown, no_identifier=unknown, eligible=per.treated + per.holdout,
            holdout=per.holdout, treated=per.treated,
            purpose=ibis.null(dt.string)).cast(BUILDS_SCHEMA))


def last_build(engine: Engine, audience: str) -> dict | None:
    """The audience's last build (``audience_builds`` row: when, run, counts), or None
    when it was never built."""
    ensure_builds(engine)
    b = engine.table(AUDIENCE_BUILDS)
    rows = engine.to_arrow(b.filter(b.audience == ibis.literal(audience, type=dt.string))
                           .order_by([ibis.desc("built_at"), ibis.desc("run_id")])
                           .limit(1)).to_pylist()
    return rows[0] if rows else None


def _group_expr(person_id: ir.Value, audience: AudienceConfig) -> ir.StringValue:
    pct = audience.holdout_percent
    if pct <= 0:
        return ibis.literal(TREATED, type=dt.string)
    return assign_expr(person_id, audience.holdout_salt, {HOLDOUT: pct, TREATED: 100 - pct})


def holdout_group(person_id: str, audience: AudienceConfig) -> str:
    """The group of one person, computed in Python (the API's answer, same as SQL)."""
    pct = audience.holdout_percent
    if pct <= 0:
        return TREATED
    return assign(person_id, audience.holdout_salt, {HOLDOUT: pct, TREATED: 100 - pct})


def audience_freshness(engine: Engine, audiences: Mapping[str, AudienceConfig],
                       now: datetime) -> list[dict]:
    """Each audience's freshness as of ``now``: when its people were last computed
    (``built_at``), its segment's last and next refresh, and ``stale`` with the reason
    (never built, segment due or failed, or the segment's members changed after the build).
    """
    from passerelle.segments.membership import HISTORY, freshness

    segments = freshness(engine, now)
    ensure_builds(engine)  # one row an audience: each build replaces the last
    built = engine.to_arrow(engine.table(AUDIENCE_BUILDS)).to_pylist()
    changed = engine.to_arrow(last_changes(engine.table(HISTORY))).to_pylist() \
        if engine.exists(HISTORY) else []
    return audience_rows(audiences, segments, built, changed)
