"""Preview a change of identity rules before applying it: `passerelle identity diff`.

The candidate ``identity.yml`` is run on the same records into scratch tables (keys,
Splink, graph, guards, pins) and its partition is compared with the current ``person_map``:
which current persons it would merge together, which it would split. Nothing the current
graph relies on is written; a model trained for the preview lives in a temporary folder.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

import ibis

from passerelle.engines.base import Engine
from passerelle.errors import PasserelleError
from passerelle.identity import pins as pin_store
from passerelle.identity.deterministic import deterministic_edges
from passerelle.identity.graph import _normalised, enforce_guards, label_components
from passerelle.identity.tables import CUSTOMER_RECORDS, PERSON_MAP, node_of
from passerelle.project.identity_models import IdentityConfig
from passerelle.project.load import ProjectDefinition
from passerelle.reporter import Reporter
from passerelle.runlog import new_run_id

_KEY_EDGES = "_identity_diff_key_edges"
_SHARED = "_identity_diff_shared_keys"
_CANDIDATE = "_identity_diff_edges"
_COMPONENTS = "_identity_diff_components"
_SCRATCH_MODEL = "model.json"


def identity_diff(project: ProjectDefinition, engine: Engine, candidate: IdentityConfig,
                  reporter: Reporter, examples: int = 10) -> dict[str, Any]:
    """Compare the current persons with those ``candidate`` rules would give."""
    from passerelle.identity.probabilistic import ModelError, load_model, match

    if not engine.exists(PERSON_MAP):
        raise PasserelleError("There is no identity graph to compare with yet.",
                              "Run `passerelle run` once with the current identity.yml.")
    records = engine.table(CUSTOMER_RECORDS)
    run_id = "diff-" + new_run_id()
    scratch = Path(tempfile.mkdtemp(prefix="passerelle-diff-"))
    try:
        with reporter.step("Candidate rules: deterministic keys"):
            key_edges, shared = deterministic_edges(engine, records, candidate.keys, run_id,
                                                    edges_table=_KEY_EDGES, shared_table=_SHARED)
        parts = [_normalised(key_edges, run_id)]
        trained = False
        if candidate.probabilistic.enabled:
            # the preview reads and writes its model in the scratch folder only, whatever
            # model_path the candidate names: a preview never replaces the project's model
            probabilistic = candidate.probabilistic.model_copy(
                update={"model_path": _SCRATCH_MODEL})
            saved = candidate.probabilistic.model_file(project.root)
            try:
                load_model(saved, probabilistic)
                shutil.copyfile(saved, scratch / _SCRATCH_MODEL)  # it fits: reuse a copy
            except ModelError:
                trained = True  # other comparisons: train aside
            with reporter.step("Candidate rules: probabilistic matching"):
                outcome = match(engine, records, probabilistic, scratch, run_id, reporter,
                                retrain=trained)
            parts.append(_normalised(outcome.edges, run_id))
        every_pin = pin_store.active_pins(engine, candidate.pins)
        pin_store.check_conflicts(every_pin)
        applied, warnings = pin_store.usable_pins(engine, every_pin)
        parts.append(_normalised(pin_store.merge_pin_edges(applied, run_id), run_id))
        engine.replace_table(_CANDIDATE, ibis.union(*parts) if len(parts) > 1 else parts[0])
        with reporter.step("Candidate rules: graph"):
            nodes = records.select(node=node_of(records)).distinct()
            components, _ = label_components(engine, engine.table(_CANDIDATE), nodes,
                                             table=_COMPONENTS)
            enforce_guards(engine, engine.table(_CANDIDATE), components,
                           max_cluster_size=candidate.graph.max_cluster_size,
                           split_pins=applied, table=_COMPONENTS)
        report = compare(engine, engine.table(_COMPONENTS), examples)
        report["shared_keys_refused"] = int(shared.count().to_pyarrow().as_py())
        report["model_trained_for_preview"] = trained
        report["pin_warnings"] = warnings
        return report
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        for name in (_KEY_EDGES, _SHARED, _CANDIDATE, _COMPONENTS):
            engine.drop(name)


def compare(engine: Engine, components: ibis.Table, examples: int = 10) -> dict[str, Any]:
    """Merges and splits between ``person_map`` and ``components(node, component)``."""
    pm = engine.table(PERSON_MAP)
    both = pm.select("node", "person_id").join(components, "node")
    # a candidate component spanning several current persons merges them
    spans = both.group_by("component").agg(persons=both.person_id.nunique(),
                                            records=both.count())
    merges = spans.filter(spans.persons > 1)
    # a current person spread over several candidate components is split
    spreads = both.group_by("person_id").agg(parts=both.component.nunique(),
                                             records=both.count())
    splits = spreads.filter(spreads.parts > 1)
    totals = engine.to_arrow(ibis.union(
        merges.aggregate(kind=ibis.literal("merge"), n=merges.count(),
                         persons=merges.persons.sum().cast("int64"),
                         records=merges.records.sum().cast("int64")),
        splits.aggregate(kind=ibis.literal("split"), n=splits.count(),
                         persons=splits.parts.sum().cast("int64"),
                         records=splits.records.sum().cast("int64")),
    )).to_pylist()
    by_kind = {r["kind"]: r for r in totals}
    current = engine.to_arrow(pm.aggregate(n=pm.person_id.nunique())).column(0)[0].as_py()
    candidate = engine.to_arrow(components.aggregate(n=components.component.nunique())
                                ).column(0)[0].as_py()

    merge_examples = engine.to_arrow(
        both.semi_join(merges.order_by([ibis.desc("records"), "component"]).limit(examples),
                       "component").order_by(["component", "person_id", "node"])).to_pylist()
    split_examples = engine.to_arrow(
        both.semi_join(splits.order_by([ibis.desc("records"), "person_id"]).limit(examples),
                       "person_id").order_by(["person_id", "component", "node"])).to_pylist()
    return {
        "persons_now": int(current or 0),
        "persons_after": int(candidate or 0),
        "merges": _count(by_kind.get("merge")),
        "splits": _count(by_kind.get("split")),
        "merge_examples": _group(merge_examples, "component", "person_id"),
        "split_examples": _group(split_examples, "person_id", "component"),
    }


def _count(row: dict | None) -> dict[str, int]:
    if not row or not row["n"]:
        return {"groups": 0, "persons": 0, "records": 0}
    return {"groups": int(row["n"]), "persons": int(row["persons"] or 0),
            "records": int(row["records"] or 0)}


def _group(rows: list[dict], key: str, part: str) -> list[dict[str, Any]]:
    """[{key, parts: {part value: [nodes]}}] in the order of ``rows``."""
    out: dict[str, dict[str, list[str]]] = {}
    for r in rows:
        out.setdefault(r[key], {}).setdefault(r[part], []).append(r["node"])
    return [{key: k, "parts": v} for k, v in out.items()]
