"""The serving store in Redis, for decisions under heavy traffic.

Layout under a prefix (one per project, or per test):

- ``<prefix>gen``: the generation decisions read; a refresh writes a new generation, then
  switches this key, then deletes the old one, so a decision never sees half a refresh;
- ``<prefix><gen>:id:<any id>`` -> person id; ``<prefix><gen>:p:<person id>`` -> JSON of
  ``{"values": {...}, "offers": [...]}``; ``<prefix><gen>:pr:<person id>`` -> the profile
  API's JSON (golden record unmasked, traits, segments, consents);
- ``<prefix>cap:<counter key>``: caps (expiring at the end of their window) and budgets.

A look-up is one Lua call (generation, id, person in one round trip); taking caps is one
Lua call that checks every counter and increments all or none (Redis runs a script alone,
so two decisions never both pass a cap of one); the messages of one decision take theirs in
one call too (each message's counters all or none, in turn, until enough passed). The
machine's Redis keeps nothing on disk:
counters are lost when it restarts (see docs/personalisation.md).
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import orjson
import redis

from passerelle.engines.base import Engine
from passerelle.personalize.caps import Counter
from passerelle.personalize.store import (
    DecisionStore,
    PersonRecord,
    StoreUnavailable,
    normalise_id,
    split_values,
)
from passerelle.personalize.tables import ELIGIBILITY, IDS, PEOPLE
from passerelle.project.offers_models import OfferDefinitions

TIMEOUT = 0.25  # seconds: a decision must not hang on a Redis that went away
BATCH = 10_000

_LOOKUP = """
local gen = redis.call('GET', KEYS[1])
if not gen then return false end
local pid = redis.call('GET', ARGV[1] .. gen .. ':id:' .. ARGV[2])
if not pid then return false end
return {pid, redis.call('GET', ARGV[1] .. gen .. ':p:' .. pid)}
"""
_PROFILE = """
local gen = redis.call('GET', KEYS[1])
if not gen then return false end
local pid = redis.call('GET', ARGV[1] .. gen .. ':id:' .. ARGV[2])
if not pid then return false end
return {pid, redis.call('GET', ARGV[1] .. gen .. ':pr:' .. pid)}
"""
_TAKE = """
for i, key in ipairs(KEYS) do
  if tonumber(redis.call('GET', key) or '0') >= tonumber(ARGV[2 * i - 1]) then
    return 0
  end
end
for i, key in ipairs(KEYS) do
  redis.call('INCR', key)
  local at = tonumber(ARGV[2 * i])
  if at > 0 then redis.call('PEXPIREAT', key, at) end
end
return 1
"""
# the same, for several groups of counters in turn (one message each) until ARGV[1] of them
# passed; ARGV[2] groups of sizes ARGV[3..], then each counter's limit and expiry. Returns
# per group 1 (taken), 0 (a counter at its limit: none taken) or -1 (not tried).
_TAKE_FIRST = """
local wanted, groups = tonumber(ARGV[1]), tonumber(ARGV[2])
local k, a, passed, out = 1, 3 + groups, 0, {}
for g = 1, groups do
  local size = tonumber(ARGV[2 + g])
  if passed >= wanted then
    out[g] = -1
  else
    local ok = 1
    for i = 0, size - 1 do
      if tonumber(redis.call('GET', KEYS[k + i]) or '0') >= tonumber(ARGV[a + 2 * i]) then
        ok = 0
        break
      end
    end
    if ok == 1 then
      for i = 0, size - 1 do
        redis.call('INCR', KEYS[k + i])
        local at = tonumber(ARGV[a + 2 * i + 1])
        if at > 0 then redis.call('PEXPIREAT', KEYS[k + i], at) end
      end
      passed = passed + 1
    end
    out[g] = ok
  end
  k = k + size
  a = a + 2 * size
end
return out
"""


def client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_timeout=TIMEOUT, socket_connect_timeout=TIMEOUT)


class RedisPeople:
    def __init__(self, r: redis.Redis, prefix: str) -> None:
        self.prefix = prefix
        self._lookup = r.register_script(_LOOKUP)

    def lookup(self, any_id: str) -> PersonRecord | None:
        try:
            found = self._lookup(keys=[f"{self.prefix}gen"],
                                 args=[self.prefix, normalise_id(any_id)])
        except redis.RedisError as exc:
            raise StoreUnavailable(f"Redis: {exc}") from exc
        if not found:
            return None
        pid, data = found[0].decode(), orjson.loads(found[1] or b"{}")
        return PersonRecord(pid, data.get("values", {}), set(data.get("offers", [])))


class RedisProfiles:
    """Profiles (``<gen>:pr:<person id>``, unmasked JSON) found by any identifier in one
    round trip; the API masks them as the caller's token requires."""

    def __init__(self, r: redis.Redis, prefix: str) -> None:
        self.prefix = prefix
        self._lookup = r.register_script(_PROFILE)

    def lookup(self, any_id: str) -> tuple[str, dict[str, Any]] | None:
        try:
            found = self._lookup(keys=[f"{self.prefix}gen"],
                                 args=[self.prefix, normalise_id(any_id)])
        except redis.RedisError as exc:
            raise StoreUnavailable(f"Redis: {exc}") from exc
        if not found:
            return None
        return found[0].decode(), orjson.loads(found[1] or b"{}")


