"""``experiments/*.yml``: A/B/n tests, one file a test, validated with file and line.

An experiment says who is in it (people who fired the exposure event, with the experiment's
id in one property and their variant in another), what it should move (a primary metric and
guardrails), and what it was planned for (minimum detectable effect, alpha, power), so that
the analysis can say both "what happened" and "was this test able to tell".

Example::

    name: checkout_express
    description: One-page express checkout on the e-shop
    owner: E-commerce
    hypothesis: Fewer steps to pay mean more orders from the e-shop
    audience: web_visitors
    variants: [{name: control, weight: 50}, {name: treatment, weight: 50}]
    exposure: {event: Experiment Viewed, experiment_property: experiment_id,
               variant_property: variation_id}
    start: 2025-05-01
    end: 2025-06-10
    primary_metric: {name: web_conversion_14d, type: conversion, window_days: 14,
                     channels: [web]}
    guardrails: [{name: revenue_14d, type: revenue, window_days: 14}]
    mde: 0.10
    planned_people: 14000
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from passerelle.errors import Problems, ProjectError
from passerelle.project.models import Strict, _check_name

MetricType = Literal["conversion", "revenue", "orders"]


class VariantConfig(Strict):
    name: str = Field(description="Variant name as the exposure event carries it")
    weight: float = Field(1.0, gt=0, description="Planned share (any scale: 50/50, 1/1...)")


class ExposureConfig(Strict):
    """Which events say that a person saw the experiment, and in which variant."""

    event: str = Field("Experiment Viewed", description="Name of the exposure track event")
    experiment_property: str = Field("experiment_id",
                                     description="Property of the event holding the test's id")
    experiment_value: str | None = Field(None, description="That property's value for this "
                                         "test (default: the experiment's name)")
    variant_property: str = Field("variation_id",
                                  description="Property of the event holding the variant name")


class ExperimentMetric(Strict):
    """What is measured per exposed person, from their first exposure on.

    - ``conversion``: 1 when the person placed an order within ``window_days``, else 0;
    - ``revenue``: the amount of their orders in the window (refunds negative), 0 for none;
    - ``orders``: the number of their orders in the window.
    """

    name: str = Field(description="Metric name shown in results (a-z, 0-9, _)")
    type: MetricType = Field(description="conversion, revenue or orders")
    window_days: float = Field(14, description="Days after the first exposure (at least 1)")
    channels: list[str] | None = Field(None, description="Only orders of these channels "
                                       "(e.g. [web] for the e-shop)")
    exclude_statuses: list[str] = Field(default_factory=lambda: ["cancelled"],
                                        description="Orders with these statuses do not count")

    _check = field_validator("name")(classmethod(lambda cls, v: _check_name(v)))

    @field_validator("window_days")
    @classmethod
    def _one_day(cls, v: float) -> float:
        if v < 1:
            raise ValueError(f"a window of {v} days is shorter than a day; use 1 day or more")
        return v


class ExperimentConfig(Strict):
    """``experiments/<name>.yml``."""

    name: str = Field(description="Experiment name, unique in the project (a-z, 0-9, _)")
    description: str = Field(description="What changes for people in the variants")
    owner: str = Field(description="Team or person answerable for the test")
    hypothesis: str | None = Field(None, description="What the team expects to happen and "
                                   "why, written before the test starts")
    audience: str | None = Field(None, description="The segment the test is meant for (who "
                                 "is exposed is still read from the exposure events)")
    variants: list[VariantConfig] = Field(min_length=2, description="The first is the control")
    salt: str | None = Field(None, description="Assignment salt (default: the name); change "
                             "it to reshuffle everyone")
    exposure: ExposureConfig = Field(default_factory=ExposureConfig)
    start: dt.date | None = Field(None, description="First day exposures count (inclusive)")
    end: dt.date | None = Field(None, description="Last day exposures count (inclusive)")
    primary_metric: ExperimentMetric = Field(description="The metric that decides the test")
    guardrails: list[ExperimentMetric] = Field(default_factory=list,
                                               description="Metrics that must not get worse")
    mde: float = Field(0.05, gt=0, description="Smallest relative lift worth detecting "
                       "(0.05 = +5 %)")
    planned_people: int | None = Field(None, ge=2, description="People the test was "
                                       "planned for, all variants together (the "
                                       "sample-size calculator's figure)")
    alpha: float = Field(0.05, gt=0, lt=1, description="False-positive rate (two-sided)")
    power: float = Field(0.8, gt=0, lt=1, description="Chance to detect a true effect of mde")
    cuped: bool = Field(True, description="Reduce variance with the 30 days before exposure")
    pre_period_days: float = Field(30, ge=1, description="Length of the CUPED pre-period")
    sequential: bool = Field(False, description="Decide on always-valid intervals (safe to "
                             "look every day)")
    correction: Literal["holm", "benjamini_hochberg", "none"] = Field(
        "holm", description="Multiple-comparison correction across variants and metrics")

    _check = field_validator("name")(classmethod(lambda cls, v: _check_name(v)))

    @model_validator(mode="after")
    def _coherent(self) -> ExperimentConfig:
        names = [v.name for v in self.variants]
        if len(set(names)) != len(names):
            raise ValueError("variant names must be unique")
        metrics = [self.primary_metric.name, *(g.name for g in self.guardrails)]
        if len(set(metrics)) != len(metrics):
            raise ValueError("metric names must be unique within an experiment")
        if self.start and self.end and self.end < self.start:
            raise ValueError("end is before start")
        return self

    @property
    def control(self) -> str:
        return self.variants[0].name

    @property
    def weights(self) -> dict[str, float]:
        return {v.name: v.weight for v in self.variants}

    @property
    def assignment_salt(self) -> str:
        return self.salt or self.name

    @property
    def experiment_value(self) -> str:
        return self.exposure.experiment_value or self.name

    @property
    def metrics(self) -> list[ExperimentMetric]:
        return [self.primary_metric, *self.guardrails]


@dataclass
class ExperimentDefinitions:
    """The experiments of a project, each with the file and line it came from."""

    experiments: dict[str, ExperimentConfig]
    origin: dict[str, tuple[str, int | None]]


def load_experiments(root: Path | str, problems: Problems | None = None) -> ExperimentDefinitions:
    """Read ``experiments/*.yml`` under ``root``. Problems go to ``problems`` when given (so
    `passerelle validate` can report them with the others), else raise :class:`ProjectError`.

    The file's stem is the default ``name``.
    """
    from passerelle.project.load import parse_document, read_documents

    root = Path(root)
    own = problems is None
    problems = problems if problems is not None else Problems()
    found: dict[str, ExperimentConfig] = {}
    origin: dict[str, tuple[str, int | None]] = {}
    for doc in read_documents(root, "experiments/*", problems):
        doc.data.setdefault("name", Path(doc.file).stem)
        cfg = parse_document(ExperimentConfig, doc, problems)
        if cfg is None:
            continue
        line = doc.line_of(("name",))
        if cfg.name in found:
            file, first = origin[cfg.name]
            problems.add(doc.file, f"experiment name '{cfg.name}' is used twice", line,
                         f"first defined in {file}:{first}")
            continue
        found[cfg.name] = cfg
        origin[cfg.name] = (doc.file, line)
    if own:
        problems.raise_if_any()
    return ExperimentDefinitions(found, origin)


__all__ = ["ExperimentConfig", "ExperimentDefinitions", "ExperimentMetric", "ExposureConfig",
           "ProjectError", "VariantConfig", "load_experiments"]
