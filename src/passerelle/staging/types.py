"""The warehouse type of each kind of standard field once staged (light: validation of
filters imports it without the staging machinery)."""

from __future__ import annotations

import ibis.expr.datatypes as dt

from passerelle.model import Kind

TARGET_TYPES: dict[Kind, dt.DataType] = {
    Kind.DATE: dt.date,
    Kind.TIMESTAMP: dt.Timestamp(scale=6),  # microseconds, as both engines store them
    Kind.DECIMAL: dt.Decimal(18, 2),
    Kind.INTEGER: dt.int64,
    Kind.BOOLEAN: dt.boolean,
}


def target_type(kind: Kind) -> dt.DataType:
    return TARGET_TYPES.get(kind, dt.string)
