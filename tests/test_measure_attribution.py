"""Attribution: published worked examples for Markov and Shapley; journeys, rule-based
models and path counts in SQL on DuckDB and PostgreSQL with a hand-made table."""

from __future__ import annotations

import itertools
import math
from datetime import datetime, timedelta

import pyarrow as pa
import pytest

from passerelle.measure import (
    MeasureError,
    PathCount,
    compare_models,
    journeys,
    markov,
    path_counts,
    paths_from_rows,
    rule_based,
    shapley,
)


def test_markov_puzyrov_worked_example():
    # Serhii Puzyrov, "Markov Chain Attribution – Simple Explanation Of Removal Effect"
    # (serhiipuzyrov.com, 2019-07): paths google ads ×2 conv, mailing ×1 conv,
    # google ads > mailing ×1 conv, google ads ×1 null. Published transitions:
    # start→ga 0.8, start→mailing 0.2, ga→conv 0.5, ga→mailing 0.25, ga→null 0.25,
    # mailing→conv 1. Hence P(conv) = 0.8·(0.5 + 0.25) + 0.2 = 0.8; without google ads
    # 0.2 (removal effect 0.75), without mailing 0.8·0.5 = 0.4 (removal effect 0.5);
    # the 4 conversions split 0.75 : 0.5 → 2.4 and 1.6.
    paths = [PathCount(("google ads",), 2, 1), PathCount(("mailing",), 1, 0),
             PathCount(("google ads", "mailing"), 1, 0)]
    got = markov(paths)
    assert got.removal_effects == pytest.approx({"google ads": 0.75, "mailing": 0.5})
    assert got.conversions == pytest.approx({"google ads": 2.4, "mailing": 1.6})


def test_markov_three_channel_example():
    # Sergey Bryl', "Marketing Multi-Channel Attribution model with R (part 1: Markov chains
    # concept)", analyzecore.com 2016: C1 > C2 > C3 converts, C1 null, C2 > C3 null.
    # P(conv) = 1/3; removal effects C1 0.5, C2 1, C3 1 → shares 0.2, 0.4, 0.4.
    paths = [PathCount(("C1", "C2", "C3"), 1, 0), PathCount(("C1",), 0, 1),
             PathCount(("C2", "C3"), 0, 1)]
    got = markov(paths)
    assert got.removal_effects == pytest.approx({"C1": 0.5, "C2": 1.0, "C3": 1.0})
    assert got.conversions == pytest.approx({"C1": 0.2, "C2": 0.4, "C3": 0.4})


def _brute_force_shapley(conv_by_set: dict[frozenset, float], channels: list[str]):
    def v(s):
        return sum(c for k, c in conv_by_set.items() if k <= s)
    n = len(channels)
    out = {}
    for i in channels:
        others = [c for c in channels if c != i]
        total = 0.0
        for r in range(n):
            for s in itertools.combinations(others, r):
                w = math.factorial(r) * math.factorial(n - r - 1) / math.factorial(n)
                total += w * (v(frozenset(s) | {i}) - v(frozenset(s)))
        out[i] = total
    return out


def test_shapley_published_example():
    # "Data-driven marketing attribution" (Towards Data Science), notebook reproduced in
    # github.com/tomgorb/misc "Data Driven Attribution.ipynb": channels F(acebook),
    # O(rganic), L(inkedIn); conversions per channel set F 20, O 10, L 17, F+O 17, F+L 30,
    # L+O 0, F+L+O 6 (of 100). Published Shapley shares: F 0.455, O 0.205, L 0.34.
    sets = {("F",): 20, ("O",): 10, ("L",): 17, ("F", "O"): 17, ("F", "L"): 30,
            ("L", "O"): 0, ("F", "L", "O"): 6}
    paths = [PathCount(k, c, 0, revenue=10.0 * c) for k, c in sets.items()]
    got = shapley(paths)
    assert got.conversions == pytest.approx({"F": 45.5, "O": 20.5, "L": 34.0})
    assert got.revenue == pytest.approx({"F": 455.0, "O": 205.0, "L": 340.0})
    # the closed form equals the Shapley value enumerated over all coalitions
    brute = _brute_force_shapley({frozenset(k): c for k, c in sets.items()}, ["F", "L", "O"])
    assert got.conversions == pytest.approx(brute)


def test_single_touch_journeys_all_models_agree():
    paths = [PathCount(("email",), 3, 2, 30.0), PathCount(("search",), 5, 5, 80.0)]
    assert markov(paths).conversions == pytest.approx({"email": 3, "search": 5})
    assert shapley(paths).conversions == pytest.approx({"email": 3, "search": 5})


def test_markov_without_conversions_is_refused():
    with pytest.raises(MeasureError, match="No journey converted"):
        markov([PathCount(("email",), 0, 4)])


D = lambda day, hour=12: datetime(2026, 1, day, hour)  # noqa: E731

