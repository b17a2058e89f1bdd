"""Data health for IT, beyond the overview of pages.py: jobs and pipeline runs with their
steps, the history of the quality checks, tracking-plan violations, and the preview of a
candidate identity.yml (the identity diff service, which writes nothing outside a
temporary folder). Every page needs ``pipeline:run``; the identity preview also
``identity:write``."""

from __future__ import annotations

import tempfile
from itertools import groupby
from pathlib import Path
from typing import Any

import ibis
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import Response

from passerelle.api.inputs import MAX_DOCUMENT
from passerelle.errors import PasserelleError
from passerelle.governance import jobs
from passerelle.governance.errors import CsrfFailed
from passerelle.web.auth import PageUser, app_db, checked_form, require
from passerelle.web.i18n import translator
from passerelle.web.pages import User, error_page, locked, render

router = APIRouter(include_in_schema=False, prefix="/health")
RUN_ROWS = 200  # step rows of the last runs
JOBS = 50
HISTORY_RUNS = 10
IDENTITY_FILE = "identity.yml"


def install(app: FastAPI) -> None:
    app.include_router(router)


def _page(request: Request, user: PageUser, template: str, section: str, status: int = 200,
          **context: Any) -> Response:
    return render(request, template, user.lang, status, user=user, section=section,
                  **context)


# -------------------------------------------------------------------------- jobs and runs
def runs_with_steps(project: Any, limit: int = RUN_ROWS) -> list[dict[str, Any]]:
    """The last runs, each with its steps in order: ``[{run, steps: [...]}]``."""
    rows = project.status(limit)
    out = []
    for run_id, group in groupby(rows, key=lambda r: r["run_id"]):
        items = list(group)
        head = next((r for r in items if r["step"] == "run"), items[0])
        steps = sorted((r for r in items if r is not head),
                       key=lambda r: (r["started_at"] is None, r["started_at"]))
        out.append({"run_id": run_id, "run": head, "steps": steps})
    return out


@router.get("/jobs")
def jobs_page(request: Request, user: User) -> Response:
    require(user, "pipeline:run")
    project = request.app.state.web_project
    runs = locked(lambda: runs_with_steps(project))
    return _page(request, user, "health_jobs.html", "jobs", jobs=jobs.recent(app_db(request),
                                                                              JOBS), runs=runs)


# ---------------------------------------------------------------------------- check history
def check_history(project: Any, runs: int = HISTORY_RUNS) -> dict[str, Any]:
    """The results of the last ``runs`` check runs, one row per check, newest run first."""
    from passerelle.staging.checks import RESULTS_TABLE

    engine = project.engine
    if not engine.exists(RESULTS_TABLE):
        return {"runs": [], "checks": []}
    r = engine.table(RESULTS_TABLE)
    last = (r.group_by("run_id").aggregate(at=r.checked_at.max())
            .order_by(ibis.desc("at")).limit(runs))
    rows = engine.to_arrow(r.semi_join(last, "run_id")).to_pylist()
    order = [x["run_id"] for x in engine.to_arrow(last).to_pylist()]
    at = {x["run_id"]: x["checked_at"] for x in rows}
    checks: dict[str, dict[str, Any]] = {}
    for x in rows:
        c = checks.setdefault(x["name"], {"name": x["name"], "source": x["source"],
                                          "severity": x["severity"], "results": {}})
        c["results"][x["run_id"]] = x
    return {"runs": [{"run_id": run, "at": at[run]} for run in order],
            "checks": sorted(checks.values(), key=lambda c: c["name"])}


@router.get("/checks")
def checks_page(request: Request, user: User) -> Response:
    require(user, "pipeline:run")
    project = request.app.state.web_project
    return _page(request, user, "health_checks.html", "checks",
                 **locked(lambda: check_history(project)))


# ------------------------------------------------------------------------------ violations
@router.get("/violations")
def violations_page(request: Request, user: User) -> Response:
    require(user, "pipeline:run")
    from passerelle.collect import list_violations

    project = request.app.state.web_project
    rows = locked(lambda: list_violations(project.engine))
    return _page(request, user, "health_violations.html", "violations", rows=rows[:500])


# ------------------------------------------------------------------------- identity preview
def _current_identity(root: Path) -> str:
    path = root / IDENTITY_FILE
    if not path.is_file():
        return ""
    return path.read_text(encoding="utf-8")[:MAX_DOCUMENT]


@router.get("/identity")
def identity_page(request: Request, user: User) -> Response:
    require(user, "pipeline:run")
    project = request.app.state.web_project
    return _page(request, user, "health_identity.html", "identity",
                 candidate=_current_identity(project.root), diff=None, error=None)


@router.post("/identity")
async def identity_preview(request: Request, user: User) -> Response:
    """What the candidate identity.yml would merge and split; the project is unchanged."""
    require(user, "pipeline:run")
    require(user, "identity:write")
    try:
        fields = await checked_form(request, user, limit=3 * MAX_DOCUMENT + 4096)
    except CsrfFailed:
        _ = translator(user.lang)
        return error_page(request, user, user.lang, 403, _("Something went wrong"),
                          _("The form expired: please submit it again."))
    from passerelle.identity import service

    project = request.app.state.web_project
    candidate = fields.get("candidate", "")[:MAX_DOCUMENT]

    def work() -> dict[str, Any]:
        with tempfile.TemporaryDirectory(prefix="passerelle-web-diff-") as tmp:
            path = Path(tmp) / IDENTITY_FILE
            path.write_text(candidate, encoding="utf-8")
            return service.diff(project.definition, project.engine, path, project.reporter)
    try:
        diff = locked(work)
    except PasserelleError as exc:
        return _page(request, user, "health_identity.html", "identity", 400,
                     candidate=candidate, diff=None, error=exc)
    return _page(request, user, "health_identity.html", "identity", candidate=candidate,
                 diff=diff, error=None)
