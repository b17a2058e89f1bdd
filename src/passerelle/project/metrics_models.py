"""Pydantic models of ``metrics/*.yml``: dbt's semantic layer plus what a glossary needs.

The shape follows the MetricFlow spec that data teams know from dbt (semantic models with
entities, measures and dimensions; metrics of type simple, ratio, derived and cumulative)
so a dbt user can read and write it without learning a new language. On top of it every
metric carries glossary fields: ``owner``, ``definition`` (plain business text), ``synonyms``
and ``status``. Models are strict (unknown keys are errors) so typos are caught by
``passerelle validate`` with the file and line.

Cross-references (unknown measure, cycles, dimensions that cannot be joined, unsafe
expressions) need every file at once: they are checked in :mod:`passerelle.metrics.load`.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, field_validator, model_validator

Grain = Literal["day", "week", "month", "quarter", "year"]
GRAINS: tuple[str, ...] = ("day", "week", "month", "quarter", "year")
Agg = Literal["sum", "count", "count_distinct", "average", "min", "max", "sum_boolean"]
_NAME_RE = re.compile(r"^[a-z](?:[a-z0-9_]*[a-z0-9])?$")


def _name(value: str) -> str:
    """Lower-case snake_case without '__' (which separates entity and name in references)."""
    if not _NAME_RE.match(value) or "__" in value:
        raise ValueError(f"'{value}' is not a valid name: use lower_case_with_underscores, "
                         "no '__', not ending with '_'")
    return value


Name = Annotated[str, AfterValidator(_name)]
_REF = re.compile(r"^\s*ref\(\s*['\"]([^'\"]+)['\"]\s*\)\s*$")
_WINDOW = re.compile(r"^\s*(\d+)\s+(day|week|month|quarter|year)s?\s*$", re.IGNORECASE)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EntityDef(_Strict):
    """A join key: ``primary`` in the model that owns it, ``foreign`` where it points to it."""

    name: Name
    type: Literal["primary", "unique", "natural", "foreign"]
    expr: str | None = None  # default: the column named like the entity
    description: str | None = None

    @property
    def column_expr(self) -> str:
        return self.expr or self.name


class TimeParams(_Strict):
    time_granularity: Grain = "day"


class DimensionDef(_Strict):
    name: Name
    type: Literal["categorical", "time"]
    expr: str | None = None
    description: str | None = None
    label: str | None = None
    type_params: TimeParams | None = None

    @property
    def column_expr(self) -> str:
        return self.expr or self.name


class MeasureDef(_Strict):
    name: Name
    agg: Agg
    expr: str | None = None  # default: the column named like the measure
    description: str | None = None
    label: str | None = None
    agg_time_dimension: str | None = None
    create_metric: bool = False  # also expose the measure as a simple metric

    @property
    def column_expr(self) -> str:
        return self.expr or self.name


class Defaults(_Strict):
    agg_time_dimension: str | None = None


class SemanticModelDef(_Strict):
    """One table or view of the warehouse, described for the metric compiler."""

    name: Name
    description: str | None = None
    model: str  # a warehouse table or view: orders, order_lines, customer_records...
    defaults: Defaults = Defaults()
    entities: list[EntityDef] = []
    measures: list[MeasureDef] = []
    dimensions: list[DimensionDef] = []

    @field_validator("model")
    @classmethod
    def _unref(cls, value: str) -> str:
        """Accept dbt's ``ref('orders')`` as well as the bare table name."""
        m = _REF.match(value)
        name = m.group(1) if m else value.strip()
        if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", name):
            raise ValueError(f"'{value}' is not a table name (e.g. orders or ref('orders'))")
        return name

    @property
    def primary_entity(self) -> EntityDef | None:
        for e in self.entities:
            if e.type in ("primary", "unique", "natural"):
                return e
        return None

    def measure(self, name: str) -> MeasureDef | None:
        return next((m for m in self.measures if m.name == name), None)

    def dimension(self, name: str) -> DimensionDef | None:
        return next((d for d in self.dimensions if d.name == name), None)

    def entity(self, name: str) -> EntityDef | None:
        return next((e for e in self.entities if e.name == name), None)


