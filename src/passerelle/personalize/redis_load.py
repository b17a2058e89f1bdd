"""Writing the serving store to Redis at warehouse scale.

Redis has no bulk load from SQL, so the warehouse writes the commands themselves: each
row of a query is one command in Redis's wire protocol (RESP), its JSON value built by
string concatenation in SQL; the rows stream out in Arrow batches whose text buffer is
sent to Redis as it is, and Python reads one short reply per command. No row becomes a
Python object.

Fewer commands too: identifiers (several a person) go in hash buckets, one ``HSET`` per
bucket with all its fields (``<base>id:<bucket>``, the bucket being the first hex digits of
the SHA-256 of the identifier, their number in ``<base>width``); each person's decision
and profile documents are one ``SET`` each.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator
from typing import Any

import ibis
import ibis.expr.datatypes as dt
import ibis.expr.types as ir
import pyarrow as pa
import redis

from passerelle.engines.base import Engine
from passerelle.errors import PasserelleError
from passerelle.personalize.tables import ELIGIBILITY, IDS, PEOPLE, TRAIT_PREFIX

CHUNK = 20_000  # commands a batch: sent, then their replies read
PER_BUCKET = 128  # identifiers a bucket at most, on average (a small hash stays compact)
CRLF = "\r\n"


def bucket_width(ids: int) -> int:
    """Hex digits of an identifier's bucket: the fewest keeping buckets to
    :data:`PER_BUCKET` identifiers on average (8M identifiers: 4, 65,536 buckets)."""
    width = 1
    while ids > PER_BUCKET * 16**width:
        width += 1
    return width


def id_digest(any_id: str) -> str:
    """What a look-up sends: the SHA-256 of the (normalised) identifier, whose first
    ``width`` hex digits name its bucket (the warehouse computes the same in SQL)."""
    return hashlib.sha256(any_id.encode()).hexdigest()


# -- JSON and RESP, in SQL ---------------------------------------------------------------
def json_value(engine: Engine, v: ir.Value) -> ir.StringValue:
    """``v`` as JSON text (NULL stays NULL), as Python's ``json.dumps`` writes what
    :func:`~passerelle.personalize.store.plain` makes of it: dates and times as ISO text,
    decimals as numbers."""
    t = v.type()
    if t.is_boolean():
        return ibis.cases((v, "true"), (~v, "false"))  # NULL stays NULL
    if t.is_integer() or t.is_floating() or t.is_decimal():
        return v.cast(dt.string)
    if t.is_timestamp():
        text = ibis.ifelse(v.microsecond() == 0, v.strftime("%Y-%m-%dT%H:%M:%S"),
                           v.strftime("%Y-%m-%dT%H:%M:%S.%f"))
        return '"' + text + '"'
    return engine.json_string(v.cast(dt.string))


def json_object(engine: Engine, fields: dict[str, ir.Value]) -> ir.StringValue:
    """``{"name": value, ...}`` (a NULL value as ``null``)."""
    parts: list[Any] = []
    for i, (name, value) in enumerate(fields.items()):
        parts.append(("{" if i == 0 else ",") + json.dumps(name) + ":")
        parts.append(json_value(engine, value).fill_null("null"))
    if not parts:
        return ibis.literal("{}")
    out = ibis.literal(parts[0])
    for part in parts[1:]:
        out = out + part
    return out + "}"


def _bulk(engine: Engine, s: ir.StringValue) -> ir.StringValue:
    return "$" + engine.byte_length(s).cast(dt.string) + CRLF + s + CRLF


def command(engine: Engine, *args: ir.StringValue | str) -> ir.StringValue:
    """One command in RESP: ``*<n>`` then each argument as a bulk string."""
    out = ibis.literal(f"*{len(args)}{CRLF}")
    for a in args:
        out = out + (_bulk(engine, a) if isinstance(a, ir.Value)
                     else f"${len(a.encode())}{CRLF}{a}{CRLF}")
    return out


def _only(t: ir.Table, who: ir.Table | None) -> ir.Table:
    return t if who is None else t.filter(t.person_id.cast(dt.string).isin(who.person_id))


# -- the commands ------------------------------------------------------------------------
def id_commands(engine: Engine, base: str, width: int, who: ir.Table | None = None
                ) -> ir.Table:
    """One ``HSET <base>id:<bucket> id person_id ...`` a bucket (of the identifiers of
    ``who`` when given)."""
    i = _only(engine.table(IDS), who)
    rows = i.select(bucket=engine.sha256_hex(i.id).substr(0, width),
                    item=_bulk(engine, i.id) + _bulk(engine, i.person_id))
    g = rows.group_by("bucket").aggregate(n=rows.count(), body=rows.item.group_concat(""))
    return g.select(cmd="*" + (2 + 2 * g.n).cast(dt.string) + f"{CRLF}$4{CRLF}HSET{CRLF}"
                    + _bulk(engine, f"{base}id:" + g.bucket) + g.body)


def people_commands(engine: Engine, base: str, who: ir.Table | None = None) -> ir.Table:
    """``SET <base>p:<person id> {"values": {...}, "offers": [...]}`` a person."""
    p, e = _only(engine.table(PEOPLE), who), _only(engine.table(ELIGIBILITY), who)
    offers = e.group_by(_pid=e.person_id).aggregate(names=json_value(engine, e.offer).collect())
    offers = offers.select("_pid", offers="[" + offers.names.sort().join(","))
    values = json_object(engine, {c.removeprefix(TRAIT_PREFIX): p[c] for c in p.columns
                          if c != "person_id"})
    j = p.left_join(offers, p.person_id == offers._pid)
    doc = ('{"values":' + values + ',"offers":'
           + (offers.offers + "]").fill_null("[]") + "}")
    return j.select(cmd=command(engine, "SET", f"{base}p:" + p.person_id, doc))


def profile_commands(engine: Engine, base: str, who: ir.Table | None = None) -> ir.Table:
    """``SET <base>pr:<person id> <profile>`` a person: the golden record (unmasked: the
    API masks when it reads), traits, segments and consents, as
    :func:`~passerelle.personalize.profiles.profile_doc` writes them."""
    from passerelle.identity.tables import PROFILES
    from passerelle.personalize.profiles import ProfileReader

    reader = ProfileReader(engine)
    p = _only(engine.table(PROFILES), who)
    golden = reader.select.get("golden", [])
    rows = p.select(person_id=p.person_id.cast(dt.string),
                    golden=json_object(engine, {c: p[c] for c in golden}))
    parts = {}
    for part, order in (("traits", "trait"), ("segments", "segment"),
                        ("consents", "purpose")):
        columns = reader.select.get(part)
        if not columns:
            continue
        t = _only(engine.table(reader.tables[part]), who)
        by = t.group_by(_pid=t.person_id.cast(dt.string))
        if part == "traits":  # an object: its members in any order
            item = json_value(engine, t.trait) + ":" + ibis.coalesce(
                *[json_value(engine, t[c]) for c in columns[1:]], ibis.literal("null"))
            per = by.aggregate(body=item.group_concat(","))
        else:  # a list in the order of ``order`` (list_sort: an ordered aggregate is slow)
            item = ibis.struct({"k": t[order].cast(dt.string),
                                "v": json_object(engine, {c: t[c] for c in columns})})
            per = by.aggregate(items=item.collect())
            per = per.select("_pid", body=per["items"].sort().map(lambda x: x.v).join(","))
        rows = rows.left_join(per, rows.person_id == per._pid).drop("_pid").rename(
            **{f"__{part}": "body"})
        parts[part] = order

    def listed(part: str, opening: str, closing: str) -> Any:
        if part not in parts:
            return opening + closing
        return (opening + rows[f"__{part}"] + closing).fill_null(opening + closing)

    doc = ('{"golden":' + rows.golden + ',"traits":' + listed("traits", "{", "}")
           + ',"segments":' + listed("segments", "[", "]")
           + ',"consents":' + listed("consents", "[", "]") + "}")
    return rows.select(cmd=command(engine, "SET", f"{base}pr:" + rows.person_id, doc))


# -- sending -----------------------------------------------------------------------------
def _buffers(engine: Engine, commands: ir.Table) -> Iterator[tuple[bytes, int]]:
    """The commands' wire bytes, a batch at a time, with how many commands they hold."""
    for batch in engine.con.to_pyarrow_batches(commands, chunk_size=CHUNK):
        column = batch.column("cmd")
        if column.null_count:
            raise PasserelleError("A Redis command of the serving store came out empty.",
                                  "Report this: a value the store's SQL did not expect.")
        if not pa.types.is_large_string(column.type):
            column = column.cast(pa.large_string())
        offsets = column.buffers()[1]
        first, last = (int.from_bytes(offsets[i * 8:(i + 1) * 8], "little", signed=True)
                       for i in (column.offset, column.offset + len(column)))
        yield column.buffers()[2].to_pybytes()[first:last] if len(column) else b"", len(column)


