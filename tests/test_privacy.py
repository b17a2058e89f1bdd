"""Access and erasure requests on a small hand-made project, on DuckDB and PostgreSQL:
what is found, what is removed, what is kept, and that the person stays out of later runs."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
import sqlglot as sg
import sqlglot.expressions as sge

import passerelle
from api_helpers import authorize
from conftest import PG
from passerelle.errors import PasserelleError
from passerelle.identity.service import person_id_of
from passerelle.privacy import access_report, erase_person, list_requests, preview_erasure

CRM = """customer_id,email,phone,first_name,last_name,loyalty_card
C1,marie.dupont@example.fr,06 12 34 56 78,Marie,Dupont,L1
C2,famille.martin@example.fr,06 11 11 11 11,Paul,Martin,
C3,famille.martin@example.fr,06 12 34 56 78,Julie,Martin,
"""
SHOP = """customer_id,email,first_name,last_name
S1,MARIE.DUPONT@example.fr,Marie,Dupont
S2,paul@example.fr,Paul,Martin
"""
ORDERS = """order_id,customer_id,email,loyalty_card,ordered_at,amount
O1,S1,,,2026-01-10,50
O2,,famille.martin@example.fr,,2026-01-11,20
O3,,,L1,2026-01-12,15
O4,S2,,,2026-01-13,30
"""
LINES = """order_id,line_number,category,amount
O1,1,shoes,50
O2,1,hats,20
O3,1,socks,15
O4,1,bags,30
"""
EVENTS = [
    {"messageId": "e1", "type": "page", "anonymousId": "dev-1",
     "timestamp": "2026-01-01T10:00:00Z"},
    {"messageId": "e2", "type": "identify", "userId": "S1", "anonymousId": "dev-1",
     "timestamp": "2026-01-02T10:00:00Z"},
    {"messageId": "e3", "type": "track", "event": "Cart Viewed", "userId": "S2",
     "timestamp": "2026-01-03T10:00:00Z"},
    {"messageId": "e4", "type": "page", "anonymousId": "dev-9",
     "timestamp": "2026-01-04T10:00:00Z"},
]


def source(name, entity, path, columns, connector="csv", customer_source=None):
    lines = [f"entity: {entity}", "connector:", f"  type: {connector}", f"  path: {path}",
             "columns:"] + [f"  {k}: {v}" for k, v in columns.items()]
    if customer_source:
        lines.append(f"customer_source: {customer_source}")
    return "\n".join(lines) + "\n"


def same(*names):
    return {n: n for n in names}


@pytest.fixture(params=["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)])
def shop(request, tmp_path: Path):
    project = build_shop(tmp_path, request.param)
    yield project
    if request.param == "postgres":
        project.engine.drop_schema()
    project.close()


@pytest.fixture
def duckdb_shop(tmp_path: Path):
    project = build_shop(tmp_path, "duckdb")
    yield project
    project.close()


def build_shop(tmp_path: Path, engine_kind: str):
    """The project, run once: Marie (crm C1 and shop S1, card L1, device dev-1), Paul and
    Julie Martin (one family e-mail; Julie gives Marie's phone), Paul's shop account S2."""
    root = tmp_path / "project"
    (root / "sources").mkdir(parents=True)
    (root / "data").mkdir()
    if engine_kind == "duckdb":
        engine = "engine:\n  type: duckdb\n"
    else:
        schema = f"pt_{uuid.uuid4().hex[:10]}"
        engine = (f"engine:\n  type: postgres\n  host: {PG['host']}\n  port: {PG['port']}\n"
                  f"  user: {PG['user']}\n  schema: {schema}\n")
    (root / "passerelle.yml").write_text(f"name: privacy-test\n{engine}default_region: FR\n")
    (root / "identity.yml").write_text(
        "keys:\n  - field: email\n    first_names_must_agree: true\n"
        "  - field: phone\n    first_names_must_agree: true\n"
        "  - field: loyalty_card\nprobabilistic:\n  enabled: false\n")
    files = {"crm.csv": CRM, "shop.csv": SHOP, "orders.csv": ORDERS, "lines.csv": LINES,
             "events.jsonl": "".join(json.dumps(e) + "\n" for e in EVENTS)}
    for name, text in files.items():
        (root / "data" / name).write_text(text)
    sources = {
        "crm": source("crm", "customers", "data/crm.csv", same(
            "customer_id", "email", "phone", "first_name", "last_name", "loyalty_card")),
        "shop": source("shop", "customers", "data/shop.csv", same(
            "customer_id", "email", "first_name", "last_name")),
        "orders": source("orders", "orders", "data/orders.csv", same(
            "order_id", "customer_id", "email", "loyalty_card", "ordered_at", "amount"),
            customer_source="shop"),
        "lines": source("lines", "order_lines", "data/lines.csv", same(
            "order_id", "line_number", "category", "amount")),
        "web": source("web", "events", "data/events.jsonl", {
            "message_id": "messageId", "type": "type", "event": "event", "user_id": "userId",
            "anonymous_id": "anonymousId", "timestamp": "timestamp"}, connector="jsonl",
            customer_source="shop"),
    }
    for name, text in sources.items():
        (root / "sources" / f"{name}.yml").write_text(text)
    project = passerelle.open(root)
    result = project.run()
    assert result.ok, [e.reason for e in result.errors]
    return project


def ids(project, table, column="_record_id"):
    return sorted(project.engine.to_arrow(project.engine.table(table)[column]).to_pylist())


def test_access_report_holds_every_row_of_the_person(shop):
    marie = person_id_of(shop.definition, shop.engine, "marie.dupont@example.fr")
    report = access_report(shop.definition, shop.engine, marie, requested_by="dpo@shop.fr")
    assert report["records"] == ["crm:C1", "shop:S1"]
    rows = {name: sorted(r["_record_id"] for r in found)
            for name, found in report["source_rows"].items()}
    # the family e-mail (O2) and the phone Julie also gives are not Marie's alone
    assert rows == {"crm": ["C1"], "shop": ["S1"], "orders": ["O1", "O3"],
                    "web": ["e1", "e2"]}
    assert report["identifiers"]["email"] == ["marie.dupont@example.fr"]
    assert report["identifiers"]["anonymous_id"] == ["dev-1"]
    assert report["source_rows"]["crm"][0]["_source_file"].endswith("crm.csv")
    assert {r["person_id"] for r in report["derived_rows"]["profiles"]} == {marie}
    [logged] = list_requests(shop.engine)
    assert (logged["kind"], logged["person_id"], logged["requested_by"]) == (
        "access", marie, "dpo@shop.fr")


def test_erasure_removes_the_person_and_keeps_the_others(shop):
    engine = shop.engine
    marie = person_id_of(shop.definition, engine, "marie.dupont@example.fr")
    preview = preview_erasure(shop.definition, engine, marie)
    assert ids(shop, "stg_crm") == ["C1", "C2", "C3"]  # a preview removes nothing
    assert preview["source_rows"] == {
        "crm": {"staged": 1, "raw": 1}, "shop": {"staged": 1, "raw": 1},
        "orders": {"staged": 2, "raw": 2}, "lines": {"staged": 2, "raw": 2},
        "web": {"staged": 2, "raw": 2}}
    assert preview["shared_identifiers_kept"] == {"phone": 1}

    done = erase_person(shop.definition, engine, marie, requested_by="dpo@shop.fr",
                        reason="art. 17 request of 2026-02-01")
    assert done["source_rows"] == preview["source_rows"]
    assert ids(shop, "stg_crm") == ["C2", "C3"] and ids(shop, "stg_shop") == ["S2"]
    assert ids(shop, "stg_orders") == ["O2", "O4"]
    assert ids(shop, "stg_lines") == ["O2|1", "O4|1"]
    assert ids(shop, "stg_web") == ["e3", "e4"]
    assert ids(shop, "raw_crm", "customer_id") == ["C2", "C3"]
    assert ids(shop, "raw_web", "messageId") == ["e3", "e4"]
    for table in ("person_map", "profiles", "identity_anonymous_ids", "identity_ledger"):
        assert marie not in ids(shop, table, "person_id"), table
    assert not [n for n in ids(shop, "identity_edges", "node_a") if n in ("crm:C1", "shop:S1")]
    assert "marie.dupont@example.fr" not in ids(shop, "_norm_email", "value")
    # the suppression list holds hashes, never the values themselves
    hashes = ids(shop, "privacy_suppressions", "value_sha256")
    assert all(len(h) == 64 for h in hashes)
    assert not {"marie.dupont@example.fr", "crm:C1", "dev-1"} & set(hashes)
    [logged] = list_requests(engine)
    assert (logged["kind"], logged["reason"]) == ("erasure", "art. 17 request of 2026-02-01")
    assert logged["detail"]["source_rows"]["crm"] == {"staged": 1, "raw": 1}
    with pytest.raises(PasserelleError, match="No person"):
        person_id_of(shop.definition, engine, "marie.dupont@example.fr")


def test_erasure_forgets_the_spellings_staging_learnt(shop):
    """An address SQL cannot normalise (non-ASCII) goes through the e-mail dictionary, which
    keeps it: erasure removes it there too (the fixture's plain addresses never reach it)."""
    (shop.root / "data" / "crm.csv").write_text(CRM + "C4,zoé@exemple.fr,,Zoé,Bernard,\n")
    assert shop.run().ok
    assert "zoé@exemple.fr" in ids(shop, "_norm_email", "value")
    zoe = person_id_of(shop.definition, shop.engine, "zoé@exemple.fr")
    erase_person(shop.definition, shop.engine, zoe, requested_by=None, reason=None)
    assert "zoé@exemple.fr" not in ids(shop, "_norm_email", "value")


def test_an_erased_person_stays_out_of_later_loads(shop):
    engine = shop.engine
    marie = person_id_of(shop.definition, engine, "marie.dupont@example.fr")
    erase_person(shop.definition, engine, marie, requested_by=None, reason=None)
    data = shop.root / "data"
    # tomorrow's exports still hold her, with a new spelling, a new order and its line
    (data / "crm.csv").write_text(CRM.replace("marie.dupont@", "Marie.Dupont@")
                                  + "C4,zoe@example.fr,,Zoé,Bernard,\n")
    (data / "orders.csv").write_text(ORDERS + "O5,S1,,,2026-02-10,80\n")
    (data / "lines.csv").write_text(LINES + "O5,1,coats,80\n")
    with (data / "events.jsonl").open("a") as f:
        f.write(json.dumps({"messageId": "e5", "type": "page", "anonymousId": "dev-1",
                            "timestamp": "2026-02-11T10:00:00Z"}) + "\n")
    result = shop.run()
    assert result.ok, [e.reason for e in result.errors]
    [step] = [s for s in result.steps if s.step == "privacy"]
    # changed files are loaded again whole: her old rows come back with the new ones
    assert step.message.endswith("crm 1, orders 3, web 3, lines 3")
    assert ids(shop, "stg_crm") == ["C2", "C3", "C4"]
    assert ids(shop, "raw_crm", "customer_id") == ["C2", "C3", "C4"]
    assert ids(shop, "stg_orders") == ["O2", "O4"]
    assert ids(shop, "stg_lines") == ["O2|1", "O4|1"]
    assert ids(shop, "stg_web") == ["e3", "e4"]
    assert "zoe@example.fr" in ids(shop, "customer_records", "email")


def test_unknown_and_ambiguous_people_are_clear_errors(shop):
    with pytest.raises(PasserelleError, match="No person matches"):
        person_id_of(shop.definition, shop.engine, "nobody@example.fr")
    with pytest.raises(PasserelleError, match="No person has the id"):
        erase_person(shop.definition, shop.engine, "P-404", requested_by=None, reason=None)


def test_api_previews_then_erases_and_registers(duckdb_shop):
    from fastapi.testclient import TestClient

    from passerelle.api import create_server

    with TestClient(create_server(duckdb_shop, loader=False),
                    base_url="http://localhost") as client:
        authorize(client, duckdb_shop)
        token_id = client.get("/api/session").json()["id"]
        body = {"subject": "marie.dupont@example.fr"}
        # who handles a request is the caller, never a field the caller fills
        named = client.post("/api/privacy/access", json={**body, "requested_by": "someone"})
        assert named.status_code == 422 and "requested_by" in named.json()["message"]
        access = client.post("/api/privacy/access", json=body)
        assert access.status_code == 200
        assert sorted(access.json()["source_rows"]) == ["crm", "orders", "shop", "web"]
        preview = client.post("/api/privacy/erasure", json=body).json()
        assert preview["erased"] is False and preview["source_rows"]["crm"]["staged"] == 1
        assert client.get("/api/persons", params={"q": "marie.dupont@example.fr"}).json()
        done = client.post("/api/privacy/erasure", json={**body, "confirm": True,
                                                          "reason": "art. 17"}).json()
        assert done["erased"] is True and done["request_id"].startswith("erasure-")
        gone = client.post("/api/privacy/erasure", json={**body, "confirm": True})
        assert gone.status_code == 404 and gone.json()["code"] == "not_found"
        register = client.get("/api/privacy/requests").json()
        assert [r["kind"] for r in register] == ["erasure", "access"]
        assert {r["requested_by"] for r in register} == {f"token:{token_id}"}
        actions = [(e["action"], e["actor_id"]) for e in client.get(
            "/api/audit", params={"action": "privacy.*"}).json()]
        assert actions == [("privacy.erasure", token_id), ("privacy.erasure_preview", token_id),
                           ("privacy.access", token_id)]


def test_retention_deletes_rows_past_their_time_and_order_lines_follow(shop):
    from datetime import datetime

    from passerelle.privacy.retention import apply_retention
    from passerelle.project.models import RetentionConfig

    removed = apply_retention(shop.engine, shop.sources.values(),
                              RetentionConfig(events=30, orders=20), datetime(2026, 2, 1))
    # cut-offs: before 2026-01-02 and 2026-01-12 UTC; the order dates are Paris days, so
    # O3 of 2026-01-12 started at 2026-01-11 23:00 UTC and is past its time too
    assert {r.source: (r.staged_rows, r.raw_rows) for r in removed} == {
        "web": (1, 1), "orders": (3, 3), "lines": (3, 3)}
    assert ids(shop, "stg_web") == ["e2", "e3", "e4"]
    assert ids(shop, "raw_web", "messageId") == ["e2", "e3", "e4"]
    assert ids(shop, "stg_orders") == ["O4"]
    assert ids(shop, "stg_lines") == ["O4|1"]
    assert ids(shop, "stg_crm") == ["C1", "C2", "C3"]  # customers: no retention set


def test_retention_runs_at_every_run(duckdb_shop):
    root = duckdb_shop.root
    duckdb_shop.close()
    config = root / "passerelle.yml"
    config.write_text(config.read_text() + "retention:\n  events: 1\n")
    with passerelle.open(root) as project:
        result = project.run()  # nothing new to load: rows age out all the same
        assert result.ok, [e.reason for e in result.errors]
        [step] = [s for s in result.steps if s.step == "retention"]
        assert (step.rows_out, step.message) == (4, "rows past their retention deleted: web 4")
        assert project.engine.count("stg_web") == project.engine.count("raw_web") == 0


# ---------------------------------------------------------------- events of the person
TRACKING = """entity: events
connector:
  type: collector
  write_keys: [wk_test]
  tracking_plan: tracking-plan.yml
columns:
  message_id: messageId
  type: type
  event: event
  user_id: userId
  anonymous_id: anonymousId
  email: email
  timestamp: timestamp
  properties: properties
  context: context
"""


def _spool(root: Path, name: str, events: list[dict]) -> None:
    """A sealed unit of the collector's file spool, as `passerelle serve` writes it."""
    from passerelle.collect.events import Preparer, received_ms
    from passerelle.collect.plan import Plan
    from passerelle.project.models import TrackingPlan

    prepare = Preparer(Plan(TrackingPlan(unplanned="flag")))
    folder = root / "spool" / "tracking"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.jsonl").write_bytes(b"".join(
        prepare.prepare(e, None, received_ms())[1] + b"\n" for e in events))


