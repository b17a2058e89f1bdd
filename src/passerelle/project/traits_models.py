"""``traits/*.yml``: computed traits per person, and their validation with file and line.

A file holds ``traits:``, a list. Each trait is either an ``aggregate`` over one entity
(orders, order_lines, events) or a ``builtin`` (RFM, CLV, churn risk...). Pydantic checks the
shape; :func:`load_traits` then checks what needs the standard model: columns exist, the
function suits the column's type, the ``where`` filter compiles, names are unique.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import Field, field_validator

from passerelle.model import ENTITIES, Kind
from passerelle.project.models import Strict, _check_name

AggregateEntity = Literal["orders", "order_lines", "events"]
Function = Literal["count", "sum", "avg", "min", "max", "count_distinct", "last", "first", "mode"]
Builtin = Literal["rfm", "clv", "churn_risk", "days_since_last_visit", "favourite_category",
                  "favourite_channel"]

# Columns an order line gains from its order (so lines can be windowed and split by channel).
ORDER_LINE_EXTRAS: dict[str, Kind] = {"ordered_at": Kind.TIMESTAMP, "channel": Kind.CODE}
TIME_COLUMN = {"orders": "ordered_at", "order_lines": "ordered_at", "events": "timestamp"}
NUMERIC = (Kind.DECIMAL, Kind.INTEGER)
TEMPORAL = (Kind.DATE, Kind.TIMESTAMP)


class _Trait(Strict):
    name: str = Field(description="Trait name, unique in the project (a-z, 0-9, _)")
    description: str = Field(description="Business definition, in plain words")
    owner: str = Field(description="Team or person answerable for the definition")
    where: str | None = Field(None, description="Filter on the entity's rows, e.g. "
                              "\"channel = 'web' AND amount > 0\"")
    window_days: int | None = Field(None, gt=0, le=36600,
                                    description="Only rows of the last N days before the run")
    history: bool = Field(True, description="Record every change in traits_history (set false "
                          "for values that move every day, e.g. days since last visit)")

    _check = field_validator("name")(classmethod(lambda cls, v: _check_name(v)))


class AggregateTrait(_Trait):
    """An aggregation of one entity's rows per person."""

    type: Literal["aggregate"]
    entity: AggregateEntity
    function: Function
    column: str | None = Field(None, description="Column aggregated (optional for count)")


class BuiltinTrait(_Trait):
    """A trait Passerelle computes itself (the `where` filter applies to orders, or to events
    for days_since_last_visit)."""

    type: Literal["builtin"]
    builtin: Builtin
    horizon_days: int = Field(365, gt=0, le=3650,
                              description="clv: how far ahead purchases are predicted")


TraitConfig = Annotated[AggregateTrait | BuiltinTrait, Field(discriminator="type")]


class TraitsFile(Strict):
    """``traits/<name>.yml``."""

    traits: list[TraitConfig] = Field(description="Computed traits")


@dataclass
class TraitDefinitions:
    """The traits of a project, each with the file and line it came from."""

    traits: list[AggregateTrait | BuiltinTrait]
    origin: dict[str, tuple[str, int | None]]  # trait name -> (file, line)


def entity_columns(entity: str) -> dict[str, Kind]:
    """Columns a trait on ``entity`` may use (standard fields, plus the order's time and
    channel for order lines)."""
    cols = {f.name: f.kind for f in ENTITIES[entity].fields}
    if entity == "order_lines":
        cols.update(ORDER_LINE_EXTRAS)
    return cols


def value_kind(trait: AggregateTrait) -> str:
    """Which value column an aggregate fills: 'number', 'text' or 'date'."""
    if trait.function in ("count", "count_distinct", "sum", "avg") or trait.column is None:
        return "number"
    kind = entity_columns(trait.entity)[trait.column]
    if kind in NUMERIC:
        return "number"
    return "date" if kind in TEMPORAL else "text"


BUILTIN_ENTITY = {"rfm": "orders", "clv": "orders", "churn_risk": "orders",
                  "favourite_channel": "orders", "favourite_category": "order_lines",
                  "days_since_last_visit": "events"}


def outputs(trait: AggregateTrait | BuiltinTrait) -> list[str]:
    """The trait names a trait writes (RFM and CLV write their parts too)."""
    if not isinstance(trait, BuiltinTrait):
        return [trait.name]
    if trait.builtin == "rfm":
        return [trait.name, f"{trait.name}_recency", f"{trait.name}_frequency",
                f"{trait.name}_monetary"]
    if trait.builtin == "clv":
        return [trait.name, f"{trait.name}_expected_purchases", f"{trait.name}_p_alive"]
    return [trait.name]