class MeasureInput(_Strict):
    name: str
    filter: str | None = None


class MetricInput(_Strict):
    """A metric used by a ratio or derived metric, optionally renamed and filtered."""

    name: str
    alias: str | None = None
    filter: str | None = None

    @property
    def ref(self) -> str:
        return self.alias or self.name


class CumulativeParams(_Strict):
    window: str | None = None
    grain_to_date: Grain | None = None
    period_agg: Literal["last"] = "last"


class MetricTypeParams(_Strict):
    measure: str | MeasureInput | None = None
    numerator: str | MetricInput | None = None
    denominator: str | MetricInput | None = None
    expr: str | None = None
    metrics: list[str | MetricInput] | None = None
    window: str | None = None
    grain_to_date: Grain | None = None
    cumulative_type_params: CumulativeParams | None = None

    @field_validator("window")
    @classmethod
    def _window(cls, value: str | None) -> str | None:
        if value is not None and not _WINDOW.match(value):
            raise ValueError(f"window '{value}' is not '<number> <day|week|month|quarter|year>'")
        return value

    @property
    def measure_input(self) -> MeasureInput | None:
        if isinstance(self.measure, str):
            return MeasureInput(name=self.measure)
        return self.measure

    @property
    def metric_inputs(self) -> list[MetricInput]:
        return [MetricInput(name=m) if isinstance(m, str) else m for m in self.metrics or []]

    @staticmethod
    def _as_input(value: str | MetricInput | None) -> MetricInput | None:
        return MetricInput(name=value) if isinstance(value, str) else value

    @property
    def numerator_input(self) -> MetricInput | None:
        return self._as_input(self.numerator)

    @property
    def denominator_input(self) -> MetricInput | None:
        return self._as_input(self.denominator)

    @property
    def cumulative_window(self) -> tuple[int, str] | None:
        window = self.window or (self.cumulative_type_params and self.cumulative_type_params.window)
        if not window:
            return None
        m = _WINDOW.match(window)
        if m is None:
            raise ValueError(f"window '{window}' is not '<number> <day|week|...>'")
        return int(m.group(1)), m.group(2).lower()

    @property
    def cumulative_grain_to_date(self) -> str | None:
        ctp = self.cumulative_type_params
        return self.grain_to_date or (ctp.grain_to_date if ctp else None)


class MetricDef(_Strict):
    """A metric with its formula and its glossary entry."""

    name: Name
    type: Literal["simple", "ratio", "derived", "cumulative"]
    type_params: MetricTypeParams
    description: str | None = None
    label: str | None = None
    filter: str | None = None
    # glossary
    owner: str | None = None
    definition: str | None = None  # plain business text, French or English
    synonyms: list[str] = []
    status: Literal["draft", "approved"] = "draft"

    @model_validator(mode="after")
    def _params_match_type(self) -> MetricDef:
        p = self.type_params
        need = {
            "simple": ("measure",), "cumulative": ("measure",),
            "ratio": ("numerator", "denominator"), "derived": ("expr", "metrics"),
        }[self.type]
        missing = [k for k in need if getattr(p, k) in (None, [])]
        if missing:
            raise ValueError(f"a {self.type} metric needs type_params.{' and '.join(missing)}")
        allowed = set(need) | ({"window", "grain_to_date", "cumulative_type_params"}
                               if self.type == "cumulative" else set())
        extra = [k for k in ("measure", "numerator", "denominator", "expr", "metrics", "window",
                             "grain_to_date", "cumulative_type_params")
                 if k not in allowed and getattr(p, k) is not None]
        if extra:
            raise ValueError(f"type_params.{extra[0]} does not apply to a {self.type} metric")
        if self.type == "cumulative" and p.cumulative_window and p.cumulative_grain_to_date:
            raise ValueError("a cumulative metric takes a window or grain_to_date, not both")
        return self


class MetricsFile(_Strict):
    """One ``metrics/*.yml`` file."""

    semantic_models: list[SemanticModelDef] = []
    metrics: list[MetricDef] = []