def test_erasure_finds_collector_events_by_every_identifier(shop):
    """The collector source declares no customer_source: the shop account id S1 in userId
    is tied to Marie only by the e-mail her identify call carries, and her phone sits in the
    properties of an anonymous event. All of them go, from every layer, now and later."""
    root, engine = shop.root, shop.engine
    (root / "tracking-plan.yml").write_text("unplanned: flag\nevents: {}\n")
    (root / "sources" / "tracking.yml").write_text(TRACKING)
    _spool(root, "u1", [
        {"messageId": "t1", "type": "identify", "userId": "S1",
         "traits": {"email": "Marie.Dupont@example.fr", "name": "Marie Dupont"}},
        {"messageId": "t2", "type": "track", "event": "Order Completed", "userId": "S1",
         "properties": {"street": "12 rue des Lilas"}},
        {"messageId": "t3", "type": "track", "event": "Callback", "anonymousId": "dev-7",
         "properties": {"phone": "06 12 34 56 78", "email": "marie.dupont@example.fr"}},
        {"messageId": "t4", "type": "track", "event": "Order Completed", "userId": "S2",
         "properties": {"email": "xmarie.dupont@example.fr"}},  # not hers: another value
    ])
    shop.close()
    shop = passerelle.open(root)
    engine = shop.engine
    assert shop.run().ok
    assert engine.count("event_violations") == 3  # t1 is an identify: no plan check
    marie = person_id_of(shop.definition, engine, "marie.dupont@example.fr")
    done = erase_person(shop.definition, engine, marie, requested_by=None, reason=None)
    assert done["source_rows"]["tracking"] == {"staged": 3, "raw": 3}
    assert ids(shop, "stg_tracking") == ["t4"]
    assert ids(shop, "raw_tracking", "messageId") == ["t4"]
    assert ids(shop, "events") == ["e3", "e4", "t4"]
    assert ids(shop, "event_violations", "message_id") == ["t4"]
    assert "S1" not in ids(shop, "_identity_alias_log", "user_id")
    # later events of her account come back with the collector: the run removes them
    _spool(root, "u2", [
        {"messageId": "t5", "type": "track", "event": "Cart Viewed", "userId": "S1"},
        {"messageId": "t6", "type": "track", "event": "Cart Viewed", "userId": "S2"}])
    result = shop.run()
    assert result.ok, [e.reason for e in result.errors]
    assert ids(shop, "stg_tracking") == ["t4", "t6"]
    assert ids(shop, "raw_tracking", "messageId") == ["t4", "t6"]
    assert ids(shop, "event_violations", "message_id") == ["t4", "t6"]
    shop.close()


