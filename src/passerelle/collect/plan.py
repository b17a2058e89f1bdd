"""The tracking plan: event names and the JSON Schema of their properties.

Events that break the plan are stored anyway (losing data to punish a tag is worse than
keeping it flagged); each violation is a ``{rule, field, message}`` object. ``rule`` is the
JSON Schema keyword that failed (``required``, ``type``, ``enum``...) or ``unplanned_event``;
``field`` is the dotted path inside ``properties``. :func:`list_violations` groups them by
event and rule for ``passerelle events violations`` and the API.
"""

from __future__ import annotations

from pathlib import Path

import ibis
import jsonschema
from pydantic import ValidationError

from passerelle.engines.base import Engine
from passerelle.errors import Problem, ProjectError
from passerelle.project.models import TrackingPlan
from passerelle.project.yamlio import YamlSyntaxError, read_yaml

VIOLATIONS_TABLE = "event_violations"
MAX_PER_EVENT = 20  # violations kept per event: a broken tag must not blow up the spool


class Plan:
    """A tracking plan compiled once: one validator per planned event."""

    def __init__(self, plan: TrackingPlan) -> None:
        self.plan = plan
        self.validators: dict[str, jsonschema.protocols.Validator] = {}
        for name, spec in plan.events.items():
            cls = jsonschema.validators.validator_for(spec.properties,
                                                      jsonschema.Draft202012Validator)
            cls.check_schema(spec.properties)
            self.validators[name] = cls(spec.properties)

    def check(self, event: str, properties: dict) -> list[dict]:
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


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def load_plan(project_root: Path, relative: str) -> Plan:
    """Read and compile ``tracking-plan.yml``; every problem raises a located ProjectError."""
    path = Path(project_root) / relative
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
