"""The segment builder (issue 17, page 3): conditions added with forms, the live count with a
count per top-level group, a sample masked per role, overlap, a breakdown, "why is this
person in or out"; Save writes ``segments/NAME.yml``; an audience with its holdout and
purpose; its export queued as a job with a progress bar."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, FastAPI, Path, Request
from fastapi.responses import RedirectResponse, Response

from passerelle.api.inputs import Text
from passerelle.core import Project
from passerelle.errors import PasserelleError
from passerelle.formatting import Formatter
from passerelle.governance import jobs as queue
from passerelle.governance.errors import CsrfFailed
from passerelle.web import segment_data as sd
from passerelle.web.auth import PageUser, app_db, checked_form, client_ip, require
from passerelle.web.cache import same_tables
from passerelle.web.i18n import translator
from passerelle.web.pages import User, error_page, locked, render
from passerelle.web.segment_form import (
    KINDS,
    OPS,
    Builder,
    FormError,
    apply_action,
    builder_of,
    parse_form,
)

LOCALES = {"fr": "fr_FR", "en": "en_GB"}
CHANNELS = ("email", "sms", "push", "ads")
# Messages too long for one line of code (their French is in i18n.py all the same).
TOO_DEEP = ("This segment nests its conditions deeper than the builder's forms: edit its file "
            "in git.")
BAD_HOLDOUT = "The holdout is a percentage between 0 and 50."
MESSAGES = (TOO_DEEP, BAD_HOLDOUT)
router = APIRouter(include_in_schema=False)


def install(app: FastAPI, server_project: Project) -> None:
    app.state.server_project = server_project  # its definitions follow a saved segment
    app.include_router(router)


def formatter(lang: str, project: Project) -> Formatter:
    """Figures in the reader's language, the project's time zone and currency."""
    config = project.config
    return Formatter(LOCALES.get(lang, "en_GB"), config.timezone or "UTC",
                     config.currency or "EUR")


def _project(request: Request) -> Project:
    return request.app.state.web_project


def _role(user: PageUser) -> str:
    """The sample's masking role (compiler.ROLES) for this person's permissions."""
    return "it" if user.can("pii:read") else "marketer"


def _page(request: Request, user: PageUser, b: Builder, status: int = 200,
          **extra: Any) -> Response:
    project = _project(request)
    context = locked(lambda: {"choices": sd.choices(project)})
    saved = sd.saved_segments(project).get(b.original) if b.original else None
    destinations = _destinations(project) if saved is not None else []
    purposes = sorted(project.definition.consent.purposes) if project.definition.consent \
        else []
    return render(request, "segment_builder.html", user.lang, status, user=user, b=b,
                  kinds=KINDS, ops=OPS, saved=saved, destinations=destinations,
                  purposes=purposes, channels=CHANNELS, fm=formatter(user.lang, project),
                  draft_name=sd.DRAFT, **context, **extra)


def _destinations(project: Project) -> list[str]:
    from passerelle.project.destinations_models import load_destinations

    try:
        return sorted(load_destinations(project.root))
    except PasserelleError:
        return []


async def _form(request: Request, user: PageUser) -> dict[str, str] | None:
    try:
        return await checked_form(request, user)
    except CsrfFailed:
        return None


def _csrf_refused(request: Request, user: PageUser) -> Response:
    _ = translator(user.lang)
    return error_page(request, user, user.lang, 403, _("Something went wrong"),
                      _("The form expired: please submit it again."))


# ------------------------------------------------------------------------------ pages
@router.get("/segments")
def segments(request: Request, user: User) -> Response:
    project = _project(request)

    def work() -> list[dict[str, Any]]:
        from passerelle.segments.membership import MEMBERSHIP

        engine = project.engine
        counts: dict[str, int] = {}
        if engine.exists(MEMBERSHIP):
            m = engine.table(MEMBERSHIP)
            counts = {r["segment"]: r["people"] for r in engine.to_arrow(
                m.group_by("segment").aggregate(people=m.count())).to_pylist()}
        defs = project.definition.segments
        return [{"name": n, "description": s.description, "owner": s.owner,
                 "people": counts.get(n), "audiences": [a.name for a in s.audiences],
                 "file": defs.origin[n][0] if defs else ""}
                for n, s in sorted(sd.saved_segments(project).items())]
    return render(request, "segments.html", user.lang, user=user, rows=locked(work),
                  fm=formatter(user.lang, project))


@router.get("/segments/new")
def new_segment(request: Request, user: User) -> Response:
    return _page(request, user, Builder())


@router.get("/segments/{name}")
def edit_segment(request: Request, user: User, name: Text) -> Response:
    project = _project(request)
    seg = sd.saved_segments(project).get(name)
    _ = translator(user.lang)
    if seg is None:
        return error_page(request, user, user.lang, 404, _("Page not found"),
                          _("There is no segment named “%(name)s”.", name=name[:63]))
    text = sd.current_text(project, name)
    b = builder_of(seg, text)
    if b is None:
        return _read_only(request, user, seg, text)
    return _page(request, user, b, saved_message=request.query_params.get("saved"))


def _read_only(request: Request, user: PageUser, seg: Any, text: str | None) -> Response:
    """A segment whose conditions nest deeper than the builder's forms: its file as it is,
    why it cannot be edited here, and where to edit it (the project's git host, when
    ``server.repository_url`` names it)."""
    project = _project(request)
    defs = project.definition.segments
    file = defs.origin[seg.name][0] if defs and seg.name in defs.origin else \
        f"segments/{seg.name}.yml"
    base = project.config.server.repository_url
    return render(request, "segment_readonly.html", user.lang, seg=seg, user=user,
                  file=file, text=text or "",
                  edit_url=f"{base.rstrip('/')}/{file}" if base else None)


@router.post("/segments/builder")
async def builder_action(request: Request, user: User) -> Response:
    """Add or remove a row or a group: the builder again, with the form's values kept."""
    fields = await _form(request, user)
    if fields is None:
        return _csrf_refused(request, user)
    try:
        b = apply_action(parse_form(fields), fields.get("action", ""))
    except FormError as exc:
        return _page(request, user, Builder(), 400, save_error=said(exc, user))
    if request.headers.get("hx-request"):
        project = _project(request)
        return render(request, "_segment_form.html", user.lang, user=user, b=b, kinds=KINDS,
                      ops=OPS, choices=locked(lambda: sd.choices(project)))
    return _page(request, user, b)


