"""The pipeline: load -> stage -> checks -> unify (-> later steps), recorded in the run log.

Python orchestrates; each step is SQL run by the engine. A source that fails to load is
reported and the other sources go on; an error-severity check stops every step after it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from passerelle.engines.base import Engine
from passerelle.errors import PasserelleError
from passerelle.model import ENTITIES
from passerelle.project.load import ProjectDefinition
from passerelle.project.models import SourceConfig
from passerelle.reporter import Reporter
from passerelle.runlog import StepRecord, new_run_id, record, utcnow

# Views that gather the staged tables of every source of one entity.
ENTITY_VIEWS = {
    "customers": "customer_records",
    "orders": "orders",
    "order_lines": "order_lines",
    "events": "events",
    "ad_spend": "ad_spend",
    "campaign_sends": "campaign_sends",
}

# What the person running the pipeline sees while a later step works (with its time).
STEP_TITLES = {"unify": "Unifying entities", "identity": "Identity", "stitch":
               "Stitching anonymous visitors", "traits": "Traits", "segments": "Segments"}


@dataclass
class RunResult:
    run_id: str
    steps: list[StepRecord] = field(default_factory=list)
    loads: dict[str, Any] = field(default_factory=dict)  # source -> LoadResult
    stages: dict[str, Any] = field(default_factory=dict)  # source -> StageResult
    checks: list[Any] = field(default_factory=list)  # CheckResult
    errors: list[PasserelleError] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)  # sources skipped: nothing new
    identity: Any = None  # IdentityResult when the project has identity.yml
    stitched: Any = None  # StitchResult: anonymous ids attributed to persons
    traits: Any = None  # TraitsSummary when the project has traits/*.yml
    segments: Any = None  # SegmentsSummary when the project has segments/*.yml
    quarantine: list[dict] = field(default_factory=list)  # source, reason, rows (whole table)

    @property
    def failed_checks(self) -> list[Any]:
        from passerelle.staging.checks import error_failures

        return error_failures(self.checks)

    @property
    def ok(self) -> bool:
        return not self.errors and not self.failed_checks


class _Unchanged(Exception):
    """A downstream step found its inputs unchanged and did nothing."""


class _Recorder:
    def __init__(self, engine: Engine, result: RunResult) -> None:
        self.engine, self.result = engine, result

    @contextmanager
    def step(self, step: str, target: str = "") -> Iterator[StepRecord]:
        rec = StepRecord(self.result.run_id, step, target, utcnow(), utcnow())
        try:
            yield rec
        except PasserelleError as exc:
            rec.status, rec.message = "failed", exc.reason[:2000]
            self.result.errors.append(exc)
        finally:
            rec.finished_at = utcnow()
            self.result.steps.append(rec)
            record(self.engine, rec)

    def skipped(self, step: str, target: str, why: str) -> None:
        now = utcnow()
        rec = StepRecord(self.result.run_id, step, target, now, now, status="skipped", message=why)
        self.result.steps.append(rec)
        record(self.engine, rec)


def run_pipeline(project: ProjectDefinition, engine: Engine, reporter: Reporter,
                 only_source: str | None = None, full: bool = False,
                 retrain: bool = False) -> RunResult:
    """Run every step; ``full`` re-stages every source even if nothing changed, ``retrain``
    re-trains the identity model."""
    from passerelle import state
    from passerelle.sources import load_source
    from passerelle.staging import stage_source
    from passerelle.staging.checks import error_failures, run_checks

    result = RunResult(run_id=new_run_id())
    rec = _Recorder(engine, result)
    sources = [s for s in project.sources.values() if only_source in (None, s.name)]

    for source in sources:
        with rec.step("load", source.name) as step:
            loaded = load_source(engine, project.root, source, result.run_id, reporter)
            result.loads[source.name] = loaded
            step.rows_out = loaded.rows_loaded
            step.message = "; ".join(loaded.messages)[:2000]
        if source.name not in result.loads:
            rec.skipped("stage", source.name, "the load failed")
            continue
        print_ = stage_fingerprint(project, engine, source)
        if not full and engine.exists(f"stg_{source.name}") and state.is_current(
                engine, f"stage:{source.name}", print_):
            rec.skipped("stage", source.name, "nothing new since the last staging")
            result.unchanged.append(source.name)
            continue
        with rec.step("stage", source.name) as step:
            dialect = result.loads[source.name].csv_dialect or {}
            staged = stage_source(engine, source, project.config, reporter, result.run_id,
                                  csv_decimal=dialect.get("decimal"))
            state.remember(engine, f"stage:{source.name}", print_, result.run_id)
            result.stages[source.name] = staged
            step.rows_in, step.rows_out = staged.rows_in, staged.rows_staged

    if result.stages:
        from passerelle.privacy import apply_to_sources, has_suppressions

        if has_suppressions(engine):
            with rec.step("privacy") as step:
                # people erased earlier come back with every new export of their source
                applied = apply_to_sources(
                    engine, [project.sources[name] for name in result.stages],
                    request_id=f"run:{result.run_id}")
                step.rows_out = sum(a.staged_rows for a in applied)
                step.message = "rows of erased people removed after staging: " + ", ".join(
                    f"{a.source} {a.staged_rows}" for a in applied if a.staged_rows)

    retention = project.config.retention
    if any(v is not None for v in retention.model_dump().values()):
        from passerelle.privacy.retention import apply_retention

        with rec.step("retention") as step:
            removed = apply_retention(engine, sources, retention, utcnow())
            step.rows_out = sum(r.staged_rows for r in removed)
            step.message = "rows past their retention deleted: " + (", ".join(
                f"{r.source} {r.staged_rows}" for r in removed) or "none")

    staged_names = set(result.stages) | set(result.unchanged)
    checks = [c for c in project.checks
              if c.source in staged_names or getattr(c, "to", None) in staged_names]
    if checks:
        with rec.step("checks") as step:
            result.checks = run_checks(engine, checks, result.run_id, reporter)
            failed = error_failures(result.checks)
            step.rows_in, step.rows_out = len(result.checks), len(failed)
            if failed:
                step.status = "failed"
                step.message = "; ".join(c.message for c in failed)[:2000]

    def identity() -> None:
        from passerelle.identity.resolve import inputs_fingerprint, resolve_identity
        from passerelle.identity.tables import PROFILES

        before = inputs_fingerprint(project, engine)
        if (not full and not retrain and engine.exists(PROFILES)
                and state.is_current(engine, "identity", before)):
            raise _Unchanged("nothing changed since the last resolution")
        result.identity = resolve_identity(project, engine, reporter, result.run_id,
                                           retrain=retrain, full=full)
        # training may have written the model: remember the inputs as they are now
        state.remember(engine, "identity", inputs_fingerprint(project, engine), result.run_id)

    def stitch() -> None:
        from passerelle.identity.anonymous import ALIASES_VIEW, ANONYMOUS_IDS, stitch_anonymous
        from passerelle.identity.tables import PERSON_MAP

        if not engine.exists(PERSON_MAP) or not engine.exists("events"):
            raise _Unchanged("no events, or identity has not been resolved")
        pm = engine.table(PERSON_MAP)
        parts = [str(engine.to_arrow(pm.aggregate(n=pm.count(), last=pm.assigned_at.max()))
                     .to_pylist())]
        parts += [state.raw_state(engine, s.name) for s in project.sources.values()
                  if s.entity == "events"]
        if engine.exists(ALIASES_VIEW):
            parts.append(str(engine.count(ALIASES_VIEW)))
        print_ = state.fingerprint(*parts)
        if not full and engine.exists(ANONYMOUS_IDS) and state.is_current(
                engine, "stitch", print_):
            raise _Unchanged("no new events and no identity change since the last stitching")
        result.stitched = stitch_anonymous(engine, project.sources, result.run_id)
        state.remember(engine, "stitch", print_, result.run_id)

    def traits() -> None:
        from passerelle.identity.tables import PERSON_MAP
        from passerelle.runlog import utcnow
        from passerelle.traits import compute_traits

        if not engine.exists(PERSON_MAP):
            raise _Unchanged("identity has not been resolved: traits need persons")
        result.traits = compute_traits(engine, project.traits, project.sources, result.run_id,
                                       utcnow(), reporter, full=full)
        for trait, why in result.traits.failed.items():
            reporter.warning(f"trait {trait} was not recomputed (previous values kept): {why}")

    def segments() -> None:
        from passerelle.identity.tables import PROFILES
        from passerelle.runlog import utcnow
        from passerelle.segments import run_segments_step, trait_kinds

        if not engine.exists(PROFILES):
            raise _Unchanged("identity has not been resolved: segments need profiles")
        kinds = trait_kinds(project.traits) if project.traits is not None else None
        result.segments = run_segments_step(engine, project.segments, project.sources,
                                            result.run_id, utcnow(), trait_kinds=kinds,
                                            full=full)

    downstream: list[tuple[str, Callable[[], None]]] = [
        ("unify", lambda: unify_entities(project, engine)),
    ]
    if project.identity is not None:
        downstream.append(("identity", identity))
        downstream.append(("stitch", stitch))
    if project.traits is not None:
        downstream.append(("traits", traits))
    if project.segments is not None:
        downstream.append(("segments", segments))
    for name, run_step in downstream:
        if result.failed_checks:
            rec.skipped(name, "", "an error-severity check failed")
            continue
        if result.errors and name != "unify":
            rec.skipped(name, "", "an earlier step failed")
            continue
        with rec.step(name) as step, reporter.step(STEP_TITLES.get(name, name)):
            try:
                run_step()
            except _Unchanged as why:
                step.status, step.message = "skipped", str(why)
                continue
            if name == "identity":
                step.rows_in, step.rows_out = result.identity.records, result.identity.persons
                step.message = result.identity.summary[:2000]
            if name == "stitch" and result.stitched is not None:
                step.rows_out = result.stitched.stitched
                step.message = (f"{result.stitched.stitched} anonymous ids stitched, "
                                f"{result.stitched.ambiguous} seen with several people "
                                "(left unattributed)")
            if name == "traits":
                step.rows_out = sum(result.traits.persons.values())
                if result.traits.failed:
                    step.status = "failed"
                    step.message = "; ".join(f"{k}: {v}" for k, v in
                                             result.traits.failed.items())[:2000]
    result.quarantine = quarantine_summary(engine)
    return result


def stage_fingerprint(project: ProjectDefinition, engine: Engine, source: SourceConfig) -> str:
    """What staging a source depends on: its definition, the project's time zone and phone
    region, and its committed loads. Unchanged, the staged table is current."""
    from passerelle import state

    return state.fingerprint(source.model_dump_json(), project.config.timezone,
                             project.config.default_region, state.raw_state(engine, source.name))


def quarantine_summary(engine: Engine) -> list[dict]:
    """Rows in quarantine now, by source and reason, most frequent first."""
    from passerelle.sources import QUARANTINE_TABLE

    if not engine.exists(QUARANTINE_TABLE):
        return []
    q = engine.table(QUARANTINE_TABLE)
    counts = q.group_by(["source", "reason"]).aggregate(rows=q.count())
    return engine.to_arrow(counts.order_by([counts.rows.desc(), "source", "reason"])).to_pylist()


def unify_entities(project: ProjectDefinition, engine: Engine) -> list[str]:
    """(Re)create one view per entity over the staged tables of its sources."""
    made = []
    for entity, view in ENTITY_VIEWS.items():
        tables = [f"stg_{s.name}" for s in project.sources.values()
                  if s.entity == entity and engine.exists(f"stg_{s.name}")]
        if not tables:
            continue
        columns = ["_source", "_record_id", *ENTITIES[entity].field_names, "_issues",
                   "_load_id", "_loaded_at", "_source_file", "_source_row"]
        parts = [engine.table(t).select(columns) for t in tables]
        expr = parts[0].union(*parts[1:], distinct=False) if len(parts) > 1 else parts[0]
        engine.con.create_view(view, expr, overwrite=True)
        made.append(view)
    return made
