"""Blocking: which candidate pairs Splink scores, measured and, with ``blocking: auto``, chosen.

Splink scores only the pairs that agree exactly on every field of at least one blocking rule,
so the rules cap recall: a pair they never compare is never linked, however good the model.

**Counts** come from Splink's blocking analysis
(``splink.blocking_analysis.count_comparisons_from_blocking_rules``): for each rule the pairs
it generates alone, the pairs it adds after the rules before it (marginal), the running
total, and the pairs *only it* finds (its marginal when it is put last).

**Choosing** (``blocking: auto``). A true pair is missed when every rule holds a field on
which the two records differ (a typo, a move) or that one of them lacks. Passerelle takes
the fields of the comparisons and the error patterns a pair may show (no field differs, one
field differs, two fields differ: weights 4, 1, 1/4) and chooses rules greedily: each step
adds the rule whose newly tolerated patterns, weighted by how often the rule's fields are
all filled in (squared: both records need them), are largest for its number of
comparisons, until the **comparison budget** is spent::

    budget = comparison_budget, or 1,000,000 + 100 x records

(linear in the records, so the time Splink spends scoring grows like the data, not like its
square; at 0.75M pairs a second on two cores, the default costs about 2 minutes a million
records). The run report lists the chosen rules and the patterns each one covers.

**Recall ceiling.** Two estimates of the share of true pairs the rules compare: the pairs
the deterministic keys linked (matches found independently of the rules), and on a sample
of records the pairs the saved model scores above the threshold when blocked by looser
rules (each compared field alone).
"""

from __future__ import annotations

import itertools
import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any

import ibis
import ibis.expr.types as ir

from passerelle.engines.base import Engine
from passerelle.identity import splink_settings as ss
from passerelle.identity.splink_input import INPUT_TABLE, MEMBERS_TABLE
from passerelle.identity.splink_session import _db_api, drop_splink_tables
from passerelle.identity.tables import KEY_EDGES, SPLINK_RULES
from passerelle.project.identity_models import Probabilistic

BASE_BUDGET = 1_000_000
PER_RECORD = 100
PATTERN_WEIGHTS = {0: 4.0, 1: 1.0, 2: 0.25}
MAX_RULE_FIELDS = 3
# fields whose values are too few to block on alone are still useful beside another field
SAMPLE_RECORDS = 20_000  # records of the looser-rule sample for the model-based ceiling
LOOSE_CAP = 3_000_000  # looser rules generating more pairs than this on the sample are left out
EXACT_COUNTS = 200_000  # up to this many records Splink counts exactly, beyond it estimates


def comparison_budget(config: Probabilistic, records: int) -> int:
    """The most candidate pairs ``blocking: auto`` may generate for ``records`` records."""
    return config.comparison_budget or BASE_BUDGET + PER_RECORD * records


def blocking_fields(config: Probabilistic) -> list[str]:
    """The fields ``blocking: auto`` may block on: every compared field."""
    out: list[str] = []
    for c in config.comparisons:
        if c.field not in out:
            out.append(c.field)
    return out


# -- counts ------------------------------------------------------------------------------------
def _pairs_alone(table: ir.Table, rule: list[str]) -> ir.Table:
    known = table.filter(ibis.and_(*[table[f].notnull() for f in rule]))
    blocks = known.group_by(rule).aggregate(n=known.count().cast("int64"))
    return blocks.aggregate(n=(blocks.n * (blocks.n - 1) / 2).sum().cast("int64"))


def candidate_costs(engine: Engine, table: ir.Table, rules: list[list[str]]) -> dict[
        tuple[str, ...], int]:
    """Pairs each rule generates alone (exact, one group-by a rule)."""
    return {tuple(rule): int(engine.to_arrow(_pairs_alone(table, rule)).to_pylist()[0]["n"]
                             or 0) for rule in rules}


def fill_rates(engine: Engine, table: ir.Table, fields: list[str]) -> tuple[int, dict[str, float]]:
    row = engine.to_arrow(table.aggregate(
        _n=table.count(), **{f: table[f].count() for f in fields})).to_pylist()[0]
    n = int(row["_n"] or 0)
    return n, {f: (int(row[f] or 0) / n if n else 0.0) for f in fields}


@dataclass
class RuleCount:
    rule: list[str]
    comparisons: int  # pairs it generates alone
    marginal: int  # pairs it adds after the rules above it
    cumulative: int  # pairs all the rules up to it generate
    only_here: int  # pairs no other rule generates
    why: str = ""  # for a rule blocking: auto chose: the patterns it covers


