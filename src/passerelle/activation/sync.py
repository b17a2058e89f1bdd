"""Webhook syncs: only what changed since the last delivered snapshot, never a half-sent
audience counted as sent, and failed batches kept as dead letters that IT can retry.

State: ``activation_sync_state(audience, destination, person_id, email, phone, synced_at,
export_id)`` is what the destination is known to hold. A sync compares the audience's
treated members with it: people missing from the state have *entered*, people in the state
no longer in the audience have *exited*, people whose e-mail or phone changed are *updated*.
The changes are numbered into batches in SQL (``_activation_pending_*``, dropped after).

Each batch that the receiver accepts advances the state for exactly its people, in one
transaction with the export-log members. A batch that fails after its retries becomes a
row of ``activation_dead_letters`` (with its exact body, so a retry sends the same bytes
and the same idempotency key); the batches after it are not sent (the receiver is
probably down) and are dead-lettered too, with 0 attempts. The next sync recomputes the
difference from the state, so it covers the open dead letters of that audience and
destination: they are marked ``superseded`` rather than sent twice.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Mapping

import httpx
import ibis
import ibis.expr.types as ir
import pyarrow as pa
import sqlglot as sg
import sqlglot.expressions as sge

from passerelle.activation.log import (
    ExportResult,
    finish_export,
    record_members,
    start_export,
)
from passerelle.activation.members import (
    consent_note,
    left_out,
    sendable_build,
    treated,
    with_fields,
)
from passerelle.activation.webhook import Attempts, post_batch
from passerelle.engines.base import Engine
from passerelle.project.destinations_models import DestinationError, WebhookDestination
from passerelle.runlog import utcnow

SYNC_STATE = "activation_sync_state"
DEAD_LETTERS = "activation_dead_letters"
DEAD_LETTER_MEMBERS = "activation_dead_letter_members"

STATE_SCHEMA = ibis.schema({
    "audience": "string", "destination": "string", "person_id": "string", "email": "string",
    "phone": "string", "synced_at": "timestamp", "export_id": "string"})
DEAD_LETTER_SCHEMA = pa.schema([
    ("dead_letter_id", pa.string()),
    ("export_id", pa.string()),  # the delivery (sync) the batch belonged to
    ("audience", pa.string()),
    ("destination", pa.string()),
    ("batch_id", pa.string()),  # the Idempotency-Key header
    ("batch_no", pa.int64()),
    ("people", pa.int64()),
    ("payload", pa.string()),  # the exact JSON body, re-sent as is by a retry
    ("error", pa.string()),
    ("status_code", pa.int64()),
    ("attempts", pa.int64()),
    ("first_attempt_at", pa.timestamp("us")),
    ("last_attempt_at", pa.timestamp("us")),
    ("status", pa.string()),  # open | delivered | superseded
    ("resolved_by", pa.string()),  # export id of the retry or sync that closed it
])
DEAD_MEMBER_SCHEMA = ibis.schema({"dead_letter_id": "string", "person_id": "string",
                                  "change": "string", "email": "string", "phone": "string"})
_CHANGE_ORDER = {"entered": 0, "updated": 1, "exited": 2}


def _tables(engine: Engine) -> None:
    engine.create_empty(SYNC_STATE, STATE_SCHEMA)
    engine.create_empty(DEAD_LETTER_MEMBERS, DEAD_MEMBER_SCHEMA)
    if not engine.exists(DEAD_LETTERS):
        engine.create_empty(DEAD_LETTERS, ibis.Schema.from_pyarrow(DEAD_LETTER_SCHEMA))


def changes(engine: Engine, audience: str, name: str, attributes: dict[str, str],
            purpose: str | None = None) -> ir.Table:
    """Entered, updated and exited members since the last delivered snapshot (a person who
    withdrew the purpose exits)."""
    current = with_fields(engine, treated(engine, audience, purpose), attributes)
    state = engine.table(SYNC_STATE)
    state = state.filter((state.audience == audience) & (state.destination == name))
    s = state.select(_pid=state.person_id, _email=state.email, _phone=state.phone)
    joined = current.left_join(s, current.person_id == s._pid)
    change = ibis.cases(
        (joined._pid.isnull(), "entered"),
        (~joined.email.identical_to(joined._email) | ~joined.phone.identical_to(joined._phone),
         "updated"),
        else_=None)
    entered = joined.mutate(change=change).filter(lambda t: t.change.notnull()).drop(
        "_pid", "_email", "_phone")
    gone = state.anti_join(current, state.person_id == current.person_id)
    exited = gone.select(
        person_id=gone.person_id, email=gone.email, phone=gone.phone,
        first_name=ibis.null("string"), last_name=ibis.null("string"),
        **{k: ibis.null("string") for k in attributes}, change=ibis.literal("exited"))
    return entered.union(exited.select(*entered.columns))


def sync_webhook(engine: Engine, audience: str, destination: WebhookDestination, *,
                 name: str = "webhook", user: str | None = None,
                 client: httpx.Client | None = None,
                 sleep: Callable[[float], None] = time.sleep,
                 allow_empty: bool = False) -> ExportResult:
    """Send the changes of ``audience`` since the last sync to the webhook, batch by batch.

    The result's ``status`` is ``delivered`` (every batch accepted, or nothing to send),
    ``partial`` or ``failed``; ``people`` counts only accepted people; ``dead_letters`` lists
    the dead letters created. Nothing is raised for a receiver that fails: the failure is
    recorded and returned. An empty audience is refused unless ``allow_empty`` (its sync
    would remove everyone the receiver holds).
    """
    sendable_build(engine, audience, allow_empty=allow_empty)
    _tables(engine)
    export_id = start_export(engine, audience, name, "webhook", _target(destination.url), user)
    pending = f"_activation_pending_{uuid.uuid4().hex[:12]}"
    result = ExportResult(export_id, audience, name, "webhook", _target(destination.url),
                          "failed", 0)
    try:
        result.no_consent, result.purpose = left_out(engine, audience, destination.purpose)
        diff = changes(engine, audience, name, destination.attributes, destination.purpose)
        order = ibis.cases(*((diff.change == c, n) for c, n in _CHANGE_ORDER.items()))
        numbered = diff.mutate(_batch=(ibis.row_number().over(
            order_by=[order, diff.person_id]) // destination.batch_size).cast("int64"))
        engine.replace_table(pending, numbered)
        p = engine.table(pending)
        counts = {r["change"]: int(r["n"]) for r in engine.to_arrow(
            p.group_by("change").aggregate(n=p.count())).to_pylist()}
        batches = -(-sum(counts.values()) // destination.batch_size)
        _supersede(engine, audience, name, export_id)
        own = client is None
        http = client or httpx.Client()
        delivered, failed_at = 0, None
        try:
            for number in range(batches):
                body, people = _payload(engine, pending, number, batches, audience, name,
                                        export_id, destination.attributes)
                batch_id = f"{export_id}-{number + 1}"
                if failed_at is None:
                    outcome = post_batch(http, destination, body, batch_id, export_id, sleep)
                else:
                    now = utcnow()
                    outcome = Attempts(False, 0, now, now, None,
                                       f"not sent: batch {failed_at + 1} failed before it")
                if outcome.ok:
                    with engine.transaction():
                        _advance(engine, audience, name, export_id,
                                 engine.table(pending).filter(lambda t, n=number: t._batch == n))
                    delivered += people
                else:
                    failed_at = number if failed_at is None else failed_at
                    result.dead_letters.append(_dead_letter(
                        engine, pending, number, batch_id, body, people, outcome, audience,
                        name, export_id))
        finally:
            if own:
                http.close()
        summary = ", ".join(f"{c} {counts.get(c, 0)}" for c in _CHANGE_ORDER)
        sent = batches - len(result.dead_letters)
        result.people = delivered
        result.status = ("delivered" if not result.dead_letters else
                         "partial" if sent else "failed")
        result.detail = f"{summary}; {sent} of {batches} batches delivered" + (
            f"; {len(result.dead_letters)} dead-lettered" if result.dead_letters else ""
        ) + consent_note(result.no_consent, result.purpose)
        return finish_export(engine, result)
    except BaseException as exc:
        result.detail = f"interrupted: {exc}"
        finish_export(engine, result)
        raise
    finally:
        engine.drop(pending)


def retry_dead_letters(engine: Engine, destinations: Mapping[str, WebhookDestination], *,
                       ids: list[str] | None = None, audience: str | None = None,
                       user: str | None = None, client: httpx.Client | None = None,
                       sleep: Callable[[float], None] = time.sleep) -> list[ExportResult]:
    """Re-send open dead letters (all, or those of ``ids`` / ``audience``), oldest first.

    Each retry is an export of its own in the log; an accepted batch advances the sync state
    for its people and closes the dead letter (``delivered``); a refused one stays open with
    its attempts and error updated.
    """
    _tables(engine)
    letters = [row for row in list_dead_letters(engine, status="open", audience=audience,
                                                with_payload=True)
               if ids is None or row["dead_letter_id"] in ids]
    results = []
    own = client is None
    http = client or httpx.Client()
    try:
        for row in sorted(letters, key=lambda r: (r["first_attempt_at"], r["batch_no"])):
            destination = destinations.get(row["destination"])
            if not isinstance(destination, WebhookDestination):
                raise DestinationError(
                    f"Dead letter {row['dead_letter_id']} is for the webhook destination "
                    f"'{row['destination']}', which is not defined any more.",
                    "Restore destinations/{}.yml, or leave the dead letter open.".format(
                        row["destination"]))
            results.append(_retry_one(engine, row, destination, user, http, sleep))
    finally:
        if own:
            http.close()
    return results


def list_dead_letters(engine: Engine, status: str | None = "open",
                      audience: str | None = None, with_payload: bool = False) -> list[dict]:
    """Dead letters (open ones by default), oldest first; the payload only when asked."""
    if not engine.exists(DEAD_LETTERS):
        return []
    t = engine.table(DEAD_LETTERS)
    if status is not None:
        t = t.filter(t.status == status)
    if audience is not None:
        t = t.filter(t.audience == audience)
    if not with_payload:
        t = t.drop("payload")
    return engine.to_arrow(t.order_by(["first_attempt_at", "batch_no"])).to_pylist()


# -- internals ----------------------------------------------------------------------------
def _target(url: str) -> str:
    return url.split("?", 1)[0]  # a query string may carry a token: never logged


def _payload(engine: Engine, pending: str, number: int, batches: int, audience: str,
             name: str, export_id: str, attributes: dict[str, str]) -> tuple[bytes, int]:
    t = engine.table(pending)
    rows = engine.to_arrow(t.filter(t._batch == number).order_by("person_id").drop("_batch"))
    body: dict[str, object] = {"audience": audience, "destination": name,
                               "delivery_id": export_id, "batch_id": f"{export_id}-{number + 1}",
                               "batch": number + 1, "batches": batches,
                               "entered": [], "updated": [], "exited": []}
    for member in rows.to_pylist():  # one JSON body: the transport itself is per row
        change = member.pop("change")
        if change == "exited":
            member = {k: member[k] for k in ("person_id", "email", "phone")}
        body[change].append(member)  # type: ignore[union-attr]
    text = json.dumps(body, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
    return text.encode("utf-8"), rows.num_rows


def _advance(engine: Engine, audience: str, name: str, export_id: str, batch: ir.Table) -> None:
    """The destination now holds ``batch``: move the state and log its people."""
    _delete_state(engine, audience, name, batch.select("person_id"))
    kept = batch.filter(batch.change != "exited")
    engine.con.insert(SYNC_STATE, kept.select(
        audience=ibis.literal(audience), destination=ibis.literal(name),
        person_id=kept.person_id, email=kept.email, phone=kept.phone,
        synced_at=ibis.literal(utcnow(), "timestamp"), export_id=ibis.literal(export_id)))
    record_members(engine, export_id, batch.select("person_id"))


def _delete_state(engine: Engine, audience: str, name: str, people: ir.Table) -> None:
    subquery = sg.parse_one(str(engine.con.compile(people)), read=engine.dialect)
    where = sge.and_(
        sge.EQ(this=sg.column("audience", quoted=True), expression=sge.convert(audience)),
        sge.EQ(this=sg.column("destination", quoted=True), expression=sge.convert(name)),
        sg.column("person_id", quoted=True).isin(query=subquery))
    engine.execute(sge.delete(sg.table(SYNC_STATE, quoted=True), where=where))


def _dead_letter(engine: Engine, pending: str, number: int, batch_id: str, body: bytes,
                 people: int, outcome: Attempts, audience: str, name: str,
                 export_id: str) -> str:
    dead_id = f"dl-{uuid.uuid4().hex[:16]}"
    row = {"dead_letter_id": dead_id, "export_id": export_id, "audience": audience,
           "destination": name, "batch_id": batch_id, "batch_no": number + 1,
           "people": people, "payload": body.decode("utf-8"), "error": outcome.error,
           "status_code": outcome.status_code, "attempts": outcome.attempts,
           "first_attempt_at": outcome.first_at, "last_attempt_at": outcome.last_at,
           "status": "open", "resolved_by": None}
    t = engine.table(pending)
    batch = t.filter(t._batch == number)
    with engine.transaction():
        engine.append_arrow(DEAD_LETTERS, pa.table({k: [v] for k, v in row.items()},
                                                   schema=DEAD_LETTER_SCHEMA).to_reader())
        engine.con.insert(DEAD_LETTER_MEMBERS, batch.select(
            dead_letter_id=ibis.literal(dead_id), person_id=batch.person_id,
            change=batch.change, email=batch.email, phone=batch.phone))
    return dead_id


def _retry_one(engine: Engine, row: dict, destination: WebhookDestination, user: str | None,
               http: httpx.Client, sleep: Callable[[float], None]) -> ExportResult:
    export_id = start_export(engine, row["audience"], row["destination"], "webhook",
                             _target(destination.url), user)
    result = ExportResult(export_id, row["audience"], row["destination"], "webhook",
                          _target(destination.url), "failed", 0,
                          detail=f"retry of dead letter {row['dead_letter_id']}")
    outcome = post_batch(http, destination, row["payload"].encode("utf-8"), row["batch_id"],
                         row["export_id"], sleep)
    members = engine.table(DEAD_LETTER_MEMBERS)
    batch = members.filter(members.dead_letter_id == row["dead_letter_id"])
    where = _eq("dead_letter_id", row["dead_letter_id"])
    with engine.transaction():
        if outcome.ok:
            _advance(engine, row["audience"], row["destination"], export_id, batch)
            values = {"status": sge.convert("delivered"), "resolved_by": sge.convert(export_id)}
            result.status, result.people = "delivered", int(row["people"])
        else:
            values = {"error": sge.convert(outcome.error),
                      "status_code": sge.convert(outcome.status_code)}
            result.detail += f": {outcome.error}"
            result.dead_letters.append(row["dead_letter_id"])
        values["attempts"] = sge.Add(this=sg.column("attempts", quoted=True),
                                     expression=sge.convert(outcome.attempts))
        values["last_attempt_at"] = sge.cast(sge.convert(outcome.last_at.isoformat(sep=" ")),
                                             "TIMESTAMP")
        engine.execute(sge.update(sg.table(DEAD_LETTERS, quoted=True), values, where=where))
        finish_export(engine, result)
    return result


def _supersede(engine: Engine, audience: str, name: str, export_id: str) -> None:
    where = sge.and_(_eq("audience", audience), _eq("destination", name), _eq("status", "open"))
    engine.execute(sge.update(sg.table(DEAD_LETTERS, quoted=True),
                              {"status": sge.convert("superseded"),
                               "resolved_by": sge.convert(export_id)}, where=where))


def _eq(column: str, value: object) -> sge.Expression:
    return sge.EQ(this=sg.column(column, quoted=True), expression=sge.convert(value))
