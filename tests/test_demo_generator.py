"""The demo generator: reproducible, valid project files, French exports, truth and noise."""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import json
import re
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

from passerelle.demo import generate_demo
from passerelle.demo.customers import NOISE
from passerelle.demo.pools import NICKNAMES
from passerelle.errors import PasserelleError
from passerelle.project.models import ChecksFile, ProjectConfig, SourceConfig

TODAY = dt.date(2026, 3, 15)
SIZE = 1000


def _digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("demo")
    manifest = generate_demo(root / "project", root / "truth", size=SIZE, seed=7, today=TODAY)
    return manifest


def _read_csv(path: Path, delimiter: str = ",", encoding: str = "utf-8") -> list[dict]:
    text = path.read_bytes().decode(encoding)
    return list(csv.DictReader(io.StringIO(text, newline=""), delimiter=delimiter))


def _truth(demo, source: str) -> dict[str, str]:
    rows = _read_csv(demo.truth_dir / "records.csv")
    return {r["source_id"]: r["true_person_id"] for r in rows if r["source"] == source}


def _persons(demo) -> dict[str, dict]:
    return {r["true_person_id"]: r for r in _read_csv(demo.truth_dir / "persons.csv")}


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path: Path, demo) -> None:
    a = generate_demo(tmp_path / "a" / "p", tmp_path / "a" / "t", size=300, seed=1, today=TODAY)
    b = generate_demo(tmp_path / "b" / "p", tmp_path / "b" / "t", size=300, seed=1, today=TODAY)
    c = generate_demo(tmp_path / "c" / "p", tmp_path / "c" / "t", size=300, seed=2, today=TODAY)
    assert _digest(a.project_dir) == _digest(b.project_dir)
    assert _digest(a.truth_dir) == _digest(b.truth_dir)
    assert a.counts == b.counts
    da, dc = _digest(a.project_dir), _digest(c.project_dir)
    assert da["data/crm_contacts.csv"] != dc["data/crm_contacts.csv"]
    assert da["data/store/tickets.csv"] != dc["data/store/tickets.csv"]
    # regenerating into the same folder replaces, never appends
    again = generate_demo(a.project_dir, a.truth_dir, size=300, seed=1, today=TODAY)
    assert _digest(again.project_dir) == _digest(b.project_dir)


def test_project_files_validate(demo) -> None:
    project = demo.project_dir
    ProjectConfig.model_validate(yaml.safe_load((project / "passerelle.yml").read_text()))
    names = sorted(p.stem for p in (project / "sources").glob("*.yml"))
    assert names == sorted([
        "crm_contacts", "eshop_customers", "eshop_orders", "eshop_order_lines",
        "loyalty_members", "store_tickets", "newsletter_signups", "web_events", "ad_spend",
        "campaign_sends",
    ])  # fmt: skip
    for path in (project / "sources").glob("*.yml"):
        source = SourceConfig.model_validate(yaml.safe_load(path.read_text()))
        assert source.name == path.stem and source.owner and source.description
    checks = ChecksFile.model_validate(yaml.safe_load((project / "checks/quality.yml").read_text()))
    kinds = {c.type for c in checks.checks}
    assert kinds == {"not_null", "unique", "accepted_values", "relationships", "row_count",
                     "freshness"}
    assert (project / "README.md").read_text().startswith("# Maison Lumière")
    assert not (project / "truth").exists()
    assert demo.end_date == TODAY - dt.timedelta(days=1)


def _columns_of(project: Path, source: SourceConfig) -> set[str]:
    conn = source.connector
    files = sorted(project.glob(conn.path))
    assert files, conn.path
    if conn.type == "parquet":
        return set(pq.read_schema(files[0]).names)
    if conn.type == "jsonl":
        keys = [tuple(json.loads(line)) for f in files for line in f.read_text().splitlines()]
        assert len(set(keys)) == 1, "every event line has the same top-level keys"
        return set(keys[0])
    header = files[0].read_bytes().split(b"\n", 1)[0].decode(conn.encoding).rstrip("\r")
    return set(header.split(conn.delimiter))


