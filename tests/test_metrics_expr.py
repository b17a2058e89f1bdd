"""The safe expression subset: what is accepted, what is refused, how it compiles."""

from __future__ import annotations

import ibis
import pytest

from passerelle.metrics.expr import (
    UnsafeExpression,
    expand_jinja,
    parse_expression,
    references,
    to_ibis,
)

T = ibis.table({"ts": "timestamp", "s": "string", "x": "decimal(12,2)", "n": "int64"}, name="t")


def sql(text: str) -> str:
    expr = to_ibis(parse_expression(text), lambda name: T[name])
    return ibis.to_sql(T.select(v=expr), dialect="duckdb")


@pytest.mark.parametrize(("text", "refs"), [
    ("s = 'FR' and x > 2", ["s", "x"]),
    ("case when s = 'a' then x else 0 end", ["x", "s"]),
    ("date_trunc('month', ts) >= '2024-01-01'", ["ts"]),
    ("extract(year from ts) = 2024", ["ts"]),
    ("ts >= current_date - interval '7 days'", ["ts"]),
    ("cast(x as int) + n * 2 - 1", ["x", "n"]),
    ("s is not null and s in ('a', 'b') and not n between 1 and 2", ["s", "n"]),
    ("coalesce(lower(s), 'n') like 'a%'", ["s"]),
    ("round(abs(x) / nullif(n, 0), 2)", ["x", "n"]),
])
def test_accepted(text: str, refs: list[str]) -> None:
    assert references(parse_expression(text)) == refs
    assert sql(text).startswith("SELECT")


@pytest.mark.parametrize(("text", "why"), [
    ("1; drop table x", "no ';'"),
    ("drop table x", "DROP is not allowed"),
    ("(select 1)", "subqueries are not allowed"),
    ("x in (select 1)", "subqueries are not allowed"),
    ("foo(x)", "function foo() is not allowed"),
    ("read_parquet('/etc/passwd')", "function read_parquet() is not allowed"),
    ("t.x = 1", "write entity__dimension"),
    ("cast(x as blob)", "cast to"),
    ("x +", "does not parse"),
    ("{{ config.get('x') }}", "placeholders"),
])
def test_refused(text: str, why: str) -> None:
    with pytest.raises(UnsafeExpression) as info:
        parse_expression(text)
    assert why in info.value.reason


def test_literals_are_rendered_by_the_compiler_not_pasted() -> None:
    out = sql("s = 'it''s'")
    assert "'it''s'" in out
    assert "it's" not in out.replace("it''s", "")


def test_case_with_subject_and_semantics() -> None:
    con = ibis.duckdb.connect()
    t = con.create_table("t", ibis.memtable({"s": ["a", "b", None], "n": [1, 2, 3]}))
    expr = to_ibis(parse_expression("case s when 'a' then n * 10 else -n end"), lambda c: t[c])
    assert con.to_pyarrow(t.select(v=expr))["v"].to_pylist() == [10, -2, -3]
    expr = to_ibis(parse_expression("s is null or s in ('b')"), lambda c: t[c])
    assert con.to_pyarrow(t.select(v=expr))["v"].to_pylist() == [False, True, True]


def test_dbt_jinja_references() -> None:
    assert expand_jinja("{{ Dimension('customer__country') }} = 'FR'") == \
        "customer__country = 'FR'"
    assert expand_jinja("{{ TimeDimension('metric_time', 'month') }} >= '2024-01-01'") == \
        "metric_time__month >= '2024-01-01'"
    assert expand_jinja("{{ Entity('customer') }} is not null") == "customer is not null"
