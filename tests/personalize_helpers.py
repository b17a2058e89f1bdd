"""A tiny project for the personalisation tests: the six people of segments_helpers (built
by hand in the project's DuckDB warehouse), one segment, two placements and a few offers.

Facts used by the tests (segments_helpers.PEOPLE): P1 Alice (Paris, consents e-mail and
SMS, favourite category shoes), P2 Bruno (Lyon, e-mail only, bags), P3 Chloé (Bruxelles,
both, shoes), P4 David (Paris, no e-mail consent), P5 Eva (no consent), P6 Fanny (e-mail).
"""

from __future__ import annotations

import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

import passerelle
from segments_helpers import build_world

FILES = {
    "passerelle.yml": "name: shop\ntimezone: Europe/Paris\n",
    "traits/traits.yml": """\
        traits:
          - {name: favourite_category, type: builtin, builtin: favourite_category,
             description: d, owner: o}
          - {name: order_count, type: aggregate, entity: orders, function: count,
             description: d, owner: o}
        """,
    "segments/shoe_lovers.yml": """\
        description: people whose favourite category is shoes
        owner: crm
        where: {trait: favourite_category, op: "=", value: shoes}
        """,
    "placements/home_banner.yml": """\
        description: banner of the home page
        channels: [web, app]
        context:
          device: {type: text, values: [mobile, desktop]}
          cart_value: number
        holdout_percent: 0
        max_messages: 2
        default:
          content: {title: "Our new collection", url: "https://shop.example.fr/new"}
        """,
    "offers/shoes.yml": """\
        description: summer shoes for shoe lovers
        placements: [home_banner]
        priority: 50
        consent: email
        eligibility: {segment: shoe_lovers}
        fields: [first_name]
        traits: [favourite_category]
        content:
          title: "{{ first_name }}, summer {{ favourite_category }} are here"
          url: https://shop.example.fr/shoes
        """,
    "offers/paris_store.yml": """\
        description: visit the Paris store, on mobile
        placements: [home_banner]
        priority: 10
        consent: none
        eligibility: {where: {field: city, op: "=", value: Paris}}
        context: [{context: device, op: "=", value: mobile}]
        fields: [first_name, city]
        content:
          title: "{{ first_name }}, our {{ city }} store is open"
          url: https://shop.example.fr/stores
        """,
    "offers/everyone.yml": """\
        description: free delivery for everyone
        placements: [home_banner]
        priority: 0
        consent: none
        content:
          title: Free delivery
          url: https://shop.example.fr/delivery
        """,
}


# the home banner learning per segment (shoe lovers apart), one message, no holdout
WEB = {"channel": "web", "device": "mobile"}
LEARNED = {"placements/home_banner.yml": """\
    channels: [web, app]
    context:
      device: {type: text, values: [mobile, desktop]}
      cart_value: number
    holdout_percent: 0
    max_messages: 1
    ranking: learned
    learn_per: [shoe_lovers]
    default:
      content: {title: "Our new collection"}
    """}


def write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text), encoding="utf-8")


def make_project(root: Path, extra: dict[str, str] | None = None,
                 drop: tuple[str, ...] = ()) -> passerelle.Project:
    """The project opened, its warehouse filled with the hand-made world."""
    files = {k: v for k, v in FILES.items() if k not in drop}
    write(root, {**files, **(extra or {})})
    project = passerelle.open(root)
    build_world(project.engine)
    return project


def append_calls(engine, calls: list[dict]) -> None:
    """Segment track calls (decision_event, outcome_event) added to the ``events`` table as
    the collector's loader and staging leave them: properties as JSON text."""
    import json
    import uuid
    from datetime import datetime

    import pyarrow as pa

    from traits_helpers import entity_schema

    schema = entity_schema("events")
    rows = []
    for call in calls:
        mid = uuid.uuid4().hex
        rows.append({"_source": "web", "_record_id": mid, "message_id": mid, "type": "track",
                     "event": call["event"], "user_id": call.get("userId"),
                     "anonymous_id": call.get("anonymousId"),
                     "timestamp": datetime.fromisoformat(call["timestamp"]).replace(
                         tzinfo=None),
                     "properties": json.dumps(call["properties"])})
    table = pa.Table.from_pylist(rows, schema=schema)
    engine.append_arrow("events", pa.RecordBatchReader.from_batches(schema, table.to_batches()))


REDIS = "redis://127.0.0.1:6379/0"


@pytest.fixture(name="prefix")
def redis_prefix() -> Iterator[str]:
    """A Redis key prefix of the test's own, its keys deleted after it."""
    name = f"test:{uuid.uuid4().hex[:10]}:"
    yield name
    r = redis.Redis.from_url(REDIS)
    keys = list(r.scan_iter(match=f"{name}*"))
    if keys:
        r.delete(*keys)
