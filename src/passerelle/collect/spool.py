"""The write-ahead spool: where an event is made durable before it is acknowledged.

Two sides share one interface:

- the **writer** (inside the HTTP server): ``await append(source, data, count)`` returns once
  ``data`` (JSON lines) is durable; ``backlog()`` says how many events wait to be loaded.
- the **reader** (the loader, a thread or ``passerelle run``): ``units(source)`` yields
  :class:`Unit` objects, each a JSON-lines file plus ``done()`` to call once the warehouse
  committed it.

:class:`FileSpool` keeps segments on local disk. Requests hand their lines to one writer
thread, which appends everything that queued up while the previous ``fsync`` ran and then
syncs once (group commit): one ``fsync`` per round, not per request. A segment is sealed
(``.open`` renamed ``.jsonl``) after ``seal_seconds`` or ``seal_bytes``, or as soon as it was
idle ``idle_seconds`` while the loader has nothing else of that source waiting (so a quiet
collector's events are queryable quickly, and a busy one makes few, large loads); only sealed
segments are loaded. A process killed mid-write leaves an ``.open`` segment whose last line may be
torn; the next writer truncates it after the last newline (that line was never
acknowledged) and seals it.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import queue
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from passerelle.errors import PasserelleError


class SpoolError(PasserelleError):
    """The spool cannot be written or read (disk full, NATS or Redis unreachable)."""


@dataclass
class Unit:
    """A batch of spooled events for the loader: a JSON-lines file and how to release it.

    ``name`` identifies it in ``_passerelle_loads``; ``position`` (NATS sequence, Redis id)
    lets the loader skip what an earlier, interrupted drain already committed.
    """

    name: str
    path: Path
    events: int
    done: Callable[[], None]
    position: str | None = None
    cleanup: Callable[[], None] = field(default=lambda: None)


class Spool(ABC):
    """Writer and reader sides of one spool."""

    kind: str = ""
    #: Called (from any thread) when new events became loadable: wakes the loader.
    on_loadable: Callable[[], None] | None = None

    def _loadable(self) -> None:
        if self.on_loadable is not None:
            self.on_loadable()

    # -- writer side (async, in the server's event loop) ------------------------------
    async def start(self, sources: list[str]) -> None:  # noqa: B027 - optional hook
        """Open what the writer needs (and recover what a killed writer left)."""

    async def stop(self) -> None:  # noqa: B027 - optional hook
        """Flush and release the writer side."""

    @abstractmethod
    async def append(self, source: str, data: bytes, count: int) -> None:
        """Return only once ``data`` (``count`` JSON lines, newline-terminated) is durable."""

    @abstractmethod
    def backlog(self) -> int:
        """Events spooled but not yet loaded (as last measured)."""

    # -- reader side (sync) -----------------------------------------------------------
    @abstractmethod
    def units(self, source: str, loaded_position: str | None) -> Iterator[Unit]:
        """Units ready to load, oldest first."""

    def reader_lock(self, source: str) -> contextlib.AbstractContextManager[bool]:
        """Yields False when another loader already drains ``source`` (skip, do not wait)."""
        return contextlib.nullcontext(True)

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release the reader side."""


# ------------------------------------------------------------------------------ files

class ServerSpool(Spool):
    """A spool kept by a server (NATS, Redis): the backlog is measured by polling it."""

    POLL_SECONDS = 0.5

    def __init__(self) -> None:
        self._sources: list[str] = []
        self._backlog = 0
        self._poller: asyncio.Task | None = None

    @abstractmethod
    async def _pending(self, source: str) -> int:
        """Events of ``source`` stored in the server and not yet acknowledged by the loader."""

    def _start_polling(self, sources: list[str]) -> None:
        self._sources = sources
        self._poller = asyncio.create_task(self._poll())

    def _stop_polling(self) -> None:
        if self._poller is not None:
            self._poller.cancel()

    async def _poll(self) -> None:
        while True:
            total = 0
            for source in self._sources:
                with contextlib.suppress(Exception):  # a hiccup: keep the last measure
                    total += await self._pending(source)
            self._backlog = total
            await asyncio.sleep(self.POLL_SECONDS)

    def backlog(self) -> int:
        return self._backlog


def _segment_name(pid: int, seq: int) -> str:
    return f"{datetime.now(UTC).strftime('%Y%m%dT%H%M%S%f')}-{pid}-{seq:06d}"


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _truncate_torn_tail(path: Path) -> int:
    """Cut a segment after its last newline; return how many complete lines it holds."""
    data = path.read_bytes()
    end = data.rfind(b"\n") + 1
    if end != len(data):
        with open(path, "r+b") as f:
            f.truncate(end)
            f.flush()
            os.fsync(f.fileno())
    return data.count(b"\n", 0, end)


@contextlib.contextmanager
def _try_lock(path: Path) -> Iterator[bool]:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


class _Segment:
    def __init__(self, folder: Path, name: str) -> None:
        self.path = folder / f"{name}.open"
        self.fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self.opened = self.written = time.monotonic()
        self.size = 0
        self.events = 0


