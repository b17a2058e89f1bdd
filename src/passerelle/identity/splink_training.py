"""Training the Splink model: the prior from the deterministic links, u by random
sampling, m by expectation maximisation over ``training.em_blocking``; saved to the model
file."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import ibis
import ibis.expr.types as ir

from passerelle.engines.base import Engine
from passerelle.errors import PasserelleError
from passerelle.identity import splink_settings as ss
from passerelle.identity.splink_input import (
    INPUT_TABLE,
    MEMBERS_TABLE,
    MIN_RECORDS,
    TRAIN_TABLE,
    _drop_own_tables,
    _materialise_input,
    key_linked_pairs,
)
from passerelle.identity.splink_model import ModelInfo, _fill_unobserved, _save_model
from passerelle.identity.splink_session import _splink_session
from passerelle.project.identity_models import Probabilistic
from passerelle.reporter import Reporter

PRIOR_RECALL = 0.7  # assumed recall of "same names and birth date" when estimating the prior
# EM's iterations read the counts of each agreement pattern instead of every blocked pair
# with its term frequencies (Splink's ``estimate_without_term_frequencies``). The m of an
# exact level is a share of the matches, whatever the value's frequency; the frequencies
# still weigh every pair at prediction. Measured on the demo at 200,000 records: the same
# precision and recall to the third decimal, EM's two passes 16.5 s instead of 27.8 s.
EM_ON_PATTERNS = True


def _train_on_input(engine: Engine, config: Probabilistic, model_path: Path,
                    reporter: Reporter, representatives: int,
                    tf_tables: dict[str, str] | None = None) -> ModelInfo:
    from splink import block_on

    started = time.perf_counter()
    shape = ss.model_shape(config)
    # the e-mail year is measured, not trained: see _email_year
    settings = ss.build_settings(config.model_copy(update={"birth_year_from_email": False}))
    source, sampled = _training_sample(engine, representatives)
    with reporter.step("Training the Splink model"), \
            _splink_session(engine, source, settings, reporter, tf_among=MEMBERS_TABLE,
                            tf_tables=tf_tables) as linker:
        training = linker.training
        strict = [f for f, m in shape.compared if m in ("name", "date")]
        try:
            if len(strict) >= 2:
                recall = _prior_recall(engine, strict, reporter)
                training.estimate_probability_two_random_records_match(
                    [block_on(*strict)], recall=recall)
            # one chunk: every level rarer than 100 in max_pairs random pairs (swapped
            # names, a shared street) makes Splink read all the pairs anyway, after a probe
            training.estimate_u_using_random_sampling(
                max_pairs=config.training.max_pairs, seed=config.training.seed,
                num_chunks=1)
            with _em_floor():
                for rule in config.training.em_blocking:
                    # iterations on the counts of each agreement pattern (a few hundred
                    # rows), not on every blocked pair: see EM_ON_PATTERNS
                    training.estimate_parameters_using_expectation_maximisation(
                        block_on(*rule), max_pairs=config.training.max_pairs,
                        estimate_without_term_frequencies=EM_ON_PATTERNS)
        except Exception as exc:  # Splink raises plain exceptions on degenerate data
            raise PasserelleError(
                f"Splink could not train the identity model: {exc}",
                "Check `probabilistic.training.em_blocking` in identity.yml: each rule must "
                "give pairs where some records are the same person and some are not.",
            ) from exc
        model = _fill_unobserved(linker.misc.save_model_to_json(), config.training.max_pairs)
        if shape.email_year:
            model["comparisons"].append(_email_year(engine, reporter, source))
    seconds = time.perf_counter() - started
    engine.drop(TRAIN_TABLE)
    _save_model(model, model_path, config, {"records": sampled})
    of = f" (a sample of the {representatives:,})" if sampled < representatives else ""
    reporter.info(f"Splink model trained on {sampled:,} records{of} in {seconds:.1f}s, "
                  f"saved to {model_path}")
    return ModelInfo(model_path, True, ss.fingerprint(config), sampled, seconds)


TRAINING_RECORDS = 250_000


def _training_sample(engine: Engine, representatives: int) -> tuple[str, int]:
    """The table training reads: the representatives, or past :data:`TRAINING_RECORDS` a
    uniform sample of them (a hash of the node: the same sample run after run).

    Every estimate is a proportion that a uniform sample keeps: u over random pairs, the
    prior over pairs agreeing on names and birth date, m over EM's blocked pairs (a sample
    of 250,000 records still holds tens of thousands of true pairs). The cost is not: EM
    blocks pairs among all the records it reads, which grows with their square.
    """
    if representatives <= TRAINING_RECORDS:
        return INPUT_TABLE, representatives
    reps = engine.table(INPUT_TABLE)
    share = int(1_000_000 * TRAINING_RECORDS / representatives)
    engine.replace_table(TRAIN_TABLE, reps.filter(reps.node.hash().abs() % 1_000_000 < share))
    return TRAIN_TABLE, engine.count(TRAIN_TABLE)


MIN_KNOWN_PAIRS = 100  # key links needed to measure the prior rule's recall on them


def _prior_recall(engine: Engine, strict: list[str], reporter: Reporter) -> float:
    """The share of true matches that agree on every ``strict`` field, measured on the
    pairs the deterministic keys linked (:data:`KEY_EDGES`, written by this run or the
    last one), between records of different signatures as Splink sees them.

    The prior (probability that two random records match) is the number of pairs agreeing
    on those fields divided by this recall. A fixed guess is wrong by a factor of several
    when birth dates are often missing (sign-up forms), which shifts every match
    probability; key links are matches whose fields were typed independently of the rule.
    Without enough key links, :data:`PRIOR_RECALL` is assumed.
    """
    linked = key_linked_pairs(engine)
    if linked is None:
        return PRIOR_RECALL
    joined, r_a, r_b = linked
    agree = ibis.and_(*[(r_a[f] == r_b[f]).fill_null(False) for f in strict])
    row = engine.to_arrow(joined.aggregate(
        n=joined.count(), agree=agree.ifelse(1, 0).sum())).to_pylist()[0]
    known, agreeing = int(row["n"] or 0), int(row["agree"] or 0)
    if known < MIN_KNOWN_PAIRS or agreeing == 0:
        return PRIOR_RECALL
    recall = agreeing / known
    reporter.info(f"Prior: {recall:.0%} of the {known:,} pairs linked by keys agree on "
                  f"{', '.join(strict)}")
    return recall


EMAIL_YEAR_M = 0.9  # share of matches whose e-mail year is the birth year, if unmeasured


def _email_year(engine: Engine, reporter: Reporter, source: str) -> dict:
    """The e-mail year's comparison, measured rather than trained: m on the key links
    (:func:`_email_year_m`), u exactly over ``source``'s records (the chance that a
    random record's e-mail year is another random record's birth year).

    Left to EM, even with its m fixed, the comparison moved EM to another solution: in
    EM's name-blocked pairs the year is a near-perfect separator, the match class grew to
    take in namesakes, and the birth date's m followed (at 200,000 demo records an exact
    birth date fell from 13.7 to 12.0 bits and a different one from −3.8 to −0.5, which
    cost precision on every source pair). The rest of the model is trained without it."""
    records = engine.table(source)
    years = records.filter(records[ss.EMAIL_YEAR].notnull())
    years = years.group_by(y=years[ss.EMAIL_YEAR]).aggregate(a=years.count())
    born = records.filter(records.birth_date.notnull())
    born = born.group_by(y=born.birth_date.cast("string").substr(2, 2)).aggregate(b=born.count())
    shares = years.join(born, "y").aggregate(ab=(years.a * born.b).sum())
    totals = engine.to_arrow(records.aggregate(
        a=records[ss.EMAIL_YEAR].count(), b=records.birth_date.count())).to_pylist()[0]
    agreeing = engine.to_arrow(shares).to_pylist()[0]["ab"] or 0
    pairs = (totals["a"] or 0) * (totals["b"] or 0)
    u = min(max(agreeing / pairs if pairs else 0.0, 1e-6), 0.5)
    return ss.email_year_comparison(_email_year_m(engine, reporter), u)


def _email_year_m(engine: Engine, reporter: Reporter) -> float:
    """The m of "e-mail year = birth year": among the pairs the keys linked that compare
    an e-mail year with a birth date, the share that agree. Key links are matches whose
    e-mail years were typed apart from any rule. Without enough of them,
    :data:`EMAIL_YEAR_M` is assumed."""
    linked = key_linked_pairs(engine)
    if linked is None:
        return EMAIL_YEAR_M
    joined, r_a, r_b = linked

    def year(side: ir.Table) -> ir.StringValue:
        return side.birth_date.cast("string").substr(2, 2)

    y_a, y_b = r_a[ss.EMAIL_YEAR], r_b[ss.EMAIL_YEAR]
    comparable = ((y_a.notnull() & r_b.birth_date.notnull())
                  | (y_b.notnull() & r_a.birth_date.notnull()))
    agree = ((y_a == year(r_b)).fill_null(False) | (y_b == year(r_a)).fill_null(False))
    row = engine.to_arrow(joined.aggregate(
        n=comparable.ifelse(1, 0).sum(),
        agree=(comparable & agree).ifelse(1, 0).sum())).to_pylist()[0]
    known, agreeing = int(row["n"] or 0), int(row["agree"] or 0)
    if known < MIN_KNOWN_PAIRS:
        return EMAIL_YEAR_M
    m = min(max(agreeing / known, 0.01), 0.99)
    reporter.info(f"E-mail year: {agreeing / known:.0%} of the {known:,} pairs linked by keys "
                  "that compare one with a birth date agree")
    return m


M_FLOOR = 1e-6  # the m Splink itself uses for a level never observed


@contextmanager
def _em_floor() -> Iterator[None]:
    """Keep EM's m-probabilities at or above :data:`M_FLOOR` while training.

    EM can drive the m of a rare level geometrically towards zero (pairs at that level get
    a tiny match probability, which shrinks its m at the next iteration...); Splink 5
    then refuses the value once it falls below 1e-300 and the whole training fails. A
    floor keeps such a level at "very strong evidence against" instead. This wraps a
    Splink internal; if it moves, training runs unwrapped.
    """
    try:
        from splink.internals import expectation_maximisation as em
    except ImportError:  # pragma: no cover - another Splink layout
        yield
        return
    original = getattr(em, "populate_m_u_from_lookup", None)
    if original is None:  # pragma: no cover
        yield
        return

    def floored(fixed: Any, level: Any, column: str, lookup: dict) -> None:
        entry = lookup.get(column, {}).get(level.comparison_vector_value)
        if entry is not None:
            m = entry.get("m_probability")
            if isinstance(m, int | float) and m < M_FLOOR:
                entry["m_probability"] = M_FLOOR
        original(fixed, level, column, lookup)

    em.populate_m_u_from_lookup = floored
    try:
        yield
    finally:
        em.populate_m_u_from_lookup = original


def train(engine: Engine, records: ir.Table, config: Probabilistic, model_path: Path,
          reporter: Reporter) -> ModelInfo:
    """Estimate the model (prior from exact names + birth date, u by random sampling, m by
    EM over ``training.em_blocking``) on the signature representatives, and save it."""
    try:
        _, representatives = _materialise_input(engine, records, config, prepass=True)
        if representatives < MIN_RECORDS:
            raise PasserelleError(
                f"Only {representatives} distinct customer records: too few to train the "
                f"Splink model (at least {MIN_RECORDS}).",
                "Load more customer records, or set `probabilistic: {enabled: false}`.")
        return _train_on_input(engine, config, model_path, reporter, representatives)
    finally:
        _drop_own_tables(engine)

