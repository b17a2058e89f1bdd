"""Everything the warehouse holds about one person: their footprint.

Two parts, found the same way for an access request (show it) and an erasure (remove it):

- **source rows**: staged rows of every source that carry one of the person's identifiers
  (:mod:`passerelle.privacy.suppressions` says which column matches which identifier), and
  the raw rows they came from;
- **derived rows**: rows of every other table that names the person: a ``person_id``
  column (profiles, traits and their history, memberships, audiences, exports...) or one of
  their records as a graph node (``node``, ``node_a``, ``node_b``: edges, pins, ledger).

Identifiers another person's records also hold (a family e-mail address, a shop's phone)
are left out and counted: they are not only this person's data, and suppressing them would
erase the other person's orders too.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import ibis
import ibis.expr.types as ir
import pyarrow as pa

from passerelle.engines.base import Engine
from passerelle.errors import PasserelleError
from passerelle.identity.anonymous import ANONYMOUS_IDS
from passerelle.identity.tables import CUSTOMER_RECORDS, PERSON_MAP
from passerelle.identity.view import PersonNotFound
from passerelle.privacy.audit import REQUESTS
from passerelle.privacy.suppressions import SUPPRESSIONS, sha256_hex
from passerelle.project.load import ProjectDefinition
from passerelle.project.models import SourceConfig

NODE_COLUMNS = ("node", "node_a", "node_b")
VALUE_KINDS = ("email", "phone", "loyalty_card")
# the privacy register itself, and the list that keeps the person out, are not erased
KEPT_TABLES = {REQUESTS, SUPPRESSIONS}


@dataclass
class Footprint:
    person_id: str
    nodes: list[str]  # the person's customer records, "<source>:<record id>"
    identifiers: dict[str, list[str]]  # kind -> values held by this person only
    shared: dict[str, int] = field(default_factory=dict)  # kind -> values kept (shared)
    exports: list[dict[str, Any]] = field(default_factory=list)

    def hashes(self) -> ir.Table:
        """(kind, value_sha256) of every identifier, for matching without writing them."""
        pairs = [("record", n) for n in self.nodes] + [
            (kind, v) for kind, values in self.identifiers.items() for v in values]
        return ibis.memtable(pa.table({
            "kind": pa.array([k for k, _ in pairs], pa.string()),
            "value_sha256": pa.array([sha256_hex(v) for _, v in pairs], pa.string())}))

    def suppression_values(self) -> dict[str, list[str]]:
        return {"record": self.nodes, **self.identifiers}


def person_of(project: ProjectDefinition, engine: Engine, subject: str,
              records: Sequence[str] | None = None) -> str:
    """The person a request is about: the one ``subject`` designates or, with ``records``,
    the one those records belong to (the subject may then be a family e-mail that
    designates several people)."""
    from passerelle.identity.service import person_id_of

    if not records:
        return person_id_of(project, engine, subject)
    people = {person_id_of(project, engine, r) for r in records}
    if len(people) > 1:
        raise PasserelleError(f"The records {', '.join(records)} belong to {len(people)} "
                              f"persons: {', '.join(sorted(people))}.",
                              "Name the records of one person at a time.")
    return people.pop()


class SeveralPeople(PasserelleError):
    """The person's records disagree on who they are: IT must choose the records."""


