"""The stored figures: one warehouse row per figure, stamped with the data it was computed on.

A figure is kept as JSON whose dates, timestamps, decimals and tuples are tagged, so the page
gets back the very values the computation gave. Its ``stamp`` is :func:`data_stamp` at the
time: what the data's steps last saw, the last check runs, and the sizes of the tables that
jobs outside a run change (audience holdouts, the activation log). A page compares it with
the stamp now to say whether the figure is current or "as of" an older state of the data.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import ibis
import ibis.expr.types as ir
import pyarrow as pa
import pyarrow.compute as pc

from passerelle.engines.base import Engine
from passerelle.errors import PasserelleError
from passerelle.runlog import RUNS_TABLE, utcnow

FIGURES = "_passerelle_figures"
SCHEMA = pa.schema([("key", pa.string()), ("run_id", pa.string()), ("stamp", pa.string()),
                    ("computed_at", pa.timestamp("us")), ("body", pa.string())])
# Tables that jobs change between runs (audiences built, exports sent): part of the stamp.
OUTSIDE_RUNS = ("audience_holdouts", "activation_log")


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


# ------------------------------------------------------------------------------ encoding
def _tag(value: Any) -> Any:
    if isinstance(value, datetime):
        return {"__t": "datetime", "v": value.isoformat()}
    if isinstance(value, date):
        return {"__t": "date", "v": value.isoformat()}
    if isinstance(value, Decimal):
        return {"__t": "decimal", "v": str(value)}
    if isinstance(value, tuple):
        return {"__t": "tuple", "v": [_tag(v) for v in value]}
    if isinstance(value, list):
        return [_tag(v) for v in value]
    if isinstance(value, dict):
        if not all(isinstance(k, str) for k in value):
            return {"__t": "items", "v": [[_tag(k), _tag(v)] for k, v in value.items()]}
        return {k: _tag(v) for k, v in value.items()}
    if isinstance(value, PasserelleError):
        return {"__t": "error", "v": [value.reason, value.instruction]}
    return value


def _untag(value: Any) -> Any:
    if isinstance(value, list):
        return [_untag(v) for v in value]
    if not isinstance(value, dict):
        return value
    kind = value.get("__t")
    if kind == "datetime":
        return datetime.fromisoformat(value["v"])
    if kind == "date":
        return date.fromisoformat(value["v"])
    if kind == "decimal":
        return Decimal(value["v"])
    if kind == "tuple":
        return tuple(_untag(v) for v in value["v"])
    if kind == "items":
        return {_untag(k): _untag(v) for k, v in value["v"]}
    if kind == "error":
        return PasserelleError(*value["v"])
    return {k: _untag(v) for k, v in value.items()}


def encode(value: Any) -> str:
    return json.dumps(_tag(value), ensure_ascii=False, separators=(",", ":"))


def decode(text: str) -> Any:
    return _untag(json.loads(text))


# ------------------------------------------------------------------------------- stamps
# The state rows that are not about data the figures read: the figures step's own, and the
# traits' (no figure reads a trait; a trait over a window of time changes every day).
NOT_READ = ("figures", "trait:")


def data_stamp(engine: Engine) -> tuple[str | None, str]:
    """(the latest run's id, a stamp of the data as it is now). One query.

    The stamp is made of what the data's steps last saw (each step's fingerprint of its
    inputs, :mod:`passerelle.state`: it changes when the step rewrote its tables), the
    outcome of the last two check runs (the quality tile), and the sizes of the tables that
    jobs outside a run change (audience holdouts, the activation log). A run that changed
    nothing leaves it as it was, so the figures stay current and the run skips them."""
    from passerelle.staging.checks import RESULTS_TABLE
    from passerelle.state import STATE_TABLE

    names = [n for n in (RUNS_TABLE, STATE_TABLE, RESULTS_TABLE, *OUTSIDE_RUNS)
             if engine.exists(n)]
    if not names:
        return None, ""

    def build(_: Mapping[str, Any]) -> ir.Table:
        parts = []
        for name in names:
            t = engine.table(name)
            if name == RUNS_TABLE:
                parts.append(t.aggregate(k=ibis.literal(name, "string"),
                                         v=t.run_id.max().cast("string")))
            elif name == STATE_TABLE:
                t = t.filter(~ibis.or_(*[t.step.startswith(p) for p in NOT_READ]))
                parts.append(t.select(k="state:" + t.step, v=t.fingerprint.cast("string")))
            elif name == RESULTS_TABLE:
                runs = t.group_by("run_id").aggregate(
                    at=t.checked_at.max(), total=t.count(), passed=t.count(where=t.passed))
                runs = runs.mutate(i=ibis.row_number().over(
                    ibis.window(order_by=[ibis.desc("at"), ibis.desc("run_id")])))
                runs = runs.filter(runs.i < 2)
                parts.append(runs.select(
                    k="checks:" + runs.i.cast("string"),
                    v=runs.passed.cast("string") + "/" + runs.total.cast("string")))
            else:
                parts.append(t.aggregate(k=ibis.literal(name, "string"),
                                         v=t.count().cast("string")))
        return ibis.union(*parts).order_by(["k", "v"])

    rows = engine.prepared(("figures_stamp", tuple(names)), {}, build).to_pylist()
    found = {r["k"]: r["v"] for r in rows}
    run_id = found.pop(RUNS_TABLE, None)
    return run_id, ";".join(f"{k}={v}" for k, v in sorted(found.items()))


def stamps(engine: Engine, keys: list[str]) -> dict[str, str]:
    """The stamp each of the stored figures ``keys`` was computed on (those stored)."""
    if not engine.exists(FIGURES) or not keys:
        return {}

    def build(v: Mapping[str, Any]) -> ir.Table:
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

    def build(v: Mapping[str, Any]) -> ir.Table:
        t = engine.table(FIGURES)
        return t.filter(t.key == v["key"]).select("run_id", "stamp", "computed_at", "body")

    rows = engine.prepared("figures_read", {"key": key}, build).to_pylist()
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
