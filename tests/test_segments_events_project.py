"""The event-driven refresh of a real project: `passerelle run`, then new events are loaded
(as the collector's loader does), then `refresh_events` stages them and a person enters."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import passerelle
from passerelle.project.starter import init_project
from passerelle.segments import service
from passerelle.segments.membership import MEMBERSHIP

SOURCE = """\
entity: events
customer_source: contacts
connector:
  type: csv
  path: data/events-*.csv
columns:
  message_id: id
  type: type
  event: event
  user_id: user
  timestamp: at
"""
SEGMENT = """\
description: Viewed at least twice this week
owner: tests
refresh_every: 1d
where:
  did: {event: Product Viewed, at_least: 2, in_last_days: 7}
audiences:
  - name: keen_email
    channel: email
    holdout_percent: 0
"""


def _events(root: Path, name: str, rows: list[tuple[str, str, float]]) -> None:
    now = datetime.now(UTC).replace(tzinfo=None)
    lines = ["id,type,event,user,at"]
    lines += [f"{m},track,Product Viewed,{user},{now - timedelta(hours=h):%Y-%m-%dT%H:%M:%SZ}"
              for m, user, h in rows]
    (root / "data" / name).write_text("\n".join(lines) + "\n", encoding="utf-8")


def _members(proj) -> set[str]:
    m = proj.engine.table(MEMBERSHIP)
    rows = proj.engine.to_arrow(m.filter(m.segment == "keen")).to_pylist()
    return {r["person_id"] for r in rows}


def test_new_events_make_a_person_enter(tmp_path):
    root = tmp_path / "p"
    init_project(root)
    (root / "sources" / "web.yml").write_text(SOURCE, encoding="utf-8")
    (root / "segments").mkdir()
    (root / "segments" / "keen.yml").write_text(SEGMENT, encoding="utf-8")
    _events(root, "events-1.csv", [("e1", "C001", 5), ("e2", "C001", 4), ("e3", "C002", 3)])

    with passerelle.open(root) as proj:
        result = proj.run()
        assert result.ok, result.errors
        first = _members(proj)
        assert len(first) == 1  # C001's person

        # nothing new: nothing is staged or refreshed
        assert service.refresh_events(proj).staged == []

        # the loader loads a second file; C002 now has two views
        from passerelle.sources import load_source

        _events(root, "events-2.csv", [("e4", "C002", 1)])
        load_source(proj.engine, root, proj.sources["web"], "L1", proj.reporter)
        out = service.refresh_events(proj)
        assert out.staged == ["web"] and out.changed == 1
        assert out.memberships is not None and "keen" in out.memberships.incremental
        assert out.memberships.refreshed["keen"]["entered"] == 1
        second = _members(proj)
        assert first < second and len(second) == 2
        assert out.audiences["keen_email"]["segment_members"] == 2

        # `passerelle run` afterwards agrees and changes nothing
        again = proj.run()
        assert again.ok
        assert _members(proj) == second
        refreshed = again.segments.memberships.refreshed
        assert refreshed.get("keen", {"entered": 0})["entered"] == 0
