"""Experiments defined vs experiments seen in exposure events (`passerelle experiments list`),
read without Ibis on a DuckDB warehouse once the queries are kept
(:meth:`passerelle.core.Project.rows`)."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from passerelle.errors import PasserelleError
from passerelle.tables import ANONYMOUS_IDS_TABLE, CUSTOMER_RECORDS_TABLE, PERSON_MAP_TABLE

REQUIRED = ("events", PERSON_MAP_TABLE)
SEEN_BY_DEFAULT = ("Experiment Viewed", "experiment_id")
# The code the queries come from (relative to the passerelle package): kept SQL is compiled
# again when it changes.
CODE = ("measure/coverage.py", "identity/attribution.py", "model.py")


def experiments_coverage(project: Any, engine: Any = None) -> list[dict[str, Any]]:
    """Experiments defined and experiments seen in exposure events, side by side.

    One row per experiment id: ``experiment, experiment_id, defined, people, first_seen,
    last_seen, status`` (``ok``, ``defined, never seen``, ``seen, not defined``), so a test
    launched without its definition, or a definition whose event never fires, is visible.
    ``project``: a :class:`~passerelle.core.Project` (``engine`` is the project's own).
    """
    defined = dict(project.definition.experiments.experiments)
    missing = [n for n in REQUIRED if not project.has_table(n)]
    if missing:
        raise PasserelleError(f"The warehouse has no {', '.join(missing)} yet, so results cannot "
                              "be computed.", "Run `passerelle run` first (identity included).")
    keys = {(c.exposure.event, c.exposure.experiment_property) for c in defined.values()}
    keys.add(SEEN_BY_DEFAULT)
    shape = _shape(project)
    seen: dict[str, dict[str, Any]] = {}
    for event, prop in sorted(keys):
        for r in project.rows(f"experiments seen {prop} {shape}",
                              lambda slots, prop=prop: _seen(project, slots["event"], prop),
                              {"event": event}):
            seen.setdefault(r["_exp"], r)
    values = {c.experiment_value: n for n, c in defined.items()}
    out = []
    for exp in sorted(set(values) | set(seen)):
        s = seen.get(exp, {})
        status = ("ok" if exp in values and s else "defined, never seen" if exp in values
                  else "seen, not defined")
        out.append({"experiment": values.get(exp, exp), "experiment_id": exp,
                    "defined": exp in values, "people": int(s.get("people") or 0),
                    "first_seen": s.get("first_seen"), "last_seen": s.get("last_seen"),
                    "status": status})
    return out


def _shape(project: Any) -> str:
    """What the SQL of the events' people depends on besides the tables' columns: which
    sources attribute events to which customers, which lookups exist, and the code."""
    from passerelle.verdicts import code_version

    sources = sorted((name, s.entity, s.customer_source)
                     for name, s in project.sources.items())
    lookups = [project.has_table(t) for t in (CUSTOMER_RECORDS_TABLE, ANONYMOUS_IDS_TABLE)]
    text = json.dumps([sources, lookups, code_version(CODE)])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _seen(project: Any, event: Any, prop: str) -> Any:
    """People, first and last time per experiment id in ``event``'s ``prop`` (Ibis)."""
    from passerelle.identity.attribution import person_events

    ev = person_events(project.engine, project.sources)
    e = ev.filter(ev.event == event)
    e = e.mutate(_exp=e.properties.cast("json")[prop].unwrap_as("string"))
    e = e.filter(e._exp.notnull())
    return e.group_by("_exp").aggregate(people=e.person_id.nunique(),
                                        first_seen=e.timestamp.min(),
                                        last_seen=e.timestamp.max())