@router.post("/segments/preview")
async def preview(request: Request, user: User) -> Response:
    fields = await _form(request, user)
    if fields is None:
        return _csrf_refused(request, user)
    project = _project(request)
    try:
        b = parse_form(fields)
    except FormError as exc:
        return render(request, "_segment_preview.html", user.lang, user=user,
                      p=sd.Preview(error=exc.message, error_values=exc.values), b=Builder(),
                      draft_name=sd.DRAFT, fm=formatter(user.lang, project))
    def work() -> sd.Preview:
        with same_tables(project.engine):  # the preview reads, creates no table
            return sd.preview(project, b, _role(user), b.overlap, b.breakdown)
    p = locked(work)
    return render(request, "_segment_preview.html", user.lang, user=user, p=p, b=b,
                  draft_name=sd.DRAFT, fm=formatter(user.lang, project))


@router.post("/segments/why")
async def why(request: Request, user: User) -> Response:
    fields = await _form(request, user)
    if fields is None:
        return _csrf_refused(request, user)
    project = _project(request)
    person = fields.get("person_id", "").strip()[:100]
    result, error = None, None
    try:
        b = parse_form(fields)
        if person:
            result = locked(lambda: sd.why(project, b, person))
    except FormError as exc:
        error = said(exc, user)
    except PasserelleError as exc:
        error = exc.reason
    return render(request, "_segment_why.html", user.lang, user=user, result=result,
                  error=error, person=person)


@router.post("/segments/save")
async def save(request: Request, user: User) -> Response:
    require(user, "segments:write")
    fields = await _form(request, user)
    if fields is None:
        return _csrf_refused(request, user)
    project = _project(request)
    try:
        b = parse_form(fields)
    except FormError as exc:
        return _page(request, user, Builder(), 400, save_error=said(exc, user))
    try:
        outcome = locked(lambda: sd.save(project, b, user.principal.display_name,
                                         fields.get("overwrite") == "1"))
    except FormError as exc:
        return _page(request, user, b, 400, save_error=said(exc, user))
    except PasserelleError as exc:
        return _page(request, user, b, 400, save_error=exc.reason)
    if not outcome.saved:
        return _page(request, user, b, 409 if outcome.needs_confirmation else 400,
                     problems=outcome.problems, confirm=outcome.needs_confirmation)
    _audit(request, user, "segment.save", outcome.path)
    sd.reload_definitions(project, request.app.state.server_project)
    return RedirectResponse(f"/segments/{b.name}?saved=1", status_code=303)