def write_profiles(engine: Engine, pipe_of: Any, base: str, who: Any = None) -> None:
    """``<base>pr:<person id>`` for everyone (or ``who``), in pipelines of ``BATCH``."""
    from passerelle.personalize.profiles import ProfileReader, profile_doc, profile_rows

    golden = ProfileReader(engine).select.get("golden", [])
    for batch in engine.con.to_pyarrow_batches(profile_rows(engine, who), chunk_size=BATCH):
        pipe = pipe_of()
        for row in batch.to_pylist():
            pipe.set(f"{base}pr:{row['person_id']}",
                     json.dumps(profile_doc(row, golden), default=str))
        pipe.execute()


class RedisCaps:
    def __init__(self, r: redis.Redis, prefix: str) -> None:
        self.prefix = prefix
        self._take = r.register_script(_TAKE)
        self._take_first = r.register_script(_TAKE_FIRST)

    def take(self, counters: list[Counter]) -> bool:
        if not counters:
            return True
        args: list[Any] = []
        for c in counters:
            args += [c.limit, int(c.expires_at.timestamp() * 1000) if c.expires_at else 0]
        try:
            return bool(self._take(keys=[f"{self.prefix}cap:{c.key}" for c in counters],
                                   args=args))
        except redis.RedisError as exc:
            raise StoreUnavailable(f"Redis: {exc}") from exc

    def take_first(self, groups: list[list[Counter]], wanted: int) -> list[bool | None]:
        """:func:`~passerelle.personalize.store.take_in_turn` in one round trip."""
        keys: list[str] = []
        limits: list[Any] = []
        for counters in groups:
            for c in counters:
                keys.append(f"{self.prefix}cap:{c.key}")
                limits += [c.limit, int(c.expires_at.timestamp() * 1000)
                           if c.expires_at else 0]
        try:
            flags = self._take_first(keys=keys, args=[wanted, len(groups),
                                                      *(len(g) for g in groups), *limits])
        except redis.RedisError as exc:
            raise StoreUnavailable(f"Redis: {exc}") from exc
        return [None if f < 0 else bool(f) for f in flags]


def redis_posteriors(r: redis.Redis, prefix: str) -> dict[tuple[str, str, str],
                                                          tuple[int, int]]:
    """The posteriors :func:`load_redis` copied with the generation decisions read."""
    gen = r.get(f"{prefix}gen")
    data = r.get(f"{prefix}{gen.decode()}:posteriors") if gen is not None else None
    return {(p, c, o): (int(t), int(w)) for p, c, o, t, w in orjson.loads(data or b"[]")}


def redis_store(url: str, prefix: str, definitions: OfferDefinitions,
                timezone: str = "UTC") -> DecisionStore:
    r = client(url)
    return DecisionStore(definitions, RedisPeople(r, prefix), RedisCaps(r, prefix), timezone,
                         kind="redis")


def load_redis(engine: Engine, url: str, prefix: str) -> str:
    """Copy the warehouse's serving tables to Redis as a new generation; returns it.

    The rows stream from the warehouse in Arrow batches written with pipelines: Redis has
    no bulk load from SQL, so this is the one place rows pass through Python."""
    r = redis.Redis.from_url(url)
    gen = uuid.uuid4().hex[:12]
    base = f"{prefix}{gen}:"
    ids = engine.table(IDS)
    for batch in engine.con.to_pyarrow_batches(ids, chunk_size=BATCH):
        pipe = r.pipeline(transaction=False)
        for row in batch.to_pylist():
            pipe.set(f"{base}id:{row['id']}", row["person_id"])
        pipe.execute()
    p, e = engine.table(PEOPLE), engine.table(ELIGIBILITY)
    offers = e.group_by("person_id").aggregate(offers=e.offer.collect())
    joined = p.left_join(offers, p.person_id == offers.person_id)
    rows = joined.select(*[p[c] for c in p.columns], offers=offers.offers)
    for batch in engine.con.to_pyarrow_batches(rows, chunk_size=BATCH):
        pipe = r.pipeline(transaction=False)
        for row in batch.to_pylist():
            chosen = row.pop("offers") or []
            doc = {"values": split_values(row), "offers": sorted(chosen)}
            pipe.set(f"{base}p:{row['person_id']}", json.dumps(doc, default=str))
        pipe.execute()
    from passerelle.identity.tables import PROFILES
    from passerelle.personalize.log import read_posteriors

    if engine.exists(PROFILES):
        write_profiles(engine, lambda: r.pipeline(transaction=False), base)
    # the bandit's counts, for the server's decision workers (they never open the warehouse)
    r.set(f"{base}posteriors", orjson.dumps(
        [[*key, *counts] for key, counts in read_posteriors(engine).items()]))
    old = r.getset(f"{prefix}gen", gen)
    if old:
        stale = f"{prefix}{old.decode()}:*"
        for keys in _chunks(r.scan_iter(match=stale, count=BATCH), BATCH):
            r.unlink(*keys)
    return gen


def _chunks(items: Any, size: int) -> Any:
    chunk: list[Any] = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


__all__ = ["RedisCaps", "RedisPeople", "RedisProfiles", "client", "load_redis",
           "redis_posteriors", "redis_store", "write_profiles"]
