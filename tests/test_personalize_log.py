"""The decision log: decisions and outcomes come back through the collector as Segment track
events and the SQL over ``events`` joins them; the uplift of personalisation (treated
against holdout) is read by the experiments module with its interval."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import ibis
import numpy as np
import pytest
from starlette.testclient import TestClient

import passerelle
from collect_helpers import auth, write_project
from passerelle.collect.app import create_app
from passerelle.personalize import PersonalizeError, decide, open_store
from passerelle.personalize import refresh_decision_store as refresh
from passerelle.personalize.log import (
    OFFER_CLICKED,
    OFFER_VIEWED,
    decision_event,
    decision_log,
    outcome_event,
    outcomes,
)
from passerelle.personalize.uplift import personalisation_uplift, uplift_from_tables
from passerelle.project.offers_models import PlacementConfig
from personalize_helpers import LEARNED, WEB, append_calls, make_project
from segments_helpers import NOW


def test_decisions_and_outcomes_come_back_through_the_collector(tmp_path):
    shop = make_project(tmp_path / "shop", LEARNED)
    refresh(shop, now=NOW)
    d = decide(open_store(shop), "P1", "home_banner", WEB, now=NOW)
    shop.close()
    offer = d.messages[0].offer
    calls = [decision_event(d, user_id="C1"),
             outcome_event(d, OFFER_VIEWED, offer, user_id="C1"),
             outcome_event(d, OFFER_CLICKED, offer, at=NOW + timedelta(seconds=5),
                           user_id="C1")]
    root = write_project(tmp_path / "site")
    site = passerelle.open(root)
    with TestClient(create_app(root, site.sources, loader=False),
                    base_url="http://localhost") as client:
        r = client.post("/v1/batch", json={"batch": calls + calls[:1]}, headers=auth())
        assert r.status_code == 200, r.text
    assert site.run().ok  # drains the spool, stages the events
    events = site.engine.table("events")
    log = site.engine.to_arrow(decision_log(events, "home_banner", OFFER_CLICKED)).to_pylist()
    assert len(log) == 1  # the decision sent twice counts once
    row = log[0]
    assert row["decision_id"] == d.decision_id and row["person_id"] == "P1"
    assert row["offer"] == offer and row["group"] == "treated"
    assert row["probability"] == pytest.approx(d.messages[0].probability)
    assert row["candidates"] == "shoes,paris_store,everyone"
    assert row["cell"] == "shoe_lovers" and row["ranking"] == "learned"
    assert row["explored"] == d.explored and row["reward"] == 1
    viewed = site.engine.to_arrow(outcomes(events, OFFER_VIEWED)).to_pylist()
    assert viewed == [{"decision_id": d.decision_id, "offer": offer}]
    # a decision whose message was not clicked has reward 0
    assert site.engine.to_arrow(decision_log(events, "home_banner", "Order Completed")
                                ).to_pylist()[0]["reward"] == 0
    site.close()


def _simulated(n: int, holdout: float, rates: dict[str, float], seed: int = 3):
    rng = np.random.default_rng(seed)
    t0 = datetime(2024, 5, 1)
    groups = np.where(rng.random(n) < holdout, "holdout", "treated")
    events = ibis.memtable({
        "event": ["Decision Made"] * n, "timestamp": [t0] * n,
        "properties": [json.dumps({"person_id": f"p{i}", "placement": "home_banner",
                                   "group": g, "decision_id": f"d{i}"})
                       for i, g in enumerate(groups)]})
    bought = rng.random(n) < np.where(groups == "treated", rates["treated"], rates["holdout"])
    ids = [f"p{i}" for i in np.nonzero(bought)[0]]
    orders = ibis.memtable({"person_id": ids, "ordered_at": [t0 + timedelta(days=2)] * len(ids),
                            "amount": [50.0] * len(ids), "channel": ["web"] * len(ids),
                            "status": ["paid"] * len(ids)})
    return events, orders


def test_uplift_of_personalisation_with_its_interval():
    place = PlacementConfig(name="home_banner", holdout_percent=20,
                            default={"content": {"title": "x"}})
    con = ibis.duckdb.connect()
    rows = lambda e: con.to_pyarrow(e).to_pylist()  # noqa: E731
    events, orders = _simulated(4000, 0.2, {"treated": 0.15, "holdout": 0.10})
    out = uplift_from_tables(place, events, orders, rows)
    assert out["control"] == "holdout"
    assert {v["name"]: v["planned_share"] for v in out["variants"]} == {"holdout": 0.2,
                                                                        "treated": 0.8}
    assert not out["srm"]["mismatch"]
    primary = next(c for c in out["comparisons"] if c["primary"])
    assert primary["metric"] == "conversion" and primary["variant"] == "treated"
    diff = primary["difference"]
    assert diff["low"] < 0.05 < diff["high"] and diff["low"] > 0
    # no effect: the interval straddles 0
    events, orders = _simulated(4000, 0.2, {"treated": 0.10, "holdout": 0.10}, seed=5)
    same = next(c for c in uplift_from_tables(place, events, orders, rows)["comparisons"]
                if c["primary"])["difference"]
    assert same["low"] < 0 < same["high"]
    with pytest.raises(PersonalizeError, match="no holdout"):
        uplift_from_tables(place.model_copy(update={"holdout_percent": 0}), events, orders,
                           rows)


def test_personalisation_uplift_reads_the_project(tmp_path):
    proj = make_project(tmp_path, {"placements/home_banner.yml": """\
        context: {device: text, cart_value: number}
        holdout_percent: 50
        default: {content: {title: Default}}
        """})
    refresh(proj, now=NOW)
    store = open_store(proj)
    start = NOW - timedelta(days=30)
    calls = [decision_event(decide(store, p, "home_banner", now=start), user_id=c)
             for p, c in (("P1", "C1"), ("P2", "C2"), ("P3", "C3"), ("P4", "C4"),
                          ("P5", "C5"), ("P6", "C6"))]
    append_calls(proj.engine, calls)
    out = personalisation_uplift(proj, "home_banner")
    people = {v["name"]: v["people"] for v in out["variants"]}
    groups = [c["properties"]["group"] for c in calls]
    assert people == {"holdout": groups.count("holdout"), "treated": groups.count("treated")}
    proj.close()
