"""The tracking plan: event names and the JSON Schema of their properties.

Events that break the plan are stored anyway (losing data to punish a tag is worse than
keeping it flagged); each violation is a ``{rule, field, message}`` object. ``rule`` is the
JSON Schema keyword that failed (``required``, ``type``, ``enum``...) or ``unplanned_event``;
``field`` is the dotted path inside ``properties``. :func:`list_violations` groups them by
event and rule for ``passerelle events violations`` and the API.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import ibis
import jsonschema
from pydantic import ValidationError

from passerelle.engines.base import Engine
from passerelle.errors import Problem, ProjectError
from passerelle.project.models import TrackingPlan
from passerelle.project.paths import confine
from passerelle.project.yamlio import YamlSyntaxError, read_yaml

VIOLATIONS_TABLE = "event_violations"
MAX_PER_EVENT = 20  # violations kept per event: a broken tag must not blow up the spool


class Plan:
    """A tracking plan compiled once: one validator per planned event.

    ``jsonschema`` takes tens of microseconds an event, too slow for the collector's hot
    path. So each schema written with the common keywords is also compiled into a plain
    predicate (:func:`fast_check`) that answers "valid" in a microsecond; only events it
    does not vouch for go through ``jsonschema``, which finds the violations. The predicate
    may refuse a valid event (then ``jsonschema`` decides), never the reverse.
    """

    def __init__(self, plan: TrackingPlan) -> None:
        self.plan = plan
        self.validators: dict[str, jsonschema.protocols.Validator] = {}
        self.fast: dict[str, Callable[[object], bool]] = {}
        for name, spec in plan.events.items():
            cls = jsonschema.validators.validator_for(spec.properties,
                                                      jsonschema.Draft202012Validator)
            cls.check_schema(spec.properties)
            self.validators[name] = cls(spec.properties)
            if cls is jsonschema.Draft202012Validator:
                fast = fast_check(spec.properties)
                if fast is not None:
                    self.fast[name] = fast

    def check(self, event: str, properties: dict) -> list[dict]:
        fast = self.fast.get(event)
        if fast is not None and fast(properties):
            return []
        validator = self.validators.get(event)
        if validator is None:
            if self.plan.unplanned == "flag":
                return [{"rule": "unplanned_event", "field": None,
                         "message": f"{event!r} is not in the tracking plan"}]
            return []
        out: list[dict] = []
        for error in validator.iter_errors(properties):
            path = ".".join(str(p) for p in error.absolute_path)
            if error.validator == "required" and isinstance(error.instance, dict):
                for name in error.validator_value:
                    if name not in error.instance:
                        out.append({"rule": "required", "field": _join(path, name),
                                    "message": f"'{name}' is required"})
            else:
                out.append({"rule": str(error.validator), "field": path or None,
                            "message": error.message[:300]})
            if len(out) >= MAX_PER_EVENT:
                break
        return out


#: Keywords that never make an instance invalid (annotations; ``format`` is one unless a
#: format checker is given, and the plan gives none).
_ANNOTATIONS = frozenset({"$schema", "$id", "$comment", "title", "description", "default",
                          "examples", "format", "deprecated", "readOnly", "writeOnly"})
_TYPES: dict[str, Callable[[object], bool]] = {
    "object": lambda v: v.__class__ is dict,
    "array": lambda v: v.__class__ is list,
    "string": lambda v: v.__class__ is str,
    "number": lambda v: v.__class__ is int or v.__class__ is float,
    "integer": lambda v: v.__class__ is int or (v.__class__ is float and v.is_integer()),
    "boolean": lambda v: v.__class__ is bool,
    "null": lambda v: v is None,
}
_BOUNDS = {"minimum": lambda v, b: v >= b, "maximum": lambda v, b: v <= b,
           "exclusiveMinimum": lambda v, b: v > b, "exclusiveMaximum": lambda v, b: v < b}
_FAST_KEYWORDS = _ANNOTATIONS | {"type", "properties", "required", "additionalProperties",
                                 "enum", "const", "minLength", "maxLength", "items",
                                 "minItems", "maxItems", *_BOUNDS}


def fast_check(schema: object) -> Callable[[object], bool] | None:
    """A predicate true only for instances the JSON Schema accepts, or None when the schema
    uses a keyword it does not cover. Numbers are JSON numbers (never booleans); ``enum``
    and ``const`` match strings, null and exact types only (anything else falls back)."""
    if schema is True or schema == {}:
        return lambda v: True
    if not isinstance(schema, dict) or not _FAST_KEYWORDS.issuperset(schema):
        return None
    checks: list[Callable[[object], bool]] = []
    kind = schema.get("type")
    if kind is not None:
        kinds = [kind] if isinstance(kind, str) else kind
        if not isinstance(kinds, list) or not all(k in _TYPES for k in kinds):
            return None
        tests = [_TYPES[k] for k in kinds]
        checks.append(lambda v: any(t(v) for t in tests))
    for key in ("enum", "const"):
        if key in schema:
            allowed = schema[key] if key == "enum" else [schema[key]]
            if not isinstance(allowed, list) or not all(
                    a is None or isinstance(a, str) for a in allowed):
                return None
            checks.append(lambda v, values=frozenset(allowed): (
                v is None or v.__class__ is str) and v in values)
    for key, test in _BOUNDS.items():
        bound = schema.get(key)
        if bound is not None:
            if bound.__class__ not in (int, float):
                return None
            checks.append(lambda v, b=bound, t=test: not (
                v.__class__ is int or v.__class__ is float) or t(v, b))
    for key, test in (("minLength", int.__ge__), ("maxLength", int.__le__)):
        if key in schema:
            checks.append(lambda v, n=schema[key], t=test: v.__class__ is not str or t(len(v), n))
    for key, test in (("minItems", int.__ge__), ("maxItems", int.__le__)):
        if key in schema:
            checks.append(lambda v, n=schema[key], t=test: v.__class__ is not list
                          or t(len(v), n))
    if "items" in schema:
        item = fast_check(schema["items"])
        if item is None:
            return None
        checks.append(lambda v: v.__class__ is not list or all(item(x) for x in v))
    if "required" in schema:
        required = list(schema["required"])
        checks.append(lambda v: v.__class__ is not dict or all(k in v for k in required))
    props: dict[str, Callable[[object], bool]] = {}
    for name, sub in (schema.get("properties") or {}).items():
        compiled = fast_check(sub)
        if compiled is None:
            return None
        props[name] = compiled
    if props:
        checks.append(lambda v: v.__class__ is not dict or all(
            test(v[k]) for k, test in props.items() if k in v))
    extra = schema.get("additionalProperties", True)
    if extra is False:
        checks.append(lambda v: v.__class__ is not dict or all(k in props for k in v))
    elif extra is not True:
        compiled = fast_check(extra)
        if compiled is None:
            return None
        checks.append(lambda v: v.__class__ is not dict or all(
            compiled(x) for k, x in v.items() if k not in props))
    if not checks:
        return lambda v: True
    if len(checks) == 1:
        return checks[0]
    return lambda v: all(check(v) for check in checks)


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def load_plan(project_root: Path, relative: str) -> Plan:
    """Read and compile ``tracking-plan.yml``; every problem raises a located ProjectError."""
    path = confine(project_root, relative, what="tracking plan")
    if not path.is_file():
        raise ProjectError([Problem(relative, "the tracking plan file does not exist",
                                    hint="create it, or remove `tracking_plan` from the source")])
    try:
        doc = read_yaml(path, relative)
        plan = TrackingPlan.model_validate(doc.data or {})
        return Plan(plan)
    except YamlSyntaxError as exc:
        raise ProjectError([Problem(relative, str(exc))]) from exc
    except ValidationError as exc:
        raise ProjectError([Problem(relative, f"{'.'.join(map(str, e['loc']))}: {e['msg']}")
                            for e in exc.errors()]) from exc
    except jsonschema.SchemaError as exc:
        raise ProjectError([Problem(relative, f"invalid JSON Schema: {exc.message}")]) from exc


def list_violations(engine: Engine, source: str | None = None) -> list[dict]:
    """Violations grouped by source, event and rule, most frequent first.

    Each row: ``source, event, rule, field, events, first_seen, last_seen, example``.
    """
    if not engine.exists(VIOLATIONS_TABLE):
        return []
    v = engine.table(VIOLATIONS_TABLE)
    if source is not None:
        v = v.filter(v.source == source)
    grouped = v.group_by(["source", "event", "rule", "field"]).aggregate(
        events=v.message_id.nunique(), first_seen=v.received_at.min(),
        last_seen=v.received_at.max(), example=v.message.max(),
    )
    ordered = grouped.order_by([ibis.desc("events"), "source", "event", "rule", "field"])
    return engine.to_arrow(ordered).to_pylist()
