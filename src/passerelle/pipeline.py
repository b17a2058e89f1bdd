"""The pipeline: load -> stage -> checks -> unify (-> later steps), recorded in the run log.

Python orchestrates; each step is SQL run by the engine. A source that fails to load is
reported and the other sources go on; an error-severity check stops every step after it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from typing import Any

from passerelle.engines.base import Engine
from passerelle.errors import ExitCode, PartialFailure, PasserelleError, worst
from passerelle.project.load import ProjectDefinition
from passerelle.reporter import Reporter
from passerelle.runlog import StepRecord, finish, new_run_id, process_tag, record, utcnow
from passerelle.staging.unify import stage_fingerprint, unify_entities

# What the person running the pipeline sees while a later step works (with its time).
STEP_TITLES = {"unify": "Unifying entities", "identity": "Identity", "stitch":
               "Stitching anonymous visitors", "traits": "Traits", "segments": "Segments",
               "personalise": "Refreshing the decision store",
               "lookups": "Sorting each person's orders and events",
               "figures": "Computing the pages' figures"}


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
    decision_store: Any = None  # StoreSummary when the project has offers/ or placements/
    consent: Any = None  # ConsentSummary when identity ran
    lookups: dict[str, int] | None = None  # rows of each person-sorted table, when rebuilt
    figures: dict[str, Any] | None = None  # the pages' figures stored (figures/compute.py)
    quarantine: list[dict] = field(default_factory=list)  # source, reason, rows (whole table)

    @property
    def failed_checks(self) -> list[Any]:
        from passerelle.staging.checks import error_failures

        return error_failures(self.checks)

    @property
    def failed_steps(self) -> list[StepRecord]:
        """Steps that ended ``failed`` (a check, a trait, an offer...), errors or not."""
        return [s for s in self.steps if s.status == "failed" and s.step != "run"]

    @property
    def ok(self) -> bool:
        return not self.errors and not self.failed_checks and not self.failed_steps

    @property
    def exit_code(self) -> ExitCode:
        """The worst error's code; PARTIAL when only checks or steps failed; OK otherwise."""
        partial = [ExitCode.PARTIAL] if self.failed_checks or self.failed_steps else []
        return worst([*(e.exit_code for e in self.errors), *partial])


class _Unchanged(Exception):
    """A downstream step found its inputs unchanged and did nothing."""


class _Recorder:
    def __init__(self, engine: Engine, result: RunResult) -> None:
        self.engine, self.result = engine, result
        self._unrecorded: list[StepRecord] = []

    @contextmanager
    def run(self) -> Iterator[None]:
        """The whole run: its ``run`` row says which process runs it until it ends, so a run
        killed midway shows as interrupted; a lost warehouse connection ends it as an
        :class:`EngineError` (an outside system, exit 2), not as a bug."""
        rec = StepRecord(self.result.run_id, "run", "", utcnow(), utcnow(), status="running",
                         message=process_tag())
        record(self.engine, rec)
        try:
            yield
        except BaseException as exc:
            lost = self.engine.connection_error(exc)
            if lost is not None:
                # a new connection records the outcome when the server is still there (it
                # ended our sessions); connecting gives up within seconds when it is not
                self.engine.close()
                for step in self._unrecorded:
                    with suppress(Exception):
                        finish(self.engine, step)
            self._end(rec, exc if lost is None else lost, failing=True)
            if lost is not None:
                raise lost from exc
            raise
        rec.status = "ok" if self.result.ok else "failed"
        rec.message = "; ".join(e.reason.splitlines()[0] for e in self.result.errors)[:2000]
        self._end(rec, None, failing=False)

    @contextmanager
    def step(self, step: str, target: str = "") -> Iterator[StepRecord]:
        rec = StepRecord(self.result.run_id, step, target, utcnow(), utcnow(), status="running")
        record(self.engine, rec)
        rec.status = "ok"
        try:
            yield rec
        except PasserelleError as exc:
            rec.status, rec.message = "failed", exc.reason[:2000]
            self.result.errors.append(exc)
        except BaseException as exc:  # a bug, Ctrl-C or a lost connection: the run ends
            self._end(rec, self.engine.connection_error(exc) or exc, failing=True)
            raise
        self._end(rec, None, failing=False)

    def _end(self, rec: StepRecord, exc: BaseException | None, failing: bool) -> None:
        rec.finished_at = utcnow()
        if exc is not None:
            rec.status = "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
            rec.message = (exc.reason if isinstance(exc, PasserelleError)
                           else f"{type(exc).__name__}: {exc}")[:2000]
        if rec.step != "run":
            self.result.steps.append(rec)
        if not failing:
            finish(self.engine, rec)
            return
        # The error being raised is what the user must see; when the warehouse is what
        # failed, the row stays `running` (`passerelle status` shows it interrupted once
        # this process is gone) unless run() can record it on a new connection.
        try:
            finish(self.engine, rec)
        except Exception:
            self._unrecorded.append(rec)

    def skipped(self, step: str, target: str, why: str, status: str = "skipped") -> None:
        now = utcnow()
        rec = StepRecord(self.result.run_id, step, target, now, now, status=status, message=why)
        self.result.steps.append(rec)
        record(self.engine, rec)


