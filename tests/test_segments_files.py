"""segments/*.yml: parsing, located problems (file and line, did-you-mean), JSON Schema."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

from passerelle.errors import Problems
from passerelle.project.segments_models import segment_json_schema
from passerelle.segments import read_segments
from segments_helpers import TRAIT_KINDS


def _write(root: Path, files: dict[str, str]) -> None:
    (root / "segments").mkdir()
    for name, text in files.items():
        (root / "segments" / name).write_text(textwrap.dedent(text), encoding="utf-8")


def _problems(problems: Problems) -> list[tuple[str, int | None, str, str | None]]:
    return [(p.file, p.line, p.message, p.hint) for p in problems.items]


GOOD = """\
    description: Bought shoes, not in the last 60 days
    owner: crm-team
    refresh_every: 15m
    where:
      all:
        - field: country
          op: in
          value: [FR, BE]
        - bought: {category: shoes, at_least: 1}
        - not:
            bought: {category: shoes, in_last_days: 60}
        - any:
            - trait: order_count
              op: ">="
              value: 2
            - did: {event: Product Viewed, at_least: 3, in_last_days: 30,
                    properties: {category: shoes}}
    audiences:
      - name: lapsed_shoes_email
        channel: email
"""


def test_good_file(tmp_path):
    _write(tmp_path, {"lapsed_shoes.yml": GOOD,
                      "fr.yml": "description: d\nowner: o\nwhere: {in_segment: lapsed_shoes}\n"})
    problems = Problems()
    defs = read_segments(tmp_path, problems, TRAIT_KINDS)
    assert _problems(problems) == []
    assert sorted(defs.segments) == ["fr", "lapsed_shoes"]
    assert defs.segments["lapsed_shoes"].refresh_minutes == 15
    audience = defs.audiences["lapsed_shoes_email"]
    assert (audience.segment, audience.channel, audience.holdout_percent,
            audience.holdout_salt) == ("lapsed_shoes", "email", 10.0, "lapsed_shoes_email")


def test_bad_files_are_located(tmp_path):
    _write(tmp_path, {
        "a.yml": """\
            description: d
            owner: o
            where:
              all:
                - field: contry
                  op: "="
                  value: FR
                - field: postcode
                  op: "="
                  value: 75011
                - trait: order_cont
                  op: ">"
                  value: 1
                - in_segment: b
            """,
        "b.yml": """\
            description: d
            owner: o
            where:
              any:
                - in_segment: a
            """,
        "c.yml": """\
            description: d
            owner: o
            where:
              all:
                - any: []
                - did: {event: Visit, in_last_days: 0}
                - field: country
                  op: between
                  value: [Z, A]
                - feild: country
            """,
    })
    problems = Problems()
    read_segments(tmp_path, problems, TRAIT_KINDS)
    got = _problems(problems)
    assert ("segments/a.yml", 5, "'contry' is not a field of profiles",
            "did you mean 'country'?") in got
    assert ("segments/a.yml", 10, "field 'postcode' is text and is compared with number value "
            "75011", "quote it: '75011'") in got
    assert ("segments/a.yml", 11, "'order_cont' is not a trait of this project",
            "did you mean 'order_count'?") in got
    assert ("segments/a.yml", 14, "circular segment reference: a -> b -> a",
            "a segment cannot contain itself, directly or through others") in got
    c = [(line, msg) for f, line, msg, _ in got if f == "segments/c.yml"]
    assert (5, "where.all.0.any: List should have at least 1 item after validation, not 0") in c
    assert (6, "where.all.1.did.in_last_days: Input should be greater than 0") in c
    assert (7, "where.all.2: 'between' range is empty: Z > A") in c
    assert any(line == 10 and "a condition starts with one of the keys" in msg
               for line, msg in c)
    assert len([p for p in got if "circular" in p[2]]) == 1  # one cycle, reported once


def test_json_schema_is_generated():
    schema = segment_json_schema()
    text = json.dumps(schema)
    for key in ("in_segment", "bought", "did", "in_last_days", "holdout_percent", "starts_with"):
        assert key in text
    assert schema["required"] == ["name", "description", "owner", "where"]


def test_docs_examples_are_valid_segments():
    import re

    import yaml

    from passerelle.project.segments_models import SegmentConfig

    text = (Path(__file__).resolve().parents[1] / "docs" / "segments.md").read_text("utf-8")
    blocks = [yaml.safe_load(b) for b in re.findall(r"```yaml\n(.*?)```", text, flags=re.S)]
    segments = [b for b in blocks if isinstance(b, dict) and "where" in b]
    assert segments
    for block in segments:
        SegmentConfig.model_validate({"name": "example", **block})


def test_trait_kinds_follow_the_definitions():
    from passerelle.project.traits_models import TraitDefinitions, TraitsFile
    from passerelle.segments import trait_kinds

    parsed = TraitsFile.model_validate({"traits": [
        {"name": "orders_90d", "description": "d", "owner": "o", "type": "aggregate",
         "entity": "orders", "function": "count", "window_days": 90},
        {"name": "last_order", "description": "d", "owner": "o", "type": "aggregate",
         "entity": "orders", "function": "max", "column": "ordered_at"},
        {"name": "first_channel", "description": "d", "owner": "o", "type": "aggregate",
         "entity": "orders", "function": "first", "column": "channel"},
        {"name": "rfm", "description": "d", "owner": "o", "type": "builtin", "builtin": "rfm"},
        {"name": "clv", "description": "d", "owner": "o", "type": "builtin", "builtin": "clv"},
    ]})
    kinds = trait_kinds(TraitDefinitions(parsed.traits, {}))
    assert kinds == {"orders_90d": "number", "last_order": "date", "first_channel": "text",
                     "rfm": "text", "rfm_recency": "number", "rfm_frequency": "number",
                     "rfm_monetary": "number", "clv": "number",
                     "clv_expected_purchases": "number", "clv_p_alive": "number"}