TOUCHES = [
    ("A", D(1), "email", "nl"), ("A", D(3), "search", None), ("A", D(5), "direct", None),
    ("B", D(1), "social", "fb"), ("B", D(10), "display", "ret"),
    ("C", D(1), "search", None), ("C", D(20), "search", None),
    ("D", D(1), "direct", None),
    ("F", D(1), "direct", None), ("F", D(2), "direct", None),
]
CONVERSIONS = [("A", D(6), 100.0), ("B", D(2), 50.0), ("C", D(22), 30.0), ("E", D(5), 20.0),
               ("F", D(3), 10.0)]


def _load(engine):
    t = list(zip(*TOUCHES, strict=True))
    c = list(zip(*CONVERSIONS, strict=True))
    engine.con.create_table("touches", pa.table({
        "person_id": t[0], "touch_time": pa.array(t[1], pa.timestamp("us")),
        "channel": t[2], "campaign_id": pa.array(t[3], pa.string())}), overwrite=True)
    engine.con.create_table("conversions", pa.table({
        "person_id": c[0], "conversion_time": pa.array(c[1], pa.timestamp("us")),
        "revenue": c[2]}), overwrite=True)
    return engine.table("touches"), engine.table("conversions")


def test_journeys_and_rule_based_models(engine):
    touches, conversions = _load(engine)
    j = engine.con.execute(journeys(touches, conversions, timedelta(days=7)))
    # A: 3 touches; B: social only (display is after); C: the day-20 search only; E: none
    assert sorted(j.groupby("person_id").size().items()) == [("A", 3), ("B", 1), ("C", 1),
                                                             ("F", 2)]
    rows = engine.con.execute(rule_based(journey=journeys(touches, conversions,
                                                          timedelta(days=7))))
    got = {r.channel: r for r in rows.itertuples()}
    assert set(got) == {"direct", "email", "search", "social"}
    expect = {  # by hand from TOUCHES / CONVERSIONS
        "first": {"email": 1, "social": 1, "search": 1, "direct": 1},
        "last": {"direct": 2, "social": 1, "search": 1, "email": 0},
        "last_non_direct": {"search": 2, "social": 1, "direct": 1, "email": 0},
        "linear": {"email": 1 / 3, "search": 4 / 3, "direct": 4 / 3, "social": 1},
        "position_based": {"email": 0.4, "search": 1.2, "direct": 1.4, "social": 1},
    }
    for model, by_channel in expect.items():
        for channel, value in by_channel.items():
            assert getattr(got[channel], f"{model}_conversions") == pytest.approx(value), (
                model, channel)
    # time decay, half-life 7 days: A's touches are 5, 3 and 1 days before the conversion
    w = [2 ** (-5 / 7), 2 ** (-3 / 7), 2 ** (-1 / 7)]
    assert got["email"].time_decay_conversions == pytest.approx(w[0] / sum(w))
    assert got["direct"].time_decay_conversions == pytest.approx(w[2] / sum(w) + 1)
    assert got["search"].time_decay_revenue == pytest.approx(100 * w[1] / sum(w) + 30)
    assert got["direct"].position_based_revenue == pytest.approx(40 + 10)
    for m in ("first", "last", "linear", "time_decay", "position_based", "last_non_direct"):
        assert rows[f"{m}_conversions"].sum() == pytest.approx(4)
        assert rows[f"{m}_revenue"].sum() == pytest.approx(190)


def test_path_counts_in_sql_feed_markov_and_shapley(engine):
    touches, conversions = _load(engine)
    rows = engine.con.execute(path_counts(touches, conversions, timedelta(days=7)))
    got = {r.path: (r.conversions, r.revenue, r.non_conversions) for r in rows.itertuples()}
    assert got == {"email > search > direct": (1, 100.0, 0), "social": (1, 50.0, 0),
                   "search": (1, 30.0, 0), "direct > direct": (1, 10.0, 0),
                   "display": (0, 0.0, 1), "direct": (0, 0.0, 1)}
    paths = paths_from_rows(rows[["path", "conversions", "revenue", "non_conversions"]]
                            .itertuples(index=False, name=None))
    credit = shapley(paths)
    assert credit.conversions == pytest.approx({"email": 1 / 3, "search": 4 / 3,
                                                "direct": 4 / 3, "social": 1, "display": 0})
    m = markov(paths)
    assert sum(m.conversions.values()) == pytest.approx(4)
    table = compare_models(engine.con.execute(rule_based(journeys(
        touches, conversions, timedelta(days=7)))), m, credit)
    assert list(table.columns) == ["channel", "first", "last", "last_non_direct", "linear",
                                   "time_decay", "position_based", "markov", "shapley"]
    assert table.drop(columns="channel").sum().to_numpy() == pytest.approx([4] * 8)


def test_window_shorter_than_a_day_is_refused(duckdb_engine):
    touches, conversions = _load(duckdb_engine)
    with pytest.raises(MeasureError, match="shorter than a day"):
        journeys(touches, conversions, timedelta(hours=12))