def run_pipeline(project: ProjectDefinition, engine: Engine, reporter: Reporter,
                 only_source: str | None = None, full: bool = False,
                 retrain: bool = False, reload: frozenset[str] = frozenset(),
                 pages: bool = False) -> RunResult:
    """Run every step; ``full`` re-stages every source even if nothing changed, ``retrain``
    re-trains the identity model, ``reload`` names sources whose files (or tables) are read
    again from scratch. ``pages`` runs only the steps that prepare what the web pages read
    (:data:`PAGE_STEPS`), from the warehouse as it is."""
    result = RunResult(run_id=new_run_id())
    rec = _Recorder(engine, result)
    with rec.run():
        _run_steps(project, engine, reporter, rec, only_source, full, retrain, reload, pages)
    return result


# The last steps of a run: what the web pages read, prepared (also run alone: `run --pages`).
PAGE_STEPS = ("lookups", "figures")


def _run_steps(project: ProjectDefinition, engine: Engine, reporter: Reporter, rec: _Recorder,
               only_source: str | None, full: bool, retrain: bool,
               reload: frozenset[str], pages: bool = False) -> None:
    from passerelle import state
    from passerelle.sources import load_source
    from passerelle.staging import stage_source
    from passerelle.staging.checks import error_failures, run_checks

    result = rec.result
    sources = [] if pages else [s for s in project.sources.values()
                                if only_source in (None, s.name)]

    for source in sources:
        with rec.step("load", source.name) as step:
            loaded = load_source(engine, project.root, source, result.run_id, reporter,
                                 reload=source.name in reload)
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
                                  csv_decimal=dialect.get("decimal"), full=full)
            state.remember(engine, f"stage:{source.name}", print_, result.run_id)
            result.stages[source.name] = staged
            step.rows_in, step.rows_out = staged.rows_in, staged.rows_staged
            step.message = staged.summary[:2000]

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
    if not pages and any(v is not None for v in retention.model_dump().values()):
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

    def consent() -> None:
        from passerelle.consent import build_consents
        from passerelle.identity.tables import PERSON_MAP
        from passerelle.project.consent_models import default_consent

        if not engine.exists(PERSON_MAP):
            raise _Unchanged("identity has not been resolved: consents need persons")
        config = project.consent or default_consent(project.sources)
        result.consent = build_consents(engine, config, project.sources, result.run_id)

    def person_lookups() -> None:
        from passerelle.identity import lookups
        from passerelle.identity.service import customer_sources

        built = lookups.refresh(engine, customer_sources(project, "orders"),
                                customer_sources(project, "events"), result.run_id, full)
        resorted = lookups.sort_page_tables(engine)
        if built is None and not resorted:
            raise _Unchanged("no order, event or identity change since they were sorted")
        result.lookups = (built or {}) | resorted

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

    def personalise() -> None:
        from passerelle.identity.tables import PROFILES
        from passerelle.personalize.service import refresh_store
        from passerelle.runlog import utcnow

        if not engine.exists(PROFILES):
            raise _Unchanged("identity has not been resolved: decisions need profiles")
        config = project.config.personalisation
        result.decision_store = refresh_store(project.root, engine, utcnow(),
                                              redis_url=config.redis,
                                              redis_prefix=config.redis_prefix)

    def figures() -> None:
        from passerelle.figures.compute import Scope, refresh_if_changed

        done = refresh_if_changed(Scope(project, engine), reporter, result.run_id, full)
        if done is None:
            raise _Unchanged("no data or definition change since they were computed")
        result.figures = done

    downstream: list[tuple[str, Callable[[], None]]] = [
        ("unify", lambda: unify_entities(project, engine)),
    ]
    if project.identity is not None:
        downstream.append(("identity", identity))
        downstream.append(("stitch", stitch))
        downstream.append(("consent", consent))
    if project.traits is not None:
        downstream.append(("traits", traits))
    if project.segments is not None:
        downstream.append(("segments", segments))
    if any((project.root / d).is_dir() for d in ("offers", "placements")):
        downstream.append(("personalise", personalise))
    if project.identity is not None:  # after every step that writes what the pages read
        downstream.append(("lookups", person_lookups))
    downstream.append(("figures", figures))
    if pages:
        downstream = [(name, step) for name, step in downstream if name in PAGE_STEPS]
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
            if name == "personalise":
                store = result.decision_store
                step.rows_out = store.people
                step.message = (f"{store.people} people, {sum(store.eligible.values())} "
                                f"eligible (person, offer) pairs, {store.posteriors} learned "
                                "posteriors" + (", copied to Redis" if store.redis else "")
                                + "".join(f"; offer {k} left out: {v}"
                                          for k, v in store.failed.items()))[:2000]
                if store.failed:
                    step.status = "failed"
            if name == "lookups" and result.lookups is not None:
                step.rows_out = sum(result.lookups.values())
                step.message = ", ".join(f"{k}: {v} rows" for k, v in result.lookups.items())
            if name == "figures" and result.figures is not None:
                step.rows_out = result.figures["figures"]
                step.message = "; ".join(f"{k}: {v}" for k, v in
                                         result.figures["errors"].items())[:2000]
            if name == "consent":
                step.rows_out = result.consent.statements
                step.message = result.consent.message[:2000]
            if name == "traits":
                step.rows_out = sum(result.traits.persons.values())
                if result.traits.failed:
                    step.status = "failed"
                    step.message = "; ".join(f"{k}: {v}" for k, v in
                                             result.traits.failed.items())[:2000]
    _left_out(project, rec, result)
    result.quarantine = quarantine_summary(engine)


