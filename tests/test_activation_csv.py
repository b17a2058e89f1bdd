"""CSV exports: exact Brevo and Mailchimp layouts, holdout never exported, hash and log."""

from __future__ import annotations

import hashlib
from datetime import datetime
from pathlib import Path

import pytest
import sqlglot as sg
import sqlglot.expressions as sge

from activation_helpers import build_audience, build_profiles
from passerelle.activation import (
    DestinationError,
    export_csv,
    exports_of_person,
    list_exports,
    parse_destination,
)
from passerelle.engines.base import Engine

pytestmark = pytest.mark.filterwarnings("ignore:fetch_record_batch")
T0 = datetime(2026, 11, 1, 8, 0)
T1 = datetime(2026, 11, 2, 8, 0)


def _warehouse(engine: Engine) -> None:
    build_profiles(engine)
    # an older build with p6 treated: only the latest build may be exported
    build_audience(engine, "vip", ["p6", "p1"], [], "run0", T0)
    build_audience(engine, "vip", ["p1", "p2", "p3", "p5"], ["p4"], "run1", T1)


def test_brevo_layout_exact(engine: Engine, tmp_path: Path) -> None:
    _warehouse(engine)
    dest = parse_destination({"type": "csv", "format": "brevo", "path": "out/{audience}.csv",
                              "attributes": {"VILLE": "city"}})
    result = export_csv(engine, "vip", dest, name="brevo_vip", root=tmp_path, user="alice")
    path = tmp_path / "out" / "vip.csv"
    text = path.read_bytes().decode("utf-8")
    assert text.splitlines() == [
        "EMAIL;PRENOM;NOM;SMS;VILLE",
        "eloise@example.fr;Éloïse;Dupont;+33612345678;Paris",
        "jean@example.fr;Jean;Martin;+33698765432;Lyon",
        'zoe@example.fr;Zoé;"Le Gall; fils";;Brest',
        ";Inès;Roux;+33622222222;Lille",
    ]
    assert "marc@example.fr" not in text  # p4 is in the holdout
    assert "paul@example.fr" not in text  # p6 was only in the older build
    assert result.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert (result.status, result.people, result.file_path) == ("delivered", 4, str(path))

    [log] = list_exports(engine)
    assert log["export_id"] == result.export_id
    assert (log["user_name"], log["audience"], log["destination"], log["kind"]) == (
        "alice", "vip", "brevo_vip", "csv")
    assert (log["people"], log["sha256"], log["status"]) == (4, result.sha256, "delivered")
    assert log["finished_at"] is not None
    members = engine.table("activation_log_members")
    got = engine.to_arrow(members.order_by("person_id")).to_pylist()
    assert got == [{"export_id": result.export_id, "person_id": p}
                   for p in ("p1", "p2", "p3", "p5")]
    assert [e["export_id"] for e in exports_of_person(engine, "p2")] == [result.export_id]
    assert exports_of_person(engine, "p4") == []


def test_brevo_english_account_and_trait(duckdb_engine: Engine, tmp_path: Path) -> None:
    _warehouse(duckdb_engine)
    dest = parse_destination({"type": "csv", "format": "brevo", "language": "en",
                              "path": "vip.csv", "attributes": {"CLV": "trait:clv_12m"}})
    export_csv(duckdb_engine, "vip", dest, root=tmp_path)
    lines = (tmp_path / "vip.csv").read_text("utf-8").splitlines()
    assert lines[0] == "EMAIL;FIRSTNAME;LASTNAME;SMS;CLV"
    assert lines[1] == "eloise@example.fr;Éloïse;Dupont;+33612345678;120.5"
    assert lines[3] == 'zoe@example.fr;Zoé;"Le Gall; fils";;'


def test_mailchimp_layout_exact(engine: Engine, tmp_path: Path) -> None:
    _warehouse(engine)
    dest = parse_destination({"type": "csv", "format": "mailchimp", "path": "mc.csv",
                              "tags": ["vip", "noel 2026"]})
    result = export_csv(engine, "vip", dest, root=tmp_path)
    lines = (tmp_path / "mc.csv").read_text("utf-8").splitlines()
    assert lines == [
        "Email Address,First Name,Last Name,Phone Number,Tags",
        'eloise@example.fr,Éloïse,Dupont,+33612345678,"vip,noel 2026"',
        'jean@example.fr,Jean,Martin,+33698765432,"vip,noel 2026"',
        'zoe@example.fr,Zoé,Le Gall; fils,,"vip,noel 2026"',
    ]  # p5 has no e-mail: Mailchimp cannot import an e-mail contact without one
    assert result.people == 3
    members = engine.table("activation_log_members")
    assert sorted(engine.to_arrow(members.person_id).to_pylist()) == ["p1", "p2", "p3"]


