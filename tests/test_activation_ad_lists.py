"""Customer lists for Google Customer Match and Meta custom audiences: the exact layouts,
identifiers normalised then hashed like hashlib does, under the ad-audiences purpose (on
DuckDB and PostgreSQL: the hashing runs in the warehouse)."""

from __future__ import annotations

import csv
import hashlib
from datetime import datetime
from pathlib import Path

import pyarrow as pa
import pytest

from activation_helpers import PROFILES, build_audience, build_profiles
from passerelle.activation import (
    DestinationError,
    activate,
    list_exports,
    load_destinations,
    parse_destination,
)
from passerelle.engines.base import Engine

pytestmark = pytest.mark.filterwarnings("ignore:fetch_record_batch")
T1 = datetime(2026, 11, 2, 8, 0)
GRANTED = {"p1", "p3", "p5"}  # p2 refused, p6 never answered: no consent


def sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _consents(engine: Engine, purpose: str = "ad_audiences") -> None:
    ids = sorted(["p1", "p2", "p3", "p4", "p5"])
    table = pa.table({
        "person_id": ids, "purpose": [purpose] * len(ids),
        "granted": [p in GRANTED for p in ids],
        "stated_at": pa.array([T1] * len(ids), pa.timestamp("us")),
        "source": ["crm"] * len(ids), "origin": ["column"] * len(ids),
        "record": ids, "detail": pa.array([None] * len(ids), pa.string()),
        "run_id": ["r"] * len(ids),
        "statements": [1] * len(ids)})
    engine.drop("consents")
    engine.append_arrow("consents", table.to_reader())


def _warehouse(engine: Engine, emails: dict[str, str] | None = None) -> None:
    build_profiles(engine)
    _consents(engine)
    # p4 held out; p2 refused ads; p6 never answered
    build_audience(engine, "vip", ["p1", "p2", "p3", "p5", "p6"], ["p4"], "run1", T1,
                   emails=emails)


def _rows(path: Path) -> list[list[str]]:
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.reader(f))


def test_google_customer_match_layout_and_hashes(engine: Engine, tmp_path: Path) -> None:
    # an e-mail in capitals with spaces around it is normalised before hashing
    _warehouse(engine, emails={"p1": "  Eloise@Example.FR "})
    dest = parse_destination({"type": "google_customer_match", "path": "ads/{audience}.csv"})
    assert dest.purpose == "ad_audiences"
    result = activate(engine, "vip", dest, name="google_vip", root=tmp_path)
    rows = _rows(tmp_path / "ads" / "vip.csv")
    assert rows == [
        ["Email", "Phone"],
        [sha("eloise@example.fr"), sha("+33612345678")],
        # p2 refused ads; p3 has no phone; p5 no e-mail
        [sha("zoe@example.fr"), ""],
        ["", sha("+33622222222")],
    ]
    assert (result.status, result.people, result.no_consent) == ("delivered", 3, 2)
    assert result.purpose == "ad_audiences" and "google_customer_match" in result.detail
    assert list_exports(engine)[0]["kind"] == "google_customer_match"
    text = (tmp_path / "ads" / "vip.csv").read_text()
    assert "@" not in text and "+33" not in text  # nothing readable leaves


def test_meta_custom_audience_layout_and_hashes(engine: Engine, tmp_path: Path) -> None:
    _warehouse(engine)
    dest = parse_destination({"type": "meta_custom_audience", "path": "ads/meta.csv"})
    result = activate(engine, "vip", dest, name="meta_vip", root=tmp_path)
    assert _rows(tmp_path / "ads" / "meta.csv") == [
        ["email", "phone"],
        [sha("eloise@example.fr"), sha("33612345678")],  # digits with country code, no +
        [sha("zoe@example.fr"), ""],
        ["", sha("33622222222")],
    ]
    assert result.people == 3


def test_known_sha256_values() -> None:
    """The digests the files hold are the standard ones (published test vector)."""
    assert sha("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


def test_a_phone_that_is_not_e164_is_left_empty(engine: Engine, tmp_path: Path,
                                                monkeypatch) -> None:
    _warehouse(engine)
    monkeypatch.setitem(PROFILES, "p5", ("Inès", "Roux", None, "06 22 22 22 22", "Lille"))
    monkeypatch.setitem(PROFILES, "p1", ("Éloïse", "Dupont", "eloise@example.fr",
                                         "+33 6 12-34-56-78", "Paris"))
    build_audience(engine, "local", ["p1", "p5"], [], "run2", T1)
    dest = parse_destination({"type": "google_customer_match", "path": "ads/local.csv"})
    activate(engine, "local", dest, name="g", root=tmp_path)
    # p1's spaced number is E.164 once compacted; p5 has no e-mail and a national number
    # (its country cannot be known): nothing to match on, left out
    assert _rows(tmp_path / "ads" / "local.csv") == [
        ["Email", "Phone"], [sha("eloise@example.fr"), sha("+33612345678")]]


def test_ad_purpose_is_required_and_files_validate(engine: Engine, tmp_path: Path) -> None:
    _warehouse(engine)
    _consents(engine, purpose="email_marketing")  # nobody stated the ad purpose
    dest = parse_destination({"type": "meta_custom_audience", "path": "ads/x.csv"})
    result = activate(engine, "vip", dest, name="m", root=tmp_path, allow_empty=True)
    assert result.people == 0 and result.no_consent == 5
    with pytest.raises(DestinationError, match="path"):
        parse_destination({"type": "google_customer_match"})
    (tmp_path / "destinations").mkdir()
    (tmp_path / "destinations" / "google_vip.yml").write_text(
        "type: google_customer_match\npath: exports/{audience}-google.csv\n")
    assert load_destinations(tmp_path)["google_vip"].type == "google_customer_match"
