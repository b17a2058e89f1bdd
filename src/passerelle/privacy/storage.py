"""After an erasure, the bytes on disk: deleted rows must not stay readable in the file.

Neither engine scrubs what a ``DELETE`` removed. DuckDB marks the blocks free and reuses
them later; ``CHECKPOINT``, ``VACUUM`` and even rewriting each table (``CREATE TABLE AS``,
``DROP``) leave the old blocks, e-mails and addresses readable, in the file (measured with
DuckDB 1.5: tests/test_privacy.py greps the file). PostgreSQL keeps dead tuples in the
table's pages until ``VACUUM FULL`` rewrites them.

- DuckDB: the warehouse is copied into a new file (``COPY FROM DATABASE``: tables, views,
  sequences; only live rows), which replaces the old one. The replacement happens while
  the old file is still open, hence locked: no other process can open the old file between
  the copy and the swap. The engine reconnects to the new file on its next query. It costs
  a copy of the whole warehouse, which is the only way to a file without the person.
- PostgreSQL: ``VACUUM FULL`` of the tables the erasure touched, which locks each table
  (readers too) while it is rewritten: run on request only (``--vacuum-full``); otherwise
  the command is given to run at a quiet time. The write-ahead log, replicas' copies and
  backups keep the old rows until they rotate.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

import sqlglot as sg
import sqlglot.expressions as sge

from passerelle.engines.base import Engine

_SCRUB_DB = "__passerelle_scrub"


def scrub_storage(engine: Engine, tables: Iterable[str], vacuum_full: bool = False
                  ) -> dict[str, Any]:
    """Make the rows deleted from ``tables`` unreadable from the engine's storage (see the
    module); returns what was done, for the register."""
    if engine.name == "duckdb":
        _rebuild_duckdb_file(engine)
        return {"engine": "duckdb", "done": "warehouse file rewritten without deleted rows"}
    names = sorted({t for t in tables if engine.exists(t)})
    command = vacuum_full_command(engine, names)
    if vacuum_full and command:
        # VACUUM cannot run in a transaction: Ibis's PostgreSQL connection is autocommit
        engine.execute(sge.Command(this="VACUUM", expression=command.removeprefix("VACUUM ")))
        return {"engine": engine.name, "done": command}
    return {"engine": engine.name, "to_run": command}


def vacuum_full_command(engine: Engine, tables: list[str]) -> str | None:
    if not tables:
        return None
    schema = getattr(engine, "schema", None)
    names = ", ".join(sg.table(t, db=schema, quoted=True).sql(engine.dialect) for t in tables)
    return f"VACUUM FULL {names};"


def _rebuild_duckdb_file(engine: Engine) -> None:
    path = engine.path  # type: ignore[attr-defined]
    fresh = path.with_name(f".{path.name}.scrub")
    for leftover in (fresh, fresh.with_name(fresh.name + ".wal")):
        leftover.unlink(missing_ok=True)
    raw = engine.con.con  # the duckdb connection underneath Ibis
    raw.execute("CHECKPOINT")
    database = sg.to_identifier(raw.execute("SELECT current_database()").fetchone()[0],
                                quoted=True).sql("duckdb")
    scrub = sg.to_identifier(_SCRUB_DB, quoted=True).sql("duckdb")
    raw.execute(f"ATTACH {sge.convert(str(fresh)).sql('duckdb')} AS {scrub}")
    try:
        raw.execute(f"COPY FROM DATABASE {database} TO {scrub}")
    finally:
        raw.execute(f"DETACH {scrub}")
    try:
        os.replace(fresh, path)  # the old file is still open (and locked) by this process
    finally:
        fresh.unlink(missing_ok=True)
        engine.close()  # the next query reconnects, to the new file
