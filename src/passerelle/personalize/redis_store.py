"""The serving store in Redis, for decisions under heavy traffic.

Layout under a prefix (one per project, or per test):

- ``<prefix>gen``: the generation decisions read; a refresh writes a new generation, then
  switches this key, then deletes the old one, so a decision never sees half a refresh and a
  refresh that dies leaves the old store served (its unfinished generation, listed in
  ``<prefix>gens``, is deleted by the next refresh);
- ``<prefix><gen>:id:<bucket>``: a hash of identifiers (any id -> person id), the bucket
  being the first ``<prefix><gen>:width`` hex digits of the identifier's SHA-256 (one
  command writes a whole bucket; see :mod:`.redis_load`);
- ``<prefix><gen>:p:<person id>`` -> JSON of ``{"values": {...}, "offers": [...]}``;
  ``<prefix><gen>:pr:<person id>`` -> the profile API's JSON (golden record unmasked,
  traits, segments, consents);
- ``<prefix>cap:<counter key>``: caps (expiring at the end of their window) and budgets.

A look-up is one Lua call (generation, id, person in one round trip); taking caps is one
Lua call that checks every counter and increments all or none (Redis runs a script alone,
so two decisions never both pass a cap of one); the messages of one decision take theirs in
one call too (each message's counters all or none, in turn, until enough passed). The
machine's Redis keeps nothing on disk:
counters are lost when it restarts (see docs/personalisation.md).
"""

from __future__ import annotations

import uuid
from typing import Any

import orjson
import redis

from passerelle.engines.base import Engine
from passerelle.personalize.caps import Counter
from passerelle.personalize.redis_load import id_digest
from passerelle.personalize.store import (
    DecisionStore,
    PersonRecord,
    StoreUnavailable,
    normalise_id,
)
from passerelle.personalize.tables import IDS
from passerelle.project.offers_models import OfferDefinitions

TIMEOUT = 0.25  # seconds: a decision must not hang on a Redis that went away
BATCH = 10_000

# KEYS[1]: the generation key; ARGV: prefix, identifier, its SHA-256 in hex, document kind
_LOOKUP = """
local gen = redis.call('GET', KEYS[1])
if not gen then return false end
local base = ARGV[1] .. gen .. ':'
local width = redis.call('GET', base .. 'width')
local pid
if width then
  pid = redis.call('HGET', base .. 'id:' .. string.sub(ARGV[3], 1, tonumber(width)), ARGV[2])
else  -- a generation of before the buckets (a key an identifier), until the next refresh
  pid = redis.call('GET', base .. 'id:' .. ARGV[2])
end
if not pid then return false end
return {pid, redis.call('GET', base .. ARGV[4] .. ':' .. pid)}
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


def _find(script: Any, prefix: str, any_id: str, kind: str) -> Any:
    """(person id, document) of ``kind`` for any identifier, in one round trip."""
    key = normalise_id(any_id)
    try:
        return script(keys=[f"{prefix}gen"], args=[prefix, key, id_digest(key), kind])
    except redis.RedisError as exc:
        raise StoreUnavailable(f"Redis: {exc}") from exc


class RedisPeople:
    def __init__(self, r: redis.Redis, prefix: str) -> None:
        self.prefix = prefix
        self._lookup = r.register_script(_LOOKUP)

    def lookup(self, any_id: str) -> PersonRecord | None:
        found = _find(self._lookup, self.prefix, any_id, "p")
        if not found:
            return None
        pid, data = found[0].decode(), orjson.loads(found[1] or b"{}")
        return PersonRecord(pid, data.get("values", {}), set(data.get("offers", [])))


class RedisProfiles:
    """Profiles (``<gen>:pr:<person id>``, unmasked JSON) found by any identifier in one
    round trip; the API masks them as the caller's token requires."""

    def __init__(self, r: redis.Redis, prefix: str) -> None:
        self.prefix = prefix
        self._lookup = r.register_script(_LOOKUP)

    def lookup(self, any_id: str) -> tuple[str, dict[str, Any]] | None:
        found = _find(self._lookup, self.prefix, any_id, "pr")
        if not found:
            return None
        return found[0].decode(), orjson.loads(found[1] or b"{}")


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
    """Copy the warehouse's serving tables to Redis as a new generation, then make it the
    one decisions read; returns it. The commands are written by the warehouse
    (:mod:`.redis_load`)."""
    from passerelle.personalize.log import read_posteriors
    from passerelle.personalize.redis_load import bucket_width, write_all

    r = redis.Redis.from_url(url)
    gens = f"{prefix}gens"
    current = r.get(f"{prefix}gen")
    for left in r.smembers(gens):  # of a refresh that died before its switch
        if left != current:
            drop_generation(r, prefix, left.decode())
    gen = uuid.uuid4().hex[:12]
    r.sadd(gens, gen)
    base = f"{prefix}{gen}:"
    width = bucket_width(engine.count(IDS))
    r.set(f"{base}width", width)
    write_all(engine, r, base, width)
    # the bandit's counts, for the server's decision workers (they never open the warehouse)
    r.set(f"{base}posteriors", orjson.dumps(
        [[*key, *counts] for key, counts in read_posteriors(engine).items()]))
    old = r.getset(f"{prefix}gen", gen)
    if old:
        drop_generation(r, prefix, old.decode())
    return gen


def drop_generation(r: redis.Redis, prefix: str, gen: str) -> None:
    """Every key of a generation (decisions no longer read it), then its mention."""
    for keys in _chunks(r.scan_iter(match=f"{prefix}{gen}:*", count=BATCH), BATCH):
        r.unlink(*keys)
    r.srem(f"{prefix}gens", gen)


def _chunks(items: Any, size: int) -> Any:
    chunk: list[Any] = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


__all__ = ["RedisCaps", "RedisPeople", "RedisProfiles", "client", "drop_generation",
           "load_redis", "redis_posteriors", "redis_store"]
