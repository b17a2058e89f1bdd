"""RFM quintiles on a small set with ties, and CLV / churn risk traits end to end on CDNOW
(compared with the `lifetimes` reference package), on DuckDB and PostgreSQL."""

from __future__ import annotations

import warnings
from datetime import datetime, timedelta

import numpy as np
import pytest

from passerelle.project.traits_models import BuiltinTrait
from passerelle.traits import compute_traits
from test_clv import CDNOW_END, PUBLISHED_BGNBD, _load_cdnow_orders, reference_summary
from traits_helpers import put_entity, put_person_map, rows_of, source

NOW = datetime(2024, 6, 30, 12)


def builtin(name, which, **kw):
    return BuiltinTrait(name=name, description=name, owner="tests", type="builtin",
                        builtin=which, **kw)


COUNTS = [1, 1, 1, 2, 2, 3, 3, 3, 4, 5]  # orders of Q1..Q10


def test_rfm_quintiles_with_ties(engine):
    put_person_map(engine, [("crm", f"Q{i}", f"Q{i:02d}") for i in range(1, 12)])
    orders = []
    for i, n in enumerate(COUNTS, start=1):
        # last order i days before now; each order of Qi is worth i, so spend = i * n
        for k in range(n):
            orders.append({"_source": "o", "order_id": f"Q{i}-{k}", "customer_id": f"Q{i}",
                           "ordered_at": NOW - timedelta(days=i + 20 * k), "amount": i})
    put_entity(engine, "orders", "orders", orders)
    sources = {"o": source("o", "orders", "crm"), "crm": source("crm", "customers")}
    compute_traits(engine, [builtin("rfm", "rfm")], sources, "R1", NOW)
    got = rows_of(engine)
    # R: 10 people, 2 a quintile, most days first. F: counts 1,1,1 | 2,2 | 3,3,3 | 4 | 5 get
    # ntiles (1,1,2)(2,3)(3,4,4)(5)(5); a tie group takes its lowest: 1,2,3,5,5.
    # M: spend 1,2,3,8,10,18,21,24,36,50, all distinct: 1,1,2,2,3,3,4,4,5,5.
    expected = ["511", "511", "412", "422", "323", "333", "234", "234", "155", "155"]
    for i, code in enumerate(expected, start=1):
        person = f"Q{i:02d}"
        assert got[(person, "rfm")] == code, person
        assert [got[(person, f"rfm_{p}")] for p in ("recency", "frequency", "monetary")] == [
            float(c) for c in code]
    assert ("Q11", "rfm") not in got  # no order, no score


@pytest.mark.parametrize("people", [3, 7, 1003])
def test_rfm_scores_equal_the_lowest_ntile_of_each_tie_group(engine, people):
    """The scores come from rank() arithmetic; they must equal ntile(5) followed by the
    minimum over each tie group, on many ties and on fewer people than quintiles."""
    import ibis
    import pyarrow as pa

    from passerelle.traits.builtins import _quintile

    rng = np.random.default_rng(people)
    table = pa.table({"person_id": [f"P{i}" for i in range(people)],
                      "v": rng.integers(0, 40, people).astype(float)})
    table = table.append_column("d", pa.array(np.where(np.arange(people) % 9 == 0, None,
                                                       table["v"].to_numpy()), pa.float64()))
    engine.drop("_scores")
    engine.append_arrow("_scores", pa.RecordBatchReader.from_batches(table.schema,
                                                                     table.to_batches()))
    t = engine.table("_scores")
    n = t.person_id.count().over(ibis.window())

    def scores(expr):
        rows = engine.to_arrow(expr.select("person_id", "score")).to_pylist()
        return {r["person_id"]: r["score"] for r in rows}

    for column, order in (("v", t.v.asc()), ("v", t.v.desc()), ("d", t.d.asc())):
        tiles = t.mutate(_tile=ibis.ntile(5).over(order_by=[order]) + 1)
        lowest = tiles.mutate(score=tiles._tile.min().over(group_by=tiles[column]))
        assert scores(t.mutate(score=_quintile(order, n))) == scores(lowest), (column, order)


def test_clv_and_churn_traits_match_lifetimes(engine):
    sources = _load_cdnow_orders(engine)
    traits = [builtin("clv_1y", "clv", horizon_days=364), builtin("churn", "churn_risk")]
    summary = compute_traits(engine, traits, sources, "R1", CDNOW_END)
    assert summary.failed == {}
    fit = summary.fits["clv_1y"]["bgnbd"]
    assert fit.params.r == pytest.approx(PUBLISHED_BGNBD["r"], rel=1e-2)
    assert summary.fits["churn"]["bgnbd"] is fit  # one fit for both traits
    got = rows_of(engine)
    assert summary.persons == {"clv_1y": 2357, "clv_1y_expected_purchases": 2357,
                               "clv_1y_p_alive": 2357, "churn": 2357}

    data = reference_summary()  # lifetimes' own summariser on the same transactions
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from lifetimes import BetaGeoFitter, GammaGammaFitter

        bgf = BetaGeoFitter()
        bgf.params_ = _series(vars(fit.params))
        ggf = GammaGammaFitter()
        ggf.params_ = _series(vars(summary.fits["clv_1y"]["gamma_gamma"].params))
        expected = bgf.conditional_expected_number_of_purchases_up_to_time(
            52, data.frequency, data.recency, data["T"])
        alive = bgf.conditional_probability_alive(data.frequency, data.recency, data["T"])
        spend = ggf.conditional_expected_average_profit(data.frequency, data.monetary_value)
    ids = [f"P{i:04d}" for i in data.index]
    ours_e = np.array([got[(p, "clv_1y_expected_purchases")] for p in ids])
    ours_alive = np.array([got[(p, "clv_1y_p_alive")] for p in ids])
    ours_churn = np.array([got[(p, "churn")] for p in ids])
    ours_clv = np.array([got[(p, "clv_1y")] for p in ids])
    # stored values are rounded: 4 decimals for purchases and probabilities, 2 for money
    np.testing.assert_allclose(ours_e, expected, atol=6e-5)
    np.testing.assert_allclose(ours_alive, alive, atol=6e-5)
    np.testing.assert_allclose(ours_churn, 1 - alive, atol=6e-5)
    np.testing.assert_allclose(ours_clv, expected * spend, atol=6e-3)
    # a customer by hand: P0001 bought 3 times (x=2), CLV = E[X(52)] x E[spend]
    assert got[("P0001", "clv_1y")] == pytest.approx(expected.iloc[0] * spend.iloc[0], abs=6e-3)


def _series(values: dict):
    import pandas as pd

    return pd.Series(values)
