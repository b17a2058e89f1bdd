"""Figures as JSON whose dates, timestamps, decimals, tuples, mappings with other keys than
text, and errors are tagged, so a reader gets back the very values the computation gave."""

from __future__ import annotations

import json
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from passerelle.errors import PasserelleError


def _tag(value: Any) -> Any:
    if isinstance(value, datetime):
        return {"__t": "datetime", "v": value.isoformat()}
    if isinstance(value, date):
        return {"__t": "date", "v": value.isoformat()}
    if isinstance(value, Decimal):
        return {"__t": "decimal", "v": str(value)}
    if isinstance(value, tuple):
        return {"__t": "tuple", "v": [_tag(v) for v in value]}
    if isinstance(value, list):
        return [_tag(v) for v in value]
    if isinstance(value, dict):
        if not all(isinstance(k, str) for k in value):
            return {"__t": "items", "v": [[_tag(k), _tag(v)] for k, v in value.items()]}
        return {k: _tag(v) for k, v in value.items()}
    if isinstance(value, PasserelleError):
        return {"__t": "error", "v": [value.reason, value.instruction]}
    return value


def _untag(value: Any) -> Any:
    if isinstance(value, list):
        return [_untag(v) for v in value]
    if not isinstance(value, dict):
        return value
    kind = value.get("__t")
    if kind == "datetime":
        return datetime.fromisoformat(value["v"])
    if kind == "date":
        return date.fromisoformat(value["v"])
    if kind == "decimal":
        return Decimal(value["v"])
    if kind == "tuple":
        return tuple(_untag(v) for v in value["v"])
    if kind == "items":
        return {_untag(k): _untag(v) for k, v in value["v"]}
    if kind == "error":
        return PasserelleError(*value["v"])
    return {k: _untag(v) for k, v in value.items()}


def encode(value: Any) -> str:
    return json.dumps(_tag(value), ensure_ascii=False, separators=(",", ":"))


def decode(text: str) -> Any:
    return _untag(json.loads(text))
