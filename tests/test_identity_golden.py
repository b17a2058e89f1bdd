"""Golden record survivorship on hand-made records with known winners (DuckDB and PostgreSQL)."""

from __future__ import annotations

import re
from datetime import date, datetime
from pathlib import Path

import pytest
import yaml

from identity_golden_helpers import birth, customer_records, day, person_map, record
from passerelle.identity.golden import GOLDEN_FIELDS, SurvivorshipError, build_profiles
from passerelle.project.identity_models import IdentityConfig, Survivorship

SURVIVORSHIP = Survivorship(
    default="most_recent",
    source_priority=["crm", "eshop"],
    fields={"email": "source_priority", "phone": "source_priority",
            "country": "source_priority", "postcode": "source_priority",
            "loyalty_card": "source_priority", "first_name": "most_frequent",
            "city": "most_frequent", "birth_date": "first_non_empty",
            "address_line1": "first_non_empty", "last_name": "most_recent"},
)

# Recency of P1's records (updated_at, else _loaded_at = 2024-01-01):
#   crm:C1 2023-01-01 · eshop:E1 2024-06-01 · loyalty:L1 2024-01-01 · eshop:E2 2022-02-01
# Age (created_at): L1 2019 < C1 2020 < E1 2021 < E2 2022.
P1_RECORDS = [
    record("crm", "C1", email="anne@crm.fr", phone="+33611111111", first_name="Anne",
           last_name="Martin", birth_date=birth(1980, 5, 1), address_line1="1 rue A",
           city="Paris", consent_email=True, consent_sms=True,
           consent_updated_at=day(2023, 1, 1), created_at=day(2020, 1, 1),
           updated_at=day(2023, 1, 1)),
    record("eshop", "E1", email="anne@shop.fr", first_name="Annie", last_name="Martin-Durand",
           address_line1="2 rue B", postcode="69001", city="Lyon", country="FR",
           consent_email=False, consent_updated_at=day(2024, 3, 1), created_at=day(2021, 6, 1),
           updated_at=day(2024, 6, 1)),
    record("loyalty", "L1", email="anne@shop.fr", phone="+33622222222", first_name="Anne",
           birth_date=birth(1980, 1, 5), city="Lyon", country="BE", loyalty_card="LC1",
           consent_email=True, consent_updated_at=day(2022, 1, 1), created_at=day(2019, 1, 1)),
    record("eshop", "E2", first_name="Anne", postcode="69002", city="Paris", consent_sms=False,
           created_at=day(2022, 1, 1), updated_at=day(2022, 2, 1)),
]
P2_RECORDS = [record("crm", "C2", email="solo@crm.fr")]  # no dates at all
P3_RECORDS = [
    record("crm", "C3", last_name="Bernard", updated_at=day(2023, 5, 5)),
    record("eshop", "E3", last_name="Bernart", updated_at=day(2023, 5, 5)),
    record("loyalty", "L3", loyalty_card="LC3a", updated_at=day(2023, 1, 1)),
    record("newsletter", "N3", loyalty_card="LC3b", updated_at=day(2024, 1, 1)),
]


@pytest.fixture
def golden(engine):
    customer_records(engine, [*P1_RECORDS, *P2_RECORDS, *P3_RECORDS,
                              record("crm", "ORPHAN", email="nobody@crm.fr")])
    person_map(engine, {
        "P000000000001": ["crm:C1", "eshop:E1", "loyalty:L1", "eshop:E2"],
        "P000000000002": ["crm:C2"],
        "P000000000003": ["crm:C3", "eshop:E3", "loyalty:L3", "newsletter:N3"],
    })
    count = build_profiles(engine, SURVIVORSHIP, "R7")
    rows = engine.to_arrow(engine.table("profiles")).to_pylist()
    return engine, count, {r["person_id"]: r for r in rows}


def pick(profile: dict, field: str) -> tuple:
    return profile[field], profile[f"{field}__source"]


def test_one_row_per_person_and_columns(golden):
    engine, count, profiles = golden
    assert count == 3  # the orphan record (not in person_map) makes no profile
    assert set(profiles) == {"P000000000001", "P000000000002", "P000000000003"}
    columns = engine.table("profiles").columns
    assert columns[:5] == ("person_id", "customer_id", "customer_id__source", "email",
                           "email__source")
    assert columns[25:31] == ("region", "region__source", "national_id",
                              "national_id__source", "gender", "gender__source")
    assert columns[31:39] == ("consent_email", "consent_email__source", "consent_sms",
                              "consent_sms__source", "record_count", "sources",
                              "first_seen_at", "last_updated_at")
    assert columns[39:] == ("consent_email__updated_at", "consent_sms__updated_at", "run_id")