def test_the_register_names_no_record_in_clear(duckdb_shop):
    engine = duckdb_shop.engine
    marie = person_id_of(duckdb_shop.definition, engine, "marie.dupont@example.fr")
    erase_person(duckdb_shop.definition, engine, marie, requested_by="dpo", reason="art. 17")
    register = json.dumps(engine.to_arrow(engine.table("privacy_requests")).to_pylist(),
                          default=str)
    # record ids: crm:C1, shop:S1 (her loyalty card L1 is a record id in many projects)
    for clear in ("C1", "S1", "L1", "marie", "dev-1"):
        assert clear not in register, clear
    from passerelle.privacy.suppressions import sha256_hex

    [logged] = list_requests(engine)
    assert logged["detail"]["records"] == sorted(sha256_hex(n) for n in ("crm:C1", "shop:S1"))


# ------------------------------------------------ a tiny project: bytes, exports, couples
PEOPLE = """customer_id,email,phone,first_name,last_name,address_line1,birth_date
C1,marie.dupont@example.fr,06 12 34 56 78,Marie,Dupont,12 rue des Lilas,1984-03-02
C2,famille.martin@example.fr,06 11 11 11 11,Paul,Martin,3 place du Marché,1979-05-06
C3,famille.martin@example.fr,06 22 22 22 22,Julie,Martin,3 place du Marché,1981-07-08
"""


