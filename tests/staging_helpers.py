"""Helpers for the staging tests: raw tables built by hand, one call to stage them."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pyarrow as pa

from passerelle.engines.base import Engine
from passerelle.project.models import ProjectConfig, SourceConfig
from passerelle.reporter import SilentReporter
from passerelle.staging import StageResult, stage_source

PROJECT = ProjectConfig(name="test")
T0 = dt.datetime(2024, 1, 1, 8, 0, 0)


def load_raw(engine: Engine, name: str, rows: list[dict[str, Any]], *, load_id: str = "L1",
             loaded_at: dt.datetime = T0, first_row: int = 1,
             types: dict[str, pa.DataType] | None = None) -> None:
    """Append ``rows`` to ``raw_<name>`` with lineage, every column text unless typed."""
    types = types or {}
    columns = list(rows[0])
    fields = [pa.field(c, types.get(c, pa.string())) for c in columns]
    table = pa.Table.from_pylist(rows, schema=pa.schema(fields))
    n = len(rows)
    table = table.append_column("_load_id", pa.array([load_id] * n, pa.string()))
    table = table.append_column("_loaded_at", pa.array([loaded_at] * n, pa.timestamp("us")))
    table = table.append_column("_source_file", pa.array([f"{name}.csv"] * n, pa.string()))
    table = table.append_column(
        "_source_row", pa.array(range(first_row, first_row + n), pa.int64()))
    engine.append_arrow(f"raw_{name}", table.to_reader())


def source(name: str, entity: str, columns: dict[str, Any], **extra: Any) -> SourceConfig:
    connector = extra.pop("connector", {"type": "csv", "path": f"{name}.csv"})
    return SourceConfig.model_validate(
        {"name": name, "entity": entity, "connector": connector, "columns": columns, **extra})


def stage(engine: Engine, src: SourceConfig, project: ProjectConfig = PROJECT,
          **kwargs: Any) -> tuple[StageResult, list[dict[str, Any]]]:
    """Stage ``src``; returns the result and the staged rows sorted by ``_record_id``."""
    result = stage_source(engine, src, project, SilentReporter(), "run-test", **kwargs)
    rows = engine.to_arrow(engine.table(f"stg_{src.name}")).to_pylist()
    return result, sorted(rows, key=lambda r: (r["_record_id"] is None, r["_record_id"]))


def stage_values(engine: Engine, entity: str, field: str, values: list[Any],
                 mapping: Any = "val", extra_columns: dict[str, Any] | None = None,
                 name: str = "src", **kwargs: Any) -> list[tuple[Any, str | None]]:
    """Stage one field's values; returns ``(value, issues)`` in input order."""
    key = {"customers": "customer_id", "order_lines": "order_id", "orders": "order_id"}[entity]
    rows = [{"id": f"{i:04d}", "val": v} for i, v in enumerate(values)]
    load_raw(engine, name, rows)
    columns = {key: "id", field: mapping, **(extra_columns or {})}
    if entity == "order_lines":
        columns.setdefault("line_number", {"value": 1})
    project = kwargs.pop("project", PROJECT)
    src = source(name, entity, columns, **kwargs.pop("source_extra", {}))
    _, staged = stage(engine, src, project, **kwargs)
    by_id = {r[key]: r for r in staged}
    return [(by_id[f"{i:04d}"][field], by_id[f"{i:04d}"]["_issues"]) for i in range(len(values))]
