"""Quality of the identity result: sizes, shared keys, rules, and scores against ground truth.

Every count is an aggregate run in the engine; Python only divides a handful of totals.
With a ground-truth file (``source, source_id, true_person_id``; the demo writes
``truth/records.csv``) the report scores the links pairwise: two records form a predicted pair
when they share a ``person_id`` and a true pair when they share a ``true_person_id``. A group
of n records holds n(n-1)/2 pairs, so

- predicted pairs  = sum over persons of n(n-1)/2,
- true pairs       = sum over true persons of n(n-1)/2,
- true positives   = sum over (person_id, true_person_id) groups of n(n-1)/2,

precision = TP / predicted, recall = TP / true, F1 their harmonic mean. Every pair of records
counts, not only the pairs a blocking rule would have proposed, so recall includes the true
pairs no rule could find. Pairs are also split by the two records' sources
(``crm_contacts x eshop_customers``; ``crm_contacts x crm_contacts`` for duplicates inside one
source).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import ibis
import ibis.expr.types as ir

from passerelle.engines.base import Engine
from passerelle.errors import PasserelleError
from passerelle.identity.render import render_report  # noqa: F401  (re-exported for the CLI)
from passerelle.identity.tables import (
    CUSTOMER_RECORDS,
    IDENTITY_EDGES,
    IDENTITY_SHARED_KEYS,
    PERSON_MAP,
    node_of,
)

BUCKETS = ("1", "2", "3-5", "6-10", ">10")
TRUTH_COLUMNS = ("source", "source_id", "true_person_id")
BLOCKING_NOTE = (
    "Pairwise scores count every pair of records, not only the pairs the blocking rules "
    "proposed: recall includes true pairs that no rule could have found."
)


class ReportError(PasserelleError, ValueError):
    """The identity report cannot be computed (no identity yet, unreadable truth file)."""


def identity_report(engine: Engine, truth_records_csv: Path | None = None, *,
                    key_fields: Sequence[str] = ("email", "phone", "loyalty_card"),
                    top: int = 10) -> dict[str, Any]:
    """The identity quality report as plain dicts (JSON-serialisable).

    ``key_fields``: the fields whose absence makes a record unmatchable by key (the
    deterministic keys of ``identity.yml``). ``top``: how many biggest clusters to list.
    """
    if not engine.exists(PERSON_MAP):
        raise ReportError("Identity has not been resolved in this warehouse yet.",
                          "Run `passerelle run` first.")
    pm = engine.table(PERSON_MAP)
    sizes = pm.group_by("person_id").aggregate(n=pm.count())
    totals = _one(engine, sizes.aggregate(profiles=sizes.count(), records=sizes.n.sum()))
    report: dict[str, Any] = {
        "profiles": int(totals["profiles"]),
        "records": int(totals["records"] or 0),
        "records_per_profile": _histogram(engine, sizes),
        "biggest_clusters": _biggest(engine, pm, sizes, top),
        "edges_by_rule": _edges_by_rule(engine),
        "shared_keys": _shared_keys(engine),
        **_single_records(engine, pm, sizes, key_fields),
        "truth": None,
    }
    if truth_records_csv is not None:
        report["truth"] = truth_scores(engine, Path(truth_records_csv))
    return report


def _one(engine: Engine, expr: ir.Table) -> dict[str, Any]:
    return engine.to_arrow(expr).to_pylist()[0]


def _histogram(engine: Engine, sizes: ir.Table) -> list[dict[str, Any]]:
    n = sizes.n
    bucket = ibis.cases((n == 1, "1"), (n == 2, "2"), (n <= 5, "3-5"), (n <= 10, "6-10"),
                        else_=">10")
    b = sizes.mutate(bucket=bucket)
    rows = engine.to_arrow(b.group_by("bucket").aggregate(profiles=b.count(),
                                                          records=b.n.sum())).to_pylist()
    found = {r["bucket"]: r for r in rows}
    return [{"bucket": k, "profiles": int(found.get(k, {}).get("profiles", 0)),
             "records": int(found.get(k, {}).get("records", 0))} for k in BUCKETS]


def _biggest(engine: Engine, pm: ir.Table, sizes: ir.Table, top: int) -> list[dict[str, Any]]:
    biggest = sizes.order_by([ibis.desc("n"), "person_id"]).limit(top)
    members = pm.join(biggest, "person_id")
    per_source = members.group_by(["person_id", "source"]).aggregate(records=members.count())
    out: dict[str, dict[str, Any]] = {
        r["person_id"]: {"person_id": r["person_id"], "records": int(r["n"]), "sources": {}}
        for r in engine.to_arrow(biggest.order_by([ibis.desc("n"), "person_id"])).to_pylist()
    }
    for r in engine.to_arrow(per_source.order_by(["person_id", "source"])).to_pylist():
        out[r["person_id"]]["sources"][r["source"]] = int(r["records"])
    return list(out.values())


def _edges_by_rule(engine: Engine) -> dict[str, int]:
    if not engine.exists(IDENTITY_EDGES):
        return {}
    e = engine.table(IDENTITY_EDGES)
    rows = engine.to_arrow(e.group_by("rule").aggregate(edges=e.count()).order_by("rule"))
    return {r["rule"]: int(r["edges"]) for r in rows.to_pylist()}


def _shared_keys(engine: Engine, limit: int = 20) -> dict[str, Any]:
    if not engine.exists(IDENTITY_SHARED_KEYS):
        return {"total": 0, "top": []}
    s = engine.table(IDENTITY_SHARED_KEYS)
    total = int(engine.to_arrow(s.count()).as_py())
    top = s.select("field", "value", "distinct_names", "records").order_by(
        [ibis.desc("records"), "field", "value"]).limit(limit)
    return {"total": total, "top": engine.to_arrow(top).to_pylist()}


def _single_records(engine: Engine, pm: ir.Table, sizes: ir.Table,
                    key_fields: Sequence[str]) -> dict[str, int]:
    """Persons of one record, and among them those whose record has no key value at all."""
    singles = sizes.filter(sizes.n == 1)
    count = int(engine.to_arrow(singles.count()).as_py())
    no_key = 0
    if engine.exists(CUSTOMER_RECORDS) and key_fields:
        cr = engine.table(CUSTOMER_RECORDS)
        cr = cr.mutate(_node=node_of(cr))
        lone = pm.join(singles, "person_id").select("node")
        recs = cr.join(lone, cr._node == lone.node)
        keyless = ibis.and_(*[recs[f].isnull() for f in key_fields])
        no_key = int(engine.to_arrow(recs.filter(keyless).count()).as_py())
    return {"single_record_persons": count, "single_record_persons_without_key": no_key}


# -------------------------------------------------------------------------------- truth
def _read_truth(path: Path) -> Any:
    import pyarrow as pa
    import pyarrow.csv as pacsv

    if not path.is_file():
        raise ReportError(f"The ground-truth file {path} does not exist.",
                          "Give the path of a CSV with columns source, source_id, "
                          "true_person_id (the demo writes truth/records.csv).")
    try:
        table = pacsv.read_csv(path, convert_options=pacsv.ConvertOptions(
            column_types={c: pa.string() for c in TRUTH_COLUMNS},
            include_columns=list(TRUTH_COLUMNS)))
    except (pa.ArrowInvalid, KeyError) as exc:
        raise ReportError(f"Cannot read the ground-truth file {path}: {exc}",
                          "It must be a CSV with a header naming source, source_id and "
                          "true_person_id.") from exc
    return table


def _pairs_by_source(engine: Engine, rows: ir.Table, keys: list[str]) -> dict[tuple, int]:
    """Twice the number of pairs inside the groups of ``keys``, per pair of sources."""
    a = rows.group_by([*keys, "source"]).aggregate(n=rows.count())
    b = a.view()
    j = a.join(b, [*(a[k] == b[k] for k in keys), a.source <= b.source])
    pairs = j.select(
        s1=a.source, s2=b.source,
        twice=ibis.ifelse(a.source == b.source, a.n * (a.n - 1), 2 * a.n * b.n))
    pairs = pairs.filter(pairs.twice > 0)  # a lone record of a source pairs with nobody
    agg = pairs.group_by(["s1", "s2"]).aggregate(twice=pairs.twice.sum())
    return {(r["s1"], r["s2"]): int(r["twice"]) for r in engine.to_arrow(agg).to_pylist()}


def _scores(predicted: int, true: int, tp: int) -> dict[str, Any]:
    precision = tp / predicted if predicted else None
    recall = tp / true if true else None
    # 2TP / (predicted + true): the harmonic mean of precision and recall, and still defined
    # (0) when nothing was predicted for true pairs, or nothing true was predicted.
    f1 = 2 * tp / (predicted + true) if predicted + true else None
    return {"predicted_pairs": predicted, "true_pairs": true, "true_positive_pairs": tp,
            "precision": precision, "recall": recall, "f1": f1}


def truth_scores(engine: Engine, truth_csv: Path) -> dict[str, Any]:
    """Pairwise precision, recall and F1 of ``person_map`` against a ground-truth CSV."""
    arrow = _read_truth(truth_csv)
    name = f"_identity_truth_{uuid.uuid4().hex[:10]}"
    engine.append_arrow(name, arrow.to_reader())
    try:
        truth = engine.table(name).distinct()
        pm = engine.table(PERSON_MAP)
        on = [pm.source == truth.source, pm.record_id == truth.source_id]
        both = truth.join(pm, on).select(truth.source, pm.person_id, truth.true_person_id)
        missing = truth.anti_join(pm, on)
        missing_by_source = engine.to_arrow(
            missing.group_by("source").aggregate(rows=missing.count()).order_by("source"))
        counts = _one(engine, truth.aggregate(rows=truth.count()))
        evaluated = int(engine.to_arrow(both.count()).as_py())
        untruthed = int(engine.to_arrow(pm.anti_join(truth, on).count()).as_py())
        predicted = _pairs_by_source(engine, both, ["person_id"])
        true = _pairs_by_source(engine, both, ["true_person_id"])
        tp = _pairs_by_source(engine, both, ["person_id", "true_person_id"])
    finally:
        engine.drop(name)
    by_pair = []
    for s1, s2 in sorted(set(predicted) | set(true)):
        scores = _scores(predicted.get((s1, s2), 0) // 2, true.get((s1, s2), 0) // 2,
                         tp.get((s1, s2), 0) // 2)
        by_pair.append({"sources": f"{s1} x {s2}", "source_a": s1, "source_b": s2, **scores})
    missing_rows = {r["source"]: int(r["rows"]) for r in missing_by_source.to_pylist()}
    return {
        "file": str(truth_csv),
        "rows": int(counts["rows"]),
        "evaluated_records": evaluated,
        "not_in_person_map": {"total": sum(missing_rows.values()), "by_source": missing_rows},
        "records_without_truth": untruthed,
        "overall": _scores(sum(predicted.values()) // 2, sum(true.values()) // 2,
                           sum(tp.values()) // 2),
        "by_source_pair": by_pair,
        "note": BLOCKING_NOTE,
    }
