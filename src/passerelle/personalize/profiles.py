"""What the profile API returns for one person: the golden record (masked unless the caller
may see personal data), traits, segment memberships and consents.

Each part is one filtered read of a table by ``person_id`` (the person is found first by
the decision store's identifier index, see :mod:`.store`): never a scan per identifier.
"""

from __future__ import annotations

from typing import Any

import ibis
import ibis.expr.types as ir

from passerelle.engines.base import Engine
from passerelle.identity.golden import CONSENT_FIELDS, GOLDEN_FIELDS
from passerelle.identity.view import mask_field
from passerelle.personalize.store import plain

PARTS = ("golden", "traits", "segments", "consents")
_TRAIT_VALUES = ("value_number", "value_text", "value_date", "value_bool")


def _rows(engine: Engine, expr: ir.Table) -> list[dict[str, Any]]:
    return [{k: plain(v) for k, v in r.items()} for r in engine.to_arrow(expr).to_pylist()]


def _of(engine: Engine, table: str, person_id: str) -> ir.Table | None:
    if not engine.exists(table):
        return None
    t = engine.table(table)
    return t.filter(t.person_id == ibis.literal(person_id))


def golden(engine: Engine, person_id: str, mask: bool) -> dict[str, Any] | None:
    """The golden record's fields and consent flags (None: no profile row)."""
    from passerelle.identity.tables import PROFILES

    rows = _of(engine, PROFILES, person_id)
    if rows is None:
        return None
    columns = [c for c in (*GOLDEN_FIELDS, *CONSENT_FIELDS) if c in rows.columns]
    found = _rows(engine, rows.select(*columns).limit(1))
    if not found:
        return None
    return {k: mask_field(k, v) if mask else v for k, v in found[0].items()}


def traits(engine: Engine, person_id: str) -> dict[str, Any]:
    rows = _of(engine, "traits", person_id)
    if rows is None:
        return {}
    values = [c for c in _TRAIT_VALUES if c in rows.columns]
    out = {}
    for r in _rows(engine, rows.select("trait", *values)):
        out[r["trait"]] = next((r[c] for c in values if r[c] is not None), None)
    return dict(sorted(out.items()))


def segments(engine: Engine, person_id: str) -> list[dict[str, Any]]:
    from passerelle.segments.membership import MEMBERSHIP

    rows = _of(engine, MEMBERSHIP, person_id)
    if rows is None:
        return []
    return _rows(engine, rows.select("segment", "entered_at").order_by("segment"))


def consents(engine: Engine, person_id: str) -> list[dict[str, Any]]:
    """The state of each consent purpose (consent.yml) for the person."""
    from passerelle.consent.build import CONSENTS

    rows = _of(engine, CONSENTS, person_id)
    if rows is None:
        return []
    keep = [c for c in rows.columns if c not in ("person_id", "run_id")]
    return _rows(engine, rows.select(*keep).order_by("purpose"))


def profile(engine: Engine, person_id: str, include: tuple[str, ...] = PARTS,
            mask: bool = True) -> dict[str, Any]:
    out: dict[str, Any] = {"person_id": person_id, "masked": mask}
    if "golden" in include:
        out["golden"] = golden(engine, person_id, mask)
    if "traits" in include:
        out["traits"] = traits(engine, person_id)
    if "segments" in include:
        out["segments"] = segments(engine, person_id)
    if "consents" in include:
        out["consents"] = consents(engine, person_id)
    return out
