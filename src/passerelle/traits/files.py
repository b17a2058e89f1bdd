"""Reading ``traits/*.yml``: the models of :mod:`passerelle.project.traits_models`, checked
against the entities' columns and the trait filter language (which needs Ibis and the
staged types, so the check lives with the traits capability, not in ``project/``)."""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import TypeAdapter, ValidationError

from passerelle.errors import Problems
from passerelle.project.traits_models import (
    BUILTIN_ENTITY,
    NUMERIC,
    AggregateTrait,
    BuiltinTrait,
    Kind,
    TraitConfig,
    TraitDefinitions,
    TraitsFile,
    entity_columns,
)
from passerelle.project.yamlio import YamlDoc
from passerelle.verdicts import no_verdicts

if TYPE_CHECKING:
    import ibis.expr.types as ir


def load_traits(root: Path | str, problems: Problems | None = None,
                verdicts: Any = None) -> TraitDefinitions:
    """Read ``traits/*.yml`` under ``root``. Problems go to ``problems`` when given (so
    `passerelle validate` reports them with the others), else raise :class:`ProjectError`.
    ``verdicts`` (a :class:`passerelle.verdicts.Verdicts`) keeps the filters' checks."""
    from passerelle.project.load import parse_document, read_documents

    root = Path(root)
    own = problems is None
    problems = problems if problems is not None else Problems()
    verdicts = verdicts if verdicts is not None else no_verdicts()
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
            _cross_check(trait, doc, i, problems, verdicts)
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
                 problems: Problems, verdicts: Any) -> None:
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
        where = trait.where
        error = verdicts.of("trait where", where, (entity, sorted(columns.items())),
                            lambda: _where_error(where, entity))
        if error is not None:
            reason, instruction = error
            problems.add(doc.file, f"where: {reason}", line("where"), instruction)
        else:  # the columns it reads, kept for the glossary's lineage
            from passerelle.metrics.load import parsed

            parsed(where, verdicts)


def _where_error(text: str, entity: str) -> tuple[str, str | None] | None:
    """Why a trait filter does not compile on the entity's staged columns (None: it
    does); the check imports Ibis and sqlglot, so its verdict is kept."""
    from passerelle.traits.expr import ExpressionError, compile_where

    try:
        compile_where(text, unbound_table(entity))
    except ExpressionError as exc:
        return exc.reason, exc.instruction
    return None


def unbound_table(entity: str) -> ir.Table:
    """An Ibis table with the entity's columns and staged types, to type-check filters."""
    import ibis

    from passerelle.staging.types import target_type

    return ibis.table({c: target_type(k) for c, k in entity_columns(entity).items()},
                      name=entity)
