"""SHA-256 in SQL, the same hex digest on every engine (Ibis compiles it on DuckDB only)."""

from __future__ import annotations

import ibis
import ibis.expr.types as ir

from passerelle.engines.base import Engine


@ibis.udf.scalar.builtin(name="convert_to")
def _pg_convert_to(value: str, encoding: str) -> bytes: ...


@ibis.udf.scalar.builtin(name="sha256")
def _pg_sha256(value: bytes) -> bytes: ...


@ibis.udf.scalar.builtin(name="encode")
def _pg_encode(value: bytes, fmt: str) -> str: ...


_SHA256_HEX = {
    "postgres": lambda s: _pg_encode(_pg_sha256(_pg_convert_to(s, "UTF8")), "hex"),
}


def sha256_hex(engine: Engine, value: ir.StringValue) -> ir.StringValue:
    """Lower-case hex sha256 of a string column, identical on every engine."""
    make = _SHA256_HEX.get(engine.dialect)
    return make(value) if make else value.hexdigest("sha256")
