"""What the profile API returns for one person: the golden record (masked unless the caller
may see personal data), traits, segment memberships and consents.

Each part is one filtered read of a table by ``person_id`` (the person is found first by
the decision store's identifier index, see :mod:`.store`), as one small SQL statement built
with sqlglot: a :class:`ProfileReader` learns the tables' columns once, so a request costs
a few point reads, not a query plan per table through Ibis.
"""

from __future__ import annotations

from typing import Any

import sqlglot as sg
import sqlglot.expressions as sge

from passerelle.engines.base import Engine
from passerelle.identity.golden import CONSENT_FIELDS, GOLDEN_FIELDS
from passerelle.identity.view import mask_field
from passerelle.personalize.store import plain

PARTS = ("golden", "traits", "segments", "consents")
_EMPTY: dict[str, Any] = {"golden": None, "traits": {}, "segments": [], "consents": []}
_TRAIT_VALUES = ("value_number", "value_text", "value_date", "value_bool")


# the serving copies of each part, one row a person or a few, sorted on person_id
SERVING = {"golden": "decision_golden", "traits": "decision_traits",
           "segments": "decision_segments", "consents": "decision_consents"}


def sources() -> dict[str, str]:
    """The warehouse table each part is copied from."""
    from passerelle.consent.build import CONSENTS
    from passerelle.identity.tables import PROFILES
    from passerelle.segments.membership import MEMBERSHIP

    return {"golden": PROFILES, "traits": "traits", "segments": MEMBERSHIP,
            "consents": CONSENTS}


