"""A bootstrap over people that the SQL engine runs.

The classic bootstrap resamples rows in memory, which the warehouse cannot do cheaply.
The Poisson bootstrap (Hanley & MacGibbon 2006; Chamandy et al., Google 2012) instead
gives each person, in each replicate, an independent Poisson(1) weight; as n grows it is
equivalent to multinomial resampling, and it needs no coordination between rows. The
weight is derived from a hash of (seed, replicate, person), so the engine computes every
replicate's weighted sums in one GROUP BY, reproducibly, on any engine.

Python then only turns ``replicates × groups`` sums into estimates and percentiles.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import ibis
import ibis.expr.types as ir

from passerelle.measure.hashing import BUCKETS, bucket, bucket_expr, join_key, thresholds

MAX_WEIGHT = 10  # P(Poisson(1) > 10) ≈ 1e-8: capped, negligible


def _poisson_cdf() -> list[float]:
    cdf, term, out = 0.0, math.exp(-1.0), []
    for k in range(MAX_WEIGHT):
        cdf += term
        out.append(cdf)
        term /= k + 1
    return out


POISSON_THRESHOLDS = thresholds(_poisson_cdf())


def poisson_weight(person_id: str, replicate: int, seed: int = 0) -> int:
    """Poisson(1) weight of a person in a replicate (Python side, for checks and the API)."""
    h = bucket(f"{seed}:{replicate}:{person_id}")
    return sum(1 for t in POISSON_THRESHOLDS if h >= t)


def poisson_weight_expr(person_id: ir.Value, replicate: ir.IntegerValue,
                        seed: int = 0) -> ir.IntegerValue:
    """Poisson(1) weight as an Ibis expression (same value as :func:`poisson_weight`)."""
    h = bucket_expr(join_key(str(seed), replicate, person_id))
    weight: ir.IntegerValue = ibis.literal(0, type="int64")
    for t in POISSON_THRESHOLDS:
        weight = weight + ibis.ifelse(h >= t, 1, 0)
    return weight


def bootstrap_sums(table: ir.Table, person: str, values: Sequence[str],
                   by: Sequence[str] = (), replicates: int = 200, seed: int = 0) -> ir.Table:
    """Weighted sums per replicate (and per ``by`` group), computed by the engine.

    ``table`` has one row per person (and group); ``values`` are numeric columns. Returns
    columns ``replicate, *by, n`` (sum of weights) and, per value ``v``: ``v_sum`` (Σ w·v)
    and ``v_sq`` (Σ w·v²). Estimates per replicate are plain arithmetic on these columns.
    """
    if replicates < 2:
        raise ValueError("A bootstrap needs at least two replicates.")
    reps = ibis.memtable({"replicate": list(range(replicates))})
    joined = table.cross_join(reps)
    w = poisson_weight_expr(joined[person], joined["replicate"], seed).name("_w")
    weighted = joined.mutate(_w=w)
    aggs: dict[str, ir.Value] = {"n": weighted._w.sum()}
    for v in values:
        x = weighted[v].cast("float64")
        aggs[f"{v}_sum"] = (weighted._w * x).sum()
        aggs[f"{v}_sq"] = (weighted._w * x * x).sum()
    return weighted.group_by(["replicate", *by]).aggregate(**aggs).order_by(["replicate", *by])


__all__ = ["BUCKETS", "POISSON_THRESHOLDS", "bootstrap_sums", "poisson_weight",
           "poisson_weight_expr"]
