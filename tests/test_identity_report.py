"""The identity report: counts, and pairwise scores against a hand-made ground truth."""

from __future__ import annotations

import pytest
from rich.console import Console

from identity_golden_helpers import (
    IDENTITY_EDGES,
    SHARED_KEYS,
    customer_records,
    edge,
    person_map,
    record,
    write,
)
from passerelle.identity.report import ReportError, identity_report, render_report

PA, PB, PC, PD, PE = (f"P00000000000{c}" for c in "abcde")

# Ground truth: T1 = {crm:C1, eshop:E1, eshop:E2}, T2 = {crm:C2, crm:C3, eshop:E3}.
# Prediction: PA = {crm:C1, crm:C2, eshop:E1, eshop:E2} (C2 wrongly merged in),
#             PB = {crm:C3, eshop:E3}.
#
# Overall pairs (a group of n records holds n(n-1)/2 pairs):
#   predicted = PA 4*3/2 + PB 1                              = 7
#   true      = T1 3 + T2 3                                  = 6
#   correct   = (PA,T1) 3*2/2 + (PA,T2) 0 + (PB,T2) 1         = 4
#   precision = 4/7, recall = 4/6, F1 = 2*4/(7+6)            = 8/13
# By source pair (PA: crm 2, eshop 2 · PB: crm 1, eshop 1 · T1: crm 1, eshop 2 ·
# T2: crm 2, eshop 1 · (PA,T1): crm 1, eshop 2 · (PB,T2): crm 1, eshop 1):
#   crm x crm     predicted 1 (C1-C2)   true 1 (C2-C3)   correct 0  -> P 0,   R 0,    F1 0
#   crm x eshop   predicted 2*2+1 = 5   true 1*2+2*1 = 4 correct 2+1 = 3
#                                                        -> P 3/5, R 3/4, F1 6/9
#   eshop x eshop predicted 1 (E1-E2)   true 1 (E1-E2)   correct 1  -> P 1,   R 1,    F1 1
TRUTH = """source,source_id,true_person_id
crm,C1,T1
eshop,E1,T1
eshop,E2,T1
crm,C2,T2
crm,C3,T2
eshop,E3,T2
crm,C404,T3
web_events,dev-1,T1
"""


@pytest.fixture
def identity(engine, tmp_path):
    person_map(engine, {
        PA: ["crm:C1", "crm:C2", "eshop:E1", "eshop:E2"],
        PB: ["crm:C3", "eshop:E3"],
        PC: ["newsletter:N1"],  # alone, no key at all
        PD: [f"tills:S{i:02d}" for i in range(11)],
        PE: ["crm:C9"],  # alone, but has an e-mail
    })
    customer_records(engine, [record("newsletter", "N1", first_name="Léa"),
                              record("crm", "C9", email="c9@example.fr")])
    write(engine, "identity_edges", IDENTITY_EDGES, [
        edge("crm:C1", "eshop:E1", "key:email", {"field": "email"}),
        edge("crm:C3", "eshop:E3", "key:email", {"field": "email"}),
        edge("crm:C1", "crm:C2", "splink", {"first_name": {"level": "exact", "weight": 3.0}},
             weight=3.0, probability=0.96),
    ])
    write(engine, "identity_shared_keys", SHARED_KEYS, [
        {"field": "email", "value": "famille@example.fr", "distinct_names": 4, "records": 6,
         "run_id": "R1"},
        {"field": "phone", "value": "+33100000000", "distinct_names": 5, "records": 9,
         "run_id": "R1"},
    ])
    truth = tmp_path / "records.csv"
    truth.write_text(TRUTH, encoding="utf-8")
    return engine, truth


