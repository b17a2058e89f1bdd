"""User-written expressions (measure and dimension ``expr``, ``filter``, ``--where``).

They are user input, so they never reach the warehouse as text. Each one is parsed with
sqlglot, checked against a small safe subset (column references, literals, arithmetic,
comparisons, boolean logic, IN, BETWEEN, IS NULL, CASE WHEN, LIKE, a whitelist of
functions and casts) and the parsed tree is compiled to an Ibis expression, which Ibis
renders for each engine. Anything else (subqueries, unknown functions, several statements)
is refused with an error that says what is allowed.

Size and depth are bounded: :data:`MAX_LENGTH` characters, :data:`MAX_NESTING` levels of
parentheses (or of NOT / unary minus), :data:`MAX_OPERATORS` operators, counted on the tokens
before the recursive parser runs, then :data:`MAX_DEPTH` levels of the parsed tree (counted
iteratively). A filter nested 60 deep or with 500 ``OR`` is refused with a reason, not a
RecursionError. ``AND``/``OR`` chains compile to balanced trees, so a long list of terms
stays shallow in the SQL too.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from typing import Any

import ibis
import ibis.expr.types as ir
import sqlglot
import sqlglot.expressions as sge
from ibis.common.exceptions import IbisTypeError
from sqlglot.errors import ParseError, TokenError
from sqlglot.tokens import TokenType

from passerelle.errors import PasserelleError

Resolver = Callable[[str], Any]  # a reference name -> an Ibis value

_JINJA = re.compile(
    r"\{\{\s*(Dimension|TimeDimension|Entity)\(\s*['\"]([A-Za-z0-9_]+)['\"]"
    r"(?:\s*,\s*['\"]([A-Za-z]+)['\"])?\s*\)(?:\.grain\(\s*['\"]([A-Za-z]+)['\"]\s*\))?\s*\}\}"
)
_EXTRACT = {"YEAR": "year", "QUARTER": "quarter", "MONTH": "month", "WEEK": "week_of_year",
            "DAY": "day", "DOW": "day_of_week", "DAYOFWEEK": "day_of_week", "HOUR": "hour",
            "MINUTE": "minute", "SECOND": "second", "DOY": "day_of_year"}
_TRUNC = {"YEAR": "Y", "QUARTER": "Q", "MONTH": "M", "WEEK": "W", "DAY": "D", "HOUR": "h",
          "MINUTE": "m", "SECOND": "s"}
_CASTS = {"INT": "int64", "BIGINT": "int64", "SMALLINT": "int64", "TINYINT": "int64",
          "DOUBLE": "float64", "FLOAT": "float64", "DECIMAL": "decimal", "VARCHAR": "string",
          "TEXT": "string", "CHAR": "string", "DATE": "date", "TIMESTAMP": "timestamp",
          "BOOLEAN": "boolean"}
_BINARY = {sge.Add: operator.add, sge.Sub: operator.sub, sge.Mul: operator.mul,
           sge.Div: operator.truediv, sge.Mod: operator.mod, sge.EQ: operator.eq,
           sge.NEQ: operator.ne, sge.GT: operator.gt, sge.GTE: operator.ge,
           sge.LT: operator.lt, sge.LTE: operator.le}
MAX_LENGTH = 4000
MAX_NESTING = 20
MAX_OPERATORS = 200
MAX_DEPTH = 50
# Tokens that are not operators: values, names and punctuation; every other token
# (AND, =, -, NOT, CASE, WHEN...) may add a level to the parsed tree.
_OPERANDS = {TokenType.VAR, TokenType.STRING, TokenType.NUMBER, TokenType.IDENTIFIER,
             TokenType.COMMA, TokenType.L_PAREN, TokenType.R_PAREN, TokenType.DOT,
             TokenType.NULL, TokenType.TRUE, TokenType.FALSE}
_PREFIXES = {TokenType.NOT, TokenType.DASH, TokenType.PLUS, TokenType.TILDE}
FUNCTIONS = ("lower", "upper", "trim", "length", "abs", "round", "coalesce", "nullif",
             "greatest", "least", "date_trunc", "extract", "cast", "current_date",
             "current_timestamp")


class UnsafeExpression(PasserelleError, ValueError):
    """An expression in a metric file or a --where that Passerelle will not run."""

    def __init__(self, text: str, why: str, instruction: str | None = None) -> None:
        super().__init__(
            f"expression '{text}' is not allowed: {why}",
            instruction or "use column or dimension names, literals, arithmetic, comparisons, "
            "AND/OR/NOT, IN, BETWEEN, IS NULL, CASE WHEN, LIKE, || and the functions "
            f"{', '.join(FUNCTIONS)}",
        )
        self.text, self.why = text, why


def expand_jinja(text: str) -> str:
    """``{{ Dimension('customer__country') }}`` -> ``customer__country`` (dbt filters)."""

    def repl(m: re.Match[str]) -> str:
        grain = m.group(3) or m.group(4)
        return f"{m.group(2)}__{grain.lower()}" if grain else m.group(2)

    return _JINJA.sub(repl, text)


def parse_expression(text: str) -> sge.Expression:
    """Parse one expression and check that every node is in the safe subset."""
    source = expand_jinja(text)
    if "{{" in source or "{%" in source:
        raise UnsafeExpression(text, "only {{ Dimension('...') }}, {{ TimeDimension('...') }} "
                               "and {{ Entity('...') }} placeholders are understood")
    check_size(text)
    try:
        trees = [t for t in sqlglot.parse(source, read="duckdb") if t is not None]
    except (ParseError, TokenError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else "syntax error"
        raise UnsafeExpression(text, f"it does not parse ({first})") from None
    if len(trees) != 1:
        raise UnsafeExpression(text, "one expression only (no ';')")
    tree = trees[0]
    for node in tree.walk():
        _check(node, text)
    depth = _depth(tree)
    if depth > MAX_DEPTH:
        raise UnsafeExpression(_short(text), f"it is nested {depth} levels deep (NOT NOT..., "
                               f"a + b + ...); at most {MAX_DEPTH}")
    return tree


def _depth(tree: sge.Expression) -> int:
    """Depth as compiled: a chain of one AND/OR counts once (it compiles balanced)."""
    deepest, todo = 0, [(tree, 1)]
    while todo:
        node, depth = todo.pop()
        deepest = max(deepest, depth)
        for child in node.iter_expressions():
            same_chain = isinstance(node, (sge.And, sge.Or)) and type(child) is type(node)
            todo.append((child, depth if same_chain else depth + 1))
    return deepest


def check_size(text: str) -> None:
    """Bounds that keep the recursive parser and compiler far from Python's recursion
    limit, counted iteratively on the tokens; raises :class:`UnsafeExpression`."""
    source = expand_jinja(text)
    if len(source) > MAX_LENGTH:
        raise UnsafeExpression(_short(text), f"it has {len(source)} characters; at most "
                               f"{MAX_LENGTH}")
    try:
        tokens = sqlglot.Dialect.get_or_raise("duckdb").tokenize(source)
    except TokenError as exc:
        first = str(exc).splitlines()[0] if str(exc) else "syntax error"
        raise UnsafeExpression(_short(text), f"it does not parse ({first})") from None
    depth = deepest = operators = prefixes = most_prefixes = 0
    for token in tokens:
        # NOT NOT NOT x and - - - x nest like parentheses in the parser
        prefixes = prefixes + 1 if token.token_type in _PREFIXES else 0
        most_prefixes = max(most_prefixes, prefixes)
        if token.token_type == TokenType.L_PAREN:
            depth += 1
            deepest = max(deepest, depth)
        elif token.token_type == TokenType.R_PAREN:
            depth -= 1
        elif token.token_type not in _OPERANDS:
            operators += 1
    if max(deepest, most_prefixes) > MAX_NESTING:
        what = "parentheses are" if deepest >= most_prefixes else "NOT or - are"
        raise UnsafeExpression(_short(text), f"{what} nested {max(deepest, most_prefixes)} "
                               f"deep; at most {MAX_NESTING}")
    if operators > MAX_OPERATORS:
        raise UnsafeExpression(_short(text), f"it has {operators} operators (AND, OR, =, "
                               f"+...); at most {MAX_OPERATORS}: use IN (a, b, c) for a "
                               "list of values")


def _short(text: str) -> str:
    return text if len(text) <= 80 else f"{text[:60]}... ({len(text)} characters)"


def references(tree: sge.Expression) -> list[str]:
    """Names referenced by a parsed expression, in order of appearance, without repeats."""
    seen: dict[str, None] = {}
    for col in tree.find_all(sge.Column):
        seen.setdefault(col.name, None)
    return list(seen)


_ALLOWED: tuple[type[sge.Expression], ...] = (
    sge.Column, sge.Identifier, sge.Literal, sge.Boolean, sge.Null, sge.Paren, sge.Neg,
    sge.And, sge.Or, sge.Not, sge.In, sge.Between, sge.Is, sge.Case, sge.If, sge.Like,
    sge.ILike, sge.Lower, sge.Upper, sge.Trim, sge.Length, sge.Abs, sge.Round, sge.Coalesce,
    sge.Nullif, sge.Greatest, sge.Least, sge.DateTrunc, sge.TimestampTrunc, sge.Extract,
    sge.Var, sge.Cast, sge.DataType, sge.CurrentDate, sge.CurrentTimestamp, sge.Interval,
    sge.DPipe,
    *_BINARY,
)


def _check(node: sge.Expression, text: str) -> None:
    if isinstance(node, sge.Column) and node.table:
        raise UnsafeExpression(text, f"'{node.sql()}': write entity__dimension, not table.column")
    if isinstance(node, sge.Star):
        raise UnsafeExpression(text, "'*' is not a value")
    if isinstance(node, (sge.Select, sge.Subquery, sge.Union, sge.Query)):
        raise UnsafeExpression(text, "subqueries are not allowed")
    if isinstance(node, sge.Anonymous):
        raise UnsafeExpression(text, f"function {node.name}() is not allowed")
    if isinstance(node, sge.In) and node.args.get("query") is not None:
        raise UnsafeExpression(text, "subqueries are not allowed")
    if isinstance(node, sge.DataType) and node.this.name not in _CASTS:
        raise UnsafeExpression(text, f"cast to {node.sql()} is not allowed")
    if not isinstance(node, _ALLOWED):
        if isinstance(node, sge.Func):
            raise UnsafeExpression(text, f"function {node.sql_name().lower()}() is not allowed")
        raise UnsafeExpression(text, f"{type(node).__name__.upper()} is not allowed")


def to_ibis(tree: sge.Expression, resolve: Resolver) -> ir.Value:
    """Compile a checked tree to an Ibis value; ``resolve`` turns a name into a column."""
    try:
        value = _Compiler(resolve).visit(tree)
    except IbisTypeError as exc:  # e.g. a text compared with a number: the user's to fix
        raise UnsafeExpression(_short(tree.sql()), f"the types do not fit ({exc})",
                               "compare values of the same type: quote text ('web'), write "
                               "numbers bare (3), dates as '2026-01-31'") from None
    return value if isinstance(value, ir.Value) else ibis.literal(value)


def _lit(value: Any) -> ir.Value:
    return value if isinstance(value, ir.Value) else ibis.literal(value)


def _chain(node: sge.Expression) -> list[sge.Expression]:
    """The operands of ``a OR b OR c`` (parsed left-deep), in order, found iteratively."""
    operands, todo = [], [node]
    while todo:
        current = todo.pop()
        if type(current) is type(node):
            todo += [current.expression, current.this]
        else:
            operands.append(current)
    return operands


def balanced(values: list[Any], combine: Callable[[Any, Any], Any]) -> Any:
    """Combine pairwise, level by level: depth log2(n) instead of n."""
    values = [_lit(v) for v in values]
    while len(values) > 1:
        values = [combine(values[i], values[i + 1]) if i + 1 < len(values) else values[i]
                  for i in range(0, len(values), 2)]
    return values[0]


class _Compiler:
    def __init__(self, resolve: Resolver) -> None:
        self.resolve = resolve

    def visit(self, node: sge.Expression) -> Any:  # an ir.Value or a Python literal
        fn = getattr(self, f"visit_{type(node).__name__}", None)
        if fn is not None:
            return fn(node)
        if type(node) in _BINARY:
            left, right = self.visit(node.this), self.visit(node.expression)
            if not isinstance(left, ir.Value) and not isinstance(right, ir.Value):
                left = ibis.literal(left)
            return _BINARY[type(node)](left, right)
        raise UnsafeExpression(node.sql(), f"{type(node).__name__} is not supported")

    def visit_Column(self, node: sge.Column) -> Any:
        return self.resolve(node.name)

    def visit_Literal(self, node: sge.Literal) -> Any:
        if node.is_string:
            return node.this
        text = node.this
        return float(text) if any(c in text for c in ".eE") else int(text)

    def visit_Boolean(self, node: sge.Boolean) -> Any:
        return bool(node.this)

    def visit_Null(self, node: sge.Null) -> Any:
        return ibis.null()

    def visit_Paren(self, node: sge.Paren) -> Any:
        return self.visit(node.this)

    def visit_Neg(self, node: sge.Neg) -> Any:
        return -_lit(self.visit(node.this))

    def visit_And(self, node: sge.And) -> Any:
        return balanced([self.visit(n) for n in _chain(node)], operator.and_)

    def visit_Or(self, node: sge.Or) -> Any:
        return balanced([self.visit(n) for n in _chain(node)], operator.or_)

    def visit_Not(self, node: sge.Not) -> Any:
        return ~_lit(self.visit(node.this))

    def visit_In(self, node: sge.In) -> Any:
        return _lit(self.visit(node.this)).isin([self.visit(e) for e in node.expressions])

    def visit_Between(self, node: sge.Between) -> Any:
        return _lit(self.visit(node.this)).between(self.visit(node.args["low"]),
                                                   self.visit(node.args["high"]))

    def visit_Is(self, node: sge.Is) -> Any:
        if not isinstance(node.expression, sge.Null):
            raise UnsafeExpression(node.sql(), "only IS NULL / IS NOT NULL")
        return _lit(self.visit(node.this)).isnull()

    def visit_Like(self, node: sge.Like) -> Any:
        return _lit(self.visit(node.this)).like(self.visit(node.expression))

    def visit_ILike(self, node: sge.ILike) -> Any:
        return _lit(self.visit(node.this)).ilike(self.visit(node.expression))

    def visit_Case(self, node: sge.Case) -> Any:
        if node.this is not None:  # CASE x WHEN 1 THEN ...: compare x to each value
            subject = _lit(self.visit(node.this))
            branches = [(subject == self.visit(i.this), self.visit(i.args["true"]))
                        for i in node.args["ifs"]]
        else:
            branches = [(_lit(self.visit(i.this)), self.visit(i.args["true"]))
                        for i in node.args["ifs"]]
        default = node.args.get("default")
        return ibis.cases(*branches, else_=self.visit(default) if default is not None else None)

    def visit_DPipe(self, node: sge.DPipe) -> Any:
        return _lit(self.visit(node.this)).concat(self.visit(node.expression))

    def visit_Lower(self, node: sge.Lower) -> Any:
        return _lit(self.visit(node.this)).lower()

    def visit_Upper(self, node: sge.Upper) -> Any:
        return _lit(self.visit(node.this)).upper()

    def visit_Trim(self, node: sge.Trim) -> Any:
        return _lit(self.visit(node.this)).strip()

    def visit_Length(self, node: sge.Length) -> Any:
        return _lit(self.visit(node.this)).length()

    def visit_Abs(self, node: sge.Abs) -> Any:
        return _lit(self.visit(node.this)).abs()

    def visit_Round(self, node: sge.Round) -> Any:
        digits = node.args.get("decimals")
        return _lit(self.visit(node.this)).round(self.visit(digits) if digits else 0)

    def visit_Coalesce(self, node: sge.Coalesce) -> Any:
        return ibis.coalesce(self.visit(node.this), *[self.visit(e) for e in node.expressions])

    def visit_Nullif(self, node: sge.Nullif) -> Any:
        return _lit(self.visit(node.this)).nullif(self.visit(node.expression))

    def visit_Greatest(self, node: sge.Greatest) -> Any:
        return ibis.greatest(self.visit(node.this), *[self.visit(e) for e in node.expressions])

    def visit_Least(self, node: sge.Least) -> Any:
        return ibis.least(self.visit(node.this), *[self.visit(e) for e in node.expressions])

    def _unit(self, node: sge.Expression | None, table: dict[str, str], what: str) -> str:
        name = (node.name if node is not None else "").upper()
        if name not in table:
            raise UnsafeExpression(what, f"unit '{name.lower()}' is not one of "
                                   f"{', '.join(u.lower() for u in table)}")
        return table[name]

    def visit_DateTrunc(self, node: sge.Expression) -> Any:
        unit = self._unit(node.args.get("unit"), _TRUNC, node.sql())
        return _lit(self.visit(node.this)).truncate(unit)

    visit_TimestampTrunc = visit_DateTrunc

    def visit_Extract(self, node: sge.Extract) -> Any:
        part = self._unit(node.this, _EXTRACT, node.sql())
        value = _lit(self.visit(node.expression))
        if part == "day_of_week":
            return value.day_of_week.index()
        return getattr(value, part)()

    def visit_Cast(self, node: sge.Cast) -> Any:
        return _lit(self.visit(node.this)).cast(_CASTS[node.to.this.name])

    def visit_CurrentDate(self, node: sge.CurrentDate) -> Any:
        return ibis.today()

    def visit_CurrentTimestamp(self, node: sge.CurrentTimestamp) -> Any:
        return ibis.now()

    def visit_Interval(self, node: sge.Interval) -> Any:
        amount = self.visit(node.this)
        unit_node = node.args.get("unit")
        if isinstance(amount, str):  # INTERVAL '7 days'
            parts = amount.split()
            amount = parts[0]
            if len(parts) == 2 and unit_node is None:
                unit_node = sge.Var(this=parts[1])
        unit = (unit_node.name if unit_node is not None else "").lower().rstrip("s")
        if unit not in ("day", "week", "month", "year", "hour", "minute", "second"):
            raise UnsafeExpression(node.sql(), f"interval unit '{unit}' is not supported")
        try:
            return ibis.interval(int(amount), unit=unit[0].upper() if unit in (
                "day", "week", "month", "year") else {"hour": "h", "minute": "m",
                                                      "second": "s"}[unit])
        except (TypeError, ValueError):
            raise UnsafeExpression(node.sql(), "interval needs a whole number") from None
