"""``traits/*.yml``: computed traits per person, and their validation with file and line.

A file holds ``traits:``, a list. Each trait is either an ``aggregate`` over one entity
(orders, order_lines, events) or a ``builtin`` (RFM, CLV, churn risk...). Pydantic checks the
shape; :func:`load_traits` then checks what needs the standard model: columns exist, the
function suits the column's type, the ``where`` filter compiles, names are unique.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

import ibis
import ibis.expr.types as ir
from pydantic import Field, TypeAdapter, ValidationError, field_validator

from passerelle.errors import Problems
from passerelle.model import ENTITIES, Kind
from passerelle.project.models import Strict, _check_name
from passerelle.project.yamlio import YamlDoc

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


def unbound_table(entity: str) -> ir.Table:
    """An Ibis table with the entity's columns and staged types, to type-check filters."""
    from passerelle.staging.normalize import target_type

    return ibis.table({c: target_type(k) for c, k in entity_columns(entity).items()},
                      name=entity)


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


def load_traits(root: Path | str, problems: Problems | None = None) -> TraitDefinitions:
    """Read ``traits/*.yml`` under ``root``. Problems go to ``problems`` when given (so
    `passerelle validate` reports them with the others), else raise :class:`ProjectError`."""
    from passerelle.project.load import parse_document, read_documents

    root = Path(root)
    own = problems is None
    problems = problems if problems is not None else Problems()
    traits: list[AggregateTrait | BuiltinTrait] = []
    origin: dict[str, tuple[str, int | None]] = {}
    for doc in read_documents(root, "traits/*", problems,
                              expected="expected a mapping with a `traits:` list"):
        parsed = parse_document(TraitsFile, doc, problems)
        items = parsed.traits if parsed is not None else _valid_items(doc)
        for i, trait in items if parsed is None else enumerate(items):
            if trait.name in origin:
                file, line = origin[trait.name]
                problems.add(doc.file, f"trait name '{trait.name}' is used twice",
                             doc.line_of(("traits", i, "name")),
                             f"first defined in {file}:{line}")
                continue
            origin[trait.name] = (doc.file, doc.line_of(("traits", i, "name")))
            _cross_check(trait, doc, i, problems)
            traits.append(trait)
    if own:
        problems.raise_if_any()
    return TraitDefinitions(traits, origin)


_ONE_TRAIT: TypeAdapter = TypeAdapter(TraitConfig)


def _valid_items(doc: YamlDoc) -> list[tuple[int, AggregateTrait | BuiltinTrait]]:
    """When a file has errors, the traits in it that are valid on their own: they are still
    cross-checked, so one run of `validate` reports every problem."""
    items = doc.data.get("traits") if isinstance(doc.data, dict) else None
    valid = []
    for i, item in enumerate(items if isinstance(items, list) else []):
        # the glossary keys play no part in the checks: a missing owner or description
        # (reported already) must not hide the problems of the rest of the trait
        glossary = {"description": "-", "owner": "-"}
        try:
            valid.append((i, _ONE_TRAIT.validate_python(
                {**glossary, **item} if isinstance(item, dict) else item)))
        except ValidationError:
            continue
    return valid


def _cross_check(trait: AggregateTrait | BuiltinTrait, doc: YamlDoc, i: int,
                 problems: Problems) -> None:
    from passerelle.traits.expr import ExpressionError, compile_where

    def line(key: str) -> int | None:
        return doc.line_of(("traits", i, key))

    entity = trait.entity if isinstance(trait, AggregateTrait) else BUILTIN_ENTITY[trait.builtin]
    columns = entity_columns(entity)
    if isinstance(trait, AggregateTrait) and trait.column is None and trait.function != "count":
        problems.add(doc.file, f"function '{trait.function}' needs a `column`", line("function"),
                     f"add `column: <a column of {entity}>`")
    if isinstance(trait, BuiltinTrait) and trait.window_days is not None and trait.builtin in (
            "clv", "churn_risk", "days_since_last_visit"):
        problems.add(doc.file, f"window_days does not apply to builtin '{trait.builtin}'",
                     line("window_days"), "remove it: this builtin uses the whole history")
    if isinstance(trait, AggregateTrait) and trait.column is not None:
        kind = columns.get(trait.column)
        if kind is None:
            close = difflib.get_close_matches(trait.column, list(columns), n=1)
            problems.add(doc.file, f"'{trait.column}' is not a column of {entity}",
                         line("column"), f"did you mean '{close[0]}'?" if close
                         else f"columns: {', '.join(columns)}")
        elif trait.function in ("sum", "avg") and kind not in NUMERIC:
            problems.add(doc.file, f"{trait.function} needs a number, and '{trait.column}' is "
                         f"{kind.value}", line("function"),
                         "use count, count_distinct, min, max, first, last or mode")
        elif trait.function in ("sum", "avg", "min", "max", "mode") and kind == Kind.JSON:
            problems.add(doc.file, f"'{trait.column}' holds JSON: it cannot be aggregated with "
                         f"{trait.function}", line("column"), "use count or count_distinct")
    if trait.where is not None:
        try:
            compile_where(trait.where, unbound_table(entity))
        except ExpressionError as exc:
            problems.add(doc.file, f"where: {exc.reason}", line("where"), exc.instruction)
