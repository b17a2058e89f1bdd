"""Blocking: counts per rule (Splink's blocking analysis), pairs only a rule finds, the recall
ceiling from the deterministic links, and the rules `blocking: auto` chooses; on hand-made
records whose answers are counted by hand, on both engines."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pytest

from identity_golden_helpers import customer_records, record, write
from passerelle.errors import PasserelleError
from passerelle.identity import blocking
from passerelle.identity.splink_input import INPUT_TABLE, _drop_own_tables, _materialise_input
from passerelle.identity.tables import KEY_EDGES
from passerelle.project.identity_models import Probabilistic
from passerelle.reporter import SilentReporter

D1, D2, D3 = dt.date(1980, 1, 1), dt.date(1980, 1, 2), dt.date(1990, 5, 5)
# A and B: one person who moved; E: A with a birth-date typo; C: A's brother; D, F: others
PEOPLE = {
    "A": ("Anne", "Martin", D1, "75011"), "B": ("Anne", "Martin", D1, "75012"),
    "C": ("Paul", "Martin", D1, "75011"), "D": ("Anne", "Durand", D3, "75011"),
    "E": ("Anne", "Martin", D2, "75011"), "F": ("Marc", "Durand", D3, None),
}
RULES = [["last_name", "birth_date"], ["first_name", "birth_date"], ["last_name", "postcode"]]
COMPARISONS = [{"field": "first_name", "method": "name"},
               {"field": "last_name", "method": "name"},
               {"field": "birth_date", "method": "date"},
               {"field": "postcode", "method": "postcode"}]
CONFIG = Probabilistic.model_validate({"comparisons": COMPARISONS, "blocking": RULES})


def _records(engine):
    customer_records(engine, [
        record("crm", k, first_name=f, last_name=last, birth_date=b, postcode=p)
        for k, (f, last, b, p) in PEOPLE.items()])
    return engine.table("customer_records")


def test_counts_per_rule_and_only_this_rule(engine, tmp_path):
    report = blocking.analyse(engine, _records(engine), CONFIG, tmp_path)
    # by hand: rule 1 pairs AB AC BC DF; rule 2 AB; rule 3 AC AE CE
    got = [(r.rule, r.comparisons, r.marginal, r.cumulative, r.only_here) for r in report.rules]
    assert got == [(RULES[0], 4, 4, 4, 2), (RULES[1], 1, 0, 4, 0), (RULES[2], 3, 2, 6, 2)]
    assert (report.records, report.total, report.all_pairs) == (6, 6, 15)
    assert report.keys is None and report.model is None  # no run, no model yet
    assert "passerelle identity train" in report.note
    data = report.to_dict()
    assert data["rules"][2]["only_here"] == 2 and data["recall_ceiling"]["model_sample"] is None


def test_recall_ceiling_from_the_deterministic_links(engine, tmp_path):
    records = _records(engine)
    # keys linked A-B (rule 1 and 2 compare them) and A-D (no rule does)
    write(engine, KEY_EDGES, pa.schema([("node_a", pa.string()), ("node_b", pa.string())]),
          [{"node_a": "crm:A", "node_b": "crm:B"}, {"node_a": "crm:A", "node_b": "crm:D"}])
    report = blocking.analyse(engine, records, CONFIG, tmp_path)
    assert report.keys == (1, 2)
    assert report.to_dict()["recall_ceiling"]["deterministic_links"]["share"] == 0.5


def test_auto_chooses_within_the_budget(engine):
    records = _records(engine)
    try:
        _materialise_input(engine, records, CONFIG, prepass=True)
        table = engine.table(INPUT_TABLE)
        # alone: birth_date 4 pairs, first_name 6 (Anne x4), last_name 7, postcode 6 (75011 x4)
        costs = blocking.candidate_costs(engine, table, [["birth_date"], ["first_name"],
                                                         ["last_name"], ["postcode"]])
        assert costs == {("birth_date",): 4, ("first_name",): 6, ("last_name",): 7,
                         ("postcode",): 6}
        choice = blocking.choose_rules(engine, table, CONFIG.model_copy(
            update={"blocking": "auto"}))
    finally:
        _drop_own_tables(engine)
    assert choice.budget == 1_000_000 + 100 * 6 and choice.records == 6
    # one field alone finds the most true pairs; of those always filled in, birth date is
    # the cheapest: a true pair agrees on it at the prior rate 93 % (no key links here)
    assert choice.rules[0] == ["birth_date"]
    assert choice.reasons[0] == "4 pairs; expected recall 0.0% -> 93.0%"
    assert choice.learned_from == 0
    assert choice.spent <= choice.budget
    # every one-field error (and a missing field) is tolerated by some rule
    for field in ("first_name", "last_name", "birth_date", "postcode"):
        assert any(field not in rule for rule in choice.rules)
    assert len(choice.reasons) == len(choice.rules)
    # no chosen rule holds every field of another (it would compare nothing more)
    assert not any(set(a) < set(b) for a in choice.rules for b in choice.rules)


def test_auto_never_exceeds_the_budget(duckdb_engine):
    # 300 records sharing one country: 44,850 pairs, over a budget of 10,000
    rows = [record("crm", str(i), first_name=f"N{i % 150}", last_name=f"L{i % 100}",
                   country="FR") for i in range(300)]
    customer_records(duckdb_engine, rows)
    config = Probabilistic.model_validate({
        "comparisons": [{"field": "first_name", "method": "name"},
                        {"field": "last_name", "method": "name"}, {"field": "country"}],
        "blocking": "auto", "comparison_budget": 10_000})
    records = duckdb_engine.table("customer_records")
    try:
        _materialise_input(duckdb_engine, records, config, prepass=True)
        choice = blocking.choose_rules(duckdb_engine, duckdb_engine.table(INPUT_TABLE), config)
        assert ["country"] not in choice.rules and choice.spent <= 10_000
        assert choice.rules  # first_name (2 a block: 150 pairs) and last_name fit
        reporter = SilentReporter()
        resolved = blocking.resolve_rules(duckdb_engine, config, reporter, 300)
        assert resolved.blocking == choice.rules
        tight = config.model_copy(update={"comparisons": config.comparisons[2:]})
        with pytest.raises(PasserelleError, match="comparison_budget"):
            blocking.resolve_rules(duckdb_engine, tight, reporter, 300)
    finally:
        _drop_own_tables(duckdb_engine)