def tiny(tmp_path: Path) -> Path:
    """One CRM; identity merges by e-mail with no first-name guard: Paul and Julie, who
    share the family address, become one person."""
    root = tmp_path / "tiny"
    (root / "sources").mkdir(parents=True)
    (root / "data").mkdir()
    (root / "passerelle.yml").write_text("name: tiny\nengine:\n  type: duckdb\n"
                                         "default_region: FR\n")
    (root / "identity.yml").write_text("keys:\n  - field: email\n"
                                       "probabilistic:\n  enabled: false\n")
    (root / "data" / "crm.csv").write_text(PEOPLE)
    (root / "sources" / "crm.yml").write_text(source("crm", "customers", "data/crm.csv", same(
        "customer_id", "email", "phone", "first_name", "last_name", "address_line1",
        "birth_date")))
    with passerelle.open(root) as project:
        assert project.run().ok
    return root


def _export(project, root: Path) -> Path:
    """A Brevo CSV export of everyone, logged as `passerelle export` logs it."""
    from passerelle.activation.csv_export import sha256_of
    from passerelle.activation.log import (
        ExportResult,
        finish_export,
        record_members,
        start_export,
    )

    path = root / "exports" / "all.csv"
    path.parent.mkdir()
    path.write_text("EMAIL;PRENOM;NOM;SMS\nmarie.dupont@example.fr;Marie;Dupont;+33612345678\n"
                    "famille.martin@example.fr;Paul;Martin;+33611111111\n", encoding="utf-8")
    engine = project.engine
    export_id = start_export(engine, "all", "brevo", "csv", str(path))
    people = engine.table("profiles").select("person_id")
    record_members(engine, export_id, people)
    finish_export(engine, ExportResult(export_id, "all", "brevo", "csv", str(path),
                                       "delivered", 2, str(path), sha256_of(path)))
    return path


