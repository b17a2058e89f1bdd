"""Each condition kind compiled and run on DuckDB and PostgreSQL, against hand-computed
members (tests/segments_helpers.py documents the world)."""

from __future__ import annotations

import pytest

from passerelle.segments import SegmentError, compile_segment, count, overlap, sample
from segments_helpers import NOW, TRAIT_KINDS, build_world, members, seg

CASES = [
    ({"field": "country", "op": "=", "value": "FR"}, {"P1", "P2", "P4"}),
    ({"field": "country", "op": "!=", "value": "FR"}, {"P3", "P5"}),
    ({"not": {"field": "country", "op": "=", "value": "FR"}}, {"P3", "P5", "P6"}),
    ({"field": "country", "op": "in", "value": ["BE", "DE"]}, {"P3", "P5"}),
    ({"field": "country", "op": "not_in", "value": ["FR"]}, {"P3", "P5"}),
    ({"field": "birth_date", "op": "between", "value": ["1980-01-01", "1995-12-31"]},
     {"P1", "P2", "P6"}),
    ({"field": "birth_date", "op": "<", "value": "1980-01-01"}, {"P5"}),
    ({"field": "first_seen_at", "op": ">=", "value": "2024-01-01"},
     {"P1", "P2", "P3", "P4", "P5", "P6"}),
    ({"field": "city", "op": "contains", "value": "ar"}, {"P1", "P4"}),
    ({"field": "city", "op": "starts_with", "value": "Ly"}, {"P2"}),
    ({"field": "email", "op": "is_null"}, {"P3"}),
    ({"field": "city", "op": "not_null"}, {"P1", "P2", "P3", "P4", "P5"}),
    ({"field": "consent_email", "op": "=", "value": True}, {"P1", "P2", "P3", "P6"}),
    ({"field": "record_count", "op": ">", "value": 0}, {"P1", "P2", "P3", "P4", "P5", "P6"}),
    ({"trait": "order_count", "op": ">=", "value": 2}, {"P1", "P3"}),
    ({"trait": "favourite_category", "op": "=", "value": "shoes"}, {"P1", "P3"}),
    ({"trait": "last_order_date", "op": ">", "value": "2024-01-01"}, {"P1", "P3"}),
    ({"trait": "order_count", "op": "is_null"}, {"P5", "P6"}),
    ({"trait": "favourite_category", "op": "not_null"}, {"P1", "P2", "P3"}),
    ({"did": {"event": "Product Viewed", "at_least": 3, "in_last_days": 30}}, {"P1"}),
    ({"did": {"event": "Product Viewed"}}, {"P1", "P2", "P4"}),  # P5's is in the future
    ({"did": {"event": "Product Viewed", "in_last_days": 30,
              "properties": {"category": "shoes"}}}, {"P1", "P2"}),
    ({"did": {"event": "Product Viewed", "properties": {"price": 50}}}, {"P2"}),
    ({"bought": {"category": "shoes", "at_least": 2}}, {"P1"}),
    ({"bought": {"category": "shoes", "in_last_days": 365}}, {"P1", "P3"}),
    ({"bought": {"at_least": 2}}, {"P1", "P3"}),
    ({"bought": {"in_last_days": 30}}, {"P1", "P3"}),
    ({"all": [{"bought": {"category": "shoes"}},
              {"not": {"bought": {"category": "shoes", "in_last_days": 60}}}]}, {"P3", "P4"}),
    ({"any": [{"field": "country", "op": "=", "value": "BE"},
              {"all": [{"field": "country", "op": "=", "value": "FR"},
                       {"trait": "order_count", "op": ">=", "value": 3}]}]}, {"P1", "P3"}),
    ({"field": "country", "op": "=", "value": "JP"}, set()),
]


def test_every_condition_kind(engine):
    build_world(engine)
    for where, expected in CASES:
        assert members(engine, seg(where)) == expected, where


def test_segment_reference_is_inlined(engine):
    build_world(engine)
    fr = seg({"field": "country", "op": "=", "value": "FR"}, name="fr")
    buyers = seg({"all": [{"in_segment": "fr"}, {"trait": "order_count", "op": ">=", "value": 1}]},
                 name="fr_buyers")
    assert members(engine, buyers, {"fr": fr}) == {"P1", "P2", "P4"}
    outside = seg({"not": {"in_segment": "fr_buyers"}}, name="rest")
    assert members(engine, outside, {"fr": fr, "fr_buyers": buyers}) == {"P3", "P5", "P6"}


