"""The spool on Redis Streams: several collector processes can append to one stream.

A request's lines are one entry (``XADD <prefix>:<source> * d <lines>``); ``append`` returns
when Redis answered. That entry is as durable as the Redis server makes it: with
``appendonly yes`` and ``appendfsync always`` it is on disk, with the defaults it survives a
collector crash but not a Redis crash (say so to whoever runs Redis). The loader reads with
the consumer group ``passerelle`` and one consumer name, so after a crash its pending entries
come back first; entries at or below the last committed id are only acknowledged. Loaded
entries are acknowledged and deleted (the stream does not grow without bound).
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from pathlib import Path

import redis
import redis.asyncio as aredis

from passerelle.collect.spool import ServerSpool, SpoolError, Unit

GROUP, CONSUMER = "passerelle", "loader"
COUNT = 2000


def _id_key(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


class RedisSpool(ServerSpool):
    kind = "redis"

    def __init__(self, url: str, prefix: str) -> None:
        super().__init__()
        self.url, self.prefix = url, prefix
        self._client: aredis.Redis | None = None
        self._reader: redis.Redis | None = None

    def key(self, source: str) -> str:
        return f"{self.prefix}:{source}"

    def _group(self, client: redis.Redis, source: str) -> None:
        with contextlib.suppress(redis.ResponseError):  # BUSYGROUP: it exists
            client.xgroup_create(self.key(source), GROUP, id="0", mkstream=True)

    # -- writer -----------------------------------------------------------------------
    async def start(self, sources: list[str]) -> None:
        self._client = aredis.from_url(self.url)
        try:
            for source in sources:
                with contextlib.suppress(redis.ResponseError):
                    await self._client.xgroup_create(self.key(source), GROUP, id="0",
                                                     mkstream=True)
        except redis.ConnectionError as exc:
            raise SpoolError(f"Cannot connect to Redis at {self.url}: {exc}",
                             "Start Redis or fix spool.url.") from exc
        self._start_polling(sources)

    async def _pending(self, source: str) -> int:
        for group in await self._client.xinfo_groups(self.key(source)):
            if group["name"] in (GROUP, GROUP.encode()):
                return int(group.get("lag") or 0) + int(group["pending"])
        return 0

    async def stop(self) -> None:
        self._stop_polling()
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def append(self, source: str, data: bytes, count: int) -> None:
        try:
            await self._client.xadd(self.key(source), {"d": data})
        except redis.RedisError as exc:
            raise SpoolError(f"Redis did not store the events: {exc}",
                             "Check the Redis server.") from exc
        self._backlog += count
        self._loadable()

    # -- reader -----------------------------------------------------------------------
    def units(self, source: str, loaded_position: str | None) -> Iterator[Unit]:
        if self._reader is None:
            self._reader = redis.Redis.from_url(self.url)
        client, key = self._reader, self.key(source)
        self._group(client, source)
        floor = _id_key(loaded_position) if loaded_position else (0, 0)
        start, pending = "0", True  # our pending entries first (crash before XACK)
        while True:
            reply = client.xreadgroup(GROUP, CONSUMER, {key: start}, count=COUNT)
            entries = reply[0][1] if reply else []
            if not entries:
                if pending:
                    start, pending = ">", False
                    continue
                return
            ids = [e[0].decode() for e in entries]
            fresh = [(i, e[1][b"d"]) for i, e in zip(ids, entries, strict=True)
                     if _id_key(i) > floor]
            if pending:
                start = ids[-1]  # continue through the pending list
            if not fresh:
                client.xack(key, GROUP, *ids)
                client.xdel(key, *ids)
                continue
            handle = tempfile.NamedTemporaryFile(  # noqa: SIM115 - closed below, kept on disk
                prefix="passerelle-redis-", suffix=".jsonl",
                                                 delete=False)
            with handle:
                for _, data in fresh:
                    handle.write(data)
            path = Path(handle.name)

            def done(ids=ids) -> None:
                client.xack(key, GROUP, *ids)
                client.xdel(key, *ids)

            yield Unit(name=f"redis:{key}:{fresh[0][0]}-{fresh[-1][0]}", path=path, events=-1,
                       position=fresh[-1][0], done=done,
                       cleanup=lambda p=path: p.unlink(missing_ok=True))
            floor = _id_key(fresh[-1][0])

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None
