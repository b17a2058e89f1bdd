"""What each kind of job does, with its parameters (checked when the job is queued and
again when it runs). Each returns a JSON-able result, the error it ended on (if any) and the
exit code the CLI would have given for the same work."""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model

from passerelle.api.inputs import Text
from passerelle.errors import CheckFailed, ExitCode, PartialFailure, PasserelleError

Outcome = tuple[dict[str, Any], PasserelleError | None, int]
Name = Annotated[Text, Field(min_length=1)]


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RunParams(_Params):
    source: Name | None = Field(None, description="Run only this source")
    full: bool = Field(False, description="Redo every step, even unchanged ones")
    retrain: bool = Field(False, description="Re-train the identity model")
    reload: list[Name] = Field(default_factory=list, max_length=100,
                               description="Sources read again from scratch")
    pages: bool = Field(False, description="Run only the steps that prepare what the web "
                                           "pages read (nothing loaded)")


class SegmentRefreshParams(_Params):
    names: list[Name] | None = Field(None, max_length=500,
                                     description="Segments (default: all that are due)")
    full: bool = Field(False, description="Refresh even fresh segments")
    events: bool = Field(False, description="Stage new events and refresh only the "
                                            "segments over events")


class AudienceBuildParams(_Params):
    audience: Name


class ExportParams(_Params):
    audience: Name
    destination: Name = Field(description="Destination name (destinations/<name>.yml)")
    allow_empty: bool = Field(False, description="Send the audience even if nobody is in it")


class FiguresParams(_Params):
    keys: list[Annotated[Text, Field(min_length=1, max_length=300,
                                     pattern=r"^[a-z]+(/[A-Za-z0-9_.-]+)*$")]] | None = Field(
        None, max_length=50, description="Figures to compute (default: those of a run: "
                                         "figures/compute.py)")


PARAMS: dict[str, type[_Params]] = {
    "run": RunParams, "segment_refresh": SegmentRefreshParams,
    "audience_build": AudienceBuildParams, "export": ExportParams,
    "figures": FiguresParams}


def _body(kind: str, params: type[_Params]) -> type[BaseModel]:
    """The API body of one kind: ``{"kind": ..., "params": {...}}``."""
    return create_model(f"{params.__name__.removesuffix('Params')}Job",
                        __config__=ConfigDict(extra="forbid"),
                        kind=(Literal[kind], ...),  # type: ignore[valid-type]
                        params=(params, Field(default_factory=params)))


JobRequest = Annotated[
    _body("run", RunParams) | _body("segment_refresh", SegmentRefreshParams)  # type: ignore
    | _body("audience_build", AudienceBuildParams) | _body("export", ExportParams)
    | _body("figures", FiguresParams),
    Field(discriminator="kind")]


def execute(kind: str, params: dict[str, Any], project: Any, user: str) -> Outcome:
    """Do the job on ``project`` (a :class:`passerelle.core.Project`)."""
    checked = PARAMS[kind].model_validate(params)
    return _RUNNERS[kind](project, checked, user)


def _run(project: Any, p: RunParams, user: str) -> Outcome:
    from passerelle.render import run_summary

    result = project.run(source=p.source, full=p.full, retrain=p.retrain, reload=p.reload,
                         pages=p.pages)
    out = {**run_record(result), "summary": _text(run_summary(result))}
    error: PasserelleError | None = next(iter(result.errors), None)
    if error is None and result.failed_checks:
        error = CheckFailed(f"{len(result.failed_checks)} error-severity check(s) failed; "
                            "later steps were skipped.")
    if error is None and result.failed_steps:
        error = PartialFailure("; ".join(f"{s.step} failed: {s.message}"
                                         for s in result.failed_steps)[:2000])
    return out, error, run_exit_code(result)


def run_record(result: Any) -> dict[str, Any]:
    """What a run did, as plain data (the job's result, `passerelle run --json`)."""
    return {"run_id": result.run_id, "ok": result.ok, "exit_code": int(result.exit_code),
            "failed_checks": len(result.failed_checks),
            "errors": [_error(e) for e in result.errors],
            "steps": [{"step": s.step, "target": s.target, "status": s.status,
                       "seconds": round(s.seconds, 3), "rows_in": s.rows_in,
                       "rows_out": s.rows_out, "message": s.message} for s in result.steps]}


def run_exit_code(result: Any) -> int:
    """The exit code of a pipeline result (``RunResult.exit_code``: 4 when only checks or
    steps failed, else the worst error's, 0 when it succeeded)."""
    return int(result.exit_code)


def _segment_refresh(project: Any, p: SegmentRefreshParams, user: str) -> Outcome:
    from passerelle.segments import service

    if p.events:
        before = last_load(project)
        r = service.refresh_events(project, force=p.full)
        return vars(r) | {"memberships": vars(r.memberships) if r.memberships else None,
                          "decision_store": decisions_after_events(project, before)}, \
            None, 0
    return service.refresh(project, p.names or None, full=p.full), None, 0


def last_load(project: Any) -> Any:
    """Where the staged events stand before an event-driven refresh: what
    :func:`decisions_after_events` needs after it."""
    from passerelle.personalize.incremental import mark

    return mark(project.engine)


def decisions_after_events(project: Any, before: Any) -> dict[str, int] | None:
    """The decision store of the people an event-driven refresh touched (those of the loads
    after ``before``, and those with new identifiers); None when the project has no
    decision store."""
    from passerelle.personalize.incremental import refresh_loaded
    from passerelle.personalize.tables import PEOPLE

    if not project.engine.exists(PEOPLE):
        return None
    return {"people": refresh_loaded(project, before)}


def _audience_build(project: Any, p: AudienceBuildParams, user: str) -> Outcome:
    from passerelle.segments import service

    return vars(service.build(project, p.audience)), None, 0


def export(project: Any, audience: str, to: str, user: str, allow_empty: bool = False):
    """Send ``audience`` to the destination named ``to`` (an ExportResult)."""
    from passerelle.activation import activate, load_destinations

    destinations = load_destinations(project.root)
    if to not in destinations:
        known = ", ".join(sorted(destinations)) or "none"
        raise PasserelleError(f"There is no destination named '{to}'.",
                              f"Destinations of this project: {known}.")
    return activate(project.engine, audience, destinations[to], name=to, root=project.root,
                    user=user, allow_empty=allow_empty)


def _export(project: Any, p: ExportParams, user: str) -> Outcome:
    result = export(project, p.audience, p.destination, user, p.allow_empty)
    if result.status == "delivered":
        return vars(result), None, 0
    error = PasserelleError(f"The export of {p.audience} to {p.destination} ended "
                            f"{result.status}. {result.detail}".strip())
    return vars(result), error, int(ExitCode.EXTERNAL_ERROR)


def _error(error: PasserelleError) -> dict[str, Any]:
    from passerelle.governance.jobs import error_dict

    return error_dict(error)


def _text(renderable: Any) -> str:
    """What the CLI would print, as plain text (the job result is read by other programs)."""
    from rich.console import Console

    console = Console(file=io.StringIO(), width=110, color_system=None, record=True)
    console.print(renderable)
    return console.export_text()


def _figures(project: Any, p: FiguresParams, user: str) -> Outcome:
    from passerelle.figures.compute import refresh

    return refresh(project, project.reporter, p.keys), None, 0


_RUNNERS: dict[str, Callable[[Any, Any, str], Outcome]] = {
    "run": _run, "segment_refresh": _segment_refresh, "audience_build": _audience_build,
    "export": _export, "figures": _figures}