def splink_counts(engine: Engine, table_name: str, rules: list[list[str]],
                  records: int) -> list[RuleCount]:
    """Splink's blocking analysis of ``rules`` on ``table_name`` (prepared records)."""
    from splink import block_on
    from splink.blocking_analysis import count_comparisons_from_blocking_rules

    if not rules:
        return []
    proportion = 1.0 if records <= EXACT_COUNTS else max(0.05, EXACT_COUNTS / records)
    db_api = _db_api(engine)
    try:
        sdf = db_api.register(table_name)

        def count(ordered: list[list[str]]) -> list[dict[str, Any]]:
            return list(count_comparisons_from_blocking_rules(
                sdf, blocking_rules=[block_on(*r) for r in ordered], link_type="dedupe_only",
                unique_id_column_name="node", record_sample_proportion=proportion))

        ordered = count(rules)
        out = []
        for i, rule in enumerate(rules):
            alone = count([rule])[0]["marginal_comparison_count"]
            others = [r for j, r in enumerate(rules) if j != i]
            only = count([*others, rule])[-1]["marginal_comparison_count"] if others else alone
            out.append(RuleCount(rule, int(alone), int(ordered[i]["marginal_comparison_count"]),
                                 int(ordered[i]["cumulative_comparison_count"]), int(only)))
        return out
    finally:
        drop_splink_tables(engine)
        engine_sa = getattr(db_api, "_engine", None)
        if engine_sa is not None:
            engine_sa.dispose()


# -- choosing ----------------------------------------------------------------------------------
def _patterns(fields: list[str]) -> list[frozenset[str]]:
    return [frozenset(c) for k in PATTERN_WEIGHTS for c in itertools.combinations(fields, k)]


def _describe(patterns: list[frozenset[str]]) -> str:
    if not patterns:
        return "no new pattern"
    parts = []
    if frozenset() in patterns:
        parts.append("identical records")
    singles = sorted(f for p in patterns if len(p) == 1 for f in p)
    if singles:
        parts.append(f"pairs differing on {' or '.join(singles)}")
    doubles = sorted(" and ".join(sorted(p)) for p in patterns if len(p) == 2)
    if doubles:
        shown = ", ".join(doubles[:3]) + (f" (+{len(doubles) - 3})" if len(doubles) > 3 else "")
        parts.append(f"on both {shown}")
    return "; ".join(parts)


@dataclass
class Choice:
    rules: list[list[str]]
    budget: int
    records: int
    spent: int  # sum of the chosen rules' comparisons (an upper bound of their union)
    reasons: list[str] = field(default_factory=list)
    coverage: float = 0.0  # weighted share of error patterns the rules tolerate


def choose_rules(engine: Engine, table: ir.Table, config: Probabilistic,
                 records: int | None = None) -> Choice:
    """``blocking: auto``: rules over the compared fields within the comparison budget
    (see the module's text)."""
    fields = blocking_fields(config)
    n, fill = fill_rates(engine, table, fields)
    records = n if records is None else records
    budget = comparison_budget(config, records)
    fields = [f for f in fields if fill[f] > 0]
    size = MAX_RULE_FIELDS if len(fields) <= 6 else 2
    candidates = [list(c) for k in range(1, size + 1) for c in itertools.combinations(fields, k)]
    costs = candidate_costs(engine, table, candidates)
    candidates = [r for r in candidates if costs[tuple(r)] <= budget]
    patterns = _patterns(fields)
    weight = {p: PATTERN_WEIGHTS[len(p)] for p in patterns}
    covered = dict.fromkeys(patterns, 0.0)
    chosen: list[list[str]] = []
    reasons: list[str] = []
    spent = 0
    floor = budget / 100  # a rule costs at least this much: no free useless rules
    while True:
        best, best_score = None, 0.0
        for rule in candidates:
            cost = costs[tuple(rule)]
            if rule in chosen or spent + cost > budget:
                continue
            reach = math.prod(fill[f] for f in rule) ** 2
            gain = sum(weight[p] * (reach - covered[p]) for p in patterns
                       if not p & set(rule) and reach > covered[p])
            score = gain / (cost + floor)
            if gain > 1e-3 and score > best_score:
                best, best_score = rule, score
        if best is None:
            break
        reach = math.prod(fill[f] for f in best) ** 2
        new = [p for p in patterns if not p & set(best) and reach > covered[p] + 1e-9]
        for p in new:
            covered[p] = reach
        chosen.append(best)
        spent += costs[tuple(best)]
        reasons.append(f"{costs[tuple(best)]:,} pairs; finds {_describe(new)}"
                       f" (fields filled in on {math.sqrt(reach):.0%} of records)")
    total = sum(weight.values())
    coverage = sum(weight[p] * covered[p] for p in patterns) / total if total else 0.0
    return Choice(chosen, budget, records, spent, reasons, coverage)


