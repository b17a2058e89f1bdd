"""Content templates: Jinja2 in its sandbox, reduced to what a message needs.

A template sees plain values only (the golden-record fields and traits its offer declares,
and the context), so the rules are simple and checked before anything runs:

- names: only the declared ones (``jinja2.meta.find_undeclared_variables``);
- no attribute or item access (``x.y``, ``x['y']``), no function call, no macro, no include,
  no ``**``: a template cannot reach past its values (Apache Unomi's CVE-2020-13942 was
  code run from conditions; templates come from files but one day from the web app);
- filters from a short list that cannot blow up a string (no ``center(10**9)``);
- loops only one level deep and only over a value (no ``range``: the globals are empty), so
  a loop runs at most as many times as the value is long;
- the output is cut off at :data:`MAX_OUTPUT` characters: beyond it the render fails.

Rendering failures and empty output are :class:`RenderError`; the decision then tries the
next message and reports the failure (never a blank message).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from jinja2 import StrictUndefined, TemplateSyntaxError, meta, nodes
from jinja2.sandbox import SandboxedEnvironment, SecurityError

from passerelle.errors import PasserelleError

MAX_OUTPUT = 20_000  # characters of one rendered template
MAX_TEMPLATE = 20_000  # characters of one template's source
ALLOWED_FILTERS = ("abs", "capitalize", "d", "default", "e", "escape", "float", "int",
                   "length", "lower", "round", "string", "striptags", "title", "trim",
                   "truncate", "upper", "urlencode", "wordcount")
# Every node a template may contain; anything else (Getattr, Getitem, Call, Macro, Include,
# Pow, Slice...) is refused at validation.
_ALLOWED_NODES = (
    nodes.Template, nodes.Output, nodes.TemplateData, nodes.Name, nodes.Const, nodes.Filter,
    nodes.Test, nodes.If, nodes.CondExpr, nodes.For, nodes.Compare, nodes.Operand, nodes.And,
    nodes.Or, nodes.Not, nodes.Concat, nodes.Add, nodes.Sub, nodes.Mul, nodes.Div,
    nodes.FloorDiv, nodes.Mod, nodes.Neg, nodes.Pos, nodes.Assign, nodes.Tuple, nodes.List,
    nodes.Keyword,
)


class RenderError(PasserelleError):
    """A template failed to render, or rendered empty."""


@dataclass(frozen=True)
class TemplateProblem:
    message: str
    line: int  # line inside the template (1-based)


class _Env(SandboxedEnvironment):
    # intercepted, so never folded at compile time either (Jinja folds constants)
    intercepted_binops = frozenset({"*", "**"})

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "**":
            raise SecurityError("'**' is not allowed in a template")
        if isinstance(left, str) or isinstance(right, str):
            times = right if isinstance(left, str) else left
            text = left if isinstance(left, str) else right
            if isinstance(times, int) and len(text) * times > MAX_OUTPUT:
                raise SecurityError("a repeated string would exceed the output limit")
        return super().call_binop(context, operator, left, right)


def _env(escape_html: bool) -> _Env:
    env = _Env(undefined=StrictUndefined, autoescape=escape_html, keep_trailing_newline=False)
    env.globals.clear()  # no range, dict, namespace, cycler, joiner, lipsum
    env.filters = {name: env.filters[name] for name in ALLOWED_FILTERS}
    return env


_TEXT, _HTML = _env(False), _env(True)


def escapes_html(key: str) -> bool:
    """Templates named ``body`` or ending in ``html`` are HTML: their values are escaped."""
    return key == "body" or key.endswith("html")


def check_template(source: str, allowed: Iterable[str]) -> list[TemplateProblem]:
    """What keeps ``source`` from being a safe template over the names ``allowed``."""
    if len(source) > MAX_TEMPLATE:
        return [TemplateProblem(f"the template is longer than {MAX_TEMPLATE} characters", 1)]
    try:
        ast = _TEXT.parse(source)
    except TemplateSyntaxError as exc:
        return [TemplateProblem(f"template syntax error: {exc.message}", exc.lineno or 1)]
    found: list[TemplateProblem] = []
    allowed = set(allowed)
    for node in _walk(ast):
        line = getattr(node, "lineno", 1) or 1
        if isinstance(node, nodes.Getattr):
            found.append(TemplateProblem(
                f"'.{node.attr}': a template cannot read attributes, only its values", line))
        elif isinstance(node, nodes.Getitem):
            found.append(TemplateProblem("'[...]': a template cannot index its values", line))
        elif isinstance(node, nodes.Filter) and node.name not in ALLOWED_FILTERS:
            found.append(TemplateProblem(f"the filter '{node.name}' is not allowed "
                                         f"(allowed: {', '.join(ALLOWED_FILTERS)})", line))
        elif isinstance(node, nodes.For) and (node.recursive or _inner_loop(node)):
            found.append(TemplateProblem("loops cannot be nested or recursive", line))
        elif not isinstance(node, _ALLOWED_NODES):
            found.append(TemplateProblem(
                f"'{type(node).__name__}' is not allowed in a template", line))
    try:
        used = meta.find_undeclared_variables(ast)
    except TemplateSyntaxError:  # an unknown filter, already reported above
        used = set()
    for name in sorted(used - allowed):
        line = next((n.lineno for n in ast.find_all(nodes.Name) if n.name == name), 1)
        found.append(TemplateProblem(
            f"'{name}' is not a value of this template (declare it under fields: or traits:, "
            f"or in the placement's context)", line))
    return found


def _walk(node: nodes.Node) -> Iterable[nodes.Node]:
    yield node
    for child in node.iter_child_nodes():
        yield from _walk(child)


def _inner_loop(loop: nodes.For) -> bool:
    return any(True for _ in loop.find_all(nodes.For))


class Renderer:
    """Compiled templates, each compiled once; call :meth:`render` with the values."""

    def __init__(self) -> None:
        self._cache: dict[tuple[str, str], Any] = {}

    def _template(self, key: str, source: str) -> Any:
        found = self._cache.get((key, source))
        if found is None:
            env = _HTML if escapes_html(key) else _TEXT
            found = self._cache[(key, source)] = env.from_string(source)
        return found

    def render(self, content: Mapping[str, str], values: Mapping[str, Any]) -> dict[str, str]:
        """Every template of ``content`` rendered; raises :class:`RenderError` when one
        fails, grows past :data:`MAX_OUTPUT` or renders empty."""
        out = {}
        for key, source in content.items():
            try:
                parts, size = [], 0
                for piece in self._template(key, source).generate(**values):
                    size += len(piece)
                    if size > MAX_OUTPUT:
                        raise RenderError(f"'{key}' renders longer than {MAX_OUTPUT} "
                                          "characters")
                    parts.append(piece)
            except RenderError:
                raise
            except Exception as exc:  # any failure of a marketer's template: next message
                raise RenderError(f"'{key}' failed to render: {type(exc).__name__}: {exc}") \
                    from exc
            text = "".join(parts)
            if not text.strip():
                raise RenderError(f"'{key}' renders empty")
            out[key] = text
        return out
