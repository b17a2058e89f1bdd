"""One hash, computed identically in Python and in every SQL engine.

Assignment to experiment arms and bootstrap weights must not depend on where they are
computed: a person hashed by the API (Python) and by the warehouse (DuckDB, PostgreSQL)
lands in the same bucket. MD5 is the one digest both engines and Python share; its first
8 hex digits give a 32-bit integer, turned into an integer in SQL with portable string
functions (``position`` of each digit in ``'0123456789abcdef'``) rather than
engine-specific hex casts.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import ibis
import ibis.expr.types as ir

BUCKETS = 2**32
_HEX = "0123456789abcdef"


@ibis.udf.scalar.builtin(name="md5")
def _md5(value: str) -> str:  # type: ignore[empty-body]
    """MD5 hex digest: a builtin of DuckDB and PostgreSQL (ibis 12 lacks it on PostgreSQL)."""


def bucket(key: str) -> int:
    """The 32-bit bucket of ``key`` (Python side)."""
    return int(hashlib.md5(key.encode("utf-8")).hexdigest()[:8], 16)


def bucket_expr(key: ir.StringValue) -> ir.IntegerValue:
    """The 32-bit bucket of ``key`` as an Ibis expression (same value as :func:`bucket`)."""
    digest = _md5(key)
    value: ir.IntegerValue = ibis.literal(0, type="int64")
    for i in range(8):
        # cast through int32 so that the engine really widens (PostgreSQL's position() is int4)
        digit = ibis.literal(_HEX).find(digest.substr(i, 1)).cast("int32").cast("int64")
        value = value + digit * ibis.literal(16 ** (7 - i), type="int64")
    return value


def join_key(*parts: str | ir.Value) -> ir.StringValue:
    """``part1:part2:...`` as a string expression; values are cast to text."""
    out: ir.StringValue | None = None
    for part in parts:
        piece = ibis.literal(part) if isinstance(part, str) else part.cast("string")
        out = piece if out is None else out + ibis.literal(":") + piece
    assert out is not None
    return out


def thresholds(cumulative: Sequence[float]) -> list[int]:
    """Integer bucket thresholds for cumulative probabilities in [0, 1]."""
    return [min(int(c * BUCKETS), BUCKETS) for c in cumulative]