def test_counts(identity):
    engine, _ = identity
    report = identity_report(engine)
    assert (report["profiles"], report["records"]) == (5, 19)
    assert report["records_per_profile"] == [
        {"bucket": "1", "profiles": 2, "records": 2},
        {"bucket": "2", "profiles": 1, "records": 2},
        {"bucket": "3-5", "profiles": 1, "records": 4},
        {"bucket": "6-10", "profiles": 0, "records": 0},
        {"bucket": ">10", "profiles": 1, "records": 11},
    ]
    assert report["biggest_clusters"] == [
        {"person_id": PD, "records": 11, "sources": {"tills": 11}},
        {"person_id": PA, "records": 4, "sources": {"crm": 2, "eshop": 2}},
        {"person_id": PB, "records": 2, "sources": {"crm": 1, "eshop": 1}},
        {"person_id": PC, "records": 1, "sources": {"newsletter": 1}},
        {"person_id": PE, "records": 1, "sources": {"crm": 1}},
    ]
    assert [c["person_id"] for c in identity_report(engine, top=2)["biggest_clusters"]] == [
        PD, PA]
    assert report["edges_by_rule"] == {"key:email": 2, "splink": 1}
    assert report["shared_keys"] == {"total": 2, "top": [
        {"field": "phone", "value": "+33100000000", "distinct_names": 5, "records": 9},
        {"field": "email", "value": "famille@example.fr", "distinct_names": 4, "records": 6},
    ]}
    assert report["single_record_persons"] == 2
    assert report["single_record_persons_without_key"] == 1  # N1; C9 has an e-mail
    assert report["truth"] is None


def test_pairwise_scores(identity):
    engine, truth_csv = identity
    truth = identity_report(engine, truth_csv)["truth"]
    assert truth["rows"] == 8
    assert truth["evaluated_records"] == 6
    assert truth["not_in_person_map"] == {"total": 2, "by_source": {"crm": 1, "web_events": 1}}
    assert truth["records_without_truth"] == 13  # N1, C9 and the 11 till records
    overall = truth["overall"]
    assert (overall["predicted_pairs"], overall["true_pairs"],
            overall["true_positive_pairs"]) == (7, 6, 4)
    assert overall["precision"] == pytest.approx(4 / 7)
    assert overall["recall"] == pytest.approx(4 / 6)
    assert overall["f1"] == pytest.approx(8 / 13)
    by_pair = {p["sources"]: p for p in truth["by_source_pair"]}
    assert list(by_pair) == ["crm x crm", "crm x eshop", "eshop x eshop"]
    expected = {"crm x crm": (1, 1, 0, 0.0, 0.0, 0.0),
                "crm x eshop": (5, 4, 3, 3 / 5, 3 / 4, 6 / 9),
                "eshop x eshop": (1, 1, 1, 1.0, 1.0, 1.0)}
    for name, (pred, true, tp, p, r, f1) in expected.items():
        got = by_pair[name]
        assert (got["predicted_pairs"], got["true_pairs"], got["true_positive_pairs"]) == (
            pred, true, tp), name
        assert (got["precision"], got["recall"], got["f1"]) == pytest.approx((p, r, f1)), name
    assert "blocking" in truth["note"]
    assert not [t for t in engine.list_tables() if t.startswith("_identity_truth")]


def test_perfect_prediction(engine, tmp_path):
    person_map(engine, {PA: ["crm:C1", "eshop:E1"], PB: ["crm:C2"]})
    truth = tmp_path / "t.csv"
    truth.write_text("source,source_id,true_person_id,extra\ncrm,C1,T1,x\neshop,E1,T1,y\n"
                     "crm,C2,T2,z\n", encoding="utf-8")
    scores = identity_report(engine, truth)["truth"]
    assert scores["overall"] == {"predicted_pairs": 1, "true_pairs": 1,
                                 "true_positive_pairs": 1, "precision": 1.0, "recall": 1.0,
                                 "f1": 1.0}
    assert [p["sources"] for p in scores["by_source_pair"]] == ["crm x eshop"]


def test_bad_truth_file(duckdb_engine, tmp_path):
    person_map(duckdb_engine, {PA: ["crm:C1"]})
    with pytest.raises(ReportError) as missing:
        identity_report(duckdb_engine, tmp_path / "nope.csv")
    assert "does not exist" in missing.value.reason
    bad = tmp_path / "bad.csv"
    bad.write_text("source,id,person\ncrm,C1,T1\n", encoding="utf-8")
    with pytest.raises(ReportError) as wrong:
        identity_report(duckdb_engine, bad)
    assert "true_person_id" in wrong.value.instruction


def test_no_identity(duckdb_engine):
    with pytest.raises(ReportError):
        identity_report(duckdb_engine)


def test_render_report(identity):
    engine, truth_csv = identity
    console = Console(record=True, width=160)
    console.print(render_report(identity_report(engine, truth_csv)))
    out = console.export_text()
    assert "5 profiles from 19 records" in out
    assert "crm x eshop" in out and "0.6000" in out and "0.7500" in out
    assert "2 truth rows are not in person_map: crm 1, web_events 1." in out
    assert "Keys refused as shared (2)" in out
