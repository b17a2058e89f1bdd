"""Blocking: which candidate pairs Splink scores, measured and, with ``blocking: auto``, chosen.

Splink scores only the pairs that agree exactly on every field of at least one blocking rule,
so the rules cap recall: a pair they never compare is never linked, however good the model.

**Counts** come from Splink's blocking analysis
(``splink.blocking_analysis.count_comparisons_from_blocking_rules``): for each rule the pairs
it generates alone, the pairs it adds after the rules before it (marginal), the running
total, and the pairs *only it* finds (its marginal when it is put last).

**Choosing** (``blocking: auto``). A true pair is compared when, for some rule, both
records are filled in and agree on every field of the rule. Passerelle estimates how true
pairs are spread over *agreement patterns* (the set of fields on which the two records
agree): each field agrees independently at a prior rate (names 92 %, dates 93 %, postcodes
88 %, streets 80 %, others 90 %) times the square of its fill rate, mixed with the patterns
of the pairs the deterministic keys linked, when there are at least 100 of them (they keep
real correlations: a move changes street, postcode and city together). Candidate rules are
the compared fields alone, in pairs and in threes; greedily, the rule that raises the
expected recall most for its number of comparisons is added, while it raises it by 0.05
point at least and the **comparison budget** is not spent::

    budget = comparison_budget, or 1,000,000 + 100 x records

(linear in the records, so the time Splink spends scoring grows like the data, not like its
square; at 0.75M pairs a second on two cores, the default costs about 2 minutes a million
records). The run report lists the chosen rules and the expected recall each one adds.

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
from passerelle.identity.splink_input import INPUT_TABLE, key_linked_pairs
from passerelle.identity.splink_session import _db_api, drop_splink_tables
from passerelle.identity.tables import SPLINK_RULES
from passerelle.project.identity_models import Probabilistic

BASE_BUDGET = 1_000_000
PER_RECORD = 100
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
# How often a true pair agrees on a field when both records have it, before any evidence
# from the data (typos, moves): replaced by what the deterministic links show when there are
# enough of them.
PRIOR_AGREEMENT = {"name": 0.92, "date": 0.93, "postcode": 0.88, "address": 0.8,
                   "text": 0.8, "exact": 0.9}
MIN_KEY_PAIRS = 100  # key-linked pairs needed to learn agreement from them
SMOOTHING = 50  # weight of the prior pattern distribution beside the key-linked pairs
MIN_GAIN = 0.0005  # a rule must raise the expected recall by this much


@dataclass
class Choice:
    rules: list[list[str]]
    budget: int
    records: int
    spent: int  # sum of the chosen rules' comparisons (an upper bound of their union)
    reasons: list[str] = field(default_factory=list)
    coverage: float = 0.0  # expected share of true pairs the rules compare
    learned_from: int = 0  # key-linked pairs the agreement patterns were learned from


def _key_patterns(engine: Engine, fields: list[str]) -> dict[frozenset[str], int]:
    """Agreement patterns (the fields on which both records agree) of the pairs the
    deterministic keys linked, between records of different signatures."""
    linked = key_linked_pairs(engine)
    if linked is None:
        return {}
    joined, r_a, r_b = linked
    flags = joined.select(**{f"a{i}": (r_a[f] == r_b[f]).fill_null(False).ifelse(1, 0)
                             for i, f in enumerate(fields)})
    grouped = flags.group_by(list(flags.columns)).aggregate(n=flags.count())
    out: dict[frozenset[str], int] = {}
    for row in engine.to_arrow(grouped).to_pylist():
        key = frozenset(f for i, f in enumerate(fields) if row[f"a{i}"])
        out[key] = out.get(key, 0) + int(row["n"])
    return out


def agreement_patterns(engine: Engine, config: Probabilistic, fields: list[str],
                       fill: dict[str, float]) -> tuple[dict[frozenset[str], float], int]:
    """The expected distribution of true pairs over agreement patterns: fields agreeing
    independently (prior rate x both filled in), mixed with the patterns the deterministic
    links show (which keep correlations: a move changes street, postcode and city)."""
    methods = {c.field: c.method for c in config.comparisons}
    rate = {f: PRIOR_AGREEMENT.get(methods.get(f, "exact"), 0.9) * fill[f] ** 2 for f in fields}
    prior: dict[frozenset[str], float] = {}
    for agree in itertools.product((True, False), repeat=len(fields)):
        key = frozenset(f for f, a in zip(fields, agree, strict=True) if a)
        prior[key] = math.prod(rate[f] if a else 1 - rate[f]
                               for f, a in zip(fields, agree, strict=True))
    seen = _key_patterns(engine, fields)
    total = sum(seen.values())
    if total < MIN_KEY_PAIRS:
        return prior, 0
    mixed = {k: (seen.get(k, 0) + SMOOTHING * v) / (total + SMOOTHING) for k, v in prior.items()}
    return mixed, total


def _recall(patterns: dict[frozenset[str], float], rules: list[frozenset[str]]) -> float:
    return sum(p for agree, p in patterns.items() if any(r <= agree for r in rules))


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
    patterns, learned = agreement_patterns(engine, config, fields, fill)
    chosen: list[list[str]] = []
    reasons: list[str] = []
    spent, recall = 0, 0.0
    floor = budget / 1000  # a rule costs at least this much: cheap rules are not free
    while True:
        best, best_score, best_recall = None, 0.0, recall
        for rule in candidates:
            cost = costs[tuple(rule)]
            if rule in chosen or spent + cost > budget:
                continue
            new = _recall(patterns, [frozenset(r) for r in [*chosen, rule]])
            score = (new - recall) / (cost + floor)
            if new - recall >= MIN_GAIN and score > best_score:
                best, best_score, best_recall = rule, score, new
        if best is None:
            break
        chosen.append(best)
        spent += costs[tuple(best)]
        recall = best_recall
    # a rule holding every field of another chosen rule compares no pair that one misses
    chosen = [r for r in chosen if not any(set(o) < set(r) for o in chosen)]
    spent, reasons, so_far = sum(costs[tuple(r)] for r in chosen), [], 0.0
    for i, rule in enumerate(chosen):
        now = _recall(patterns, [frozenset(r) for r in chosen[:i + 1]])
        reasons.append(f"{costs[tuple(rule)]:,} pairs; expected recall {so_far:.1%} -> "
                       f"{now:.1%}")
        so_far = now
    return Choice(chosen, budget, records, spent, reasons, so_far, learned)


# -- recall ceiling ----------------------------------------------------------------------------
def _agree(a: ir.Table, b: ir.Table, rules: list[list[str]]) -> ir.BooleanValue:
    return ibis.or_(*[ibis.and_(*[(a[f] == b[f]).fill_null(False) for f in rule])
                      for rule in rules]) if rules else ibis.literal(False)


def key_ceiling(engine: Engine, rules: list[list[str]]) -> tuple[int, int] | None:
    """(pairs linked by the keys that the rules compare, pairs linked by the keys), between
    records of different signatures; None without key links (no run yet, or no key)."""
    linked = key_linked_pairs(engine)
    if linked is None:
        return None
    joined, r_a, r_b = linked
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
    learned = (f"agreement learned from {choice.learned_from:,} pairs the keys linked"
               if choice.learned_from else "agreement rates assumed (too few key links)")
    reporter.info(f"Blocking (auto): {len(choice.rules)} rules, {choice.spent:,} pairs within "
                  f"a budget of {choice.budget:,} for {choice.records:,} records "
                  f"(1,000,000 + 100 x records unless comparison_budget says otherwise); "
                  f"expected recall ceiling {choice.coverage:.1%} ({learned})")
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