def test_mailchimp_default_tag_and_generic(duckdb_engine: Engine, tmp_path: Path) -> None:
    _warehouse(duckdb_engine)
    mc = parse_destination({"type": "csv", "format": "mailchimp", "path": "mc.csv"})
    export_csv(duckdb_engine, "vip", mc, root=tmp_path)
    assert (tmp_path / "mc.csv").read_text("utf-8").splitlines()[1].endswith(",vip")
    generic = parse_destination({"type": "csv", "path": "g.csv"})
    export_csv(duckdb_engine, "vip", generic, root=tmp_path)
    lines = (tmp_path / "g.csv").read_text("utf-8").splitlines()
    assert lines[0] == "person_id,email,phone,first_name,last_name"
    assert lines[4] == "p5,,+33622222222,Inès,Roux"
    assert len(list_exports(duckdb_engine)) == 2


def test_builds_stored_before_build_records_are_still_sent(engine: Engine,
                                                          tmp_path: Path) -> None:
    """A warehouse from before ``audience_builds`` (members only, the sent group once named
    'target'): its builds are recorded from the members and sent as they were; the holdout
    still is not."""
    build_profiles(engine)
    build_audience(engine, "vip", ["p2"], ["p1"], "r", T0)
    engine.drop("audience_builds")
    group = sg.column("group", quoted=True)
    engine.execute(sge.Update(this=sg.table("audience_members", quoted=True),
                              expressions=[group.eq(sge.convert("target"))],
                              where=sge.Where(this=group.eq(sge.convert("treated")))))
    dest = parse_destination({"type": "csv", "path": "t.csv"})
    assert export_csv(engine, "vip", dest, root=tmp_path).people == 1
    assert (tmp_path / "t.csv").read_text("utf-8").splitlines()[1].startswith("p2,")
    [build] = engine.to_arrow(engine.table("audience_builds")).to_pylist()
    assert (build["treated"], build["holdout"], build["no_consent"]) == (1, 1, None)


def test_empty_audience_is_refused_unless_allowed(duckdb_engine: Engine,
                                                  tmp_path: Path) -> None:
    """Nobody to send (here: the one eligible person was held out) is almost always a broken
    segment: refused with the build's counts; with allow_empty, a header-only file."""
    build_profiles(duckdb_engine)
    build_audience(duckdb_engine, "tiny", [], ["p1"], "r", T0)
    dest = parse_destination({"type": "csv", "format": "brevo", "path": "t.csv"})
    with pytest.raises(DestinationError, match=r"audience 'tiny' is empty.*1 held out") as info:
        export_csv(duckdb_engine, "tiny", dest, root=tmp_path)
    assert "--allow-empty" in info.value.instruction
    assert not (tmp_path / "t.csv").exists() and list_exports(duckdb_engine) == []
    result = export_csv(duckdb_engine, "tiny", dest, root=tmp_path, allow_empty=True)
    assert (tmp_path / "t.csv").read_text("utf-8") == "EMAIL;PRENOM;NOM;SMS\n"
    assert result.people == 0


def test_bad_input_is_explained(duckdb_engine: Engine, tmp_path: Path) -> None:
    _warehouse(duckdb_engine)
    dest = parse_destination({"type": "csv", "format": "brevo", "path": "x.csv"})
    with pytest.raises(DestinationError, match="audience 'nope' was never built"):
        export_csv(duckdb_engine, "nope", dest, root=tmp_path)
    bad_col = parse_destination({"type": "csv", "path": "x.csv",
                                 "attributes": {"TOWN": "town"}})
    with pytest.raises(DestinationError, match="profiles has no column town") as info:
        export_csv(duckdb_engine, "vip", bad_col, root=tmp_path)
    assert "city" in info.value.instruction and "__source" not in info.value.instruction
    bad_trait = parse_destination({"type": "csv", "path": "x.csv",
                                   "attributes": {"X": "trait:nope"}})
    with pytest.raises(DestinationError, match="trait nope"):
        export_csv(duckdb_engine, "vip", bad_trait, root=tmp_path)
    assert not (tmp_path / "x.csv").exists()
