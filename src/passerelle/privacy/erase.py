"""Erasure (GDPR art. 17): remove a person from the warehouse, and keep them out.

In one call: the person's identifiers join the suppression list (hashed); the source rows
carrying them are deleted from the staged and raw tables; every table naming the person is
purged (profiles, traits and history, memberships, audiences, identity edges, pins and
ledger, export members, webhook sync state); the dictionaries forget their e-mail and
phone; dead-letter payloads lose their entry; the collector's alias log and tracking-plan
violations lose their events; on request, CSV exports on disk are rewritten without them
(:mod:`passerelle.privacy.exports`); the storage is cleaned of the deleted rows
(:mod:`passerelle.privacy.storage`). The request is registered, with the exports that had
already sent the person elsewhere (those destinations must be asked to erase too:
Passerelle cannot reach into a Brevo account or a partner's database).

What stays, by design: the register row (request id, person id, who, when, counts, records
as hashes) and the hashed identifiers of the suppression list. Source files on disk are the
source systems' data: the next run's loads bring the person back into ``raw_``, and the
suppression step right after staging removes them again.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import ibis
import sqlglot as sg
import sqlglot.expressions as sge

from passerelle.engines.base import Engine
from passerelle.privacy.audit import record_request
from passerelle.privacy.exports import local_export_files
from passerelle.privacy.exports import rewrite_exports as rewrite_files
from passerelle.privacy.footprint import Footprint, derived_tables, footprint
from passerelle.privacy.rows import Removed
from passerelle.privacy.storage import scrub_storage
from passerelle.privacy.suppressions import add_suppressions, apply_to_sources, sha256_hex
from passerelle.project.load import ProjectDefinition
from passerelle.runlog import new_run_id


def preview_erasure(project: ProjectDefinition, engine: Engine, person_id: str,
                    records: Sequence[str] | None = None) -> dict[str, Any]:
    """What :func:`erase_person` would remove, without removing anything."""
    fp = footprint(engine, person_id, records, project.sources)
    applied = apply_to_sources(engine, project.sources.values(), "preview", fp.hashes(),
                               dry_run=True)
    derived = {name: int(engine.to_arrow(rows.count()).as_py())
               for name, rows in derived_tables(engine, fp).items()}
    return _summary(fp, applied, {k: v for k, v in derived.items() if v})


def erase_person(project: ProjectDefinition, engine: Engine, person_id: str, *,
                 requested_by: str | None, reason: str | None,
                 records: Sequence[str] | None = None, rewrite_exports: bool = False,
                 vacuum_full: bool = False) -> dict[str, Any]:
    """Erase the person everywhere (or only ``records``, ``source:id``, when identity merged
    two people); returns (and registers) what was done.

    ``rewrite_exports``: rewrite the CSV exports on disk without the person;
    ``vacuum_full``: on PostgreSQL, ``VACUUM FULL`` the tables touched (on DuckDB the
    warehouse file is always rewritten, see :mod:`passerelle.privacy.storage`)."""
    fp = footprint(engine, person_id, records, project.sources)
    request_id = f"erasure-{new_run_id()}"
    add_suppressions(engine, request_id, fp.suppression_values())
    applied = apply_to_sources(engine, project.sources.values(), request_id)
    _rewrite_dead_letters(engine, person_id)
    _forget_events(engine, project, fp)
    _forget_dictionaries(engine, fp)
    derived: dict[str, int] = {}
    for name, rows in derived_tables(engine, fp).items():
        removed = int(engine.to_arrow(rows.count()).as_py())
        if removed:
            _delete(engine, name, fp)
            derived[name] = removed
    summary = _summary(fp, applied, derived) | {"request_id": request_id}
    summary["exports_rewritten"] = (rewrite_files(engine, fp, summary["export_files"])
                                    if rewrite_exports else [])
    touched = [t for a in applied if a.staged_rows or a.raw_rows
               for t in (f"stg_{a.source}", f"raw_{a.source}")] + list(derived) + _side_tables()
    summary["storage"] = scrub_storage(engine, touched, vacuum_full)
    # the register names no record in clear: hashed as the suppression list hashes them
    detail = {k: v for k, v in summary.items() if k not in ("person_id", "request_id")}
    detail["records"] = sorted(sha256_hex(n) for n in fp.nodes)
    record_request(engine, request_id, "erasure", person_id, requested_by, reason, detail)
    return summary


def _summary(fp: Footprint, applied: list[Removed], derived: dict[str, int]) -> dict[str, Any]:
    return {
        "person_id": fp.person_id,
        "records": fp.nodes,
        "identifiers": {k: len(v) for k, v in fp.identifiers.items() if v},
        "shared_identifiers_kept": fp.shared,
        "source_rows": {a.source: {"staged": a.staged_rows, "raw": a.raw_rows}
                        for a in applied if a.staged_rows or a.raw_rows},
        "derived_rows": derived,
        "exports_to_follow_up": fp.exports,
        "export_files": local_export_files(fp),
    }


def _delete(engine: Engine, name: str, fp: Footprint) -> None:
    """The same rows as :func:`derived_tables` selects, deleted with a sqlglot statement."""
    table = engine.table(name)
    conditions: list[sge.Expression] = []
    if "person_id" in table.columns:
        conditions.append(sg.column("person_id", quoted=True).eq(sge.convert(fp.person_id)))
    for column in ("node", "node_a", "node_b"):
        if column in table.columns:
            conditions.append(sg.column(column, quoted=True).isin(
                *[sge.convert(n) for n in fp.nodes]))
    engine.execute(sge.delete(sg.table(name, quoted=True), where=sge.or_(*conditions)))


def _rewrite_dead_letters(engine: Engine, person_id: str) -> None:
    """Failed webhook batches keep their exact JSON body for a retry: drop the person from
    the bodies that hold them (a handful of rows, hence Python)."""
    from passerelle.activation.sync import DEAD_LETTER_MEMBERS, DEAD_LETTERS

    if not (engine.exists(DEAD_LETTERS) and engine.exists(DEAD_LETTER_MEMBERS)):
        return
    members, letters = engine.table(DEAD_LETTER_MEMBERS), engine.table(DEAD_LETTERS)
    ids = members.filter(members.person_id == ibis.literal(person_id)).dead_letter_id
    for row in engine.to_arrow(letters.filter(letters.dead_letter_id.isin(ids))
                               .select("dead_letter_id", "payload", "people")).to_pylist():
        body = json.loads(row["payload"])
        removed = 0
        for change in ("entered", "updated", "exited"):
            kept = [m for m in body.get(change, []) if m.get("person_id") != person_id]
            removed += len(body.get(change, [])) - len(kept)
            body[change] = kept
        payload = json.dumps(body, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
        engine.execute(sge.update(
            sg.table(DEAD_LETTERS, quoted=True),
            {"payload": sge.convert(payload), "people": sge.convert(row["people"] - removed)},
            where=sg.column("dead_letter_id", quoted=True).eq(sge.convert(
                row["dead_letter_id"]))))


def _forget_events(engine: Engine, project: ProjectDefinition, fp: Footprint) -> None:
    """The collector's alias log: identifier pairs of the person's devices and user ids
    (their tracking-plan violations go with their events, in :func:`apply_to_sources`)."""
    from passerelle.collect.loader import ALIAS_LOG

    if not engine.exists(ALIAS_LOG):
        return
    devices = [sge.convert(v) for v in fp.identifiers.get("anonymous_id", [])]
    conditions: list[sge.Expression] = []
    if devices:
        conditions += [sg.column("anonymous_id", quoted=True).isin(*devices),
                       sg.column("previous_id", quoted=True).isin(*devices)]
    users = [sge.convert(v) for v in fp.identifiers.get("user_id", [])]
    if users:
        conditions.append(sg.column("user_id", quoted=True).isin(*users))
    for source in project.sources.values():
        if source.entity != "events" or not source.customer_source:
            continue
        ids = [n.partition(":")[2] for n in fp.nodes
               if n.partition(":")[0] == source.customer_source]
        if ids:
            conditions.append(sge.and_(
                sg.column("source", quoted=True).eq(sge.convert(source.name)),
                sg.column("user_id", quoted=True).isin(*[sge.convert(i) for i in ids])))
    if conditions:
        engine.execute(sge.delete(sg.table(ALIAS_LOG, quoted=True), where=sge.or_(*conditions)))


def _side_tables() -> list[str]:
    """Tables an erasure deletes from besides sources and derived tables: their pages hold
    the deleted rows until rewritten."""
    from passerelle.activation.sync import DEAD_LETTERS
    from passerelle.collect.loader import ALIAS_LOG
    from passerelle.collect.plan import VIOLATIONS_TABLE
    from passerelle.staging.dictionaries import EMAIL_TABLE, PHONE_TABLE

    return [EMAIL_TABLE, PHONE_TABLE, ALIAS_LOG, VIOLATIONS_TABLE, DEAD_LETTERS]


def _forget_dictionaries(engine: Engine, fp: Footprint) -> None:
    """The normalisation caches map raw spellings to the person's e-mails and phones."""
    from passerelle.staging.dictionaries import EMAIL_TABLE, PHONE_TABLE

    for table, kind in ((EMAIL_TABLE, "email"), (PHONE_TABLE, "phone")):
        values = fp.identifiers.get(kind, [])
        if values and engine.exists(table):
            engine.delete_where_in(table, "value", values)
