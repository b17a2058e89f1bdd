"""Reading helpers for the pages (the heavy figures are stored by the run: web/stored.py)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from passerelle.engines.base import Engine


@contextmanager
def same_tables(engine: Engine) -> Iterator[None]:
    """For one read-only page: the warehouse's table list read once (not once per
    ``exists``) and each table looked up once (not once per query). Only for work that
    creates no table; the page's lock keeps the engine to one thread meanwhile."""
    names: set[str] | None = None
    tables: dict[str, Any] = {}
    lookup = engine.table

    def exists(name: str) -> bool:
        nonlocal names
        if names is None:
            names = set(engine.list_tables())
        return name in names

    def table(name: str) -> Any:
        if name not in tables:
            tables[name] = lookup(name)
        return tables[name]

    engine.exists, engine.table = exists, table  # type: ignore[method-assign]
    engine.page_memo = {}
    try:
        yield
    finally:
        del engine.exists, engine.table
        engine.page_memo = None
