"""Skip a step whose inputs did not change since it last ran.

Staging rebuilds ``stg_<source>`` from the whole raw table (or adds an append-only
source's new loads, :mod:`passerelle.staging.incremental`) and identity rebuilds the graph
from every customer record, which is what makes them idempotent; this table remembers a
fingerprint of what each step last saw (definitions, load ledger, pins, model), so an
unchanged input costs one small query instead of a rebuild.
"""

from __future__ import annotations

import hashlib

import pyarrow as pa
import sqlglot as sg
import sqlglot.expressions as sge

from passerelle.engines.base import Engine
from passerelle.runlog import utcnow
from passerelle.sources import LOADS_TABLE
from passerelle.tables import STEP_STATE_TABLE

STATE_TABLE = STEP_STATE_TABLE
STATE_SCHEMA = pa.schema([
    ("step", pa.string()), ("fingerprint", pa.string()), ("run_id", pa.string()),
    ("at", pa.timestamp("us")),
])


def fingerprint(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


def raw_state(engine: Engine, source: str) -> str:
    """Summary of the committed loads of a source: changes whenever its raw rows change."""
    if not engine.exists(LOADS_TABLE):
        return "none"
    loads = engine.table(LOADS_TABLE)
    mine = loads.filter(loads.source == source)
    row = engine.to_arrow(mine.aggregate(n=mine.count(), last=mine.load_id.max())).to_pylist()[0]
    return f"{row['n']}:{row['last']}"


def is_current(engine: Engine, step: str, print_: str) -> bool:
    if not engine.exists(STATE_TABLE):
        return False
    state = engine.table(STATE_TABLE)
    rows = engine.to_arrow(state.filter(state.step == step).select("fingerprint")).to_pylist()
    return bool(rows) and rows[0]["fingerprint"] == print_


def remember(engine: Engine, step: str, print_: str, run_id: str) -> None:
    row = pa.table({"step": [step], "fingerprint": [print_], "run_id": [run_id],
                    "at": [utcnow()]}, schema=STATE_SCHEMA)
    with engine.transaction():
        if engine.exists(STATE_TABLE):
            engine.execute(sge.delete(sg.table(STATE_TABLE, quoted=True),
                                      where=sg.column("step", quoted=True).eq(step)))
        engine.append_arrow(STATE_TABLE, row.to_reader())