# -- recall ceiling ----------------------------------------------------------------------------
def _agree(a: ir.Table, b: ir.Table, rules: list[list[str]]) -> ir.BooleanValue:
    return ibis.or_(*[ibis.and_(*[(a[f] == b[f]).fill_null(False) for f in rule])
                      for rule in rules]) if rules else ibis.literal(False)


def key_ceiling(engine: Engine, rules: list[list[str]]) -> tuple[int, int] | None:
    """(pairs linked by the keys that the rules compare, pairs linked by the keys), between
    records of different signatures; None without key links (no run yet, or no key)."""
    if not engine.exists(KEY_EDGES):
        return None
    edges = engine.table(KEY_EDGES)
    members = engine.table(MEMBERS_TABLE).select("node", "rep")
    m_a, m_b = members.view(), members.view()
    pairs = edges.join(m_a, edges.node_a == m_a.node).join(m_b, edges.node_b == m_b.node)
    pairs = pairs.select(a=m_a.rep, b=m_b.rep)
    pairs = pairs.filter(pairs.a != pairs.b).distinct()
    reps = engine.table(INPUT_TABLE)
    r_a, r_b = reps.view(), reps.view()
    joined = pairs.join(r_a, pairs.a == r_a.node).join(r_b, pairs.b == r_b.node)
    row = engine.to_arrow(joined.aggregate(
        n=joined.count(), hit=_agree(r_a, r_b, rules).ifelse(1, 0).sum())).to_pylist()[0]
    total = int(row["n"] or 0)
    return (int(row["hit"] or 0), total) if total else None


SAMPLE_TABLE = "__passerelle_blocking_sample"


def model_ceiling(engine: Engine, config: Probabilistic, model: dict,
                  records: int) -> tuple[int, int, list[list[str]], int] | None:
    """(pairs the rules compare, pairs above the threshold) among the pairs that looser rules
    (each compared field alone) give on a sample of records, scored with ``model``; and the
    looser rules used, and the sample's size."""
    from splink import Linker, block_on

    reps = engine.table(INPUT_TABLE)
    share = min(1.0, SAMPLE_RECORDS / max(records, 1))
    sample = reps if share >= 1 else reps.filter(
        reps.node.hash().abs() % 1_000_000 < int(share * 1_000_000))
    engine.replace_table(SAMPLE_TABLE, sample)
    try:
        table = engine.table(SAMPLE_TABLE)
        size = engine.count(SAMPLE_TABLE)
        compared = [f for f, _ in ss.model_shape(config).compared]
        loose = [[f] for f in compared]
        costs = candidate_costs(engine, table, loose)
        loose = [r for r in loose if 0 < costs[tuple(r)] <= LOOSE_CAP]
        if not loose or size < 2:
            return None
        settings = dict(model)
        settings["blocking_rules_to_generate_predictions"] = [
            block_on(*r).create_blocking_rule_dict(model.get("sql_dialect") or "duckdb")
            for r in loose]
        settings["additional_columns_to_retain"] = sorted(
            {f for r in config.blocking_rules for f in r} - set(compared))
        db_api = _db_api(engine)
        try:
            linker = Linker(db_api.register(SAMPLE_TABLE), settings, log_level=None)
            predicted = linker.inference.predict(
                threshold_match_probability=config.threshold)
            pred = engine.table(predicted.physical_name)
            rules = config.blocking_rules
            hit = ibis.or_(*[ibis.and_(*[(pred[f"{f}_l"] == pred[f"{f}_r"]).fill_null(False)
                                         for f in rule]) for rule in rules]) \
                if rules else ibis.literal(False)
            row = engine.to_arrow(pred.aggregate(
                n=pred.count(), hit=hit.ifelse(1, 0).sum())).to_pylist()[0]
        finally:
            drop_splink_tables(engine)
            engine_sa = getattr(db_api, "_engine", None)
            if engine_sa is not None:
                engine_sa.dispose()
        return int(row["hit"] or 0), int(row["n"] or 0), loose, size
    finally:
        engine.drop(SAMPLE_TABLE)


