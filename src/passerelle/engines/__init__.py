"""Open the warehouse engine a project configures."""

from __future__ import annotations

from pathlib import Path

from passerelle.engines.base import Capabilities, Engine
from passerelle.project.models import (
    DuckDBEngineConfig,
    EngineConfig,
    PostgresEngineConfig,
    SparkEngineConfig,
)
from passerelle.project.paths import confine

__all__ = ["Capabilities", "Engine", "open_engine"]


def open_engine(config: EngineConfig, project_root: Path) -> Engine:
    if isinstance(config, DuckDBEngineConfig):
        from passerelle.engines.duckdb import DuckDBEngine

        return DuckDBEngine(confine(project_root, config.path, what="warehouse file"),
                            threads=config.threads, memory_limit=config.memory_limit)
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
