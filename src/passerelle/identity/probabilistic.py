"""Probabilistic matching with Splink, on the pipeline's own engine.

Splink (Fellegi-Sunter) scores candidate pairs of customer records; this module prepares
its input from ``customer_records``, trains or reuses the saved model, and turns Splink's
predictions into ``identity_edges`` rows with per-comparison evidence.

Why a pre-pass: records identical on every prepared column Splink reads (a CRM contact and
the same person's loyalty card, typed the same way) get identical comparison vectors. Splink
scores one representative per distinct *signature*; its edges are expanded back to every
record of both signatures, and records of one signature are linked together with the
weight Splink would give them (exact level on each non-null field). Blocking reads the same
columns, so the expanded edges are exactly those Splink would find on all records.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ibis
import ibis.expr.types as ir

from passerelle.engines.base import Engine
from passerelle.errors import PasserelleError
from passerelle.identity import splink_settings as ss
from passerelle.identity.names import fold
from passerelle.identity.tables import KEY_EDGES, SPLINK_INPUT, SPLINK_MEMBERS
from passerelle.project.identity_models import Probabilistic
from passerelle.reporter import Reporter

MIN_RECORDS = 50
EDGES_TABLE = "identity_edges_splink"
INPUT_TABLE = "__passerelle_splink_input"
MEMBERS_TABLE = "__passerelle_splink_members"
PAIR_TABLES = ("__passerelle_splink_pair_l", "__passerelle_splink_pair_r")
TF_TABLE = "__passerelle_splink_tf_"  # + field: term frequencies Splink is given
PRIOR_RECALL = 0.7  # assumed recall of "same names and birth date" when estimating the prior

EDGE_SCHEMA = ibis.schema({
    "node_a": "string", "node_b": "string", "rule": "string", "weight": "float64",
    "match_probability": "float64", "evidence": "string", "run_id": "string",
    "first_seen_run": "string",
})

RETRAIN = "Retrain the model with `passerelle identity train`."


class ModelError(PasserelleError, ValueError):
    """The saved Splink model cannot be used with this identity.yml."""


@dataclass(frozen=True)
class ModelInfo:
    path: Path
    trained: bool  # False: the saved model was reused, no training ran
    fingerprint: str
    records: int  # records given to training (after the signature pre-pass)
    seconds: float


@dataclass(frozen=True)
class MatchResult:
    edges: ir.Table
    model: ModelInfo | None  # None: matching skipped (too few records)
    records: int
    representatives: int  # records Splink scored after the pre-pass
    edge_count: int


# -- input ----------------------------------------------------------------------------
def node_expr(records: ir.Table) -> ir.StringValue:
    return records["_source"].cast("string").concat(":", records["_record_id"].cast("string"))


def _email_words(email: ir.StringValue) -> ir.StringValue:
    """The local part of an address, lower-case, without the number people or mail
    providers append (``marie.dupont85``, ``luc.georges.92341``, ``croyer_1984``)."""
    local = email.cast("string").lower().re_extract(r"^([^@]+)@", 1)
    return local.re_replace(r"[._-]*[0-9]+$", "")


def last_name_from_email(email: ir.StringValue, first: ir.StringValue) -> ir.StringValue:
    """The last name an e-mail address spells beside a (folded) first name, folded; NULL
    when the address does not hold the first name (a partner's address, a pseudonym).

    Local parts read: ``first.last``, ``first_last``, ``last.first``, ``firstlast`` and
    ``flast`` (initial), a trailing number dropped (``marie.dupont85``, ``mdupont.1985``).
    """
    local = _email_words(email).replace("-", " ")
    n = first.length()
    rest = ibis.cases(
        (local.startswith(first.concat(".")) | local.startswith(first.concat("_")),
         local.substr(n + 1)),
        (local.endswith(ibis.literal(".").concat(first))
         | local.endswith(ibis.literal("_").concat(first)),
         local.substr(0, local.length() - n - 1)),
        (local.startswith(first), local.substr(n)),
        (local.substr(0, 1) == first.substr(0, 1), local.substr(1)),
        else_=ibis.null("string"),
    )
    rest = rest.strip()
    return ibis.ifelse(rest.re_search(r"^[a-z][a-z ]*[a-z]$") & (rest.length() >= 2),
                       rest, ibis.null("string"))


def names_from_email(email: ir.StringValue) -> tuple[ir.StringValue, ir.StringValue]:
    """(first, last) that an address of two words spells, folded: ``marie.dupont85@`` and
    ``marie_dupont@`` give (marie, dupont); NULLs for any other form. ``dupont.marie@``
    gives them swapped, which the "swapped names" level of the model recognises."""
    local = _email_words(email)
    two = local.re_search(r"^[a-z][a-z-]*[a-z][._][a-z][a-z-]*[a-z]$")
    words = [local.re_extract(r"^([a-z-]+)[._]([a-z-]+)$", i).replace("-", " ") for i in (1, 2)]
    return (ibis.ifelse(two, words[0], ibis.null("string")),
            ibis.ifelse(two, words[1], ibis.null("string")))


def prepare(records: ir.Table, config: Probabilistic) -> ir.Table:
    """``node`` + the prepared columns Splink compares (names folded, nickname forms)."""
    shape = ss.model_shape(config)
    methods = dict(shape.compared)
    # names repeat (street lines hardly do): theirs are folded once per distinct value
    records = _with_folded(records, [
        f for f in shape.columns if not f.endswith(ss.CANON_SUFFIX)
        and records[f].type().is_string() and methods.get(f, "name") == "name"])
    columns: dict[str, ir.Value] = {"node": node_expr(records)}
    for field in shape.columns:
        if field.endswith(ss.CANON_SUFFIX):
            continue
        column = records[field]
        if f"{_FOLDED}{field}" in records.columns:
            column = records[f"{_FOLDED}{field}"]
        elif column.type().is_string():
            text = column.strip()
            column = fold(text) if methods.get(field, "name") != "postcode" else text.nullif("")
        elif column.type().is_temporal():
            column = column.cast("date")
        columns[field] = column
    if "last_name" in columns and "first_name" in columns:
        if config.last_name_from_email:
            columns["last_name"] = ibis.coalesce(columns["last_name"], last_name_from_email(
                records["email"], columns["first_name"]))
        if config.first_name_from_email:
            first, last = names_from_email(records["email"])
            nameless = columns["first_name"].isnull()
            columns["last_name"] = ibis.ifelse(
                nameless, ibis.coalesce(columns["last_name"], last), columns["last_name"])
            columns["first_name"] = ibis.ifelse(nameless, first, columns["first_name"])
    prepared = records.select(**columns)
    if shape.nickname_fields:
        nicknames = ss.nickname_map()
        prepared = prepared.mutate(**{
            f + ss.CANON_SUFFIX: prepared[f].substitute(nicknames, else_=prepared[f])
            for f in shape.nickname_fields})
    return prepared


_FOLDED = "_folded_"


def _with_folded(records: ir.Table, fields: list[str]) -> ir.Table:
    """``records`` with ``_folded_<field>`` = ``fold(field.strip())`` for each field, folded
    once per distinct value and joined back: names repeat, and a million records hold far
    fewer distinct names, so the string functions run a fraction of the times. A NULL
    joins nothing and stays NULL, as folding it gives."""
    for field in fields:
        values = records.select(**{f"_raw_{field}": records[field]}).distinct()
        values = values.mutate(**{f"{_FOLDED}{field}": fold(values[f"_raw_{field}"].strip())})
        joined = records.left_join(values, records[field] == values[f"_raw_{field}"])
        records = joined.drop(f"_raw_{field}")
    return records


def signatures(prepared: ir.Table) -> ir.Table:
    """Each record with the representative of its signature (smallest node) and its size."""
    cols = [c for c in prepared.columns if c != "node"]
    window = ibis.window(group_by=[prepared[c] for c in cols])
    return prepared.mutate(rep=prepared.node.min().over(window),
                           sig_size=prepared.node.count().over(window))


# -- engines --------------------------------------------------------------------------
def _duckdb_api(engine: Engine) -> Any:
    from splink.backends.duckdb import DuckDBAPI

    return DuckDBAPI(connection=engine.con.con)


def _postgres_api(engine: Engine) -> Any:
    import sqlalchemy as sa
    import sqlglot as sg
    import sqlglot.expressions as sge
    from splink.backends.postgres import PostgresAPI
    from splink.internals.input_column import InputColumn
    from splink.internals.misc import to_pyarrow_if_list_tuple_or_dict
    from splink.internals.postgres.dataframe import PostgresDataFrame

    class SchemaDataFrame(PostgresDataFrame):
        """Columns of the table in this project's schema only: Splink's own lookup reads
        every schema, so a second project in the same database (a table of the same name
        in another schema) doubled every column and blocking failed ("column reference is
        ambiguous")."""

        @property
        def columns(self) -> list[InputColumn]:
            query = sg.select("column_name").from_(sg.table("columns", db="information_schema"))
            query = query.where(sg.column("table_name").eq(sge.convert(self.physical_name)))
            query = query.where(sg.column("table_schema").eq(sge.convert(self._db_schema)))
            query = query.order_by("ordinal_position")
            rows = self.db_api._execute_sql_against_backend(query.sql("postgres")).all()
            return [InputColumn(r[0], sqlglot_dialect_str="postgres") for r in rows]

    class OfflinePostgresAPI(PostgresAPI):
        """Splink's PostgreSQL backend, without DuckDB's ``postgres`` extension: Splink
        writes the small tables it makes in Python (u counts, term frequencies) by
        downloading that extension, which fails on a machine without internet access (and
        its fallback misses that error). Written through SQLAlchemy instead. Its tables'
        columns are read in this project's schema only (:class:`SchemaDataFrame`)."""

        def _table_registration(self, input: Any, table_name: str) -> None:
            table = to_pyarrow_if_list_tuple_or_dict(input)
            frame = table.to_pandas() if hasattr(table, "to_pandas") else table
            frame.to_sql(table_name, con=self._engine, index=False, if_exists="replace",
                         schema=self._db_schema)

        def table_to_splink_dataframe(self, templated_name: str,
                                      physical_name: str) -> SchemaDataFrame:
            return SchemaDataFrame(templated_name, physical_name, self)

    params = engine.params  # type: ignore[attr-defined]
    schema = engine.schema  # type: ignore[attr-defined]
    url = sa.URL.create("postgresql+psycopg", username=params["user"],
                        password=params["password"], host=params["host"],
                        port=params["port"], database=params["dbname"])
    sa_engine = sa.create_engine(
        url, poolclass=sa.pool.StaticPool,
        connect_args={"options": f"-c search_path={schema},public",
                      **engine.connect_args()})  # type: ignore[attr-defined]
    with sa_engine.begin() as con:
        try:
            con.exec_driver_sql("CREATE EXTENSION IF NOT EXISTS fuzzystrmatch SCHEMA public")
        except sa.exc.DBAPIError as exc:
            raise PasserelleError(
                f"PostgreSQL refused the fuzzystrmatch extension Splink needs: {exc.orig}",
                "Ask a database administrator to run `CREATE EXTENSION fuzzystrmatch` "
                "in this database.") from exc
        con.exec_driver_sql(ss.POSTGRES_JARO_WINKLER)
    return OfflinePostgresAPI(engine=sa_engine, schema=schema)


def _engine_api(engine: Engine) -> Any:
    return engine.splink_api()  # type: ignore[attr-defined]  # the engine makes its own


SPLINK_BACKENDS = {"duckdb": _duckdb_api, "postgres": _postgres_api, "spark": _engine_api}


def _db_api(engine: Engine) -> Any:
    try:
        return SPLINK_BACKENDS[engine.name](engine)
    except KeyError:
        raise PasserelleError(
            f"Probabilistic matching is not available on the {engine.name} engine yet.",
            "Set `probabilistic: {enabled: false}` in identity.yml.") from None


class _ToReporter(logging.Handler):
    """Splink's warnings (a level never observed in training...) go to the reporter."""

    def __init__(self, reporter: Reporter | None) -> None:
        super().__init__(logging.WARNING)
        self.reporter = reporter

    def emit(self, record: logging.LogRecord) -> None:
        message = " ".join(record.getMessage().split())
        # sampling notes are about Splink's own speed-ups, not about the model
        if self.reporter is not None and not message.startswith("[EM sampling]"):
            self.reporter.warning(f"Splink: {message}")


@contextmanager
def _splink_session(engine: Engine, input_table: str, settings: Any,
                    reporter: Reporter | None = None,
                    tf_among: str | None = None) -> Iterator[Any]:
    """A Linker on ``input_table``; every ``__splink__`` table is dropped afterwards.

    ``tf_among``: the table whose records give the term frequencies (every customer
    record), instead of Splink's default (its input, the representatives): the same
    frequencies with or without the pre-pass, and in an incremental run."""
    from splink import Linker

    splink_logger = logging.getLogger("splink")
    handler = _ToReporter(reporter)
    saved = splink_logger.level, splink_logger.propagate
    splink_logger.setLevel(logging.WARNING)
    splink_logger.propagate = False
    splink_logger.addHandler(handler)
    db_api = _db_api(engine)
    tf_tables: list[str] = []
    try:
        linker = Linker(db_api.register(input_table), settings, log_level=None)
        if tf_among is not None:
            for column in linker._settings_obj._term_frequency_columns:
                field = column.unquote().name
                tf_tables.append(TF_TABLE + field)
                engine.replace_table(tf_tables[-1],
                                     term_frequencies(engine.table(tf_among), field))
                linker.table_management.register_term_frequency_lookup(
                    db_api.register(tf_tables[-1]), field)
        yield linker
    finally:
        for name in tf_tables:
            engine.drop(name)
        splink_logger.removeHandler(handler)
        splink_logger.setLevel(saved[0])
        splink_logger.propagate = saved[1]
        drop_splink_tables(engine)
        engine_sa = getattr(db_api, "_engine", None)
        if engine_sa is not None:
            engine_sa.dispose()


def drop_splink_tables(engine: Engine) -> None:
    for name in engine.list_tables():
        if name.startswith("__splink__"):
            engine.drop(name)


# -- model file -----------------------------------------------------------------------
def load_model(model_path: Path, config: Probabilistic) -> dict:
    """The Splink settings dict saved at ``model_path``, checked against ``config``."""
    try:
        data = json.loads(model_path.read_text(encoding="utf-8"))
        meta = data.pop("passerelle")
        saved = meta["fingerprint"]
        levels = [lv for c in data["comparisons"] for lv in c["comparison_levels"]]
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ModelError(f"The Splink model {model_path} is unreadable or corrupt ({exc}).",
                         RETRAIN) from exc
    if saved != ss.fingerprint(config):
        raise ModelError(
            f"The Splink model {model_path} was trained for other comparisons or blocking "
            "rules than identity.yml now declares.", RETRAIN)
    if not any(lv.get("m_probability") is not None for lv in levels):
        raise ModelError(f"The Splink model {model_path} was never trained.", RETRAIN)
    # Splink keeps the gamma_ and mw_ columns (the evidence) only with these
    data["retain_matching_columns"] = data["retain_intermediate_calculation_columns"] = True
    return data


def _save_model(model: dict, model_path: Path, config: Probabilistic, info: dict) -> None:
    model_path.parent.mkdir(parents=True, exist_ok=True)
    payload = {**model, "passerelle": {"fingerprint": ss.fingerprint(config), **info}}
    tmp = model_path.with_suffix(model_path.suffix + ".tmp")
    tmp.write_text(json.dumps(payload, indent=2, ensure_ascii=False), encoding="utf-8")
    tmp.replace(model_path)


def _materialise_input(engine: Engine, records: ir.Table, config: Probabilistic,
                       prepass: bool) -> tuple[int, int]:
    """Write the Splink input (representatives) and the member map; return counts.

    The member map keeps the prepared columns, so the representatives are read from it
    instead of preparing and grouping every record a second time."""
    members = signatures(prepare(records, config))
    if not prepass:
        members = members.mutate(rep=members.node, sig_size=ibis.literal(1, "int64"))
    engine.replace_table(MEMBERS_TABLE, members)
    stored = engine.table(MEMBERS_TABLE)
    engine.replace_table(INPUT_TABLE, stored.filter(stored.node == stored.rep).drop(
        "rep", "sig_size"))
    return int(stored.count().to_pyarrow().as_py()), engine.count(INPUT_TABLE)


def _drop_own_tables(engine: Engine) -> None:
    for name in (INPUT_TABLE, MEMBERS_TABLE, TRAIN_TABLE, *PAIR_TABLES):
        engine.drop(name)


def _train_on_input(engine: Engine, config: Probabilistic, model_path: Path,
                    reporter: Reporter, representatives: int) -> ModelInfo:
    from splink import block_on

    started = time.perf_counter()
    settings = ss.build_settings(config)
    shape = ss.model_shape(config)
    source, sampled = _training_sample(engine, representatives)
    with reporter.step("Training the Splink model"), \
            _splink_session(engine, source, settings, reporter,
                            tf_among=MEMBERS_TABLE) as linker:
        training = linker.training
        strict = [f for f, m in shape.compared if m in ("name", "date")]
        try:
            if len(strict) >= 2:
                recall = _prior_recall(engine, strict, reporter)
                training.estimate_probability_two_random_records_match(
                    [block_on(*strict)], recall=recall)
            training.estimate_u_using_random_sampling(
                max_pairs=config.training.max_pairs, seed=config.training.seed)
            with _em_floor():
                for rule in config.training.em_blocking:
                    training.estimate_parameters_using_expectation_maximisation(
                        block_on(*rule), max_pairs=config.training.max_pairs)
        except Exception as exc:  # Splink raises plain exceptions on degenerate data
            raise PasserelleError(
                f"Splink could not train the identity model: {exc}",
                "Check `probabilistic.training.em_blocking` in identity.yml: each rule must "
                "give pairs where some records are the same person and some are not.",
            ) from exc
        model = _fill_unobserved(linker.misc.save_model_to_json(), config.training.max_pairs)
    seconds = time.perf_counter() - started
    engine.drop(TRAIN_TABLE)
    _save_model(model, model_path, config, {"records": sampled})
    of = f" (a sample of the {representatives:,})" if sampled < representatives else ""
    reporter.info(f"Splink model trained on {sampled:,} records{of} in {seconds:.1f}s, "
                  f"saved to {model_path}")
    return ModelInfo(model_path, True, ss.fingerprint(config), sampled, seconds)


TRAINING_RECORDS = 250_000
TRAIN_TABLE = "__passerelle_splink_train"


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
    if not engine.exists(KEY_EDGES):
        return PRIOR_RECALL
    edges = engine.table(KEY_EDGES)
    members = engine.table(MEMBERS_TABLE).select("node", "rep")
    m_a, m_b = members.view(), members.view()
    pairs = edges.join(m_a, edges.node_a == m_a.node).join(m_b, edges.node_b == m_b.node)
    pairs = pairs.select(a=m_a.rep, b=m_b.rep)
    pairs = pairs.filter(pairs.a != pairs.b).distinct()
    reps = engine.table(INPUT_TABLE)
    r_a, r_b = reps.view(), reps.view()
    joined = pairs.join(r_a, pairs.a == r_a.node).join(r_b, pairs.b == r_b.node)
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


def _fill_unobserved(model: dict, max_pairs: int) -> dict:
    """Give a value to the probabilities training could not estimate, instead of the
    arbitrary defaults Splink would use at prediction.

    - a u never observed among ``max_pairs`` random pairs (two strangers at the same
      address in a big file) is below 1/max_pairs: it takes that bound;
    - an m never observed in EM (no birth-date typo in the data) carries no evidence
      either way: it takes the level's u (match weight 0).
    """
    for comparison in model["comparisons"]:
        for level in comparison["comparison_levels"]:
            if level.get("is_null_level"):
                continue
            u = level.get("u_probability")
            if not isinstance(u, int | float) or u <= 0:
                level["u_probability"] = u = 1.0 / max_pairs
            if not isinstance(level.get("m_probability"), int | float):
                level["m_probability"] = u
        _postcode_without_street(comparison["comparison_levels"])
    return model


def _postcode_without_street(levels: list[dict]) -> None:
    """Give the "same postcode, no street to compare" level the likelihood ratio of an
    equal postcode among the pairs whose streets could be compared.

    EM cannot learn that level: the records without a street line (sign-up forms) have no
    birth date either, so they only meet in the name blocking rules, where the postcode
    comparison is not estimated (its household level reads the first name). A missing
    street says nothing about the person, so an equal postcode then weighs what it weighs
    when streets are compared, whatever they say: m / u = (sum of m) / (sum of u) over the
    levels that compare them.
    """
    by_label = {level.get("label_for_charts"): level for level in levels}
    if ss.NO_STREET not in by_label:
        return
    compared = [by_label[label] for label in (ss.HOUSEHOLD, ss.SAME_ADDRESS, ss.OTHER_STREET)
                if label in by_label]
    ratio = (sum(_probability(lv["m_probability"]) for lv in compared)
             / sum(_probability(lv["u_probability"]) for lv in compared))
    level = by_label[ss.NO_STREET]
    level["m_probability"] = min(1.0, _probability(level["u_probability"]) * ratio)


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


def _probability(value: Any) -> float:
    """A saved m or u: Splink writes a text marker for a level never observed (1e-6)."""
    return float(value) if isinstance(value, int | float) else 1e-6


def _tf_columns(model: dict) -> list[str]:
    return sorted({lv["tf_adjustment_column"] for c in model["comparisons"]
                   for lv in c["comparison_levels"] if lv.get("tf_adjustment_column")})


def term_frequencies(among: ir.Table, field: str) -> ir.Table:
    """(value, ``tf_<field>``): the share of ``among``'s non-null values of ``field`` equal
    to the value, as Splink computes its term-frequency tables."""
    known = among.filter(among[field].notnull())
    total = known.count().as_scalar().cast("float64")
    tf = known.group_by(field).aggregate(n=known.count())
    return tf.select(tf[field], **{f"tf_{field}": tf.n.cast("float64") / total})


def with_term_frequencies(table: ir.Table, model: dict, among: ir.Table) -> ir.Table:
    """``table`` with ``tf_<field>`` for each term-frequency field of ``model``."""
    for field in _tf_columns(model):
        table = table.left_join(term_frequencies(among, field), field).drop(f"{field}_right")
    return table


def _exact_weight(level: dict, values: ir.Table) -> ir.FloatingValue:
    """The match weight of an agreeing level for records holding ``values``' values, with
    Splink's term-frequency adjustment where the level has one (the value's frequency
    replaces the level's u)."""
    u = _probability(level["u_probability"])
    weight = ibis.literal(math.log2(_probability(level["m_probability"]) / u))
    column = level.get("tf_adjustment_column")
    if not column:
        return weight
    tf = ibis.greatest(values[f"tf_{column}"], level.get("tf_minimum_u_value", 0.0))
    adjust = level.get("tf_adjustment_weight", 1.0) * (math.log2(u) - tf.log2())
    return weight + adjust.fill_null(0.0)


def _within_signature_pairs(engine: Engine, model: dict, config: Probabilistic) -> ir.Table:
    """Pairs of records sharing a signature, scored as Splink would: exact level on every
    non-null field, null level (weight 0) elsewhere; only where a blocking rule would have
    paired them (all its fields non-null)."""
    members = engine.table(MEMBERS_TABLE)
    reps = with_term_frequencies(engine.table(INPUT_TABLE), model,
                                 among=engine.table(MEMBERS_TABLE))
    prior = model["probability_two_random_records_match"]
    weight: ir.FloatingValue = ibis.literal(math.log2(prior / (1 - prior)))
    parts = {}
    address = ss.model_shape(config).address
    for comparison in model["comparisons"]:
        field = comparison["output_column_name"]
        levels = [lv for lv in comparison["comparison_levels"] if not lv.get("is_null_level")]
        present = reps[field].notnull()

        def level_weight(level: dict) -> ir.FloatingValue:
            return _exact_weight(level, reps)

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
                         for rule in config.blocking])
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
        if prepass:
            saved = total - representatives
            reporter.info(f"Splink pre-pass: {total:,} records -> {representatives:,} distinct "
                          f"signatures ({saved:,} records, {saved / max(total, 1):.0%}, "
                          "scored through their representative)")
        if retrain or not model_path.exists():
            info = _train_on_input(engine, config, model_path, reporter, representatives)
        else:
            load_model(model_path, config)
            info = ModelInfo(model_path, False, ss.fingerprint(config), 0, 0.0)
            reporter.info(f"Reusing the Splink model {model_path}")
        model = load_model(model_path, config)
        with reporter.step("Scoring candidate pairs with Splink"), \
                _splink_session(engine, INPUT_TABLE, model, reporter,
                                tf_among=MEMBERS_TABLE) as linker:
            predictions = linker.inference.predict(threshold_match_probability=config.threshold)
            pairs = _expand(engine, _predicted_pairs(engine, predictions.physical_name, config))
            edges = pairs.union(_within_signature_pairs(engine, model, config))
            edges = edges.select("node_a", "node_b", rule=ibis.literal("splink"),
                                 weight=edges.weight, match_probability=edges.match_probability,
                                 evidence=edges.evidence, run_id=ibis.literal(run_id),
                                 first_seen_run=ibis.literal(run_id))
            engine.replace_table(EDGES_TABLE, edges.cast(EDGE_SCHEMA))
        count = engine.count(EDGES_TABLE)
        reporter.info(f"Splink linked {count:,} record pairs at match probability >= "
                      f"{config.threshold}")
        if keep:
            engine.rename(INPUT_TABLE, SPLINK_INPUT)
            engine.rename(MEMBERS_TABLE, SPLINK_MEMBERS)
        return MatchResult(engine.table(EDGES_TABLE), info, total, representatives, count)
    finally:
        _drop_own_tables(engine)


NEW_TABLE = "__passerelle_splink_new"


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
