"""Staging: ``raw_<source>`` -> ``stg_<source>`` (typed, normalised) and ``quarantine``.

One SQL query does the work: the source's columns are mapped to the entity's fields,
normalised (:mod:`passerelle.staging.normalize`), the latest version of each record is
kept (latest ``_loaded_at``, then highest ``_source_row``), and each row either lands in
``stg_<source>`` (invalid optional values NULL and named in ``_issues``) or, when a required
field is missing or unparseable, in ``quarantine`` with a groupable reason. Python only
touches distinct values a library must judge (e-mails, phones, names), once each.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial

import ibis
import ibis.expr.datatypes as dt
import ibis.expr.types as ir
import sqlglot as sg
import sqlglot.expressions as sge

from passerelle.engines.base import Engine
from passerelle.engines.hashing import sha256_hex
from passerelle.errors import PasserelleError, Problem, ProjectError
from passerelle.model import ENTITIES, Entity, Kind, with_extra_fields
from passerelle.project.models import CsvConnector, ProjectConfig, SourceConfig
from passerelle.reporter import Reporter
from passerelle.runlog import utcnow
from passerelle.sources.bookkeeping import QUARANTINE_SCHEMA
from passerelle.staging import dictionaries as dicts
from passerelle.staging import incremental, probes, statements
from passerelle.staging.normalize import (
    Context,
    FieldPlan,
    Join,
    field_plan,
    raw_column,
    run_layers,
    target_type,
)
from passerelle.staging.temporal import UnsupportedFormat

LINEAGE = ("_load_id", "_loaded_at", "_source_file", "_source_row")
QUARANTINE = "quarantine"
DETAIL_LIMIT = 200

# issue -> how a quarantine reason says it ("ordered_at: not a valid timestamp")
_PHRASES = {
    "bad_date": "not a valid date", "implausible_date": "implausible date",
    "bad_timestamp": "not a valid timestamp", "bad_number": "not a valid number",
    "bad_boolean": "not a valid boolean", "invalid_email": "not a valid e-mail address",
    "invalid_phone": "not a valid phone number", "invalid_postcode": "not a valid postcode",
    "invalid_country": "not a known country", "too_long": "too long",
    "invalid_gender": "not a known gender",
}


@dataclass
class StageResult:
    source: str
    stg_table: str
    rows_in: int  # distinct records in the loads staged (latest version of each)
    rows_staged: int
    rows_quarantined: int
    issues_by_field: dict[str, int] = field(default_factory=dict)
    top_reasons: list[tuple[str, int]] = field(default_factory=list)
    new_dictionary_values: dict[str, int] = field(default_factory=dict)  # sent to Python
    # full: rebuilt from every raw row; incremental: only the new loads were staged (the
    # counts above are theirs). ``mode_reason`` says why (empty for a rebuild-mode source).
    mode: str = "full"
    mode_reason: str = ""
    loads_staged: int = 0

    @property
    def summary(self) -> str:
        """One line for the run log."""
        if self.mode == "incremental":
            return (f"incremental: {self.mode_reason}; {self.rows_staged:,} row(s) staged, "
                    f"{self.rows_quarantined:,} quarantined")
        return f"full: {self.mode_reason}" if self.mode_reason else ""


@dataclass
class CompiledStaging:
    """The staging query of one source, not yet run.

    ``rows`` has one row a record: the stg columns plus ``_reason`` and ``_detail`` (NULL
    unless the row goes to quarantine). ``dictionary_keys`` are the lookups to fill first.
    """

    source: SourceConfig
    entity: Entity
    rows: ir.Table
    dictionary_keys: list[tuple[Join, ir.Table]]

    @property
    def stg(self) -> ir.Table:
        return self.rows.filter(self.rows._reason.isnull()).drop("_reason", "_detail")

    def quarantine(self, at: datetime) -> ir.Table:
        return quarantine_rows(self.rows, self.source.name, at)


def quarantine_rows(rows: ir.Table, source: str, at: datetime) -> ir.Table:
    """The ``quarantine`` rows among staging ``rows`` (those with a ``_reason``)."""
    q = rows.filter(rows._reason.notnull())
    return q.select(
        source=ibis.literal(source), load_id=q._load_id, source_file=q._source_file,
        source_row=q._source_row, reason=q._reason, detail=q._detail,
        quarantined_at=ibis.literal(at, type=dt.timestamp), stage=ibis.literal("stage"),
        record_id=q._record_id,
    )


def stg_table_name(source: SourceConfig) -> str:
    return f"stg_{source.name}"


def raw_table_name(source: SourceConfig) -> str:
    return f"raw_{source.name}"


def stg_schema(entity: Entity) -> ibis.Schema:
    """The columns every ``stg_`` table of ``entity`` has, in order."""
    cols: dict[str, dt.DataType] = {"_source": dt.string, "_record_id": dt.string}
    cols.update({f.name: target_type(f.kind) for f in entity.fields})
    cols["_issues"] = dt.string
    cols.update({"_load_id": dt.string, "_loaded_at": target_type(Kind.TIMESTAMP),
                 "_source_file": dt.string,
                 "_source_row": dt.int64})
    return ibis.schema(cols)


def _decimal_mark(source: SourceConfig, csv_decimal: str | None) -> str:
    if csv_decimal in (".", ","):
        return csv_decimal
    if isinstance(source.connector, CsvConnector):
        return source.connector.decimal
    return "auto"


def source_entity(source: SourceConfig) -> Entity:
    """The entity ``source`` stages: its standard fields and the extra fields it maps."""
    return with_extra_fields(ENTITIES[source.entity], list(source.extra_fields))


def _hashed_fields(source: SourceConfig, project: ProjectConfig) -> dict[str, str]:
    """field -> salt, for the fields whose mapping says ``hash: true``."""
    fields = [t for t, m in source.mappings().items() if m.hash]
    if not fields:
        return {}
    if project.identity_salt is None:
        raise ProjectError([Problem(
            f"sources/{source.name}.yml", f"field '{fields[0]}' asks `hash: true` but "
            "passerelle.yml has no identity_salt",
            hint="add `identity_salt: ${PASSERELLE_IDENTITY_SALT}` to passerelle.yml and set "
                 "that variable to a long random secret")])
    salt = project.identity_salt.get_secret_value()
    return dict.fromkeys(fields, salt)


def _check_mapping(source: SourceConfig, entity: Entity, raw: ir.Table) -> None:
    file = f"sources/{source.name}.yml"
    problems: list[Problem] = []
    available = ", ".join(c for c in raw.columns if c not in LINEAGE)
    for target, mapping in source.mappings().items():
        if target not in entity.field_names:
            problems.append(Problem(file, f"'{target}' is not a field of {entity.name}",
                                    hint=f"fields: {', '.join(entity.field_names)}"))
        elif mapping.column is not None and mapping.column not in raw.columns:
            problems.append(Problem(
                file, f"field '{target}' maps to column '{mapping.column}', which "
                f"{raw_table_name(source)} does not have", hint=f"available columns: {available}"))
    mapped = source.mappings()
    for f in entity.fields:
        if f.required and f.name not in mapped:
            problems.append(Problem(file, f"required field '{f.name}' of {entity.name} is not "
                                    "mapped", hint="map it to a column, or give a constant value"))
    if problems:
        raise ProjectError(problems)


def _mapped_value(raw: ir.Table, source: SourceConfig, target: str) -> ir.Value:
    mapping = source.mappings()[target]
    if mapping.column is not None:
        return raw[mapping.column]
    value = mapping.value
    text = ("true" if value else "false") if isinstance(value, bool) else str(value)
    return ibis.literal(text, type=dt.string)


def compile_staging(engine: Engine, source: SourceConfig, project: ProjectConfig,
                    csv_decimal: str | None = None, rows: ir.Table | None = None,
                    checkboxes: frozenset[str] | None = None,
                    repeats: bool | None = None) -> CompiledStaging:
    """Build the staging query of ``source`` without running it; with ``rows``, of those
    rows of its raw table only (:func:`new_rows`). ``checkboxes``
    (:func:`probes.checkbox_fields`) and ``repeats`` (:func:`probes.may_repeat_records`
    of the rows staged) are computed when not given.

    The dictionary tables must exist (:func:`dictionaries.ensure_tables`, and
    :func:`dictionaries.write_countries` for a source mapping a country); they are read
    when the query runs.
    """
    entity = source_entity(source)
    _require_raw(engine, source)
    raw = engine.table(raw_table_name(source)) if rows is None else rows
    _check_mapping(source, entity, raw)
    region = source.default_region or project.default_region
    mapped = [f for f in entity.fields if f.name in source.mappings()]
    base = raw.select(
        *[raw[c] for c in LINEAGE],
        **{raw_column(f.name): _mapped_value(raw, source, f.name) for f in mapped},
    )
    lookups = {name: dicts.lookup(engine, name, region if name == dicts.PHONE_TABLE else None)
               for name in _dictionaries(source)}
    ctx = Context(zone=project.timezone, region=region, naive_utc=engine.naive_utc,
                  strip=engine.strip,
                  decimal=_decimal_mark(source, csv_decimal), lookups=lookups,
                  country_column="__country_v" if "country" in source.mappings() else None,
                  checkboxes=probes.checkbox_fields(engine, raw, source, entity)
                  if checkboxes is None else checkboxes)
    plans: list[FieldPlan] = []
    for f in mapped:
        try:
            plans.append(field_plan(f.name, f.kind, base[raw_column(f.name)].type(),
                                    source.mappings()[f.name].formats, ctx,
                                    birth=f.name == "birth_date"))
        except UnsupportedFormat as exc:
            raise ProjectError([Problem(f"sources/{source.name}.yml",
                                        f"field '{f.name}': format {exc}")]) from exc
    table, keys = run_layers(base, plans)
    by_name = {p.name: p for p in plans}

    key_values = [table[by_name[k].value].cast("string") for k in entity.key]
    any_missing = ibis.or_(*[v.isnull() for v in key_values])
    record_id = ibis.ifelse(any_missing, ibis.null("string"), ibis.literal("|").join(key_values))
    table = table.mutate(_record_id=record_id)
    row_ref = ibis.literal("|").join([ibis.literal("#row"), table._load_id.cast("string"),
                                      table._source_file.cast("string"),
                                      table._source_row.cast("string")])
    table = table.mutate(__part=ibis.coalesce(table._record_id, row_ref))
    if probes.may_repeat_records(engine, raw, source, entity) if repeats is None else repeats:
        order = [ibis.desc(table._loaded_at), ibis.desc(table._source_row)]
        table = table.mutate(__n=ibis.row_number().over(group_by=table.__part, order_by=order))
        table = table.filter(table.__n == 0)

    reasons, details, issues = [], [], []
    for f in entity.fields:
        if f.name not in by_name:
            continue
        plan = by_name[f.name]
        value, issue, present = table[plan.value], table[plan.issue], table[plan.present]
        issues.append(ibis.literal(f"{f.name}:") + issue)
        if f.required:
            phrase = issue.substitute(_PHRASES, else_="not valid")
            reasons.append((value.isnull() & present.isnull(), ibis.literal(f"{f.name}: missing")))
            reasons.append((value.isnull(), ibis.literal(f"{f.name}: ") + phrase))
            detail = table[raw_column(f.name)].cast("string").substr(0, DETAIL_LIMIT)
            details.append((value.isnull(), detail))
    reason = ibis.cases(*reasons, else_=ibis.null("string")) if reasons else ibis.null("string")
    detail = ibis.cases(*details, else_=ibis.null("string")) if details else ibis.null("string")

    columns: dict[str, ir.Value] = {"_source": ibis.literal(source.name),
                                    "_record_id": table._record_id}
    hashed = _hashed_fields(source, project)
    for f in entity.fields:
        kind_type = target_type(f.kind)
        columns[f.name] = (table[by_name[f.name].value].cast(kind_type) if f.name in by_name
                           else ibis.null(kind_type))
        if f.name in hashed:
            salted = ibis.literal(hashed[f.name]).concat(columns[f.name].cast("string"))
            columns[f.name] = ibis.ifelse(columns[f.name].isnull(), ibis.null("string"),
                                          sha256_hex(engine, salted))
    columns["_issues"] = ibis.literal(";").join(issues).nullif("") if issues else ibis.null(
        "string")
    columns["_load_id"] = table._load_id.cast("string")
    columns["_loaded_at"] = table._loaded_at.cast(target_type(Kind.TIMESTAMP))
    columns["_source_file"] = table._source_file.cast("string")
    columns["_source_row"] = table._source_row.cast("int64")
    columns["_reason"] = reason
    columns["_detail"] = detail
    return CompiledStaging(source, entity, table.select(**columns), keys)


def ensure_quarantine(engine: Engine) -> None:
    """Create ``quarantine`` (shared with the loader) or add the columns it lacks."""
    if engine.exists(QUARANTINE):
        engine.add_missing_columns(QUARANTINE, QUARANTINE_SCHEMA)
    else:
        engine.create_empty(QUARANTINE, QUARANTINE_SCHEMA)


def _delete_own_quarantine(engine: Engine, source: str) -> None:
    engine.execute(sge.delete(
        sg.table(QUARANTINE, quoted=True),
        where=sge.and_(
            sg.column("source", quoted=True).eq(sge.convert(source)),
            sg.column("stage", quoted=True).eq(sge.convert("stage")),
        ),
    ))


def fill_dictionaries(engine: Engine, compiled: CompiledStaging) -> dict[str, int]:
    """Send the distinct values no dictionary knows yet to Python; returns counts."""
    sent: dict[str, int] = {}
    for join, keys in compiled.dictionary_keys:
        if join.normalise is None:
            continue
        n = dicts.fill(engine, join.dictionary, keys, join.normalise, region=join.region)
        sent[join.dictionary] = sent.get(join.dictionary, 0) + n
    return sent


def stage_source(engine: Engine, source: SourceConfig, project: ProjectConfig,
                 reporter: Reporter, run_id: str, csv_decimal: str | None = None,
                 full: bool = False) -> StageResult:
    """Stage ``source`` into ``stg_<source>`` and this source's staging rows of
    ``quarantine``: rebuilt from every raw row, or, for an append source whose staging
    rule and staged loads are unchanged, with only the new loads added
    (:mod:`passerelle.staging.incremental`; ``full`` forces the rebuild)."""
    stg_name = stg_table_name(source)
    _require_raw(engine, source)
    with reporter.step(f"Staging {source.name}"):
        dicts.ensure_tables(engine)
        if _reads_countries(source):
            dicts.write_countries(engine)
        ensure_quarantine(engine)
        incremental.ensure_table(engine)
        checkboxes = probes.checkbox_fields(engine, engine.table(raw_table_name(source)),
                                            source, source_entity(source))
        rule = incremental.rule_fingerprint(engine, source, project, raw_table_name(source),
                                            csv_decimal, checkboxes)
        plan = incremental.plan(engine, source, rule, stg_name, full)
        if plan.incremental and not plan.loads:
            result = StageResult(source.name, stg_name, 0, 0, 0)
        else:
            stage = _stage_new if plan.incremental else _rebuild
            result = stage(engine, source, plan, run_id, partial(
                compile_staging, engine, source, project, csv_decimal, checkboxes=checkboxes))
    result.mode, result.mode_reason, result.loads_staged = plan.mode, plan.reason, len(
        plan.loads)
    if result.rows_quarantined:
        reporter.warning(f"{source.name}: {result.rows_quarantined:,} record(s) quarantined "
                         f"(run {run_id}); most frequent: {result.top_reasons[0][0]}")
    return result


def new_rows(engine: Engine, source: SourceConfig, loads: incremental.Loads) -> ir.Table:
    """The rows of ``loads`` in ``source``'s raw table."""
    raw = engine.table(raw_table_name(source))
    # the time filter lets DuckDB skip the row groups of earlier loads by their min/max
    # (load ids of one day share the first 8 bytes, all such statistics keep)
    return raw.filter(raw._load_id.isin(list(loads)), raw._loaded_at >= min(loads.values()))


