"""Arrow batches on their way to the warehouse: lineage columns, counts, errors.

Every connector produces a ``pyarrow.RecordBatchReader``; :class:`LineageStream` wraps it
so the engine's bulk path receives the source columns plus ``_load_id``, ``_loaded_at``,
``_source_file`` and ``_source_row``. Work is per batch (vectorised), never per row.

An exception raised while the engine consumes the stream (a database connection lost
mid-load) surfaces inside the engine as its own error type; the stream keeps the original
so the loader can re-raise what actually happened.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from passerelle.sources.bookkeeping import LINEAGE
from passerelle.sources.files import _check_no_lineage_clash as check_no_lineage_clash


class LineageStream:
    """Adds lineage to each batch, counts rows and tracks the maximum of a key column."""

    def __init__(self, reader: pa.RecordBatchReader, *, load_id: str, loaded_at: datetime,
                 source_file: str, key: str | None = None,
                 on_batch: Callable[[int], None] | None = None) -> None:
        check_no_lineage_clash(list(reader.schema.names), source_file)
        self._reader = reader
        self.load_id = load_id
        self.loaded_at = loaded_at
        self.source_file = source_file
        self.key = key
        self.on_batch = on_batch
        self.rows = 0
        self.key_max: object = None
        self.error: BaseException | None = None
        self.source_schema = reader.schema
        self.schema = pa.schema(list(reader.schema) + list(LINEAGE))

    def _batches(self) -> Iterator[pa.RecordBatch]:
        try:
            for batch in self._reader:
                yield self._with_lineage(batch)
        except BaseException as exc:  # kept so the loader re-raises the real cause
            self.error = exc
            raise

    def _with_lineage(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        n = batch.num_rows
        start = self.rows + 1
        self.rows += n
        if self.key is not None and n:
            batch_max = pc.max(batch.column(self.key)).as_py()
            if batch_max is not None and (self.key_max is None or batch_max > self.key_max):
                self.key_max = batch_max
        if self.on_batch is not None:
            self.on_batch(n)
        columns = [*batch.columns,
                   pa.repeat(pa.scalar(self.load_id, pa.string()), n),
                   pa.repeat(pa.scalar(self.loaded_at, pa.timestamp("us")), n),
                   pa.repeat(pa.scalar(self.source_file, pa.string()), n),
                   pa.array(np.arange(start, start + n, dtype=np.int64))]
        return pa.RecordBatch.from_arrays(columns, schema=self.schema)

    def reader(self) -> pa.RecordBatchReader:
        return pa.RecordBatchReader.from_batches(self.schema, self._batches())