def send(r: redis.Redis, chunks: Iterable[tuple[bytes, int]], atomic: bool = False) -> int:
    """Send wire-format commands on one connection, reading each batch's replies before
    the next (``atomic``: all in one MULTI/EXEC); returns how many were sent. A command
    Redis refuses stops the load with its error."""
    conn = r.connection_pool.get_connection()
    sent = 0
    try:
        if atomic:
            conn.send_command("MULTI")
            conn.read_response()
        for data, n in chunks:
            if not n:
                continue
            conn.send_packed_command([data], check_health=False)
            for _ in range(n):
                reply = conn.read_response()
                if atomic and reply != b"QUEUED":
                    raise redis.ResponseError(str(reply))
            sent += n
        if atomic:
            conn.send_command("EXEC")
            conn.read_response()
    except redis.RedisError as exc:
        conn.disconnect()  # replies may be left unread: never reuse it
        raise PasserelleError(f"Writing the decision store to Redis failed: {exc}",
                              "Check the Redis server (memory, maxmemory) and run again; "
                              "decisions keep reading the previous store.") from exc
    finally:
        r.connection_pool.release(conn)
    return sent


def write_all(engine: Engine, r: redis.Redis, base: str, width: int,
              who: ir.Table | None = None, atomic: bool = False) -> dict[str, int]:
    """The identifiers, decision documents and profiles (of ``who``, or everyone) under
    ``base``; returns commands a part."""
    from passerelle.identity.tables import PROFILES

    parts = {"ids": id_commands(engine, base, width, who),
             "people": people_commands(engine, base, who)}
    if engine.exists(PROFILES):
        parts["profiles"] = profile_commands(engine, base, who)
    if atomic:
        chunks = [c for expr in parts.values() for c in _buffers(engine, expr)]
        send(r, chunks, atomic=True)
        return {}
    return {name: send(r, _buffers(engine, expr)) for name, expr in parts.items()}


__all__ = ["bucket_width", "command", "id_commands", "id_digest", "json_object",
           "json_value", "people_commands", "profile_commands", "send", "write_all"]