def test_erasure_leaves_no_byte_of_the_person_in_the_warehouse_file(tmp_path):
    from typer.testing import CliRunner

    from passerelle.cli import app

    root = tiny(tmp_path)
    with passerelle.open(root) as project:
        export = _export(project, root)
    result = CliRunner().invoke(app, ["privacy", "erase", "marie.dupont@example.fr",
                                      "--reason", "art. 17", "--yes", "--project", str(root)])
    assert result.exit_code == 0, result.output
    files = sorted(root.glob("warehouse.duckdb*"))
    assert files
    for path in files:
        data = path.read_bytes()
        for needle in ("marie.dupont@example.fr", "+33612345678", "06 12 34 56 78",
                       "Dupont", "rue des Lilas"):
            assert needle.encode() not in data, (path.name, needle)
    # with --yes and no --rewrite-exports, the files still holding her are named
    assert "still hold the person" in result.output and "--rewrite-exports" in result.output
    assert str(export) in result.output.replace("\n", "")
    assert "marie.dupont" in export.read_text()
    with passerelle.open(root) as project:  # the rebuilt file is whole
        assert ids(project, "stg_crm") == ["C2", "C3"]
        assert [r["kind"] for r in list_requests(project.engine)] == ["erasure"]


def test_erasure_rewrites_the_csv_exports_that_held_the_person(tmp_path):
    from typer.testing import CliRunner

    from passerelle.activation.csv_export import sha256_of
    from passerelle.activation.log import list_exports
    from passerelle.cli import app

    root = tiny(tmp_path)
    with passerelle.open(root) as project:
        export = _export(project, root)
    result = CliRunner().invoke(app, [
        "privacy", "erase", "marie.dupont@example.fr", "--reason", "art. 17", "--yes",
        "--rewrite-exports", "--project", str(root)])
    assert result.exit_code == 0, result.output
    assert export.read_text(encoding="utf-8") == (
        "EMAIL;PRENOM;NOM;SMS\nfamille.martin@example.fr;Paul;Martin;+33611111111\n")
    with passerelle.open(root) as project:
        [logged] = list_exports(project.engine)
        assert (logged["sha256"], logged["people"]) == (sha256_of(export), 1)
        [request] = list_requests(project.engine)
        [rewritten] = request["detail"]["exports_rewritten"]
        assert (rewritten["file"], rewritten["rows_removed"]) == (str(export), 1)


