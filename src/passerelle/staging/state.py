"""Skip re-staging a source when neither its raw data nor its definition changed.

Staging rebuilds ``stg_<source>`` from the whole raw table, which is what makes it
idempotent; this remembers what the last staging saw (the source's definition, the
project settings staging depends on, and the load ledger of that source) so an unchanged
source costs one small query instead of a rebuild.
"""

from __future__ import annotations

import hashlib

import pyarrow as pa
import sqlglot as sg
import sqlglot.expressions as sge

from passerelle.engines.base import Engine
from passerelle.project.models import ProjectConfig, SourceConfig
from passerelle.runlog import utcnow
from passerelle.sources import LOADS_TABLE

STATE_TABLE = "_passerelle_staged"
STATE_SCHEMA = pa.schema([
    ("source", pa.string()), ("fingerprint", pa.string()), ("raw_state", pa.string()),
    ("run_id", pa.string()), ("staged_at", pa.timestamp("us")),
])


def definition_fingerprint(source: SourceConfig, project: ProjectConfig) -> str:
    text = "|".join((source.model_dump_json(), project.timezone, project.default_region))
    return hashlib.sha256(text.encode()).hexdigest()


def raw_state(engine: Engine, source: str) -> str:
    """Summary of the committed loads of a source: changes whenever its raw rows change."""
    if not engine.exists(LOADS_TABLE):
        return "none"
    loads = engine.table(LOADS_TABLE)
    mine = loads.filter(loads.source == source)
    row = engine.to_arrow(mine.aggregate(n=mine.count(), last=mine.load_id.max())).to_pylist()[0]
    return f"{row['n']}:{row['last']}"


def is_current(engine: Engine, source: SourceConfig, project: ProjectConfig) -> bool:
    """True when ``stg_<source>`` already reflects the raw data and the definition."""
    if not engine.exists(STATE_TABLE) or not engine.exists(f"stg_{source.name}"):
        return False
    state = engine.table(STATE_TABLE)
    mine = state.filter(state.source == source.name)
    rows = engine.to_arrow(mine.select("fingerprint", "raw_state")).to_pylist()
    return bool(rows) and rows[0] == {
        "fingerprint": definition_fingerprint(source, project),
        "raw_state": raw_state(engine, source.name),
    }


def remember(engine: Engine, source: SourceConfig, project: ProjectConfig, run_id: str) -> None:
    row = pa.table({
        "source": [source.name], "fingerprint": [definition_fingerprint(source, project)],
        "raw_state": [raw_state(engine, source.name)], "run_id": [run_id],
        "staged_at": [utcnow()],
    }, schema=STATE_SCHEMA)
    with engine.transaction():
        if engine.exists(STATE_TABLE):
            engine.execute(sge.delete(sg.table(STATE_TABLE, quoted=True),
                                      where=sg.column("source", quoted=True).eq(source.name)))
        engine.append_arrow(STATE_TABLE, row.to_reader())


def forget(engine: Engine) -> None:
    """Force the next run to re-stage everything."""
    engine.drop(STATE_TABLE)

