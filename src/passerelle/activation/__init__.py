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
from typing import TYPE_CHECKING, Any

from passerelle.lazy import lazy_exports
from passerelle.project.destinations_models import (  # light (pydantic): re-exported as is
    AdListDestination as AdListDestination,
)
from passerelle.project.destinations_models import (
    CsvDestination as CsvDestination,
)
from passerelle.project.destinations_models import (
    DeliveryError as DeliveryError,
)
from passerelle.project.destinations_models import (
    Destination as Destination,
)
from passerelle.project.destinations_models import (
    DestinationError as DestinationError,
)
from passerelle.project.destinations_models import (
    MySQLDestination as MySQLDestination,
)
from passerelle.project.destinations_models import (
    PostgresDestination as PostgresDestination,
)
from passerelle.project.destinations_models import (
    WebhookDestination as WebhookDestination,
)
from passerelle.project.destinations_models import (
    load_destinations as load_destinations,
)
from passerelle.project.destinations_models import (
    parse_destination as parse_destination,
)

if TYPE_CHECKING:
    from passerelle.activation.log import ExportResult
    from passerelle.engines.base import Engine

# Submodule -> its public names, imported on first use: reading destinations/*.yml must
# not import httpx (the webhook client).
_EXPORTS = {
    "ad_lists": "export_ad_list",
    "csv_export": "export_csv",
    "log": "ExportResult exports_of_person list_exports",
    "reverse_etl": "write_table",
    "sync": "list_dead_letters retry_dead_letters sync_webhook",
    "webhook": "sign verify",
}
__all__ = sorted(["activate", "AdListDestination", "CsvDestination", "DeliveryError",
                  "Destination", "DestinationError", "MySQLDestination",
                  "PostgresDestination", "WebhookDestination",
                  "load_destinations", "parse_destination",
                  *(n for names in _EXPORTS.values() for n in names.split())])
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)


def activate(engine: Engine, audience: str, destination: Any, *, name: str,
             root: Path | str = ".", user: str | None = None, allow_empty: bool = False,
             **webhook_options: Any) -> ExportResult:
    """Send ``audience`` to ``destination`` (a parsed destination model) and log it.

    ``name`` is the destination's name (its file name in ``destinations/``); ``root`` is the
    project folder that relative CSV paths start from; ``allow_empty`` sends an audience with
    nobody in it (refused otherwise); ``webhook_options`` (``client``, ``sleep``) reach
    :func:`sync_webhook`.
    """
    from passerelle.activation.ad_lists import export_ad_list
    from passerelle.activation.csv_export import export_csv
    from passerelle.activation.reverse_etl import write_table
    from passerelle.activation.sync import sync_webhook

    if isinstance(destination, CsvDestination):
        return export_csv(engine, audience, destination, name=name, root=root, user=user,
                          allow_empty=allow_empty)
    if isinstance(destination, AdListDestination):
        return export_ad_list(engine, audience, destination, name=name, root=root, user=user,
                              allow_empty=allow_empty)
    if isinstance(destination, WebhookDestination):
        return sync_webhook(engine, audience, destination, name=name, user=user,
                            allow_empty=allow_empty, **webhook_options)
    if isinstance(destination, PostgresDestination | MySQLDestination):
        return write_table(engine, audience, destination, name=name, user=user,
                           allow_empty=allow_empty)
    raise DestinationError(f"Unknown destination {destination!r}.",
                           "Use a destination read by load_destinations().")