def test_every_mapped_column_exists(demo) -> None:
    for path in (demo.project_dir / "sources").glob("*.yml"):
        source = SourceConfig.model_validate(yaml.safe_load(path.read_text()))
        columns = _columns_of(demo.project_dir, source)
        for target, mapping in source.mappings().items():
            if mapping.column is not None:
                assert mapping.column in columns, (source.name, target, mapping.column)


def test_french_exports_are_cp1252_semicolon_decimal_comma(demo) -> None:
    tickets = (demo.project_dir / "data/store/tickets.csv").read_bytes()
    assert tickets.startswith("N° ticket;Date;Magasin;".encode("cp1252"))
    with pytest.raises(UnicodeDecodeError):
        tickets.decode("utf-8")
    text = tickets.decode("cp1252")
    assert "\r\n" in text
    assert re.search(r";\d{2}/\d{2}/\d{4} \d{2}:\d{2};MAG\d{3};", text)
    assert re.search(r";\d+,\d{2};", text) and not re.search(r";\d+\.\d{2};", text)
    lines = text.split("\r\n")[1:-1]
    assert sum(1 for line in lines if line.split(";")[0] == "") == 2  # missing ticket ids
    assert sum(1 for line in lines if line.count(";") != 7) == 1  # one malformed line
    rows = [line.split(";") for line in lines]
    no_card = sum(1 for r in rows if r[4] == "") / len(rows)
    assert 0.4 < no_card < 0.9
    news = (demo.project_dir / "data/newsletter/inscriptions.csv").read_bytes()
    assert news.startswith("ID contact;E-mail;Prénom;Code postal;".encode("cp1252"))
    news_rows = _read_csv(demo.project_dir / "data/newsletter/inscriptions.csv", ";", "cp1252")
    assert {r["Consentement"] for r in news_rows} == {"oui", "non"}
    assert all(re.fullmatch(r"\d{2}/\d{2}/\d{4}", r["Date d'inscription"]) for r in news_rows)
    members = _read_csv(demo.project_dir / "data/store/loyalty_members.csv", ";", "cp1252")
    assert any(r["Date de naissance"].startswith(("31/02/", "30/02/")) for r in members)


def test_truth_covers_every_customer_record(demo) -> None:
    p = demo.project_dir
    files = {
        "crm_contacts": [r["contact_id"] for r in _read_csv(p / "data/crm_contacts.csv")],
        "loyalty_members": [r["N° carte"] for r in _read_csv(
            p / "data/store/loyalty_members.csv", ";", "cp1252")],
        "newsletter_signups": [r["ID contact"] for r in _read_csv(
            p / "data/newsletter/inscriptions.csv", ";", "cp1252")],
        "eshop_customers": [str(v) for v in pq.read_table(
            p / "data/eshop/passerelle_customers.parquet").column("id_customer").to_pylist()],
    }
    persons = _persons(demo)
    for source, ids in files.items():
        truth = _truth(demo, source)
        assert len(ids) == len(set(ids)) == demo.counts[source]
        assert set(ids) == set(truth), source
        assert set(truth.values()) <= set(persons)
    used_users, used_anon = set(), set()
    for f in (p / "data/events").glob("events-*.jsonl"):
        for line in f.read_text().splitlines():
            e = json.loads(line)
            used_anon.add(e["anonymousId"])
            if e["userId"] is not None:
                used_users.add(e["userId"])
    assert used_users | used_anon == set(_truth(demo, "web_events"))
    assert used_users <= set(files["eshop_customers"])
    # the same person behind an e-shop account and the events' userId
    eshop, web = _truth(demo, "eshop_customers"), _truth(demo, "web_events")
    assert all(eshop[u] == web[u] for u in used_users)


