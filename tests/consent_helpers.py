"""A tiny project for the consent tests: two customer sources stating consents (a standard
field and a CRM opt-in column) and collector events carrying Segment's
``context.consent.categoryPreferences``. Hand-computed outcomes are next to the data."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import passerelle
from conftest import PG

# email_marketing (field consent_email of crm and shop), latest wins, tie -> withdrawal:
#   Anna: crm yes 01-01, shop no 03-01         -> withdrawn (a later withdrawal)
#   Ben:  crm yes 01-01, shop yes 2023-06-01   -> granted
#   Cleo: crm no 01-01,  shop yes 01-01        -> withdrawn (same time: withdrawal wins)
#   Dan:  crm no 01-01,  shop yes 05-01        -> granted (a later grant)
# newsletter (crm column optin_newsletter oui/non, and event category "Email Marketing"):
#   Anna oui -> granted; Ben non 01-01 then event true 06-01 -> granted;
#   Cleo oui 01-01 then event false 06-01 -> withdrawn; Dan: empty cell -> never stated
# ad_audiences (event category "Advertising"): Ben true, Cleo false
CRM = """customer_id,email,first_name,consent_email,consent_updated_at,optin_newsletter
C1,anna@example.fr,Anna,yes,2024-01-01 10:00:00,Oui
C2,ben@example.fr,Ben,yes,2024-01-01 10:00:00,non
C3,cleo@example.fr,Cleo,no,2024-01-01 10:00:00,oui
C4,dan@example.fr,Dan,no,2024-01-01 10:00:00,
"""
SHOP = """customer_id,email,first_name,consent_email,consent_updated_at
S1,anna@example.fr,Anna,no,2024-03-01 10:00:00
S2,ben@example.fr,Ben,yes,2023-06-01 10:00:00
S3,cleo@example.fr,Cleo,yes,2024-01-01 10:00:00
S4,dan@example.fr,Dan,yes,2024-05-01 10:00:00
"""
EVENTS = [
    {"messageId": "m-ben", "type": "track", "event": "Consent Updated", "userId": "S2",
     "timestamp": "2024-06-01T10:00:00Z",
     "context": {"consent": {"categoryPreferences": {"Email Marketing": True,
                                                     "Advertising": True}}}},
    {"messageId": "m-cleo", "type": "track", "event": "Consent Updated", "userId": "S3",
     "timestamp": "2024-06-01T10:00:00Z",
     "context": {"consent": {"categoryPreferences": {"Email Marketing": False,
                                                     "Advertising": False}}}},
    {"messageId": "m-none", "type": "page", "userId": "S1",
     "timestamp": "2024-06-02T10:00:00Z", "context": {"page": {"path": "/"}}},
]
CONSENT = """\
purposes:
  email_marketing:
    description: Marketing e-mails
    legal_basis: consent
    channels: [email]
    sources:
      crm: {field: consent_email}
      shop: {field: consent_email}
  newsletter:
    description: The weekly newsletter
    legal_basis: consent
    channels: [email]
    sources:
      crm: {column: optin_newsletter, granted: [oui], withdrawn: [non]}
    categories: [Email Marketing]
  ad_audiences:
    legal_basis: consent
    channels: [ads]
    categories: [Advertising]
"""
SEGMENT = """\
description: Everyone with an e-mail
owner: tests
where: {field: email, op: not_null}
audiences:
  - name: everyone_mail
    channel: email
    holdout_percent: 0
  - name: everyone_news
    channel: email
    purpose: newsletter
    holdout_percent: 0
"""
PEOPLE = ("anna", "ben", "cleo", "dan")


def _source(name: str, entity: str, path: str, columns: dict[str, str], connector: str = "csv",
            customer_source: str | None = None) -> str:
    lines = [f"entity: {entity}", "connector:", f"  type: {connector}", f"  path: {path}",
             "columns:"] + [f"  {k}: {v}" for k, v in columns.items()]
    if customer_source:
        lines.append(f"customer_source: {customer_source}")
    return "\n".join(lines) + "\n"


def write_project(root: Path, engine_kind: str = "duckdb", consent: str | None = CONSENT,
                  segment: str = SEGMENT) -> Path:
    (root / "sources").mkdir(parents=True)
    (root / "data").mkdir()
    (root / "segments").mkdir()
    if engine_kind == "duckdb":
        engine = "engine:\n  type: duckdb\n"
    else:
        engine = (f"engine:\n  type: postgres\n  host: {PG['host']}\n  port: {PG['port']}\n"
                  f"  user: {PG['user']}\n  schema: pt_{uuid.uuid4().hex[:10]}\n")
    (root / "passerelle.yml").write_text(f"name: consent-test\n{engine}default_region: FR\n")
    (root / "identity.yml").write_text("keys:\n  - field: email\nprobabilistic:\n"
                                       "  enabled: false\n")
    (root / "data" / "crm.csv").write_text(CRM)
    (root / "data" / "shop.csv").write_text(SHOP)
    (root / "data" / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in EVENTS))
    customer = {c: c for c in ("customer_id", "email", "first_name", "consent_email",
                               "consent_updated_at")}
    (root / "sources" / "crm.yml").write_text(_source("crm", "customers", "data/crm.csv",
                                                      customer))
    (root / "sources" / "shop.yml").write_text(_source("shop", "customers", "data/shop.csv",
                                                       customer))
    (root / "sources" / "web.yml").write_text(_source(
        "web", "events", "data/events.jsonl",
        {"message_id": "messageId", "type": "type", "event": "event", "user_id": "userId",
         "timestamp": "timestamp", "context": "context"}, "jsonl", customer_source="shop"))
    if consent is not None:
        (root / "consent.yml").write_text(consent)
    (root / "segments" / "everyone.yml").write_text(segment)
    return root


def open_run(root: Path):
    project = passerelle.open(root)
    result = project.run()
    assert result.ok, [e.reason for e in result.errors]
    return project, result


def person_of(project, email: str) -> str:
    p = project.engine.table("profiles")
    return project.engine.to_arrow(p.filter(p.email == email).select("person_id")
                                   ).to_pylist()[0]["person_id"]


def state(project, purpose: str) -> dict[str, bool]:
    """first name -> granted, for the people with a current state of ``purpose``."""
    e = project.engine
    c, p = e.table("consents"), e.table("profiles")
    j = c.filter(c.purpose == purpose).join(p, "person_id")
    return {r["first_name"].lower(): r["granted"]
            for r in e.to_arrow(j.select("first_name", "granted")).to_pylist()}
