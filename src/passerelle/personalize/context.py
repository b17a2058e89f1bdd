"""The context of a decision: values the caller passes, typed by the placement, plus the
built-in ones (channel, placement, hour, weekday), and the offers' rules over them."""

from __future__ import annotations

import math
import operator
from collections.abc import Mapping
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from passerelle.errors import PasserelleError
from passerelle.project.offers_models import (
    WEEKDAYS,
    ContextField,
    ContextRule,
    PlacementConfig,
)

_COMPUTED = ("hour", "weekday", "placement")
_OPS = {"=": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le,
        ">": operator.gt, ">=": operator.ge}


class PersonalizeError(PasserelleError):
    """A decision that cannot be made as asked (unknown placement, bad store...)."""


class ContextError(PersonalizeError, ValueError):
    """A context value is missing, unknown or of the wrong type; ``field`` names it."""

    def __init__(self, field: str, reason: str, instruction: str) -> None:
        super().__init__(reason, instruction)
        self.field = field


def fits(value: Any, declared: ContextField) -> bool:
    """A literal of the right type (and among the declared values, if any)."""
    ok = {"text": isinstance(value, str),
          "number": isinstance(value, (int, float)) and not isinstance(value, bool),
          "integer": isinstance(value, int) and not isinstance(value, bool),
          "boolean": isinstance(value, bool)}[declared.type]
    return ok and (declared.values is None or value in declared.values)


def _typed(name: str, value: Any, declared: ContextField) -> Any:
    """The value in its declared type; text from a query string is parsed."""
    out: Any = value
    if isinstance(value, str) and declared.type != "text":
        text = value.strip().lower()
        if declared.type == "boolean":
            out = {"true": True, "1": True, "false": False, "0": False}.get(text, value)
        else:
            try:
                out = int(text) if declared.type == "integer" else float(text)
            except ValueError:
                out = value
    if isinstance(out, float) and (declared.type == "integer" and out.is_integer()):
        out = int(out)
    if isinstance(out, float) and not math.isfinite(out):
        out = value
    if not fits(out, ContextField(type=declared.type)):
        raise ContextError(name, f"The context value '{name}' must be {declared.type}, "
                           f"not {value!r}.", f"Pass {name} as a {declared.type}.")
    if declared.values is not None and out not in declared.values:
        raise ContextError(name, f"The context value '{name}' is {value!r}, not one of "
                           f"{declared.values}.", f"Pass one of {declared.values}.")
    return out


def decision_context(placement: PlacementConfig, given: Mapping[str, Any], now: datetime,
                     timezone: str) -> dict[str, Any]:
    """The typed context of a decision, or :class:`ContextError` naming the bad field.

    ``now`` is aware or naive UTC; hour and weekday are read in ``timezone``."""
    fields = placement.context_fields()
    out: dict[str, Any] = {}
    for name, value in given.items():
        if name in _COMPUTED:
            raise ContextError(name, f"'{name}' is computed by the decision, not passed.",
                               f"Remove '{name}' from the context.")
        declared = fields.get(name)
        if declared is None:
            declared_names = sorted(set(fields) - set(_COMPUTED))
            raise ContextError(name, f"'{name}' is not a context value of placement "
                               f"'{placement.name}'.", "Declare it under the placement's "
                               f"context: (declared: {', '.join(declared_names)}).")
        if value is None:
            continue
        out[name] = _typed(name, value, declared)
    for name, declared in fields.items():
        if declared.required and name not in out:
            raise ContextError(name, f"The context value '{name}' is required by placement "
                               f"'{placement.name}'.", f"Pass {name}.")
    channel = out.get("channel")
    if channel is not None and placement.channels and channel not in placement.channels:
        raise ContextError("channel", f"Placement '{placement.name}' is not shown on channel "
                           f"'{channel}'.", f"Channels: {', '.join(placement.channels)}.")
    if now.tzinfo is None:
        now = now.replace(tzinfo=ZoneInfo("UTC"))
    local = now.astimezone(ZoneInfo(timezone))
    out.update(placement=placement.name, hour=local.hour, weekday=WEEKDAYS[local.weekday()])
    return out


def rule_holds(rule: ContextRule, values: Mapping[str, Any]) -> bool:
    """A context rule over the decision's values; an absent value matches only is_null."""
    value = values.get(rule.context)
    op, want = rule.op, rule.value
    if op == "is_null":
        return value is None
    if op == "not_null":
        return value is not None
    if value is None:
        return op == "!=" or op == "not_in"
    try:
        if op == "in":
            return value in want  # type: ignore[operator]
        if op == "not_in":
            return value not in want  # type: ignore[operator]
        if op == "between":
            low, high = want  # type: ignore[misc]
            return low <= value <= high
        if op == "contains":
            return str(want) in str(value)
        if op == "starts_with":
            return str(value).startswith(str(want))
        return bool(_OPS[op](value, want))
    except TypeError:
        return False


def rules_hold(rules: list[ContextRule], values: Mapping[str, Any]) -> bool:
    return all(rule_holds(r, values) for r in rules)
