"""The register of data-subject requests (GDPR art. 30 and 5(2): show what was done).

One row a request: access or erasure, who asked it to be done, when, why, for which person
id, and what it did (rows per table, exports to follow up at their destination). The row
names the person by id only: after an erasure, nothing in the warehouse links that id to
anyone.
"""

from __future__ import annotations

import json
from typing import Any

import ibis
import pyarrow as pa

from passerelle.engines.base import Engine
from passerelle.runlog import utcnow

REQUESTS = "privacy_requests"
REQUESTS_SCHEMA = pa.schema([
    ("request_id", pa.string()), ("kind", pa.string()), ("person_id", pa.string()),
    ("requested_by", pa.string()), ("reason", pa.string()), ("at", pa.timestamp("us")),
    ("detail", pa.string()),  # JSON: rows per table, exports, kept identifiers
])


def record_request(engine: Engine, request_id: str, kind: str, person_id: str,
                   requested_by: str | None, reason: str | None, detail: dict[str, Any]) -> None:
    row = {"request_id": request_id, "kind": kind, "person_id": person_id,
           "requested_by": requested_by, "reason": reason, "at": utcnow(),
           "detail": json.dumps(detail, sort_keys=True, default=str)}
    engine.append_arrow(REQUESTS, pa.Table.from_pylist([row], schema=REQUESTS_SCHEMA)
                        .to_reader())


def list_requests(engine: Engine, limit: int = 100) -> list[dict[str, Any]]:
    """The latest requests first, with ``detail`` parsed."""
    if not engine.exists(REQUESTS):
        return []
    t = engine.table(REQUESTS)
    rows = engine.to_arrow(t.order_by([ibis.desc("at"), "request_id"]).limit(limit)).to_pylist()
    for row in rows:
        row["detail"] = json.loads(row["detail"]) if row["detail"] else {}
    return rows