def test_people_appear_in_several_sources(demo) -> None:
    by_source = {s: set(_truth(demo, s).values()) for s in
                 ("crm_contacts", "eshop_customers", "loyalty_members", "newsletter_signups")}
    share = {s: len(v) / SIZE for s, v in by_source.items()}
    assert 0.62 < share["crm_contacts"] < 0.78
    assert 0.42 < share["eshop_customers"] < 0.58
    assert 0.32 < share["loyalty_members"] < 0.48
    assert 0.24 < share["newsletter_signups"] < 0.36
    in_two = sum(1 for pid in _persons(demo) if sum(pid in v for v in by_source.values()) >= 2)
    assert in_two / SIZE > 0.4


def _one_edit(a: str, b: str) -> bool:
    if a == b or abs(len(a) - len(b)) > 1:
        return False
    if len(a) == len(b):
        diff = [i for i in range(len(a)) if a[i] != b[i]]
        return len(diff) == 1 or (len(diff) == 2 and diff[1] == diff[0] + 1
                                  and a[diff[0]] == b[diff[1]] and a[diff[1]] == b[diff[0]])
    short, long_ = (a, b) if len(a) < len(b) else (b, a)
    return any(long_[:i] + long_[i + 1:] == short for i in range(len(long_)))


def test_noise_at_configured_rates(demo) -> None:
    persons = _persons(demo)
    truth = _truth(demo, "crm_contacts")
    rows = _read_csv(demo.project_dir / "data/crm_contacts.csv")
    noise = NOISE["crm_contacts"]
    n = len(rows)
    true = [persons[truth[r["contact_id"]]] for r in rows]
    swapped = sum(r["first_name"] == t["last_name"] and r["last_name"] == t["first_name"]
                  and t["first_name"] != t["last_name"] for r, t in zip(rows, true, strict=True))
    assert 0.4 * noise.swapped * n <= swapped <= 2 * noise.swapped * n
    typos = sum(_one_edit(r["first_name"], t["first_name"]) or _one_edit(
        r["last_name"], t["last_name"]) for r, t in zip(rows, true, strict=True))
    assert 0.5 * noise.typo * n <= typos <= 2 * noise.typo * n
    eligible = [(r, t) for r, t in zip(rows, true, strict=True) if t["first_name"] in NICKNAMES]
    nicks = sum(r["first_name"] in NICKNAMES[t["first_name"]] for r, t in eligible)
    assert len(eligible) > 50
    assert 0.4 * noise.nickname * len(eligible) <= nicks <= 2 * noise.nickname * len(eligible)
    missing_birth = sum(r["birth_date"] == "" for r in rows) / n
    assert abs(missing_birth - noise.birth_missing) < 0.05
    upper = sum(r["email"] != "" and r["email"] == r["email"].upper() for r in rows)
    assert upper >= 1
    formats = Counter()
    for r in rows:
        ph = r["phone"]
        if ph:
            kind = ("spaces" if re.fullmatch(r"0\d( \d\d){4}", ph) else
                    "e164" if re.fullmatch(r"\+33\d{9}", ph) else
                    "digits" if re.fullmatch(r"0\d{9}", ph) else
                    "dots" if re.fullmatch(r"0\d(\.\d\d){4}", ph) else
                    "intl" if re.fullmatch(r"\+33 \d( \d\d){4}", ph) else "other")
            formats[kind] += 1
    assert set(formats) == {"spaces", "e164", "digits", "dots", "intl"}
    import phonenumbers

    assert all(phonenumbers.is_valid_number(phonenumbers.parse(r["phone"], "FR"))
               for r in rows if r["phone"])
    # duplicates inside the CRM, old addresses of people who moved
    per_person = Counter(truth.values())
    assert 0.005 < sum(1 for c in per_person.values() if c > 1) / len(per_person) < 0.04
    moved_old = sum(t["moved"] == "true" and r["postal_code"] not in ("", t["postcode"])
                    for r, t in zip(rows, true, strict=True))
    assert moved_old >= 5


