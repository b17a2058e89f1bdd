"""A tiny project for the REST API tests (two customers, three orders, one event source,
one metric, one segment): built and run in a couple of seconds, unlike the demo."""

from __future__ import annotations

import json
from pathlib import Path

import passerelle
from passerelle.core import Project

CRM = """customer_id,email,phone,first_name,last_name,country
C1,marie.dupont@example.fr,06 12 34 56 78,Marie,Dupont,FR
C2,paul.martin@example.fr,06 11 11 11 11,Paul,Martin,BE
"""
ORDERS = """order_id,customer_id,ordered_at,amount,channel
O1,C1,2026-01-10,50,web
O2,C2,2026-01-11,20,store
O3,C1,2026-02-12,15,web
"""
EVENTS = [
    {"messageId": "e1", "type": "track", "event": "Cart Viewed", "userId": "C1",
     "timestamp": "2026-01-02T10:00:00Z"},
]
METRICS = """\
semantic_models:
  - name: orders
    model: orders
    defaults: {agg_time_dimension: ordered_at}
    entities:
      - {name: order, type: primary, expr: order_id}
    measures:
      - {name: revenue, agg: sum, expr: amount}
    dimensions:
      - {name: ordered_at, type: time, type_params: {time_granularity: day}}
      - {name: channel, type: categorical}
metrics:
  - name: revenue
    type: simple
    type_params: {measure: revenue}
"""
SEGMENT = """\
description: Customers in France
owner: marketing
where: {field: country, op: "=", value: FR}
"""


def _source(entity: str, path: str, columns: dict[str, str], connector: str = "csv",
            customer_source: str | None = None) -> str:
    lines = [f"entity: {entity}", "connector:", f"  type: {connector}", f"  path: {path}",
             "columns:"] + [f"  {k}: {v}" for k, v in columns.items()]
    if customer_source:
        lines.append(f"customer_source: {customer_source}")
    return "\n".join(lines) + "\n"


def write_tiny_project(root: Path, passerelle_yml: str = "") -> Path:
    for folder in ("sources", "data", "metrics", "segments"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    (root / "passerelle.yml").write_text("name: api-test\n" + passerelle_yml)
    (root / "identity.yml").write_text("keys:\n  - field: email\n"
                                       "probabilistic:\n  enabled: false\n")
    (root / "data" / "crm.csv").write_text(CRM)
    (root / "data" / "orders.csv").write_text(ORDERS)
    (root / "data" / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in EVENTS))
    cols = ("customer_id", "email", "phone", "first_name", "last_name", "country")
    (root / "sources" / "crm.yml").write_text(
        _source("customers", "data/crm.csv", {c: c for c in cols}))
    (root / "sources" / "orders.yml").write_text(_source(
        "orders", "data/orders.csv",
        {c: c for c in ("order_id", "customer_id", "ordered_at", "amount", "channel")},
        customer_source="crm"))
    (root / "sources" / "web.yml").write_text(_source(
        "events", "data/events.jsonl", {
            "message_id": "messageId", "type": "type", "event": "event", "user_id": "userId",
            "timestamp": "timestamp"}, connector="jsonl", customer_source="crm"))
    (root / "metrics" / "orders.yml").write_text(METRICS)
    (root / "segments" / "in_france.yml").write_text(SEGMENT)
    return root


def tiny_project(root: Path) -> Project:
    """The tiny project, run once."""
    project = passerelle.open(write_tiny_project(root))
    result = project.run()
    assert result.ok, [e.reason for e in result.errors]
    return project


def admin_token(project, name: str = "tests") -> str:
    """A service token with the admin scope in the project's application database: what the
    tests that call /api send (every route needs a credential)."""
    from passerelle.governance.db import open_app_db
    from passerelle.governance.tokens import create_token

    with open_app_db(project) as db:
        return create_token(db, ["admin"], None, ("cli", "tests"), name=name)[1]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def authorize(client, project):
    """The TestClient ``client`` sends an admin token from now on; returns it."""
    client.headers["Authorization"] = f"Bearer {admin_token(project)}"
    return client