def _dictionaries(source: SourceConfig) -> list[str]:
    """The dictionary tables staging ``source`` joins."""
    names = [dicts.EMAIL_TABLE, dicts.PHONE_TABLE, dicts.NAME_TABLE]
    return [*names, dicts.COUNTRY_TABLE] if _reads_countries(source) else names


def _reads_countries(source: SourceConfig) -> bool:
    """Whether the source maps a country, read through ``_norm_country``."""
    entity = source_entity(source)
    return any(entity.field(name).kind == Kind.COUNTRY for name in source.mappings()
               if name in entity.field_names)


def _require_raw(engine: Engine, source: SourceConfig) -> None:
    raw_name = raw_table_name(source)
    if not engine.exists(raw_name):
        raise PasserelleError(f"Source '{source.name}' has not been loaded: no table {raw_name}.",
                              "Run `passerelle run --step load` first.")


def _rebuild(engine: Engine, source: SourceConfig, plan: incremental.Plan, run_id: str,
             compile_: Callable[..., CompiledStaging]) -> StageResult:
    """Stage every raw row into a work table that then becomes ``stg_<source>``."""
    stg_name = stg_table_name(source)
    work = f"_stg_work_{source.name}"
    # the steps below commit one by one: until the last, no load counts as staged
    incremental.forget(engine, source.name)
    raw = engine.table(raw_table_name(source))
    repeats = probes.may_repeat_records(engine, raw, source, source_entity(source))
    compiled = compile_(repeats=repeats)
    sent = fill_dictionaries(engine, compiled)
    engine.replace_layered_table(work, compiled.rows)
    # The work table becomes the staged table: quarantined rows move out, the two
    # bookkeeping columns are dropped and it is renamed, so the rows are written once.
    try:
        rows = engine.table(work)
        result = _summarise(engine, compiled.entity, source, rows)
        at = utcnow()
        with engine.transaction():
            _delete_own_quarantine(engine, source.name)
            if result.rows_quarantined:
                engine.con.insert(QUARANTINE, quarantine_rows(rows, source.name, at))
                engine.execute(sge.delete(sg.table(work, quoted=True),
                                          where=sg.column("_reason", quoted=True)
                                          .is_(sge.null()).not_()))
        # DuckDB refuses to alter a table in the transaction that deleted from it
        engine.drop_columns(work, ["_reason", "_detail"])
        with engine.transaction():
            # the entity views over it go too; the pipeline's unify step recreates them
            engine.drop(stg_name, cascade=True)
            engine.rename(work, stg_name)
            incremental.remember(engine, source.name, plan.loads, plan.rule, run_id)
    finally:
        engine.drop(work)
    if source.incremental.staging == "append" and engine.capabilities.temporary_tables:
        # the next day's staging finds its SQL ready (guessing its new rows repeat records
        # as all the rows do; if not, that day compiles it)
        with statements.input_view(engine, source.name, raw) as view:
            statements.kept_statement(engine, source.name, plan.rule, view, repeats,
                                      _dictionaries(source), compile_)
    result.new_dictionary_values = sent
    return result


