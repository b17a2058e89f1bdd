"""Trait filters (``where:``) in the same safe expression subset as metrics.

The parsing and the whitelist live in :mod:`passerelle.metrics.expr` (sqlglot tree checked
node by node, compiled to Ibis, never sent as text); this module binds names to the columns
of one entity, and insists that the result is a condition.
"""

from __future__ import annotations

import difflib

import ibis.expr.types as ir

from passerelle.errors import PasserelleError
from passerelle.metrics.expr import UnsafeExpression, parse_expression, references, to_ibis


class ExpressionError(PasserelleError, ValueError):
    """A trait filter is outside the safe subset, names an unknown column or is ill-typed."""


def compile_where(text: str, table: ir.Table) -> ir.BooleanValue:
    """Compile ``text`` against ``table`` (bound or unbound); raises :class:`ExpressionError`."""
    try:
        tree = parse_expression(text)
    except UnsafeExpression as exc:
        raise ExpressionError(f"'{text}': {exc.why}", exc.instruction) from None

    def resolve(name: str) -> ir.Value:
        if name not in table.columns:
            close = difflib.get_close_matches(name, list(table.columns), n=1)
            raise ExpressionError(f"unknown column '{name}'",
                                  f"did you mean '{close[0]}'?" if close
                                  else f"columns: {', '.join(table.columns)}")
        return table[name]

    try:
        value = to_ibis(tree, resolve)
    except ExpressionError:
        raise
    except UnsafeExpression as exc:
        raise ExpressionError(f"'{text}': {exc.why}", exc.instruction) from None
    except Exception as exc:  # Ibis refuses ill-typed operations (text > 3, ...)
        raise ExpressionError(f"'{text}' does not type-check: {exc}",
                              "compare values of the same type") from None
    if not isinstance(value, ir.BooleanValue):
        raise ExpressionError(f"'{text}' must be true or false for each row "
                              f"(it computes a {value.type()})",
                              "compare a column with a value, e.g. channel = 'web'")
    return value


def referenced_columns(text: str) -> set[str]:
    """The column names a filter reads (none when it does not parse: compiling it will say
    why)."""
    try:
        return set(references(parse_expression(text)))
    except UnsafeExpression:
        return set()