@router.post("/segments/{name}/audience")
async def add_audience(request: Request, user: User, name: Text) -> Response:
    """Add an audience (channel, purpose, holdout) to the segment's file, then queue the
    segment's refresh and the audience's build."""
    require(user, "segments:write")
    fields = await _form(request, user)
    if fields is None:
        return _csrf_refused(request, user)
    project = _project(request)
    _ = translator(user.lang)
    seg = sd.saved_segments(project).get(name)
    if seg is None:
        return error_page(request, user, user.lang, 404, _("Page not found"),
                          _("There is no segment named “%(name)s”.", name=name[:63]))
    b = builder_of(seg, sd.current_text(project, name))
    if b is None:
        return error_page(request, user, user.lang, 400, seg.name,
                          _(TOO_DEEP))
    try:
        holdout = float(fields.get("holdout", "10").replace(",", "."))
    except ValueError:
        return _page(request, user, b, 400, audience_error=_(BAD_HOLDOUT))
    channel = fields.get("channel", "")
    entry = sd.audience_entry(fields.get("audience", "").strip()[:63],
                              channel if channel in CHANNELS else "email",
                              fields.get("purpose") or None, holdout)
    audiences = [a.model_dump(exclude={"segment"}, exclude_none=True) for a in seg.audiences
                 if a.name != entry["name"]] + [entry]
    try:
        outcome = locked(lambda: sd.save(project, b, user.principal.display_name, True, audiences))
    except FormError as exc:
        return _page(request, user, b, 400, audience_error=said(exc, user))
    except PasserelleError as exc:
        return _page(request, user, b, 400, audience_error=exc.reason)
    if not outcome.saved:
        return _page(request, user, b, 400, audience_problems=outcome.problems)
    _audit(request, user, "segment.audience", outcome.path, audience=entry["name"])
    sd.reload_definitions(project, request.app.state.server_project)
    db, who = app_db(request), user.principal.author
    queue.enqueue(db, "segment_refresh", {"names": [name], "full": True}, who)
    job = queue.enqueue(db, "audience_build", {"audience": entry["name"]}, who)
    _wake(request)
    return RedirectResponse(f"/jobs/{job}", status_code=303)


@router.post("/segments/{name}/export")
async def export(request: Request, user: User, name: Text) -> Response:
    """Queue the export of one of the segment's audiences to a destination."""
    require(user, "audiences:export")
    fields = await _form(request, user)
    if fields is None:
        return _csrf_refused(request, user)
    project = _project(request)
    _ = translator(user.lang)
    seg = sd.saved_segments(project).get(name)
    audience = fields.get("audience", "")
    destination = fields.get("destination", "")
    if seg is None or audience not in {a.name for a in seg.audiences} \
            or destination not in _destinations(project):
        return error_page(request, user, user.lang, 400, _("Something went wrong"),
                          _("Choose one of the segment's audiences and a destination."))
    job = queue.enqueue(app_db(request), "export",
                        {"audience": audience, "destination": destination},
                        user.principal.author)
    _wake(request)
    return RedirectResponse(f"/jobs/{job}", status_code=303)


def said(exc: FormError, user: PageUser) -> str:
    """A form error in the reader's language."""
    return translator(user.lang)(exc.message, **exc.values)


def _audit(request: Request, user: PageUser, action: str, resource: str,
           **detail: str) -> None:
    """A project file written from the web app, in the audit log (ids, no e-mail)."""
    from passerelle.governance import audit

    with app_db(request).session() as session:
        audit.record(session, user.principal.audit_actor, action, resource=resource,
                     ip=client_ip(request), detail=detail or None)


def _wake(request: Request) -> None:
    worker = getattr(request.app.state, "worker", None)
    if worker is not None:
        worker.wake()


@router.get("/jobs/{job_id}")
def job(request: Request, user: User, job_id: int = Path(ge=1, le=2**31 - 1)) -> Response:
    """A job with its progress bar; the bar's part reloads itself until the job ends."""
    _ = translator(user.lang)
    try:
        found = queue.get(app_db(request), job_id)
    except queue.JobNotFound:
        return error_page(request, user, user.lang, 404, _("Page not found"),
                          _("There is no job %(id)s.", id=job_id))
    earlier = [j for j in queue.recent(app_db(request), 10)
               if j["job_id"] < job_id and j["status"] in ("queued", "running")]
    partial = bool(request.headers.get("hx-request"))
    reload = partial and request.query_params.get("reload") == "1"
    response = render(request, "_job_progress.html" if partial else "job.html", user.lang,
                      user=user, job=found, waiting=earlier, reload=reload,
                      fm=formatter(user.lang, _project(request)))
    if reload and found["status"] == "succeeded":
        # a page waiting for this job's figures (web/stored.py) shows them now
        response.headers["HX-Refresh"] = "true"
    return response

