"""Opening the spool each collector source's ``spool:`` setting describes (file, NATS
JetStream or Redis Streams); the three kinds share the base classes of
:mod:`passerelle.collect.spool`."""

from __future__ import annotations

from pathlib import Path

from passerelle.collect.spool import FileSpool, Spool, spool_key
from passerelle.project.paths import confine


def open_spools(sources, project_root: Path) -> dict[str, Spool]:
    """Source name -> spool, for collector sources; sources whose ``spool:`` settings name
    the same spool share one object."""
    by_key: dict[tuple, Spool] = {}
    spools = {}
    for source in sources:
        config = source.connector.spool
        key = spool_key(config)
        if key not in by_key:
            by_key[key] = open_spool(config, project_root)
        spools[source.name] = by_key[key]
    return spools


def open_spool(config, project_root: Path) -> Spool:
    """The spool a collector source's ``spool:`` setting describes."""
    if config.type == "file":
        return FileSpool(confine(project_root, config.path, what="spool folder"))
    if config.type == "nats":  # each client library is imported only when its spool is used
        from passerelle.collect.spool_nats import NatsSpool

        return NatsSpool(config.url, config.stream)
    from passerelle.collect.spool_redis import RedisSpool

    return RedisSpool(config.url, config.stream)