def test_source_priority(golden):
    p1 = golden[2]["P000000000001"]
    assert pick(p1, "email") == ("anne@crm.fr", "crm")  # crm first, though older
    assert pick(p1, "phone") == ("+33611111111", "crm")
    assert pick(p1, "country") == ("FR", "eshop")  # crm has none; eshop before unlisted loyalty
    assert pick(p1, "postcode") == ("69001", "eshop")  # two eshop values: the most recent E1
    assert pick(p1, "loyalty_card") == ("LC1", "loyalty")  # only an unlisted source has one
    p3 = golden[2]["P000000000003"]
    # both sources unlisted: the most recent one (newsletter 2024 over loyalty 2023)
    assert pick(p3, "loyalty_card") == ("LC3b", "newsletter")


def test_most_recent(golden):
    p1 = golden[2]["P000000000001"]
    assert pick(p1, "last_name") == ("Martin-Durand", "eshop")  # E1 updated 2024-06-01
    assert pick(p1, "customer_id") == ("E1", "eshop")  # the default rule
    assert pick(p1, "address_line2") == (None, None)  # nobody has one
    p3 = golden[2]["P000000000003"]
    # same updated_at: the tie ends on the source name, the same on every engine
    assert pick(p3, "last_name") == ("Bernard", "crm")


def test_most_frequent(golden):
    p1 = golden[2]["P000000000001"]
    # Anne x3 (C1, L1, E2) over Annie x1; the winning record is the most recent Anne (L1)
    assert pick(p1, "first_name") == ("Anne", "loyalty")
    # Paris x2 (C1, E2) vs Lyon x2 (E1, L1): tie -> most recent record, E1
    assert pick(p1, "city") == ("Lyon", "eshop")


def test_first_non_empty(golden):
    p1 = golden[2]["P000000000001"]
    assert pick(p1, "birth_date") == (date(1980, 1, 5), "loyalty")  # L1 created 2019
    # L1 is older but has no address: the oldest non-empty value is C1's
    assert pick(p1, "address_line1") == ("1 rue A", "crm")


def test_consents_follow_the_latest_choice(golden):
    p1 = golden[2]["P000000000001"]
    # crm is the most trusted source, but the person opted out on the e-shop later
    assert pick(p1, "consent_email") == (False, "eshop")
    assert p1["consent_email__updated_at"] == datetime(2024, 3, 1)
    # E2's opt-out has no date: the dated choice (C1) wins
    assert pick(p1, "consent_sms") == (True, "crm")
    assert p1["consent_sms__updated_at"] == datetime(2023, 1, 1)
    p2 = golden[2]["P000000000002"]
    assert pick(p2, "consent_email") == (None, None)


def test_summary_columns(golden):
    profiles = golden[2]
    p1, p2 = profiles["P000000000001"], profiles["P000000000002"]
    assert p1["record_count"] == 4
    assert p1["sources"] == "crm,eshop,loyalty"
    assert p1["first_seen_at"] == datetime(2019, 1, 1)
    assert p1["last_updated_at"] == datetime(2024, 6, 1)
    assert p1["run_id"] == "R7"
    assert profiles["P000000000003"]["sources"] == "crm,eshop,loyalty,newsletter"
    # no created_at / updated_at: both fall back to _loaded_at
    assert (p2["record_count"], p2["first_seen_at"], p2["last_updated_at"]) == (
        1, datetime(2024, 1, 1), datetime(2024, 1, 1))
    assert pick(p2, "email") == ("solo@crm.fr", "crm")


def test_rebuild_replaces_profiles(golden):
    engine = golden[0]
    assert build_profiles(engine, Survivorship(), "R8") == 3
    p1 = {r["person_id"]: r for r in engine.to_arrow(engine.table("profiles")).to_pylist()}[
        "P000000000001"]
    # everything most_recent now: E1 (2024-06-01) wins email, first name, city
    assert pick(p1, "email") == ("anne@shop.fr", "eshop")
    assert pick(p1, "first_name") == ("Annie", "eshop")
    assert pick(p1, "phone") == ("+33622222222", "loyalty")  # E1 has none; L1 next (2024-01)
    assert p1["run_id"] == "R8"


def test_unknown_survivorship_field_is_refused(duckdb_engine):
    config = IdentityConfig.model_validate(
        {"survivorship": {"fields": {"consent_email": "source_priority", "shoe": "most_recent"}}})
    with pytest.raises(SurvivorshipError) as err:
        build_profiles(duckdb_engine, config.survivorship, "R1")
    assert "consent_email, shoe" in err.value.reason
    assert "latest choice" in err.value.instruction


def test_docs_survivorship_example_and_fields():
    """docs/profiles.md: its identity.yml example validates and it lists every golden field."""
    page = (Path(__file__).resolve().parents[1] / "docs" / "profiles.md").read_text("utf-8")
    (block,) = re.findall(r"```yaml\n(.*?)```", page, flags=re.S)
    config = IdentityConfig.model_validate(yaml.safe_load(block))
    assert config.survivorship.fields["birth_date"] == "first_non_empty"
    listed = re.search(r"Survivorship fields are (.*?)\.\n", page, flags=re.S).group(1)
    assert re.findall(r"`(\w+)`", listed) == list(GOLDEN_FIELDS)
