"""Project-level verbs: read the offers, refresh the serving store, open it for decisions.

The CLI, the API server and `passerelle run` call these with a loaded
:class:`passerelle.core.Project`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from passerelle.engines.base import Engine
from passerelle.errors import ProjectError
from passerelle.personalize.log import learned_placements, read_posteriors, write_posteriors
from passerelle.personalize.profiles import write_serving
from passerelle.personalize.store import DecisionStore, warehouse_store
from passerelle.personalize.tables import StoreSummary, write_tables
from passerelle.personalize.validate import load_offers, project_context
from passerelle.project.offers_models import OfferDefinitions


def definitions(project: Any) -> OfferDefinitions:
    """The project's placements and offers; any error stops (never half the offers)."""
    defs, problems = load_offers(project.root)
    problems.raise_if_any()
    return defs


def refresh_store(root: Path | str, engine: Engine, now: datetime | None = None, *,
                  redis_url: str | None = None,
                  redis_prefix: str = "passerelle:decide:") -> StoreSummary:
    """Rebuild the serving tables in the warehouse (SQL only) and the bandit's posteriors,
    then copy them to Redis when ``redis_url`` is given. Offers and placements whose files
    have problems are left out (`passerelle validate` reports them); decisions read the new
    state as soon as it returns."""
    defs, _ = load_offers(root)
    segments, kinds = project_context(Path(root))
    now = now or datetime.now(UTC)
    naive = now.astimezone(UTC).replace(tzinfo=None) if now.tzinfo else now
    summary = write_tables(engine, defs, segments, kinds, naive)
    write_serving(engine)  # the profile API's sorted copies
    summary.posteriors = write_posteriors(engine, learned_placements(defs))
    if redis_url is not None:
        from passerelle.personalize.redis_store import load_redis

        load_redis(engine, redis_url, redis_prefix)
        summary.redis = True
    return summary


def refresh_decision_store(project: Any, *, now: datetime | None = None,
                           redis_url: str | None = None,
                           redis_prefix: str | None = None) -> StoreSummary:
    """:func:`refresh_store` for a project whose offers have no problem (any stops it);
    Redis is the one of passerelle.yml unless ``redis_url`` is given."""
    definitions(project)
    config = project.config.personalisation
    return refresh_store(project.root, project.engine, now,
                         redis_url=redis_url or config.redis,
                         redis_prefix=redis_prefix or config.redis_prefix)


def open_store(project: Any, *, redis_url: str | None = None,
               redis_prefix: str | None = None) -> DecisionStore:
    """The store decisions read: Redis when ``redis_url`` is given or passerelle.yml names
    one (``personalisation: {redis_url: ...}``), else the warehouse."""
    defs = definitions(project)
    timezone = project.config.timezone
    config = project.config.personalisation
    redis_url = redis_url or config.redis
    redis_prefix = redis_prefix or config.redis_prefix
    if redis_url is None:
        store = warehouse_store(project.engine, defs, timezone)
    else:
        from passerelle.personalize.redis_store import redis_store

        store = redis_store(redis_url, redis_prefix, defs, timezone)
    # a few rows (placements x cells x offers): the bandit ranks from memory
    store.posteriors = read_posteriors(project.engine)
    return store


__all__ = ["ProjectError", "definitions", "open_store", "refresh_decision_store",
           "refresh_store"]
