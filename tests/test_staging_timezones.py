"""Times from files land in the warehouse as naive UTC whatever their spelling.

An ISO time ending in ``Z`` or carrying an offset is that instant; a naive time is wall-clock
time in the project's ``timezone`` (docs/sources.md). Checked on DuckDB and PostgreSQL, for
text (CSV), JSON lines (DuckDB's reader types ISO times itself) and Parquet (typed columns).
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from passerelle.project.models import ProjectConfig, SourceConfig
from passerelle.reporter import SilentReporter
from passerelle.sources import load_source
from passerelle.staging import stage_source

PARIS = ProjectConfig(name="tz", timezone="Europe/Paris")
# (written in the file, the instant in UTC)
CASES = [
    ("2026-11-02T08:00:00Z", dt.datetime(2026, 11, 2, 8, 0)),
    ("2026-11-02T08:00:00.250Z", dt.datetime(2026, 11, 2, 8, 0, 0, 250000)),
    ("2026-07-02T08:00:00Z", dt.datetime(2026, 7, 2, 8, 0)),
    ("2026-11-02T08:00:00+01:00", dt.datetime(2026, 11, 2, 7, 0)),
    ("2026-07-02T08:00:00-04:00", dt.datetime(2026, 7, 2, 12, 0)),
    ("2026-11-02T08:00:00", dt.datetime(2026, 11, 2, 7, 0)),  # naive: Paris, winter (CET)
    ("2026-07-02 08:00:00", dt.datetime(2026, 7, 2, 6, 0)),  # naive: Paris, summer (CEST)
]


def events_source(connector: dict) -> SourceConfig:
    return SourceConfig.model_validate({
        "name": "web", "entity": "events", "connector": connector,
        "columns": {"message_id": "id", "type": {"value": "track"}, "timestamp": "ts"}})


def staged_times(engine, root: Path, source: SourceConfig) -> list[dt.datetime]:
    load_source(engine, root, source, "run1", SilentReporter())
    stage_source(engine, source, PARIS, SilentReporter(), "run1")
    rows = engine.to_arrow(engine.table("stg_web").order_by("message_id")).to_pylist()
    assert [r["_issues"] for r in rows] == [None] * len(rows)
    return [r["timestamp"] for r in rows]


def expected(cases) -> list[dt.datetime]:
    return [utc for _, utc in cases]


@pytest.mark.parametrize("which", ["Z", "Z-fraction", "all"])
def test_jsonl_iso_times(engine, tmp_path, which):
    """DuckDB's JSON reader turns an all-``Z`` column into naive UTC TIMESTAMP: staging must
    not then read it as Paris time (the defect: 08:00Z staged as 07:00 or 06:00)."""
    cases = {"Z": [c for c in CASES if c[0].endswith(":00Z")],
             "Z-fraction": [c for c in CASES if c[0].endswith("Z")], "all": CASES}[which]
    lines = [json.dumps({"id": f"e{i}", "ts": text}) for i, (text, _) in enumerate(cases)]
    (tmp_path / "events.jsonl").write_text("\n".join(lines) + "\n")
    times = staged_times(engine, tmp_path, events_source({"type": "jsonl",
                                                          "path": "events.jsonl"}))
    assert times == expected(cases)


def test_jsonl_naive_times_are_project_local(engine, tmp_path):
    cases = [c for c in CASES if len(c[0]) == 19]
    lines = [json.dumps({"id": f"e{i}", "ts": text}) for i, (text, _) in enumerate(cases)]
    (tmp_path / "events.jsonl").write_text("\n".join(lines) + "\n")
    times = staged_times(engine, tmp_path, events_source({"type": "jsonl",
                                                          "path": "events.jsonl"}))
    assert times == expected(cases)


def test_csv_iso_times(engine, tmp_path):
    text = "id,ts\n" + "".join(f"e{i},{t}\n" for i, (t, _) in enumerate(CASES))
    (tmp_path / "events.csv").write_text(text)
    times = staged_times(engine, tmp_path, events_source({"type": "csv", "path": "events.csv"}))
    assert times == expected(CASES)


@pytest.mark.parametrize("kind", ["aware", "naive"])
def test_parquet_typed_times(engine, tmp_path, kind):
    """A Parquet column with a zone is that instant; one without is project-local time."""
    if kind == "aware":
        column = pa.array([dt.datetime(2026, 11, 2, 8, 0, tzinfo=dt.UTC),
                           dt.datetime(2026, 7, 2, 8, 0, tzinfo=dt.UTC)],
                          pa.timestamp("us", tz="UTC"))
        want = [dt.datetime(2026, 11, 2, 8, 0), dt.datetime(2026, 7, 2, 8, 0)]
    else:
        column = pa.array([dt.datetime(2026, 11, 2, 8, 0), dt.datetime(2026, 7, 2, 8, 0)],
                          pa.timestamp("us"))
        want = [dt.datetime(2026, 11, 2, 7, 0), dt.datetime(2026, 7, 2, 6, 0)]
    pq.write_table(pa.table({"id": ["e0", "e1"], "ts": column}), tmp_path / "events.parquet")
    source = events_source({"type": "parquet", "path": "events.parquet"})
    assert staged_times(engine, tmp_path, source) == want