def test_households_shared_emails_and_garbage(demo) -> None:
    persons = _persons(demo)
    households = Counter(p["household_id"] for p in persons.values())
    couples = [h for h, c in households.items() if c == 2]
    assert 0.05 < len(couples) / SIZE < 0.11
    members = [p for p in persons.values() if households[p["household_id"]] == 2]
    by_h: dict[str, list] = {}
    for p in members:
        by_h.setdefault(p["household_id"], []).append(p)
    same = [h for h, (a, b) in by_h.items() if a["address_line1"] == b["address_line1"]
            and a["last_name"] == b["last_name"]]
    assert len(same) > 0.7 * len(couples)
    shop = pq.read_table(
        demo.project_dir / "data/eshop/passerelle_customers.parquet").to_pylist()
    truth = _truth(demo, "eshop_customers")
    owners: dict[str, set] = {}
    for r in shop:
        if r["email"]:
            owners.setdefault(r["email"].lower(), set()).add(truth[str(r["id_customer"])])
    assert any(len(v) > 1 for v in owners.values()), "a couple shares one e-mail address"
    news = _read_csv(demo.project_dir / "data/newsletter/inscriptions.csv", ";", "cp1252")
    invalid = [r["E-mail"] for r in news
               if r["E-mail"] and not re.fullmatch(r"[^@\s]+@[^@\s]+\.[a-z]+", r["E-mail"])]
    assert invalid


def test_eshop_accounts_carry_their_delivery_address(demo) -> None:
    from passerelle.demo.customers import ESHOP_ELSEWHERE, ESHOP_NO_ADDRESS

    shop = pq.read_table(
        demo.project_dir / "data/eshop/passerelle_customers.parquet").to_pylist()
    truth, persons = _truth(demo, "eshop_customers"), _persons(demo)
    with_address = [r for r in shop if r["address1"] is not None]
    assert abs(1 - len(with_address) / len(shop) - ESHOP_NO_ADDRESS) < 0.03
    assert all(r["postcode"] and r["city"] for r in with_address)
    home = [r for r in with_address
            if r["address1"] == persons[truth[str(r["id_customer"])]]["address_line1"]]
    # at home but for a workplace, and an old address for some who moved
    assert 0.85 < len(home) / len(with_address) < 1 - ESHOP_ELSEWHERE / 2
    phones = [r["phone_mobile"] for r in with_address if r["phone_mobile"]]
    assert 0.6 < len(phones) / len(with_address) < 0.9
    assert all(r["date_upd"] >= r["date_add"] for r in shop)


def test_events_are_segment_spec_lines(demo) -> None:
    files = sorted((demo.project_dir / "data/events").glob("events-*.jsonl"))
    assert len(files) >= 12
    assert all(re.fullmatch(r"events-\d{4}-\d{2}\.jsonl", f.name) for f in files)
    events = [json.loads(line) for f in files for line in f.read_text().splitlines()]
    assert len(events) == demo.counts["web_events"]
    assert len({e["messageId"] for e in events}) == len(events)
    kinds = Counter((e["type"], e["event"]) for e in events)
    for name in ("Product Viewed", "Product Added", "Order Completed", "Experiment Viewed"):
        assert kinds[("track", name)] > 0
    assert kinds[("page", None)] > 0 and kinds[("identify", None)] > 0
    assert all(e["timestamp"].endswith("Z") for e in events)
    assert max(e["timestamp"] for e in events) < TODAY.isoformat()
    identify = [e for e in events if e["type"] == "identify"]
    assert all(e["traits"]["email"] == e["email"] for e in identify)
    tagged = [e for e in events if e["campaign"]]
    assert tagged and all(e["context"]["campaign"]["name"] == e["campaign"] for e in tagged)
    variants = {e["properties"]["variation_id"] for e in events if e["event"] ==
                "Experiment Viewed"}
    assert variants == {"control", "treatment"}
    orders = {str(v) for v in pq.read_table(
        demo.project_dir / "data/eshop/ps_orders.parquet").column("id_order").to_pylist()}
    completed = {e["properties"]["order_id"] for e in events if e["event"] == "Order Completed"}
    assert completed == orders