def _stage_new(engine: Engine, source: SourceConfig, plan: incremental.Plan, run_id: str,
               compile_: Callable[..., CompiledStaging]) -> StageResult:
    """Stage the rows of ``plan.loads`` and add them to ``stg_<source>``, in place of the
    earlier versions of their records, in one transaction."""
    stg_name = stg_table_name(source)
    work = f"_stg_new_{source.name}"
    # a temporary table: its rows never go to the warehouse's file and log, only their
    # copy in stg_ (on DuckDB the commit of the day's events cost 8x less CPU)
    sent = _new_rows_table(engine, source, plan, work, compile_)
    try:
        rows = engine.table(work)
        result = _summarise(engine, source_entity(source), source, rows)
        at = utcnow()
        with engine.transaction():
            incremental.supersede(engine, stg_name, QUARANTINE, work, source.name)
            engine.con.insert(stg_name, rows.filter(rows._reason.isnull())
                              .drop("_reason", "_detail"))
            if result.rows_quarantined:
                engine.con.insert(QUARANTINE, quarantine_rows(rows, source.name, at))
            incremental.remember(engine, source.name, plan.loads, plan.rule, run_id)
    finally:
        engine.drop(work)
    result.new_dictionary_values = sent
    return result


def _new_rows_table(engine: Engine, source: SourceConfig, plan: incremental.Plan, work: str,
                    compile_: Callable[..., CompiledStaging]) -> dict[str, int]:
    """Write the staging rows of ``plan.loads`` into the temporary table ``work``; returns
    the dictionary values sent to Python. Where the engine has temporary tables, the rows
    are read through a temporary view, so the SQL is the same from one day to the next
    and is compiled once per staging rule (:mod:`passerelle.staging.statements`)."""
    if not engine.capabilities.temporary_tables:
        compiled = compile_(rows=new_rows(engine, source, plan.loads))
        sent = fill_dictionaries(engine, compiled)
        engine.replace_layered_table(work, compiled.rows, temp=True)
        return sent
    with statements.input_view(engine, source.name,
                               new_rows(engine, source, plan.loads)) as view:
        repeats = probes.may_repeat_records(engine, view, source, source_entity(source))
        kept, sent = statements.kept_statement(
            engine, source.name, plan.rule, view, repeats, _dictionaries(source), compile_,
            partial(fill_dictionaries, engine))
        engine.scratch_table_from_sql(work, kept.sql)
    return sent


def _summarise(engine: Engine, entity: Entity, source: SourceConfig,
               rows: ir.Table) -> StageResult:
    staged = rows.filter(rows._reason.isnull())
    padded = ";" + staged._issues.fill_null("")
    aggs = {"_n": staged.count()}
    for f in entity.fields:
        aggs[f.name] = padded.contains(f";{f.name}:").sum()
    counts = engine.to_arrow(staged.aggregate(**aggs)).to_pylist()[0]
    q = rows.filter(rows._reason.notnull())
    by_reason = q.group_by("_reason").aggregate(n=q.count()).order_by(
        [ibis.desc("n"), "_reason"])
    reasons = [(r["_reason"], int(r["n"])) for r in engine.to_arrow(by_reason).to_pylist()]
    staged_n, quarantined_n = int(counts["_n"] or 0), sum(n for _, n in reasons)
    return StageResult(
        source=source.name, stg_table=stg_table_name(source),
        rows_in=staged_n + quarantined_n, rows_staged=staged_n, rows_quarantined=quarantined_n,
        issues_by_field={k: int(v) for k, v in counts.items() if k != "_n" and v},
        top_reasons=reasons,
    )


__all__ = ["CompiledStaging", "StageResult", "compile_staging", "stage_source", "stg_schema"]