def test_cycles_unknown_names_and_mismatches_are_refused(engine):
    build_world(engine)
    a = seg({"in_segment": "b"}, name="a")
    b = seg({"any": [{"in_segment": "a"}, {"field": "country", "op": "=", "value": "FR"}]},
            name="b")
    with pytest.raises(SegmentError, match="circular reference a -> b -> a"):
        compile_segment(engine, a, {"b": b}, NOW)
    with pytest.raises(SegmentError, match=r"'contry' is not a field.*did you mean 'country'"):
        compile_segment(engine, seg({"field": "contry", "op": "=", "value": "FR"}), {}, NOW)
    with pytest.raises(SegmentError, match=r"'order_cnt' is not a trait.*'order_count'"):
        compile_segment(engine, seg({"trait": "order_cnt", "op": ">", "value": 1}), {}, NOW,
                        TRAIT_KINDS)
    with pytest.raises(SegmentError, match=r"field 'postcode' is text and is compared with "
                                           r"number value 75011.*quote it"):
        compile_segment(engine, seg({"field": "postcode", "op": "=", "value": 75011}), {}, NOW)
    with pytest.raises(SegmentError, match="trait 'order_count' is number"):
        compile_segment(engine, seg({"trait": "order_count", "op": "=", "value": "many"}), {},
                        NOW, TRAIT_KINDS)
    with pytest.raises(SegmentError, match="unknown segment 'nope'"):
        compile_segment(engine, seg({"in_segment": "nope"}), {}, NOW)


def test_count_sample_and_overlap(engine):
    build_world(engine)
    fr = seg({"field": "country", "op": "=", "value": "FR"}, name="fr")
    shoes = seg({"bought": {"category": "shoes"}}, name="shoes")
    optin = seg({"field": "consent_email", "op": "=", "value": True}, name="optin")
    assert count(engine, fr, {}, NOW) == 3
    assert count(engine, seg({"field": "country", "op": "=", "value": "JP"}), {}, NOW) == 0

    rows = sample(engine, fr, {}, NOW, n=2)
    assert len(rows) == 2 and {r["person_id"] for r in rows} <= {"P1", "P2", "P4"}
    assert rows == sample(engine, fr, {}, NOW, n=2)  # stable while editing
    by_id = {r["person_id"]: r for r in sample(engine, fr, {}, NOW, n=10)}
    assert by_id["P1"]["email"] == "a***@example.fr"
    assert by_id["P1"]["phone"] == "+33 6** ** ** 11"
    assert (by_id["P1"]["first_name"], by_id["P1"]["last_name"]) == ("Alice", "M.")
    raw = {r["person_id"]: r for r in sample(engine, fr, {}, NOW, n=10, role="it")}
    assert raw["P1"]["email"] == "alice@example.fr"
    assert (raw["P1"]["phone"], raw["P1"]["last_name"]) == ("+33611111111", "Martin")
    assert sample(engine, fr, {}, NOW, n=10, role="admin") == list(raw.values())
    with pytest.raises(SegmentError, match="Unknown role 'boss'"):
        sample(engine, fr, {}, NOW, role="boss")

    out = overlap(engine, [fr, shoes, optin], {}, NOW)
    # fr {1,2,4}, shoes {1,3,4}, optin {1,2,3,6}
    inter = {tuple(i["segments"]): i["people"] for i in out["intersections"]}
    assert inter == {("fr",): 3, ("shoes",): 3, ("optin",): 4, ("fr", "shoes"): 2,
                     ("fr", "optin"): 2, ("shoes", "optin"): 2, ("fr", "shoes", "optin"): 1}
    regions = {tuple(r["in"]): r["people"] for r in out["regions"]}
    assert regions == {("fr", "shoes", "optin"): 1, ("fr", "shoes"): 1, ("fr", "optin"): 1,
                       ("shoes", "optin"): 1, ("optin",): 1}


ODD_KEYS = ["a'b", 'a"b', "a.b", "$x", "*", "a/b~c", "", "é ü"]


def test_any_property_name_is_a_literal(engine):
    """A property name is data, never SQL or a JSON path: quotes, dots, '$', '*', '/' and
    the empty name each match their own top-level key and nothing else."""
    import json

    from passerelle.segments import prepare_activity
    from segments_helpers import EVENTS, SOURCES, days_ago
    from traits_helpers import put_entity

    odd = [(f"o{i}", "C3", "Odd", days_ago(1), json.dumps({key: "yes", "a": {"b": "no"}}))
           for i, key in enumerate(ODD_KEYS)]
    # P6 has no customer id: give P4 the event whose keys look like paths into "a"
    odd.append(("o-nested", "C4", "Odd", days_ago(1), json.dumps({"a": {"b": "yes"}})))
    build_world(engine)
    put_entity(engine, "events", "events", [
        dict(_source="web", message_id=m, type="track", event=e, user_id=c, timestamp=ts,
             properties=props) for m, c, e, ts, props in [*EVENTS, *odd]])
    prepare_activity(engine, SOURCES, NOW)
    for key in ODD_KEYS:
        where = {"did": {"event": "Odd", "properties": {key: "yes"}}}
        assert members(engine, seg(where)) == {"P3"}, key
    assert members(engine, seg({"did": {"event": "Odd", "properties": {"b": "yes"}}})) == set()
