"""The official Segment Python client (PyPI) against a real collector process, then staging."""

from __future__ import annotations

import datetime as dt

import pytest
from segment.analytics.client import Client

from collect_helpers import KEY, running, wait_loaded, write_project
from passerelle.core import open_project


@pytest.fixture
def project(tmp_path):
    return write_project(tmp_path / "proj")


def test_official_client_events_reach_stg(project):
    errors = []
    with running(project) as server:
        client = Client(KEY, host=server.url, sync_mode=False, gzip=True, upload_size=50,
                        on_error=lambda e, batch: errors.append(e), max_retries=2)
        client.identify("u-1", {"email": "Marie.Dupont@Example.fr"}, anonymous_id="anon-1")
        for i in range(120):
            client.track("u-1" if i % 2 else None, "Product Viewed", {"sku": f"S{i}"},
                         anonymous_id="anon-1", message_id=f"m-{i:04d}",
                         context={"campaign": {"medium": "email", "name": "spring"}})
        client.page("u-1", "Shop", "Home", {"path": "/"}, message_id="page-1")
        client.screen("u-1", "App", "Cart", message_id="screen-1")
        client.group("u-1", "g-9", {"name": "ACME"}, message_id="group-1")
        client.alias("old-id-7", "u-1", message_id="alias-1")  # previous, new
        when = dt.datetime(2025, 3, 1, 12, 0, tzinfo=dt.UTC)
        client.track("u-1", "Order Completed", {"revenue": 42.5}, timestamp=when,
                     message_id="order-1")
        client.flush()
        client.join()
        assert errors == []
        wait_loaded(project, 126)
    with open_project(project) as proj:
        result = proj.run(source="web_tracking")
        assert result.errors == []
        engine = proj.engine
        stg = engine.table("stg_web_tracking")
        rows = {r["message_id"]: r for r in engine.to_arrow(stg).to_pylist()}
        assert len(rows) == 126  # 120 track + identify + page + screen + group + alias + order
        assert {r["type"] for r in rows.values()} == {"track", "identify", "page", "screen",
                                                       "group", "alias"}
        assert rows["m-0001"]["user_id"] == "u-1"
        assert rows["m-0001"]["anonymous_id"] == "anon-1"
        assert rows["m-0001"]["channel"] == "email"
        assert rows["m-0001"]["campaign_id"] == "spring"
        assert rows["m-0000"]["user_id"] is None
        assert '"sku":"S7"' in rows["m-0007"]["properties"].replace(" ", "")
        identify = next(r for r in rows.values() if r["type"] == "identify")
        assert identify["email"] == "marie.dupont@example.fr"
        # client and server clocks agree here: the corrected time stays the one sent
        assert abs(rows["order-1"]["timestamp"] - when.replace(tzinfo=None)) < dt.timedelta(
            seconds=5)
        # the events view sees them, and the alias pairs are kept for identity
        assert engine.count("events") == 126
        aliases = engine.to_arrow(engine.table("identity_aliases")).to_pylist()
        pairs = {(a["anonymous_id"], a["user_id"], a["previous_id"]) for a in aliases}
        assert ("anon-1", "u-1", None) in pairs
        assert (None, "u-1", "old-id-7") in pairs
        # raw holds each event once: the collector and loader never double-write
        assert engine.count("raw_web_tracking") == 126
