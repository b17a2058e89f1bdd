"""Scoring with the trained model: Splink's predictions turned into ``identity_edges``
rows with per-comparison evidence, expanded from signature representatives to every record;
the incremental variant; one pair explained for the 360° view."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import ibis
import ibis.expr.types as ir

from passerelle.engines.base import Engine
from passerelle.errors import PasserelleError
from passerelle.identity import splink_settings as ss
from passerelle.identity.blocking import resolve_rules, save_rules, saved_rules
from passerelle.identity.splink_input import (
    INPUT_TABLE,
    MEMBERS_TABLE,
    MIN_RECORDS,
    NEW_TABLE,
    PAIR_TABLES,
    _drop_own_tables,
    _materialise_input,
    _tf_columns,
    prepare,
    with_term_frequencies,
)
from passerelle.identity.splink_model import ModelInfo, _probability, load_model
from passerelle.identity.splink_session import (
    _splink_session,
    rescale_for_model,
    term_frequency_tables,
)
from passerelle.identity.splink_training import _train_on_input
from passerelle.identity.tables import SPLINK_INPUT, SPLINK_MEMBERS
from passerelle.project.identity_models import Probabilistic
from passerelle.reporter import Reporter

EDGES_TABLE = "identity_edges_splink"
EDGE_SCHEMA = ibis.schema({
    "node_a": "string", "node_b": "string", "rule": "string", "weight": "float64",
    "match_probability": "float64", "evidence": "string", "run_id": "string",
    "first_seen_run": "string",
})


@dataclass(frozen=True)
class MatchResult:
    edges: ir.Table
    model: ModelInfo | None  # None: matching skipped (too few records)
    records: int
    representatives: int  # records Splink scored after the pre-pass
    edge_count: int
    blocking_rules: tuple[tuple[str, ...], ...] = ()  # the rules used (auto: those chosen)


# -- edges ----------------------------------------------------------------------------
def _weight_text(weight: ir.FloatingValue) -> ir.StringValue:
    return weight.fill_null(0).clip(-99.0, 99.0).round(2).cast("string")


def _evidence(parts: dict[str, tuple[ir.StringValue, ir.FloatingValue]]) -> ir.StringValue:
    text = ibis.literal("{")
    for i, (field, (label, weight)) in enumerate(parts.items()):
        text = text.concat(", " if i else "", json.dumps(field), ': {"level": "', label,
                           '", "weight": ', _weight_text(weight), "}")
    return text.concat("}")


def field_weight(scored: ir.Table, field: str) -> ir.FloatingValue:
    """A comparison's match weight in Splink's scored pairs, its term-frequency
    adjustment (a separate column) included."""
    weight = scored[f"mw_{field}"]
    if f"mw_tf_adj_{field}" in scored.columns:
        weight = weight + scored[f"mw_tf_adj_{field}"].fill_null(0.0)
    return weight


def _predicted_pairs(engine: Engine, predictions: str, config: Probabilistic) -> ir.Table:
    pred = engine.table(predictions)
    labels = ss.level_labels(config)
    parts = {}
    for field, by_gamma in labels.items():
        gamma = pred[f"gamma_{field}"]
        label = ibis.cases(*[(gamma == g, lbl) for g, lbl in by_gamma.items()], else_="?")
        parts[field] = (label, field_weight(pred, field))
    return pred.select(rep_l=pred.node_l, rep_r=pred.node_r, weight=pred.match_weight,
                       match_probability=pred.match_probability, evidence=_evidence(parts))




def _exact_weight(level: dict, values: ir.Table, comparison: dict) -> ir.FloatingValue:
    """The match weight of an agreeing level of ``comparison`` for records holding
    ``values``' values, with Splink's term-frequency adjustment where the level has one:
    log2(u of the comparison's exact level / the value's frequency)."""
    u = _probability(level["u_probability"])
    weight = ibis.literal(math.log2(_probability(level["m_probability"]) / u))
    column = level.get("tf_adjustment_column")
    if not column:
        return weight
    u_exact = _probability((ss.exact_level(comparison) or level)["u_probability"])
    tf = ibis.greatest(values[f"tf_{column}"], level.get("tf_minimum_u_value", 0.0))
    adjust = level.get("tf_adjustment_weight", 1.0) * (math.log2(u_exact) - tf.log2())
    return weight + adjust.fill_null(0.0)


def _within_signature_pairs(engine: Engine, model: dict, config: Probabilistic,
                            tf_tables: dict[str, str]) -> ir.Table:
    """Pairs of records sharing a signature, scored as Splink would: exact level on every
    non-null field, null level (weight 0) elsewhere; only where a blocking rule would have
    paired them (all its fields non-null). ``tf_tables``: the term frequencies over every
    record (:func:`~passerelle.identity.splink_session.term_frequency_tables`)."""
    members = engine.table(MEMBERS_TABLE)
    reps = engine.table(INPUT_TABLE)
    for field in _tf_columns(model):
        reps = reps.left_join(engine.table(tf_tables[field]), field).drop(f"{field}_right")
    prior = model["probability_two_random_records_match"]
    weight: ir.FloatingValue = ibis.literal(math.log2(prior / (1 - prior)))
    parts = {}
    address = ss.model_shape(config).address
    for comparison in model["comparisons"]:
        field = comparison["output_column_name"]
        if field == ss.EMAIL_YEAR:  # compared only with a birth date, which neither has
            parts[field] = (ibis.literal("null"), ibis.literal(0.0))
            continue
        levels = [lv for lv in comparison["comparison_levels"] if not lv.get("is_null_level")]
        present = reps[field].notnull()

        def level_weight(level: dict, comparison: dict = comparison) -> ir.FloatingValue:
            return _exact_weight(level, reps, comparison)

        exact = levels[0]
        label: ir.StringValue = ibis.literal(exact["label_for_charts"])
        value: ir.FloatingValue = level_weight(exact)
        if field == "postcode" and address is not None:
            # identical records share their first name: the same address when they have a
            # street line, else the postcode without a street to compare
            by_label = {lv["label_for_charts"]: lv for lv in levels}
            same, no_street = by_label[ss.SAME_ADDRESS], by_label[ss.NO_STREET]
            has_street = reps[address].notnull()
            label = ibis.ifelse(has_street, ss.SAME_ADDRESS, ss.NO_STREET)
            value = ibis.ifelse(has_street, level_weight(same), level_weight(no_street))
        field_weight = ibis.ifelse(present, value, 0.0)
        weight = weight + field_weight
        parts[field] = (ibis.ifelse(present, label, "null"), field_weight)
    blocked = ibis.or_(*[ibis.and_(*[reps[f].notnull() for f in rule])
                         for rule in config.blocking_rules])
    odds = ibis.literal(2.0) ** weight
    scored = reps.filter(blocked).select(
        sig=reps.node, weight=weight, match_probability=odds / (1 + odds),
        evidence=_evidence(parts))
    scored = scored.filter(scored.match_probability >= config.threshold)
    a, b = members.view(), members.view()
    pairs = a.join(b, (a.rep == b.rep) & (a.node < b.node)).select(
        node_a=a.node, node_b=b.node, sig=a.rep)
    joined = pairs.join(scored, pairs.sig == scored.sig)
    return joined.select("node_a", "node_b", "weight", "match_probability", "evidence")


def _expand(engine: Engine, pairs: ir.Table) -> ir.Table:
    """Representative pairs -> every pair of their members, ordered node_a < node_b."""
    m_l = engine.table(MEMBERS_TABLE).view()
    m_r = engine.table(MEMBERS_TABLE).view()
    joined = pairs.join(m_l, pairs.rep_l == m_l.rep).join(m_r, pairs.rep_r == m_r.rep)
    out = joined.select(x=m_l.node, y=m_r.node, weight=pairs.weight,
                        match_probability=pairs.match_probability, evidence=pairs.evidence)
    return out.select(node_a=ibis.least(out.x, out.y), node_b=ibis.greatest(out.x, out.y),
                      weight=out.weight, match_probability=out.match_probability,
                      evidence=out.evidence)


def _empty_edges(engine: Engine) -> ir.Table:
    engine.drop(EDGES_TABLE)
    engine.create_empty(EDGES_TABLE, EDGE_SCHEMA)
    return engine.table(EDGES_TABLE)


def _score(engine: Engine, model: dict, config: Probabilistic, run_id: str,
           reporter: Reporter, tf_tables: dict[str, str]) -> None:
    """Splink's predictions on the representatives, expanded to every record, with the
    pairs within a signature: written to ``identity_edges_splink``."""
    with reporter.step("Scoring candidate pairs with Splink"), \
            _splink_session(engine, INPUT_TABLE, model, reporter,
                            tf_tables=tf_tables) as linker:
        predictions = linker.inference.predict(threshold_match_probability=config.threshold)
        pairs = _expand(engine, _predicted_pairs(engine, predictions.physical_name, config))
        edges = pairs.union(_within_signature_pairs(engine, model, config, tf_tables))
        edges = edges.select("node_a", "node_b", rule=ibis.literal("splink"),
                             weight=edges.weight, match_probability=edges.match_probability,
                             evidence=edges.evidence, run_id=ibis.literal(run_id),
                             first_seen_run=ibis.literal(run_id))
        engine.replace_table(EDGES_TABLE, edges.cast(EDGE_SCHEMA))


def match(engine: Engine, records: ir.Table, config: Probabilistic, project_root: Path,
          run_id: str, reporter: Reporter, retrain: bool = False,
          prepass: bool = True, keep: bool = False) -> MatchResult:
    """Score candidate pairs with the saved model (trained first if missing or ``retrain``)
    and write ``identity_edges_splink``. ``prepass=False`` gives Splink every record (for
    comparison; the result is the same). ``keep`` keeps what Splink scored (the prepared
    representatives and the member map) for the next incremental run (:func:`match_new`).
    """
    model_path = config.model_file(project_root)
    if keep:
        for name in (SPLINK_INPUT, SPLINK_MEMBERS):
            engine.drop(name)
    try:
        total, representatives = _materialise_input(engine, records, config, prepass)
        if representatives < MIN_RECORDS:
            reporter.warning(
                f"Probabilistic matching skipped: {representatives} distinct customer records, "
                f"too few to train a Splink model (at least {MIN_RECORDS}).")
            return MatchResult(_empty_edges(engine), None, total, representatives, 0)
        config = resolve_rules(engine, config, reporter, representatives)
        if keep:  # the rules the next incremental run blocks with (auto may choose others)
            save_rules(engine, config.blocking_rules)
        if prepass:
            saved = total - representatives
            reporter.info(f"Splink pre-pass: {total:,} records -> {representatives:,} distinct "
                          f"signatures ({saved:,} records, {saved / max(total, 1):.0%}, "
                          "scored through their representative)")
        # the frequencies are the same for training, scoring and the pairs within a
        # signature: written once
        with term_frequency_tables(engine, ss.model_shape(config).term_frequency_fields,
                                   MEMBERS_TABLE) as tf_tables:
            if retrain or not model_path.exists():
                info = _train_on_input(engine, config, model_path, reporter, representatives,
                                       tf_tables)
            else:
                load_model(model_path, config)
                info = ModelInfo(model_path, False, ss.fingerprint(config), 0, 0.0)
                reporter.info(f"Reusing the Splink model {model_path}")
            model = load_model(model_path, config)
            rescale_for_model(engine, tf_tables, model, MEMBERS_TABLE)
            _score(engine, model, config, run_id, reporter, tf_tables)
        count = engine.count(EDGES_TABLE)
        reporter.info(f"Splink linked {count:,} record pairs at match probability >= "
                      f"{config.threshold}")
        if keep:
            engine.rename(INPUT_TABLE, SPLINK_INPUT)
            engine.rename(MEMBERS_TABLE, SPLINK_MEMBERS)
        return MatchResult(engine.table(EDGES_TABLE), info, total, representatives, count,
                           tuple(tuple(r) for r in config.blocking_rules))
    finally:
        _drop_own_tables(engine)


def match_new(engine: Engine, new_records: ir.Table, config: Probabilistic,
              project_root: Path, run_id: str, reporter: Reporter) -> MatchResult:
    """Score the new records of an incremental run against what the last run scored.

    Uses Splink's incremental API with the saved model and the prediction blocking rules:
    ``predict_between`` pairs every new record with the representatives kept by
    :func:`match` (each pair then stands for every record of that representative's
    signature), and ``predict_within`` pairs the new records with each other. A new
    record identical to an old one meets its representative, so it gets the same edges as
    in a full run. Pairs of two old records are not scored again: the model and those
    records did not change. Writes ``identity_edges_splink``; the new records are added to
    the kept input by :func:`keep_new`.
    """
    if config.blocking == "auto":
        config = config.with_rules(saved_rules(engine))
    model = load_model(config.model_file(project_root), config)
    engine.replace_table(NEW_TABLE, prepare(new_records, config))
    new = engine.count(NEW_TABLE)
    with reporter.step("Scoring new records with Splink"), \
            _splink_session(engine, SPLINK_INPUT, model, reporter,
                            tf_among=SPLINK_MEMBERS) as linker:
        db_api = linker._db_api
        kept = db_api.register(SPLINK_INPUT, table_name="passerelle_kept")
        fresh = db_api.register(NEW_TABLE, table_name="passerelle_new")
        between = linker.inference.predict_between(
            kept, fresh, threshold_match_probability=config.threshold, warning_mode="never")
        within = linker.inference.predict_within(
            fresh, threshold_match_probability=config.threshold, warning_mode="never")
        # old representative (left) -> every record of its signature
        members = engine.table(SPLINK_MEMBERS).select("node", "rep")
        old = _predicted_pairs(engine, between.physical_name, config)
        old = old.join(members, old.rep_l == members.rep).select(
            x=members.node, y=old.rep_r, weight=old.weight,
            match_probability=old.match_probability, evidence=old.evidence)
        both = _predicted_pairs(engine, within.physical_name, config)
        both = both.select(x=both.rep_l, y=both.rep_r, weight=both.weight,
                           match_probability=both.match_probability, evidence=both.evidence)
        pairs = old.union(both)
        edges = pairs.select(
            node_a=ibis.least(pairs.x, pairs.y), node_b=ibis.greatest(pairs.x, pairs.y),
            rule=ibis.literal("splink"), weight=pairs.weight,
            match_probability=pairs.match_probability, evidence=pairs.evidence,
            run_id=ibis.literal(run_id), first_seen_run=ibis.literal(run_id))
        engine.replace_table(EDGES_TABLE, edges.cast(EDGE_SCHEMA))
    count = engine.count(EDGES_TABLE)
    reporter.info(f"Splink linked {count:,} record pairs involving the {new:,} new records "
                  f"at match probability >= {config.threshold}")
    info = ModelInfo(config.model_file(project_root), False, ss.fingerprint(config),
                     0, 0.0)
    return MatchResult(engine.table(EDGES_TABLE), info, new, new, count)


def keep_new(engine: Engine) -> None:
    """Add the records :func:`match_new` scored to the kept Splink input, each its own
    representative, once the incremental run has succeeded."""
    if not engine.exists(NEW_TABLE):
        return
    new = engine.table(NEW_TABLE)
    for name, rows in ((SPLINK_INPUT, new),
                       (SPLINK_MEMBERS, new.mutate(rep=new.node,
                                                   sig_size=ibis.literal(1, "int64")))):
        target = engine.table(name)
        engine.con.insert(name, rows.select(target.columns).cast(target.schema()))
    engine.drop(NEW_TABLE)


def probabilistic_edges(engine: Engine, records: ir.Table, config: Probabilistic,
                        project_root: Path, run_id: str, reporter: Reporter,
                        retrain: bool = False) -> ir.Table:
    """``identity_edges`` rows (rule 'splink') for pairs at or above the threshold."""
    return match(engine, records, config, project_root, run_id, reporter, retrain).edges


# -- one pair, for the 360° "why" -----------------------------------------------------
def explain_pair(engine: Engine, records: ir.Table, node_a: str, node_b: str,
                 config: Probabilistic, project_root: Path) -> dict:
    """Score one pair with the saved model: per-comparison level and match weight, the
    prior's weight and the total (the sum of them all)."""
    model = load_model(config.model_file(project_root), config)
    prepared = prepare(records, config)
    try:
        for table, node in zip(PAIR_TABLES, (node_a, node_b), strict=True):
            # Splink reads term frequencies given as tf_ columns of the records scored
            engine.replace_table(table, with_term_frequencies(
                prepared.filter(prepared.node == node), model, among=prepared))
            if engine.count(table) != 1:
                raise PasserelleError(f"No customer record {node}.",
                                      "Give a node as `<source>:<record id>`.")
        with _splink_session(engine, PAIR_TABLES[0], model) as linker:
            db_api = linker._db_api
            scored = linker.inference.score_pairs(
                db_api.register(PAIR_TABLES[0], table_name="pair_l"),
                db_api.register(PAIR_TABLES[1], table_name="pair_r"))
            scored_table = engine.table(scored.physical_name)
            row = engine.to_arrow(scored_table.mutate(**{
                f"mw_{field}": field_weight(scored_table, field)
                for field in ss.level_labels(config)})).to_pylist()[0]
    finally:
        _drop_own_tables(engine)
    labels = ss.level_labels(config)
    comparisons = {
        field: {"level": by_gamma.get(row[f"gamma_{field}"], "?"),
                "weight": round(float(row[f"mw_{field}"]), 2)}
        for field, by_gamma in labels.items()}
    prior = model["probability_two_random_records_match"]
    return {
        "node_a": node_a, "node_b": node_b,
        "prior_weight": round(math.log2(prior / (1 - prior)), 2),
        "comparisons": comparisons,
        "match_weight": round(float(row["match_weight"]), 2),
        "match_probability": float(row["match_probability"]),
        "linked": float(row["match_probability"]) >= config.threshold,
    }