class ProfileReader:
    """Point reads of one person's profile parts; the tables' columns are read once.
    ``serving``: read the sorted copies the store refresh writes (:func:`write_serving`)
    rather than the warehouse's own tables."""

    def __init__(self, engine: Engine, serving: bool = False) -> None:
        self.engine = engine
        self.tables = dict(SERVING) if serving else sources()
        self.columns: dict[str, list[str]] = {}
        for part, table in self.tables.items():
            if engine.exists(table):
                self.columns[part] = list(engine.table(table).columns)
        wanted = {
            "golden": [c for c in (*GOLDEN_FIELDS, *CONSENT_FIELDS)
                       if c in self.columns.get("golden", [])],
            "traits": ["trait", *[c for c in _TRAIT_VALUES
                                  if c in self.columns.get("traits", [])]],
            "segments": ["segment", "entered_at"],
            "consents": [c for c in self.columns.get("consents", [])
                         if c not in ("person_id", "run_id")],
        }
        self.select = {part: wanted[part] for part in self.columns}

    def _read(self, part: str, person_id: str) -> list[dict[str, Any]]:
        columns = self.select.get(part)
        if not columns:
            return []
        query = sg.select(*[sg.column(c, quoted=True) for c in columns]).from_(
            sg.table(self.tables[part], quoted=True)).where(
            sg.column("person_id", quoted=True).eq(sge.convert(person_id)))
        order = {"traits": "trait", "segments": "segment", "consents": "purpose"}.get(part)
        if order is not None:
            query = query.order_by(sg.column(order, quoted=True))
        return [{c: plain(v) for c, v in zip(columns, row, strict=True)}
                for row in self.engine.execute(query)]

    def golden(self, person_id: str, mask: bool) -> dict[str, Any] | None:
        rows = self._read("golden", person_id)
        if not rows:
            return None
        return {k: mask_field(k, v) if mask else v for k, v in rows[0].items()}

    def traits(self, person_id: str) -> dict[str, Any]:
        values = self.select.get("traits", [])[1:]
        return {r["trait"]: next((r[c] for c in values if r[c] is not None), None)
                for r in self._read("traits", person_id)}

    def profile(self, person_id: str, include: tuple[str, ...] = PARTS,
                mask: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {"person_id": person_id, "masked": mask}
        if "golden" in include:
            out["golden"] = self.golden(person_id, mask)
        if "traits" in include:
            out["traits"] = self.traits(person_id)
        if "segments" in include:
            out["segments"] = self._read("segments", person_id)
        if "consents" in include:
            out["consents"] = self._read("consents", person_id)
        return out


def profile(engine: Engine, person_id: str, include: tuple[str, ...] = PARTS,
            mask: bool = True) -> dict[str, Any]:
    """One person's profile parts (a reader made for this call)."""
    return ProfileReader(engine).profile(person_id, include, mask)


def profile_rows(engine: Engine, who: Any = None) -> Any:
    """One row a person (of ``who.person_id`` when given): ``person_id`` and the profile
    parts as lists of structs, for the serving store in Redis (:mod:`.redis_store`)."""
    import ibis

    from passerelle.identity.tables import PROFILES

    reader = ProfileReader(engine)
    p = engine.table(PROFILES)
    if who is not None:
        p = p.filter(p.person_id.cast("string").isin(who.person_id))
    golden = reader.select.get("golden", [])
    rows = p.select(person_id=p.person_id.cast("string"), **{c: p[c] for c in golden})
    for part in ("traits", "segments", "consents"):
        columns = reader.select.get(part)
        if not columns:
            continue
        t = engine.table(reader.tables[part])
        if who is not None:
            t = t.filter(t.person_id.cast("string").isin(who.person_id))
        item = ibis.struct({c: t[c] for c in columns})
        per = t.group_by(_pid=t.person_id.cast("string")).aggregate(
            **{f"__{part}": item.collect()})
        rows = rows.left_join(per, rows.person_id == per._pid).drop("_pid")
    return rows


def profile_doc(row: dict[str, Any], golden: list[str]) -> dict[str, Any]:
    """A row of :func:`profile_rows` as the JSON document Redis keeps (unmasked: the API
    masks when it reads)."""
    traits = {}
    for t in row.get("__traits") or []:
        traits[t["trait"]] = next((plain(v) for k, v in t.items()
                                   if k != "trait" and v is not None), None)
    return {"golden": {c: plain(row.get(c)) for c in golden},
            "traits": dict(sorted(traits.items())),
            "segments": sorted(_plain_items(row.get("__segments")), key=lambda r: r["segment"]),
            "consents": sorted(_plain_items(row.get("__consents")), key=lambda r: r["purpose"])}


def _plain_items(items: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    return [{k: plain(v) for k, v in item.items()} for item in items or []]


def shape(person_id: str, doc: dict[str, Any], include: tuple[str, ...],
          mask: bool) -> dict[str, Any]:
    """The API's answer from a stored document: the parts asked for, masked or not."""
    out: dict[str, Any] = {"person_id": person_id, "masked": mask}
    for part in include:
        value = doc.get(part)
        if part == "golden" and value is not None and mask:
            value = {k: mask_field(k, v) for k, v in value.items()}
        out[part] = value if value is not None else _EMPTY[part]
    return out


def write_serving(engine: Engine, who: Any = None) -> dict[str, int]:
    """(Re)write the sorted serving copies of the profile parts (for everyone, or only the
    people of ``who.person_id``, in one transaction per part); returns rows a part."""
    reader = ProfileReader(engine)
    out = {}
    for part, columns in reader.select.items():
        t = engine.table(reader.tables[part])
        target = SERVING[part]
        whole = who is None or not engine.exists(target)
        if not whole:
            t = t.filter(t.person_id.cast("string").isin(who.person_id))
        rows = t.select(person_id=t.person_id.cast("string"),
                        **{c: t[c] for c in columns if c != "person_id"})
        if whole:
            engine.replace_table(target, rows.order_by("person_id"))
        else:
            with engine.transaction():
                engine.execute(sge.delete(sg.table(target, quoted=True), where=sg.column(
                    "person_id", quoted=True).isin(*[sge.convert(v) for v in (
                        engine.to_arrow(who.select("person_id"))["person_id"].to_pylist())])))
                existing = engine.table(target).schema()
                engine.con.insert(target, rows.select(
                    *[rows[c].cast(ty) for c, ty in existing.items()]))
        out[part] = engine.count(target) if who is None else 0
    return out