@dataclass
class BlockingReport:
    records: int  # prepared representatives Splink compares
    auto: bool
    budget: int
    rules: list[RuleCount]
    total: int  # pairs the whole set generates
    all_pairs: int  # every pair of records
    keys: tuple[int, int] | None  # (compared, linked by keys)
    model: tuple[int, int] | None  # (compared, scored above threshold by looser rules)
    loose_rules: list[list[str]] = field(default_factory=list)
    sample: int = 0
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["recall_ceiling"] = {
            "deterministic_links": _share(self.keys), "model_sample": _share(self.model)}
        return data


def _share(pair: tuple[int, int] | None) -> dict[str, Any] | None:
    if pair is None:
        return None
    hit, total = pair
    return {"compared": hit, "of": total, "share": hit / total if total else None}


def ceiling_note(report: BlockingReport) -> str:
    parts = []
    if report.keys is None:
        parts.append("no deterministic links yet (run `passerelle run` first, or no key)")
    if report.model is None:
        parts.append("no trained model matching identity.yml's comparisons "
                     "(`passerelle identity train`)")
    return "; ".join(parts)


def analyse(engine: Engine, records: ir.Table, config: Probabilistic,
            project_root: Any) -> BlockingReport:
    """The blocking report of ``identity.yml``'s rules (or of those ``auto`` chooses)."""
    from passerelle.identity.splink_input import _drop_own_tables, _materialise_input
    from passerelle.identity.splink_model import ModelError, load_model

    try:
        _, reps = _materialise_input(engine, records, config, prepass=True)
        auto = config.blocking == "auto"
        reasons: list[str] = []
        if auto:
            choice = choose_rules(engine, engine.table(INPUT_TABLE), config, reps)
            rules, budget, reasons = choice.rules, choice.budget, choice.reasons
        else:
            rules, budget = config.blocking_rules, comparison_budget(config, reps)
        resolved = config.with_rules(rules)
        counts = splink_counts(engine, INPUT_TABLE, rules, reps)
        for count, why in zip(counts, reasons, strict=False):
            count.why = why
        keys = key_ceiling(engine, rules)
        model_part, loose, sample = None, [], 0
        try:
            model = load_model(resolved.model_file(project_root), resolved)
        except ModelError:
            model = None
        if model is not None:
            got = model_ceiling(engine, resolved, model, reps)
            if got is not None:
                hit, total, loose, sample = got
                model_part = (hit, total)
        report = BlockingReport(
            records=reps, auto=auto, budget=budget, rules=counts,
            total=counts[-1].cumulative if counts else 0, all_pairs=reps * (reps - 1) // 2,
            keys=keys, model=model_part, loose_rules=loose, sample=sample)
        report.note = ceiling_note(report)
        return report
    finally:
        _drop_own_tables(engine)


def resolve_rules(engine: Engine, config: Probabilistic, reporter: Any,
                  representatives: int) -> Probabilistic:
    """``config`` with its blocking rules: as written, or chosen now for ``blocking: auto``
    (read from the prepared input), the choice and its reasons told to ``reporter``."""
    if config.blocking != "auto":
        return config
    choice = choose_rules(engine, engine.table(INPUT_TABLE), config, representatives)
    if not choice.rules:
        from passerelle.errors import PasserelleError

        raise PasserelleError(
            "blocking: auto found no rule within the comparison budget "
            f"({choice.budget:,} pairs): every compared field alone gives more pairs.",
            "Raise `probabilistic.comparison_budget`, or write `blocking:` rules.")
    reporter.info(f"Blocking (auto): {len(choice.rules)} rules within a budget of "
                  f"{choice.budget:,} pairs for {choice.records:,} records "
                  f"(1,000,000 + 100 x records unless comparison_budget says otherwise); "
                  f"error patterns tolerated: {choice.coverage:.0%}")
    for rule, why in zip(choice.rules, choice.reasons, strict=True):
        reporter.info(f"  [{', '.join(rule)}]: {why}")
    return config.with_rules(choice.rules)


def save_rules(engine: Engine, rules: list[list[str]]) -> None:
    """Keep the rules a full run blocked with, for the incremental runs after it."""
    import pyarrow as pa

    engine.drop(SPLINK_RULES)
    engine.append_arrow(SPLINK_RULES, pa.table(
        {"rule": pa.array([json.dumps(r) for r in rules], pa.string())}).to_reader())


def saved_rules(engine: Engine) -> list[list[str]]:
    """The rules the last full run blocked with (``blocking: auto``)."""
    if not engine.exists(SPLINK_RULES):
        from passerelle.errors import PasserelleError

        raise PasserelleError("No blocking rules kept from a full run (blocking: auto).",
                              "Run `passerelle run --full` once.")
    return [json.loads(r["rule"]) for r in engine.to_arrow(engine.table(SPLINK_RULES))
            .to_pylist()]