def test_a_shared_family_address_never_erases_the_other_person(tmp_path):
    from fastapi.testclient import TestClient

    from passerelle.api import create_server

    root = tiny(tmp_path)
    with passerelle.open(root) as project:
        couple = person_id_of(project.definition, project.engine, "famille.martin@example.fr")
        with pytest.raises(PasserelleError) as caught:
            preview_erasure(project.definition, project.engine, couple)
        # records, first-name initial and birth year only; and how to choose
        assert "crm:C2 (P., born 1979); crm:C3 (J., born 1981)" in caught.value.reason
        assert "--records" in caught.value.instruction
        assert "Paul" not in str(caught.value) and "1979-05-06" not in str(caught.value)
        with TestClient(create_server(project, loader=False),
                        base_url="http://localhost") as client:
            authorize(client, project)
            body = {"subject": "famille.martin@example.fr"}
            refused = client.post("/api/privacy/erasure", json=body)
            assert refused.status_code >= 400 and "crm:C2" in refused.text
            done = client.post("/api/privacy/erasure", json={
                **body, "records": ["crm:C3"], "confirm": True}).json()
        assert done["erased"] and done["records"] == ["crm:C3"]
        # the family e-mail is Paul's too: kept, and his record with it
        assert done["shared_identifiers_kept"] == {"email": 1}
        assert ids(project, "stg_crm") == ["C1", "C2"]


@pytest.mark.postgres
def test_postgres_storage_gives_the_vacuum_full_command_or_runs_it():
    import ibis

    from conftest import postgres_engine
    from passerelle.privacy.storage import scrub_storage

    engine = postgres_engine()
    try:
        engine.con.create_table("stg_crm", schema=ibis.schema({"email": "string"}))
        command = f'VACUUM FULL "{engine.schema}"."stg_crm";'
        assert scrub_storage(engine, ["stg_crm", "absent"]) == {
            "engine": "postgres", "to_run": command}

        def file_node() -> int:
            return engine.execute(sg.select("c.relfilenode").from_("pg_class AS c").join(
                "pg_namespace AS n", on="n.oid = c.relnamespace").where(sge.and_(
                    sg.column("relname", "c").eq(sge.convert("stg_crm")),
                    sg.column("nspname", "n").eq(sge.convert(engine.schema)))))[0][0]

        before = file_node()
        assert scrub_storage(engine, ["stg_crm"], vacuum_full=True)["done"] == command
        assert file_node() != before  # VACUUM FULL wrote the table into a new file
    finally:
        engine.drop_schema()
        engine.close()
