"""The stored figures: one warehouse row per figure, stamped with the data it was computed on.

A figure is kept as JSON whose dates, timestamps, decimals and tuples are tagged, so the page
gets back the very values the computation gave. Its ``stamp`` is :func:`data_stamp` at the
time: what the data's steps last saw, the last check runs, and the sizes of the tables that
jobs outside a run change (audience holdouts, the activation log)
(:func:`passerelle.figures.stored.stamp_query`). A page compares it with the stamp now to
say whether the figure is current or "as of" an older state of the data.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import ibis
import pyarrow as pa
import pyarrow.compute as pc

from passerelle.engines.base import Engine
from passerelle.errors import PasserelleError
from passerelle.figures.codec import decode, encode
from passerelle.figures.stored import STAMP_TABLES, figure_query, stamp_of, stamp_query
from passerelle.runlog import utcnow
from passerelle.tables import FIGURES_TABLE

FIGURES = FIGURES_TABLE
SCHEMA = pa.schema([("key", pa.string()), ("run_id", pa.string()), ("stamp", pa.string()),
                    ("computed_at", pa.timestamp("us")), ("body", pa.string())])


@dataclass
class Stored:
    value: Any  # the figure (or the error it ended on, raised by :meth:`get`)
    run_id: str | None
    computed_at: datetime
    current: bool  # computed on the data as it is now

    def get(self) -> Any:
        if isinstance(self.value, PasserelleError):
            raise self.value
        return self.value


# ------------------------------------------------------------------------------- stamps
def data_stamp(engine: Engine) -> tuple[str | None, str]:
    """(the latest run's id, a stamp of the data as it is now). One query."""
    names = [n for n in STAMP_TABLES if engine.exists(n)]
    if not names:
        return None, ""
    return stamp_of(engine.prepared(("figures_stamp", tuple(names)), {},
                                    lambda _: stamp_query(engine, names)).to_pylist())


def stamps(engine: Engine, keys: list[str]) -> dict[str, str]:
    """The stamp each of the stored figures ``keys`` was computed on (those stored)."""
    if not engine.exists(FIGURES) or not keys:
        return {}

    def build(v: Mapping[str, Any]) -> Any:
        t = engine.table(FIGURES)
        return t.filter(t.key.isin(v["keys"])).select("key", "stamp")

    rows = engine.prepared("figures_stamps", {"keys": sorted(keys)}, build).to_pylist()
    return {r["key"]: r["stamp"] for r in rows}


# ----------------------------------------------------------------------------- read, write
def read(engine: Engine, key: str, stamp: str | None = None) -> Stored | None:
    """The stored figure ``key``, or None; ``stamp``: :func:`data_stamp`'s (read when not
    given)."""
    if not engine.exists(FIGURES):
        return None

    rows = engine.prepared("figures_read", {"key": key},
                           lambda v: figure_query(engine, v["key"])).to_pylist()
    if not rows:
        return None
    row = rows[0]
    if stamp is None:
        stamp = data_stamp(engine)[1]
    return Stored(decode(row["body"]), row["run_id"], row["computed_at"],
                  row["stamp"] == stamp)


def write(engine: Engine, figures: Mapping[str, Any], run_id: str | None,
          stamp: str) -> None:
    """Store ``figures`` (key -> value or PasserelleError), replacing those keys' rows and
    keeping the others. The table is replaced whole (a crash leaves the previous one)."""
    now = utcnow()
    new = pa.table({"key": list(figures), "run_id": [run_id] * len(figures),
                    "stamp": [stamp] * len(figures), "computed_at": [now] * len(figures),
                    "body": [encode(v) for v in figures.values()]}, schema=SCHEMA)
    if engine.exists(FIGURES):
        kept = engine.to_arrow(engine.table(FIGURES)).select(SCHEMA.names).cast(SCHEMA)
        kept = kept.filter(pc.invert(pc.is_in(
            kept["key"], value_set=pa.array(list(figures), pa.string()))))
        new = pa.concat_tables([kept, new])
    engine.replace_table(FIGURES, ibis.memtable(new))
