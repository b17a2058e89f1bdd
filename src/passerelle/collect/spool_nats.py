"""The spool on NATS JetStream: several collector processes can publish to one stream.

A request's lines are one message on subject ``<stream>.<source>``; ``append`` returns when
JetStream acknowledged the publish (the message is stored by the server; how often the server
fsyncs is its own ``sync_interval`` setting, and replicas are what make it survive a disk).
The loader pulls with a durable consumer per source (ack policy *all*): a fetched batch
becomes one unit, named after its first and last stream sequence, acknowledged after the
warehouse committed it. Messages redelivered after a crash have sequences at or below the
last committed one (kept in ``_passerelle_loads.high_water_mark``) and are only acknowledged.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
from collections.abc import Iterator
from pathlib import Path

import nats
from nats.js.api import AckPolicy, ConsumerConfig, StorageType
from nats.js.errors import NotFoundError

from passerelle.collect.spool import ServerSpool, SpoolError, Unit

FETCH = 2000  # messages a unit at most


def _durable(source: str) -> str:
    return f"passerelle_{source}"


class NatsSpool(ServerSpool):
    kind = "nats"

    def __init__(self, url: str, stream: str) -> None:
        super().__init__()
        self.url, self.stream = url, stream
        self._nc = self._js = None
        self._reader_loop: asyncio.AbstractEventLoop | None = None
        self._reader: tuple | None = None

    def subject(self, source: str) -> str:
        return f"{self.stream}.{source}"

    async def _connect(self):
        try:
            nc = await nats.connect(self.url, connect_timeout=2, max_reconnect_attempts=3)
        except Exception as exc:
            raise SpoolError(f"Cannot connect to NATS at {self.url}: {exc}",
                             "Start the NATS server (with JetStream) or fix spool.url.") from exc
        js = nc.jetstream()
        try:
            await js.stream_info(self.stream)
        except NotFoundError:
            await js.add_stream(name=self.stream, subjects=[f"{self.stream}.>"],
                                storage=StorageType.FILE)
        return nc, js

    async def _consumer(self, js, source: str) -> None:
        config = ConsumerConfig(durable_name=_durable(source), ack_policy=AckPolicy.ALL,
                                filter_subject=self.subject(source), max_ack_pending=-1,
                                ack_wait=60)
        with contextlib.suppress(Exception):  # exists already with this configuration
            await js.add_consumer(self.stream, config)

    # -- writer -----------------------------------------------------------------------
    async def start(self, sources: list[str]) -> None:
        self._nc, self._js = await self._connect()
        for source in sources:
            await self._consumer(self._js, source)
        self._start_polling(sources)

    async def _pending(self, source: str) -> int:
        info = await self._js.consumer_info(self.stream, _durable(source))
        return info.num_pending + info.num_ack_pending

    async def stop(self) -> None:
        self._stop_polling()
        if self._nc is not None:
            await self._nc.drain()
            self._nc = None

    async def append(self, source: str, data: bytes, count: int) -> None:
        try:
            await self._js.publish(self.subject(source), data, timeout=5)
        except Exception as exc:
            raise SpoolError(f"NATS did not store the events: {exc}",
                             "Check the NATS server and its JetStream storage.") from exc
        self._backlog += count
        self._loadable()

    # -- reader -----------------------------------------------------------------------
    def _run(self, coro):
        if self._reader_loop is None:
            self._reader_loop = asyncio.new_event_loop()
        return self._reader_loop.run_until_complete(coro)

    async def _subscription(self, source: str):
        if self._reader is None:
            nc, js = await self._connect()
            self._reader = (nc, js, {})
        nc, js, subs = self._reader
        if source not in subs:
            await self._consumer(js, source)
            subs[source] = await js.pull_subscribe_bind(_durable(source), stream=self.stream)
        return subs[source]

    async def _fetch(self, source: str) -> list:
        sub = await self._subscription(source)
        try:
            return await sub.fetch(FETCH, timeout=0.3)
        except nats.errors.TimeoutError:
            return []

    def units(self, source: str, loaded_position: str | None) -> Iterator[Unit]:
        floor = int(loaded_position) if loaded_position else 0
        while True:
            messages = self._run(self._fetch(source))
            if not messages:
                return
            last = messages[-1]
            fresh = [m for m in messages if m.metadata.sequence.stream > floor]
            if not fresh:
                self._run(last.ack_sync())
                continue
            first_seq = fresh[0].metadata.sequence.stream
            last_seq = last.metadata.sequence.stream
            handle = tempfile.NamedTemporaryFile(  # noqa: SIM115 - closed below, kept on disk
                prefix="passerelle-nats-", suffix=".jsonl",
                                                 delete=False)
            with handle:
                for message in fresh:
                    handle.write(message.data)
            path = Path(handle.name)
            yield Unit(name=f"nats:{self.stream}/{source}:{first_seq}-{last_seq}", path=path,
                       events=-1, position=str(last_seq),
                       done=lambda m=last: self._run(m.ack_sync()),
                       cleanup=lambda p=path: p.unlink(missing_ok=True))
            floor = last_seq

    def close(self) -> None:
        if self._reader is not None:
            with contextlib.suppress(Exception):
                self._run(self._reader[0].close())
            self._reader = None
        if self._reader_loop is not None:
            self._reader_loop.close()
            self._reader_loop = None