def footprint(engine: Engine, person_id: str, records: Sequence[str] | None = None,
              sources: Mapping[str, SourceConfig] | None = None) -> Footprint:
    """The person's footprint; ``records`` (``source:id``) restricts it to some of their
    records, when identity merged two people. Without it, records that disagree on a first
    name or a birth date stop the request (:class:`SeveralPeople`). ``sources`` lets the
    events carrying the person's identifiers be found (:mod:`passerelle.privacy.events`)."""
    if not engine.exists(PERSON_MAP):
        raise PersonNotFound("Identity has not been resolved yet: there are no persons.",
                             "Run `passerelle run` first.")
    pm = engine.table(PERSON_MAP)
    nodes = engine.to_arrow(pm.filter(pm.person_id == ibis.literal(person_id))
                            .select("node").order_by("node")).column("node").to_pylist()
    if not nodes:
        raise PersonNotFound(f"No person has the id {person_id}.",
                             "Look the person up first: `passerelle profile <identifier>`.")
    if records is not None:
        chosen = sorted(set(records))
        strangers = [r for r in chosen if r not in nodes]
        if strangers or not chosen:
            raise PasserelleError(
                f"{', '.join(strangers) or 'No record'} is not a record of person {person_id}"
                f" (their records: {', '.join(nodes)}).",
                "Give records of this person, as source:id.")
        nodes = chosen
    identifiers: dict[str, list[str]] = {}
    shared: dict[str, int] = {}
    if engine.exists(CUSTOMER_RECORDS):
        cr = engine.table(CUSTOMER_RECORDS)
        owned = cr.join(pm, (cr._source == pm.source) & (cr._record_id == pm.record_id))
        if records is None:
            _one_identity(engine, owned, person_id)
            is_mine = owned.person_id == ibis.literal(person_id)
        else:
            is_mine = owned.node.isin(nodes)
        mine, others = owned.filter(is_mine), owned.filter(~is_mine)
        for kind in VALUE_KINDS:
            values = mine.filter(mine[kind].notnull()).select(value=mine[kind].cast("string"))
            taken = others.select(value=others[kind].cast("string"))
            distinct = values.distinct()
            flagged = distinct.mutate(shared=distinct.value.isin(taken.value))
            rows = engine.to_arrow(flagged.order_by("value")).to_pylist()
            identifiers[kind] = [r["value"] for r in rows if not r["shared"]]
            if any(r["shared"] for r in rows):
                shared[kind] = sum(1 for r in rows if r["shared"])
    if engine.exists(ANONYMOUS_IDS):
        anon = engine.table(ANONYMOUS_IDS)
        devices = engine.to_arrow(
            anon.filter(anon.person_id == ibis.literal(person_id)).select("anonymous_id")
            .order_by("anonymous_id")).column("anonymous_id").to_pylist()
        if records is None:
            identifiers["anonymous_id"] = devices
        elif devices:  # stitched to the merged person: whose they are is not known
            shared["anonymous_id"] = len(devices)
    fp = Footprint(person_id, nodes, identifiers, shared, _exports(engine, person_id))
    if sources is not None:
        from passerelle.privacy.events import add_event_identifiers

        add_event_identifiers(engine, sources, fp)
    return fp


def _one_identity(engine: Engine, owned: ir.Table, person_id: str) -> None:
    """Records of one person must not disagree on a first name or a birth date: a couple
    merged by a shared family address is two people, and erasing by that shared key would
    erase the other one too."""
    mine = owned.filter(owned.person_id == ibis.literal(person_id))
    first = mine.first_name.cast("string").strip().lower()
    signals = mine.aggregate(names=first.nunique(), births=mine.birth_date.nunique())
    counts = engine.to_arrow(signals).to_pylist()[0]
    if counts["names"] <= 1 and counts["births"] <= 1:
        return
    rows = engine.to_arrow(mine.select(
        "node", initial=first.substr(0, 1).upper(),
        born=mine.birth_date.cast("date").year()).order_by("node")).to_pylist()
    listed = "; ".join(
        f"{r['node']} ({r['initial'] or '?'}., born {r['born'] or '?'})" for r in rows)
    raise SeveralPeople(
        f"Person {person_id} holds records of more than one person (first names or birth "
        f"dates differ): {listed}. Erasing by a shared identifier would erase the others.",
        "Check with the person which records are theirs and give only those: "
        "`--records source:id,source:id` (API: \"records\": [...]).")


def _exports(engine: Engine, person_id: str) -> list[dict[str, Any]]:
    """Exports that sent the person somewhere: the destination must be asked to erase too."""
    from passerelle.activation.log import ACTIVATION_LOG, ACTIVATION_LOG_MEMBERS

    if not (engine.exists(ACTIVATION_LOG) and engine.exists(ACTIVATION_LOG_MEMBERS)):
        return []
    log, members = engine.table(ACTIVATION_LOG), engine.table(ACTIVATION_LOG_MEMBERS)
    theirs = members.filter(members.person_id == ibis.literal(person_id)).select("export_id")
    rows = log.filter(log.export_id.isin(theirs.export_id)).select(
        "export_id", "started_at", "audience", "destination", "kind", "target", "file_path",
        "status").order_by("started_at")
    return engine.to_arrow(rows).to_pylist()


def derived_tables(engine: Engine, fp: Footprint) -> dict[str, ir.Table]:
    """For each table naming the person (other than source tables): its rows about them."""
    out = {}
    for name in engine.base_tables():
        if name in KEPT_TABLES or name.startswith(("raw_", "stg_")):
            continue
        table = engine.table(name)
        condition = _names_person(table, fp)
        if condition is not None:
            out[name] = table.filter(condition)
    return out


def _names_person(table: ir.Table, fp: Footprint) -> ir.BooleanValue | None:
    conditions = []
    if "person_id" in table.columns:
        conditions.append(table.person_id.cast("string") == ibis.literal(fp.person_id))
    for column in NODE_COLUMNS:
        if column in table.columns:
            conditions.append(table[column].cast("string").isin(fp.nodes))
    return ibis.or_(*conditions) if conditions else None
