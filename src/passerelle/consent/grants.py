"""Who granted a purpose: the one filter audiences, exports, decisions and the profile
view apply.

The current state is ``consents`` (built by the ``consent`` step). A warehouse built before
purposes existed has no such table: the two default purposes are then read from the
golden record's flags (``consent_email``, ``consent_sms``), so it behaves as it did. A
consent never expressed is no consent.
"""

from __future__ import annotations

import ibis
import ibis.expr.types as ir

from passerelle.consent.build import CONSENTS
from passerelle.engines.base import Engine
from passerelle.project.consent_models import LEGACY_PURPOSES

PROFILES = "profiles"


def granted_people(engine: Engine, purpose: str) -> ir.Table | None:
    """``person_id`` of everyone whose current state grants ``purpose``; None when this
    warehouse holds no consent state for it at all (no ``consents`` table, and no golden
    flag for a default purpose)."""
    if engine.exists(CONSENTS):
        c = engine.table(CONSENTS)
        return c.filter((c.purpose == ibis.literal(purpose)) & c.granted).select("person_id")
    flag = LEGACY_PURPOSES.get(purpose)
    if flag is not None and engine.exists(PROFILES):
        p = engine.table(PROFILES)
        if flag in p.columns:
            return p.filter(p[flag].fill_null(False)).select("person_id")
    return None


def granted(engine: Engine, t: ir.Table, purpose: str) -> ir.BooleanValue | None:
    """Whether each row of ``t`` (it has ``person_id``) granted ``purpose``; None as in
    :func:`granted_people`."""
    people = granted_people(engine, purpose)
    if people is None:
        return None
    return t.person_id.isin(people.person_id)
