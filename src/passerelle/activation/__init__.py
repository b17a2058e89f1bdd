"""Activation: audiences leave the warehouse as CSV files, webhook syncs or database tables.

Public API (the CLI, the API server and tests call these; see docs/activation.md):

- :func:`activate` sends an audience to one destination, whatever its kind;
- :func:`export_csv`, :func:`sync_webhook`, :func:`write_table` for one kind each;
- :func:`retry_dead_letters`, :func:`list_dead_letters` for failed webhook batches;
- :func:`list_exports`, :func:`exports_of_person` read the export log;
- :func:`load_destinations`, :func:`parse_destination` read ``destinations/*.yml``.

Only the ``treated`` group of an audience is ever sent; the holdout stays in the warehouse.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from passerelle.activation.csv_export import export_csv
from passerelle.activation.log import ExportResult, exports_of_person, list_exports
from passerelle.activation.reverse_etl import write_table
from passerelle.activation.sync import list_dead_letters, retry_dead_letters, sync_webhook
from passerelle.activation.webhook import sign, verify
from passerelle.engines.base import Engine
from passerelle.project.destinations_models import (
    CsvDestination,
    DeliveryError,
    Destination,
    DestinationError,
    MySQLDestination,
    PostgresDestination,
    WebhookDestination,
    load_destinations,
    parse_destination,
)

__all__ = [
    "CsvDestination", "DeliveryError", "Destination", "DestinationError", "ExportResult",
    "MySQLDestination", "PostgresDestination", "WebhookDestination", "activate", "export_csv",
    "exports_of_person", "list_dead_letters", "list_exports", "load_destinations",
    "parse_destination", "retry_dead_letters", "sign", "sync_webhook", "verify",
    "write_table",
]


def activate(engine: Engine, audience: str, destination: Any, *, name: str,
             root: Path | str = ".", user: str | None = None, allow_empty: bool = False,
             **webhook_options: Any) -> ExportResult:
    """Send ``audience`` to ``destination`` (a parsed destination model) and log it.

    ``name`` is the destination's name (its file name in ``destinations/``); ``root`` is the
    project folder that relative CSV paths start from; ``allow_empty`` sends an audience with
    nobody in it (refused otherwise); ``webhook_options`` (``client``, ``sleep``) reach
    :func:`sync_webhook`.
    """
    if isinstance(destination, CsvDestination):
        return export_csv(engine, audience, destination, name=name, root=root, user=user,
                          allow_empty=allow_empty)
    if isinstance(destination, WebhookDestination):
        return sync_webhook(engine, audience, destination, name=name, user=user,
                            allow_empty=allow_empty, **webhook_options)
    if isinstance(destination, PostgresDestination | MySQLDestination):
        return write_table(engine, audience, destination, name=name, user=user,
                           allow_empty=allow_empty)
    raise DestinationError(f"Unknown destination {destination!r}.",
                           "Use a destination read by load_destinations().")
