"""Data-quality checks on real engines: exact failing counts, samples, history and docs."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
import yaml
from pydantic import TypeAdapter

from passerelle.engines.base import Engine
from passerelle.errors import PasserelleError
from passerelle.model import ENTITIES, Kind
from passerelle.project.models import CheckConfig, ChecksFile
from passerelle.reporter import SilentReporter
from passerelle.staging.checks import (
    RESULTS_TABLE,
    check_name,
    error_failures,
    failing_rows,
    run_checks,
)

DOCS = Path(__file__).resolve().parents[1] / "docs" / "checks.md"
NOW = datetime(2024, 3, 2, 6, 0)
_ARROW = {
    Kind.DATE: pa.date32(), Kind.TIMESTAMP: pa.timestamp("us"), Kind.DECIMAL: pa.float64(),
    Kind.INTEGER: pa.int64(), Kind.BOOLEAN: pa.bool_(),
}
_LINEAGE = {
    "_source": pa.string(), "_record_id": pa.string(), "_issues": pa.string(),
    "_load_id": pa.string(), "_loaded_at": pa.timestamp("us"), "_source_file": pa.string(),
    "_source_row": pa.int64(),
}


def stage(engine: Engine, source: str, entity: str, rows: list[dict[str, Any]],
          first_row: int = 1) -> None:
    """Append ``rows`` to stg_<source> with every standard column of ``entity`` + lineage."""
    fields = {f.name: _ARROW.get(f.kind, pa.string()) for f in ENTITIES[entity].fields}
    schema = pa.schema([*fields.items(), *_LINEAGE.items()])
    full = []
    for i, row in enumerate(rows, start=first_row):
        full.append({
            **{name: None for name in schema.names}, **row,
            "_source": source, "_record_id": f"{source}:{i}", "_load_id": "load1",
            "_loaded_at": datetime(2024, 3, 1), "_source_file": f"{source}.csv",
            "_source_row": i,
        })
    table = pa.Table.from_pylist(full, schema=schema)
    engine.append_arrow(f"stg_{source}", table.to_reader())


def check(**spec: Any) -> CheckConfig:
    return TypeAdapter(CheckConfig).validate_python(spec)


def run(engine: Engine, *checks: CheckConfig, run_id: str = "r1", now: datetime = NOW,
        reporter: SilentReporter | None = None):
    return run_checks(engine, list(checks), run_id, reporter or SilentReporter(), now=now)


def lineage(source: str, row: int) -> dict[str, Any]:
    return {"_record_id": f"{source}:{row}", "_source_file": f"{source}.csv", "_source_row": row}


# ------------------------------------------------------------------------ record checks
def test_not_null_counts_samples_and_message(engine):
    emails = ["a@x.fr", None, "b@x.fr", None, None]
    stage(engine, "crm", "customers", [{"customer_id": str(i), "email": e}
                                        for i, e in enumerate(emails)])
    c = check(type="not_null", source="crm", column="email", owner="crm-team")
    [result] = run(engine, c)
    assert (result.name, result.type, result.column) == ("not_null_crm_email", "not_null", "email")
    assert (result.failing_rows, result.passed, result.row_count) == (3, False, 5)
    assert result.message == "3 rows of crm have no email (allowed: 0)"
    assert result.sample == [{**lineage("crm", r), "email": None} for r in (2, 4, 5)]
    assert list(result.sample[0]) == ["_record_id", "email", "_source_file", "_source_row"]
    # the compiled query selects the failing rows themselves, every column included
    rows = engine.to_arrow(failing_rows(engine, c).order_by("_source_row")).to_pylist()
    assert [r["customer_id"] for r in rows] == ["1", "3", "4"]
    assert "phone" in rows[0] and "_issues" in rows[0]


def test_passing_check_has_a_positive_message_and_no_sample(engine):
    stage(engine, "crm", "customers", [{"customer_id": "1", "email": "a@x.fr"}])
    [result] = run(engine, check(type="not_null", source="crm", column="email"))
    assert (result.failing_rows, result.passed, result.sample) == (0, True, [])
    assert result.message == "No row of crm is missing its email"


def test_unique_one_column_counts_every_row_of_duplicated_groups(engine):
    ids = ["1", "2", "2", "3", "3", "3", None, None, "4"]
    stage(engine, "crm", "customers", [{"customer_id": i} for i in ids])
    c = check(type="unique", source="crm", column="customer_id")
    [result] = run(engine, c)
    # 2 rows of "2" + 3 rows of "3"; the two NULLs are not duplicates of each other
    assert (result.failing_rows, result.passed) == (5, False)
    assert result.message == "5 rows of crm share their customer_id with another row (allowed: 0)"
    assert result.sample == [{**lineage("crm", r), "customer_id": v}
                             for r, v in ((2, "2"), (3, "2"), (4, "3"), (5, "3"), (6, "3"))]
    groups = engine.to_arrow(failing_rows(engine, c).order_by("_source_row")).to_pylist()
    assert [g["_group_rows"] for g in groups] == [2, 2, 3, 3, 3]


def test_unique_on_two_columns(engine):
    names = [("Ann", "Lee"), ("Ann", "Kim"), ("Bob", "Lee"), ("Ann", "Lee"), ("Bob", None),
             ("Bob", None), ("Ann", "Lee")]
    stage(engine, "crm", "customers", [{"customer_id": str(i), "first_name": f, "last_name": la}
                                        for i, (f, la) in enumerate(names)])
    c = check(type="unique", source="crm", column=["first_name", "last_name"])
    [result] = run(engine, c)
    assert result.name == "unique_crm_first_name_last_name"
    assert result.column == ["first_name", "last_name"]
    assert result.failing_rows == 3
    assert result.message == (
        "3 rows of crm share their first_name and last_name with another row (allowed: 0)"
    )
    assert result.sample == [{**lineage("crm", r), "first_name": "Ann", "last_name": "Lee"}
                             for r in (1, 4, 7)]


def test_accepted_values_ignores_null_and_is_exact(engine):
    countries = ["FR", "BE", "XX", None, "fr", "FR"]
    stage(engine, "crm", "customers", [{"customer_id": str(i), "country": c}
                                        for i, c in enumerate(countries)])
    [result] = run(engine, check(type="accepted_values", source="crm", column="country",
                                 values=["FR", "BE", "CH"]))
    assert result.failing_rows == 2  # XX and lower-case fr; NULL is not a failure
    assert result.sample == [{**lineage("crm", 3), "country": "XX"},
                             {**lineage("crm", 5), "country": "fr"}]
    assert result.message == (
        "2 rows of crm have a country that is not one of FR, BE, CH (allowed: 0)"
    )


def test_accepted_values_match_the_column_type(engine):
    stage(engine, "lines", "order_lines", [{"order_id": "o1", "line_number": n}
                                            for n in (1, 2, 3)])
    # numbers written without quotes in YAML still match a text column...
    stage(engine, "crm", "customers", [{"customer_id": "1", "postcode": "75001"},
                                        {"customer_id": "2", "postcode": "69001"}])
    [text] = run(engine, check(type="accepted_values", source="crm", column="postcode",
                               values=[75001]))
    assert text.failing_rows == 1
    # ...and numbers compare as numbers with an integer column
    [number] = run(engine, check(type="accepted_values", source="lines", column="line_number",
                                 values=[1, 2]), run_id="r2")
    assert number.failing_rows == 1
    # a YAML `yes` (read as true) against a text column is refused, not silently unmatched
    with pytest.raises(PasserelleError, match=r"accepted_values_crm_postcode.*yes/no") as err:
        run(engine, check(type="accepted_values", source="crm", column="postcode",
                          values=[True]), run_id="r3")
    assert "Quote values" in err.value.instruction


def test_relationships_across_sources_null_is_not_an_orphan(engine):
    stage(engine, "crm", "customers", [{"customer_id": "c1"}, {"customer_id": "c2"}])
    stage(engine, "shop_orders", "orders", [
        {"order_id": "o1", "customer_id": "c1"}, {"order_id": "o2", "customer_id": "c9"},
        {"order_id": "o3", "customer_id": None}, {"order_id": "o4", "customer_id": "c2"},
        {"order_id": "o5", "customer_id": "c7"}, {"order_id": "o6", "customer_id": "c9"},
    ])
    c = check(type="relationships", source="shop_orders", column="customer_id", to="crm",
              field="customer_id")
    [result] = run(engine, c)
    assert (result.failing_rows, result.passed) == (3, False)
    assert result.sample == [{**lineage("shop_orders", 2), "customer_id": "c9"},
                             {**lineage("shop_orders", 5), "customer_id": "c7"},
                             {**lineage("shop_orders", 6), "customer_id": "c9"}]
    assert result.message == (
        "3 rows of shop_orders have a customer_id not found in crm.customer_id (allowed: 0)"
    )
    orphans = engine.to_arrow(failing_rows(engine, c)).column("order_id").to_pylist()
    assert sorted(orphans) == ["o2", "o5", "o6"]


# ------------------------------------------------------------------------- table checks
def test_row_count_min_and_max(engine):
    stage(engine, "crm", "customers", [{"customer_id": str(i)} for i in range(3)])
    too_few, too_many, fine = run(
        engine,
        check(type="row_count", source="crm", min=5, name="at_least_5"),
        check(type="row_count", source="crm", max=2, name="at_most_2"),
        check(type="row_count", source="crm", min=1, max=3),
    )
    assert (too_few.failing_rows, too_few.passed) == (1, False)
    assert too_few.message == "crm has 3 rows, fewer than the minimum of 5"
    assert too_few.sample[0]["row_count"] == 3 and too_few.sample[0]["min"] == 5
    assert (too_many.passed, too_many.message) == (
        False, "crm has 3 rows, more than the maximum of 2"
    )
    assert (fine.name, fine.failing_rows, fine.passed, fine.message) == (
        "row_count_crm", 0, True, "crm has 3 rows"
    )
    assert engine.to_arrow(failing_rows(engine, check(type="row_count", source="crm",
                                                       min=1, max=3))).num_rows == 0


def test_row_count_max_change_compares_with_the_previous_run(engine):
    c = check(type="row_count", source="crm", max_change=0.5)
    stage(engine, "crm", "customers", [{"customer_id": str(i)} for i in range(10)])
    [first] = run(engine, c, run_id="r1", now=NOW)
    assert (first.passed, first.failing_rows) == (True, 0)
    assert first.message == "crm has 10 rows (first measure: no previous run to compare with)"

    stage(engine, "crm", "customers", [{"customer_id": f"n{i}"} for i in range(8)], first_row=11)
    [second] = run(engine, c, run_id="r2", now=NOW + timedelta(days=1))
    assert (second.passed, second.failing_rows, second.row_count) == (False, 1, 18)
    assert second.message == (
        "crm has 18 rows, 80% more than the 10 of the last run (allowed: ±50%)"
    )
    [described] = second.sample
    assert described["previous_row_count"] == 10
    assert described["change"] == pytest.approx(0.8)

    # looking at it afterwards: compared with the last run other than r2 (that is r1)
    [row] = engine.to_arrow(failing_rows(engine, c, run_id="r2")).to_pylist()
    assert (row["row_count"], row["previous_row_count"]) == (18, 10)

    # a third run with no change compares with r2 (18), not r1
    [third] = run(engine, c, run_id="r3", now=NOW + timedelta(days=2))
    assert third.passed
    assert third.message == "crm has 18 rows, 0% more than the 18 of the last run (allowed: ±50%)"


def test_results_are_appended_to_the_history_table(engine):
    stage(engine, "crm", "customers", [{"customer_id": "1", "email": None}])
    c = check(type="not_null", source="crm", column="email", owner="crm-team", severity="warn")
    run(engine, c, run_id="r1", now=NOW)
    run(engine, c, run_id="r2", now=NOW + timedelta(hours=1))
    history = engine.to_arrow(engine.table(RESULTS_TABLE).order_by("checked_at")).to_pylist()
    assert history == [
        {"run_id": run_id, "checked_at": at, "name": "not_null_crm_email", "type": "not_null",
         "source": "crm", "severity": "warn", "owner": "crm-team", "failing_rows": 1,
         "passed": False, "message": "1 row of crm has no email (allowed: 0)", "row_count": 1}
        for run_id, at in (("r1", NOW), ("r2", NOW + timedelta(hours=1)))
    ]


def test_freshness_with_an_injected_now(engine):
    stage(engine, "web", "events", [
        {"message_id": "m1", "type": "track", "timestamp": datetime(2024, 2, 28, 12)},
        {"message_id": "m2", "type": "track", "timestamp": datetime(2024, 3, 1, 0)},
        {"message_id": "m3", "type": "track", "timestamp": None},
    ])
    stale = check(type="freshness", source="web", column="timestamp", max_age_hours=24)
    fresh = check(type="freshness", source="web", column="timestamp", max_age_hours=48,
                  name="fresh_enough")
    late, ok = run(engine, stale, fresh, now=NOW)  # NOW is 30 hours after the newest event
    assert (late.failing_rows, late.passed) == (1, False)
    assert late.message == (
        "The newest timestamp of web is 30 hours old (2024-03-01 00:00 UTC; allowed: 24 hours)"
    )
    assert late.sample == [{"newest": datetime(2024, 3, 1), "row_count": 3, "checked_at": NOW,
                            "max_age_hours": 24.0}]
    assert (ok.failing_rows, ok.passed, ok.sample) == (0, True, [])
    # an aware `now` is converted to UTC: 07:00 in UTC+1 is 06:00 UTC
    paris = timezone(timedelta(hours=1))
    [aware] = run(engine, stale, now=datetime(2024, 3, 2, 7, tzinfo=paris), run_id="r2")
    assert "30 hours old" in aware.message
    assert engine.to_arrow(failing_rows(engine, stale, now=NOW)).num_rows == 1
    assert engine.to_arrow(failing_rows(engine, stale, now=datetime(2024, 3, 1, 1))).num_rows == 0


def test_freshness_of_a_date_column_and_of_an_empty_table(engine):
    stage(engine, "ads", "ad_spend", [
        {"date": date(2024, 2, 28), "channel": "search", "campaign_id": "c", "spend": 1.0},
    ])
    [result] = run(engine, check(type="freshness", source="ads", column="date",
                                 max_age_hours=48))
    assert (result.passed, result.message) == (
        False, "The newest date of ads is 3.2 days old (2024-02-28 00:00 UTC; allowed: 48 hours)"
    )
    stage(engine, "empty", "events", [])
    [empty] = run(engine, check(type="freshness", source="empty", column="timestamp",
                                max_age_hours=1), run_id="r2")
    assert (empty.passed, empty.row_count) == (False, 0)
    assert empty.message == "empty has no timestamp at all, so its freshness is unknown"


# ------------------------------------------------------------- tolerance and severity
def test_tolerance_allows_that_many_failing_rows(engine):
    stage(engine, "crm", "customers", [{"customer_id": str(i), "email": None} for i in range(2)])
    within, beyond = run(
        engine,
        check(type="not_null", source="crm", column="email", tolerance=2, name="two_allowed"),
        check(type="not_null", source="crm", column="email", tolerance=1, name="one_allowed"),
    )
    assert (within.failing_rows, within.passed) == (2, True)
    assert within.message == "2 rows of crm have no email (allowed: 2)"
    assert (beyond.failing_rows, beyond.passed) == (2, False)


def test_severity_warn_vs_error_and_error_failures(engine):
    stage(engine, "crm", "customers", [{"customer_id": "1", "email": None, "phone": None}])
    reporter = SilentReporter()
    results = run(
        engine,
        check(type="not_null", source="crm", column="email", severity="warn", owner="crm"),
        check(type="not_null", source="crm", column="phone", severity="error", owner="it"),
        check(type="not_null", source="crm", column="customer_id"),
        reporter=reporter,
    )
    assert [(r.name, r.severity, r.passed) for r in results] == [
        ("not_null_crm_email", "warn", False),
        ("not_null_crm_phone", "error", False),
        ("not_null_crm_customer_id", "error", True),
    ]
    assert [r.name for r in error_failures(results)] == ["not_null_crm_phone"]
    assert error_failures(results[:1] + results[2:]) == []
    assert reporter.messages == [
        ("warning", "check not_null_crm_email failed (warn, owner crm): "
                    "1 row of crm has no email (allowed: 0)"),
        ("warning", "check not_null_crm_phone failed (error, owner it): "
                    "1 row of crm has no phone (allowed: 0)"),
        ("info", "3 checks: 1 passed, 1 failed with severity error, 1 with severity warn."),
    ]


# ------------------------------------------------------------------------ clear errors
def test_missing_column_or_table_is_a_clear_error(engine):
    stage(engine, "crm", "customers", [{"customer_id": "1"}])
    with pytest.raises(PasserelleError, match=r"'not_null_crm_emial': column 'emial' is not in "
                                              r"stg_crm") as err:
        run(engine, check(type="not_null", source="crm", column="emial"))
    assert "email" in err.value.instruction
    with pytest.raises(PasserelleError, match=r"'orphans': column 'nope' is not in stg_crm"):
        failing_rows(engine, check(type="relationships", source="crm", column="customer_id",
                                   to="crm", field="nope", name="orphans"))
    with pytest.raises(PasserelleError, match=r"the staged table stg_shop does not exist") as err:
        run(engine, check(type="row_count", source="shop", min=1))
    assert "passerelle run --source shop" in err.value.instruction
    with pytest.raises(PasserelleError, match=r"holds string, not dates"):
        run(engine, check(type="freshness", source="crm", column="email", max_age_hours=1))
    assert not engine.exists(RESULTS_TABLE)  # nothing half-recorded


def test_duplicate_names_are_refused_before_running():
    c = check(type="not_null", source="crm", column="email")
    with pytest.raises(PasserelleError, match="Several checks are named not_null_crm_email"):
        run_checks(None, [c, c], "r1", SilentReporter())  # type: ignore[arg-type]


def test_default_names():
    assert check_name(check(type="row_count", source="crm", min=1)) == "row_count_crm"
    assert check_name(check(type="relationships", source="o", column="customer_id", to="c",
                            field="customer_id")) == "relationships_o_customer_id"
    assert check_name(check(type="unique", source="o", column="x", name="mine")) == "mine"


# ------------------------------------------------------------------------------- docs
def _yaml_blocks() -> list[str]:
    return re.findall(r"```yaml\n(.*?)```", DOCS.read_text(encoding="utf-8"), flags=re.S)


def test_docs_yaml_examples_are_valid_checks_files():
    blocks = _yaml_blocks()
    assert len(blocks) >= 7
    types = set()
    for block in blocks:
        parsed = ChecksFile.model_validate(yaml.safe_load(block))
        types |= {c.type for c in parsed.checks}
    documented = {a.__args__[0] for a in _check_types()}
    assert types == documented  # every check type has an example


def test_docs_have_a_section_per_check_type():
    text = DOCS.read_text(encoding="utf-8")
    for model in _check_types():
        assert f"\n## {model.__args__[0]}\n" in text


def _check_types():
    from passerelle.project.models import _Check

    return [cls.model_fields["type"].annotation for cls in _Check.__subclasses__()]


def test_now_defaults_to_utc():
    # the default `now` is naive UTC, like every warehouse timestamp
    before = datetime.now(UTC).replace(tzinfo=None)
    from passerelle.staging.checks import _now_utc

    assert before <= _now_utc(None) <= datetime.now(UTC).replace(tzinfo=None)