_STEP_OF = {"trait": "traits", "segment": "segments", "audience": "segments",
            "metric": "metrics", "semantic model": "metrics", "experiment": "experiments",
            "offer": "personalise", "placement": "personalise"}


def _left_out(project: ProjectDefinition, rec: _Recorder, result: RunResult) -> None:
    """The leaf definitions the load left out (project/leaves.py): a run-log row each, and
    one error naming them, so the run fails while everything else has run."""
    if not project.skipped:
        return
    for s in project.skipped:
        rec.skipped(_STEP_OF.get(s.kind, s.kind), s.name, f"{s.where}: {s.reason}"[:2000],
                    status="failed" if s.broken else "skipped")
    names = ", ".join(f"{s.kind} '{s.name}' ({s.where})" for s in project.skipped)
    result.errors.append(PartialFailure(
        f"{len(project.skipped)} definition(s) left out of this run: {names}",
        "Run `passerelle validate` to see their problems; everything else ran."))


def quarantine_summary(engine: Engine) -> list[dict]:
    """Rows in quarantine now, by source and reason, most frequent first."""
    from passerelle.sources import QUARANTINE_TABLE

    if not engine.exists(QUARANTINE_TABLE):
        return []
    q = engine.table(QUARANTINE_TABLE)
    counts = q.group_by(["source", "reason"]).aggregate(rows=q.count())
    return engine.to_arrow(counts.order_by([counts.rows.desc(), "source", "reason"])).to_pylist()