class FileSpool(Spool):
    """Segments of JSON lines in ``<root>/<source>/``."""

    kind = "file"

    def __init__(self, root: Path, seal_seconds: float = 1.0,
                 seal_bytes: int = 32 * 1024 * 1024, idle_seconds: float = 0.03) -> None:
        self.root = Path(root)
        self.seal_seconds, self.seal_bytes = seal_seconds, seal_bytes
        self.idle_seconds = idle_seconds
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._segments: dict[str, _Segment] = {}
        self._sealed: dict[Path, int] = {}  # sealed segment -> events, until it disappears
        self._lock_fds: list[int] = []
        self._thread: threading.Thread | None = None
        self._seq = 0
        self._backlog = 0
        self._pruned = 0.0
        self._error: BaseException | None = None

    def folder(self, source: str) -> Path:
        return self.root / source

    # -- writer ---------------------------------------------------------------------
    async def start(self, sources: list[str]) -> None:
        for source in sources:
            folder = self.folder(source)
            folder.mkdir(parents=True, exist_ok=True)
            fd = os.open(folder / ".writer.lock", os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise SpoolError(f"Another collector process writes to the spool {folder}.",
                                 "Stop it, or give this process its own spool path (or use "
                                 "the nats or redis spool for several collectors).") from None
            self._lock_fds.append(fd)
            for left in sorted(folder.glob("*.open")):  # a killed writer's segment
                lines = _truncate_torn_tail(left)
                if lines:
                    left.rename(left.with_suffix(".jsonl"))
                else:
                    left.unlink()
            _fsync_dir(folder)
            for sealed in folder.glob("*.jsonl"):
                self._sealed[sealed] = _count_lines(sealed)
        self._backlog = sum(self._sealed.values())
        self._thread = threading.Thread(target=self._run, name="spool-writer", daemon=True)
        self._thread.start()

    async def stop(self) -> None:
        if self._thread is not None:
            self._queue.put(None)
            await asyncio.get_running_loop().run_in_executor(None, self._thread.join)
            self._thread = None
        for fd in self._lock_fds:
            os.close(fd)
        self._lock_fds.clear()

    async def append(self, source: str, data: bytes, count: int) -> None:
        if self._error is not None:
            raise SpoolError(f"The spool cannot be written: {self._error}",
                             "Check the disk (space, permissions) and restart the collector.")
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._queue.put((source, data, count, loop, future))
        await future

    def backlog(self) -> int:
        return self._backlog

    def _run(self) -> None:
        stopping = False
        while not stopping:
            wait = self.idle_seconds if self._segments else min(0.2, self.seal_seconds)
            try:
                first = self._queue.get(timeout=wait)
            except queue.Empty:
                first = ()
            items = [first] if first else []
            if first is None:
                stopping = True
                items = []
            while True:  # everything that queued while we waited or synced
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stopping = True
                    continue
                items.append(item)
            if items:
                self._commit(items)
            self._seal(force=stopping)

    def _commit(self, items: list) -> None:
        touched: dict[str, _Segment] = {}
        try:
            chunks: dict[str, list[bytes]] = {}
            for source, data, count, _, _ in items:
                chunks.setdefault(source, []).append(data)
                segment = self._segment(source)
                segment.events += count
                touched[source] = segment
            for source, parts in chunks.items():
                segment = touched[source]
                payload = b"".join(parts)
                view = memoryview(payload)
                while view:
                    written = os.write(segment.fd, view)
                    view = view[written:]
                segment.size += len(payload)
            for segment in touched.values():
                os.fdatasync(segment.fd)
                segment.written = time.monotonic()
            self._backlog += sum(item[2] for item in items)
            outcome: BaseException | None = None
        except OSError as exc:
            self._error = outcome = exc
        by_loop: dict[asyncio.AbstractEventLoop, list] = {}
        for _, _, _, loop, future in items:
            by_loop.setdefault(loop, []).append(future)
        for loop, futures in by_loop.items():
            with contextlib.suppress(RuntimeError):  # loop closed: nobody waits any more
                loop.call_soon_threadsafe(_settle, futures, outcome)

    def _segment(self, source: str) -> _Segment:
        segment = self._segments.get(source)
        if segment is None:
            self._seq += 1
            segment = _Segment(self.folder(source), _segment_name(os.getpid(), self._seq))
            self._segments[source] = segment
        return segment

    def _seal(self, force: bool = False) -> None:
        now, sealed = time.monotonic(), False
        if now - self._pruned >= 0.02:  # what the loader released (a stat a sealed segment)
            self._pruned = now
            for path in [p for p in self._sealed if not p.exists()]:
                self._backlog -= self._sealed.pop(path)
        for source, segment in list(self._segments.items()):
            if not (force or segment.size >= self.seal_bytes
                    or now - segment.opened >= self.seal_seconds
                    or (now - segment.written >= self.idle_seconds
                        and not any(p.parent == segment.path.parent for p in self._sealed))):
                continue
            os.close(segment.fd)
            del self._segments[source]
            if segment.size == 0:
                segment.path.unlink()
                continue
            path = segment.path.with_suffix(".jsonl")
            segment.path.rename(path)
            _fsync_dir(path.parent)
            self._sealed[path] = segment.events
            sealed = True
        if sealed:
            self._loadable()

    # -- reader ---------------------------------------------------------------------
    def reader_lock(self, source: str) -> contextlib.AbstractContextManager[bool]:
        return _try_lock(self.folder(source) / ".loader.lock")

    def units(self, source: str, loaded_position: str | None) -> Iterator[Unit]:
        for path in sorted(self.folder(source).glob("*.jsonl")):
            yield Unit(name=f"spool:{source}/{path.stem}", path=path, events=-1,
                       done=lambda p=path: p.unlink(missing_ok=True))


def _settle(futures: list[asyncio.Future], error: BaseException | None) -> None:
    for future in futures:
        if future.done():
            continue
        if error is None:
            future.set_result(None)
        else:
            future.set_exception(SpoolError(f"The spool cannot be written: {error}",
                                            "Check the disk and restart the collector."))


def _count_lines(path: Path) -> int:
    with open(path, "rb") as f:
        return sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))


def spool_key(config) -> tuple:
    """Equal for two ``spool:`` settings that name the same spool."""
    return (config.type, getattr(config, "path", None), getattr(config, "url", None),
            getattr(config, "stream", None))