def test_effects_and_audiences(demo) -> None:
    effects = _read_csv(demo.truth_dir / "effects.csv")
    assert [e["kind"] for e in effects].count("campaign") == 4
    assert {(e["id"], e["true_effect"]) for e in effects if e["kind"] == "experiment"} == {
        ("checkout_express", "0.10"), ("homepage_hero", "0.00")}
    assert {e["true_effect"] for e in effects if e["kind"] == "campaign"} >= {"0.15", "0.00"}
    audiences = _read_csv(demo.truth_dir / "campaign_audiences.csv")
    holdout = sum(a["group"] == "holdout" for a in audiences) / len(audiences)
    assert 0.07 < holdout < 0.13
    # holdout people get no send
    crm = _truth(demo, "crm_contacts")
    sends = _read_csv(demo.project_dir / "data/marketing/campaign_sends.csv")
    sent = {(s["campaign_id"], crm[s["contact_id"]]) for s in sends}
    held = {(a["campaign_id"], a["true_person_id"]) for a in audiences if a["group"] == "holdout"}
    assert sent and not (sent & held)
    assert {s["channel"] for s in sends} == {"email", "sms"}


def test_truth_inside_project_is_refused(tmp_path: Path) -> None:
    with pytest.raises(PasserelleError, match="inside the project"):
        generate_demo(tmp_path / "p", tmp_path / "p" / "truth", size=100, today=TODAY)


@pytest.mark.mariadb
def test_eshop_in_mariadb(tmp_path: Path, mariadb_database: str) -> None:
    import pymysql

    from conftest import MARIADB

    conn = {**MARIADB, "database": mariadb_database}
    manifest = generate_demo(tmp_path / "p", tmp_path / "t", size=300, seed=3, today=TODAY,
                             eshop_mysql=conn)
    generate_demo(tmp_path / "p", tmp_path / "t", size=300, seed=3, today=TODAY,
                  eshop_mysql=conn)  # idempotent: tables are replaced
    con = pymysql.connect(**MARIADB, database=mariadb_database)
    try:
        with con.cursor() as cur:
            counts = {}
            for table in ("ps_customer", "passerelle_customers", "ps_orders",
                          "ps_order_detail"):
                cur.execute(f"SELECT COUNT(*) FROM `{table}`")
                counts[table] = cur.fetchone()[0]
            cur.execute("SELECT SUM(total_paid_tax_incl) > 0, MIN(date_add) FROM ps_orders")
            positive, first = cur.fetchone()
            cur.execute("SELECT COUNT(*), COUNT(DISTINCT id_customer) FROM ps_address")
            addresses, with_address = cur.fetchone()
            cur.execute("SELECT COUNT(postcode), COUNT(phone_mobile), "
                        "SUM(date_upd >= date_add) FROM passerelle_customers")
            view = cur.fetchone()
    finally:
        con.close()
    customers = manifest.counts["eshop_customers"]
    assert counts == {"ps_customer": customers, "passerelle_customers": customers,
                      "ps_orders": manifest.counts["eshop_orders"],
                      "ps_order_detail": manifest.counts["eshop_order_lines"]}
    # most accounts have a delivery address, and the view shows it beside the account
    assert 0.8 * customers < with_address == addresses < customers
    assert view[0] == with_address and 0 < view[1] < with_address and view[2] == customers
    assert counts["ps_orders"] > 0 and positive == 1 and first.year >= 2025
    assert not (tmp_path / "p" / "data" / "eshop").exists()
    for name, key in (("eshop_customers", "date_upd"), ("eshop_orders", "date_upd"),
                      ("eshop_order_lines", "id_order_detail")):
        doc = yaml.safe_load((tmp_path / "p" / "sources" / f"{name}.yml").read_text())
        source = SourceConfig.model_validate(doc)
        assert source.connector.type == "mysql"
        assert source.connector.database == mariadb_database
        assert source.incremental.key == key
