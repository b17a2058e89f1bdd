"""Open the warehouse engine a project configures."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from passerelle.engines.quick import DuckDBFile
from passerelle.lazy import lazy_exports
from passerelle.project.models import (
    DuckDBEngineConfig,
    EngineConfig,
    PostgresEngineConfig,
    SparkEngineConfig,
)
from passerelle.project.paths import confine

if TYPE_CHECKING:
    from passerelle.engines.base import Capabilities, Engine

__all__ = ["Capabilities", "DuckDBFile", "Engine", "duckdb_file", "open_engine"]

# the engine layer imports Ibis and pyarrow: not for the commands that read without them
__getattr__, __dir__ = lazy_exports(__name__, {"base": "Capabilities Engine"})


def open_engine(config: EngineConfig, project_root: Path, file: DuckDBFile | None = None
                ) -> Engine:
    """The engine of ``config``; ``file``: the DuckDB warehouse's connection, already made
    by :func:`duckdb_file` (the engine then owns it)."""
    if isinstance(config, DuckDBEngineConfig):
        from passerelle.engines.duckdb import DuckDBEngine

        file = file or duckdb_file(config, project_root)
        return DuckDBEngine(file.path, file=file)
    if isinstance(config, PostgresEngineConfig):
        from passerelle.engines.postgres import PostgresEngine

        return PostgresEngine(
            host=config.host, port=config.port, user=config.user,
            password=config.password.get_secret_value() if config.password else None,
            database=config.database, schema=config.schema_,
        )
    if isinstance(config, SparkEngineConfig):
        from passerelle.engines.spark import SparkEngine

        return SparkEngine(
            confine(project_root, config.warehouse, what="Spark warehouse folder"),
            master=config.master,
            connect_url=config.connect_url.get_secret_value() if config.connect_url else None,
            settings=config.settings, app_name=config.app_name,
        )
    raise TypeError(f"unknown engine config {config!r}")


def duckdb_file(config: EngineConfig, project_root: Path) -> DuckDBFile | None:
    """The warehouse file of a DuckDB project, to read without Ibis
    (:mod:`passerelle.engines.quick`); None for other engines. Nothing is opened yet."""
    if not isinstance(config, DuckDBEngineConfig):
        return None
    return DuckDBFile(confine(project_root, config.path, what="warehouse file"),
                      threads=config.threads, memory_limit=config.memory_limit)
