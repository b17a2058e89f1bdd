"""The uplift of personalisation: a placement's treated people against its holdout, read by
the experiments module (:mod:`passerelle.measure.analysis`) as an A/B test.

The exposure is the person's first ``Decision Made`` event of the placement (its ``group``
property is the arm: the holdout is stable per person, so a person is in one arm); the
metrics are orders after it: conversion (primary), revenue and orders, each with its
interval, the sample-ratio check against the placement's holdout share and a verdict. The
person is the ``person_id`` the decision logged (unknown people are left out: their group
says nothing).
"""

from __future__ import annotations

from typing import Any

import ibis.expr.types as ir

from passerelle.personalize.decide import HOLDOUT, TREATED
from passerelle.personalize.log import DECISION_MADE
from passerelle.project.experiments_models import ExperimentConfig
from passerelle.project.offers_models import PlacementConfig


def uplift_experiment(place: PlacementConfig, window_days: float = 14) -> ExperimentConfig:
    """The placement's holdout as an experiment: holdout is the control."""
    metric = {"window_days": window_days}
    return ExperimentConfig.model_validate({
        "name": place.name, "description": f"Personalisation of placement {place.name}",
        "owner": "passerelle",
        "variants": [{"name": HOLDOUT, "weight": place.holdout_percent},
                     {"name": TREATED, "weight": 100 - place.holdout_percent}],
        "exposure": {"event": DECISION_MADE, "experiment_property": "placement",
                     "experiment_value": place.name, "variant_property": "group"},
        "primary_metric": {"name": "conversion", "type": "conversion", **metric},
        "guardrails": [{"name": "revenue", "type": "revenue", **metric},
                       {"name": "orders", "type": "orders", **metric}],
        "cuped": True})


def exposure_events(events: ir.Table) -> ir.Table:
    """``Decision Made`` events with the person the decision logged."""
    e = events.filter(events.event == DECISION_MADE)
    return e.select("event", "timestamp", "properties", person_id=e.properties.cast(
        "json")["person_id"].unwrap_as("string"))


def uplift_from_tables(place: PlacementConfig, events: ir.Table, orders: ir.Table,
                       to_rows: Any, window_days: float = 14,
                       level: float | None = None) -> dict[str, Any]:
    """:func:`passerelle.measure.analysis.analyse_tables` on the placement's decisions."""
    from passerelle.measure.analysis import analyse_tables
    from passerelle.personalize.context import PersonalizeError

    if place.holdout_percent <= 0:
        raise PersonalizeError(f"Placement '{place.name}' has no holdout: the uplift of "
                               "personalisation cannot be measured.",
                               "Set holdout_percent (e.g. 10) in its file.")
    return analyse_tables(uplift_experiment(place, window_days), exposure_events(events),
                          orders, to_rows, level)


def personalisation_uplift(project: Any, placement: str, window_days: float = 14,
                           level: float | None = None) -> dict[str, Any]:
    """Treated against holdout for ``placement``: the experiments module's result (arms,
    SRM check, per-metric difference and lift with intervals, verdict)."""
    from passerelle.identity.attribution import person_orders
    from passerelle.measure.warehouse import require_tables
    from passerelle.personalize.decide import placement_of
    from passerelle.personalize.service import definitions

    place = placement_of(definitions(project), placement)
    engine = project.engine
    require_tables(engine, ["events", "orders", "person_map"])
    return uplift_from_tables(place, engine.table("events"),
                              person_orders(engine, project.sources),
                              lambda expr: engine.to_arrow(expr).to_pylist(), window_days,
                              level)


__all__ = ["personalisation_uplift", "uplift_experiment", "uplift_from_tables"]
