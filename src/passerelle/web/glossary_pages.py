"""The glossary's review flow and lineage: anyone signed in proposes a new or changed
metric or trait definition and comments; a reviewer (``glossary:approve``) approves or
rejects it. Approval writes the YAML into the project (web/glossary_review.py) and reloads
the web app's definition of the project. The lineage of each entry is drawn as a graph
down to the source columns."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, Query, Request
from fastapi.responses import RedirectResponse, Response

from passerelle.errors import PasserelleError
from passerelle.governance import proposals
from passerelle.governance.errors import CsrfFailed
from passerelle.web import glossary_review, lineage
from passerelle.web.auth import PageUser, app_db, checked_form, client_ip, require
from passerelle.web.i18n import translator
from passerelle.web.pages import User, error_page, locked, render

router = APIRouter(include_in_schema=False, prefix="/glossary")
NAME_PATTERN = r"^[a-z][a-z0-9_]{0,62}$"


def install(app: FastAPI) -> None:
    app.include_router(router)


async def _form(request: Request, user: PageUser,
                limit: int = 16_384) -> dict[str, str] | Response:
    try:
        return await checked_form(request, user, limit)
    except CsrfFailed:
        _ = translator(user.lang)
        return error_page(request, user, user.lang, 403, _("Something went wrong"),
                          _("The form expired: please submit it again."))


def _not_found(request: Request, user: PageUser, exc: PasserelleError) -> Response:
    _ = translator(user.lang)
    return error_page(request, user, user.lang, 404, _("Page not found"), exc.reason,
                      exc.instruction)


# ------------------------------------------------------------------------------ proposals
@router.get("/proposals")
def proposals_page(request: Request, user: User) -> Response:
    rows = proposals.list_proposals(app_db(request))
    return render(request, "glossary_proposals.html", user.lang, user=user,
                  open_rows=[p for p in rows if p.status == "open"],
                  closed_rows=[p for p in rows if p.status != "open"])


@router.get("/propose")
def propose_form(request: Request, user: User,
                 kind: Annotated[str, Query(pattern="^(metric|trait)$")] = "metric",
                 name: Annotated[str | None, Query(pattern=NAME_PATTERN)] = None) -> Response:
    project = request.app.state.web_project
    text = glossary_review.current_text(project.root, kind, name) if name else None
    return render(request, "glossary_propose.html", user.lang, user=user, kind=kind,
                  entry_name=name or "", yaml_text=text or "", note="", changing=text is not None)


@router.post("/proposals")
async def propose(request: Request, user: User) -> Response:
    fields = await _form(request, user, 3 * (proposals.YAML_LIMIT + proposals.NOTE_LIMIT))
    if isinstance(fields, Response):
        return fields
    import re

    project = request.app.state.web_project
    kind, name = fields.get("kind", ""), fields.get("name", "").strip()
    text, note = fields.get("yaml_text", ""), fields.get("note", "").strip()
    _ = translator(user.lang)
    try:
        if kind not in glossary_review.FOLDERS or not re.match(NAME_PATTERN, name):
            raise PasserelleError(_("Choose metric or trait and a name in lower_case."),
                                  _("Letters, digits and _; starting with a letter."))
        if len(text) > proposals.YAML_LIMIT:
            raise PasserelleError(_("The definition is too long."),
                                  _("Keep it under 20,000 characters."))
        glossary_review.preview(project.root, kind, name, text)  # refused now, not later
        created = proposals.propose(app_db(request), kind, name, text, note[:2000],
                                    user.principal.audit_actor, client_ip(request))
    except PasserelleError as exc:
        return render(request, "glossary_propose.html", user.lang, 400, user=user,
                      kind=kind if kind in glossary_review.FOLDERS else "metric", entry_name=name,
                      yaml_text=text, note=note, changing=False, error=exc)
    return RedirectResponse(f"/glossary/proposals/{created.id}", status_code=303)


def _proposal_page(request: Request, user: PageUser, proposal_id: int, status: int = 200,
                   error: PasserelleError | None = None, done: str | None = None) -> Response:
    project = request.app.state.web_project
    try:
        proposal = proposals.get(app_db(request), proposal_id)
    except PasserelleError as exc:
        return _not_found(request, user, exc)
    current = glossary_review.current_text(project.root, proposal.kind, proposal.name)
    target = glossary_review.locate(project.root, proposal.kind, proposal.name).file
    return render(request, "glossary_proposal.html", user.lang, status, user=user,
                  p=proposal, current=current, target=target, error=error, done=done)


@router.get("/proposals/{proposal_id}")
def proposal_page(request: Request, user: User, proposal_id: int) -> Response:
    return _proposal_page(request, user, proposal_id)


@router.post("/proposals/{proposal_id}/comment")
async def comment(request: Request, user: User, proposal_id: int) -> Response:
    fields = await _form(request, user)
    if isinstance(fields, Response):
        return fields
    try:
        proposals.comment(app_db(request), proposal_id, fields.get("text", "")[:4000],
                          user.principal.audit_actor, client_ip(request))
    except proposals.ProposalNotFound as exc:
        return _not_found(request, user, exc)
    except PasserelleError as exc:
        return _proposal_page(request, user, proposal_id, 400, error=exc)
    return RedirectResponse(f"/glossary/proposals/{proposal_id}#comments", status_code=303)


@router.post("/proposals/{proposal_id}/decide")
async def decide(request: Request, user: User, proposal_id: int) -> Response:
    require(user, "glossary:approve")
    fields = await _form(request, user)
    if isinstance(fields, Response):
        return fields
    _ = translator(user.lang)
    approve = fields.get("decision") == "approve"
    if fields.get("decision") not in ("approve", "reject"):
        return _proposal_page(request, user, proposal_id, 400, error=PasserelleError(
            _("Unknown action."), _("Use the buttons of the page.")))
    project = request.app.state.web_project

    def write(p: proposals.Proposal) -> str:
        return glossary_review.write_definition(project.root, p.kind, p.name, p.yaml_text)

    try:
        decided = locked(lambda: proposals.decide(app_db(request), proposal_id, approve,
                                                  user.principal.audit_actor, write,
                                                  client_ip(request)))
    except proposals.ProposalNotFound as exc:
        return _not_found(request, user, exc)
    except PasserelleError as exc:
        return _proposal_page(request, user, proposal_id, 400, error=exc)
    if approve:
        locked(lambda: _reload(project))
        done = _("Approved: the definition is written to %(file)s; the next run computes it.",
                 file=decided.written_to)
    else:
        done = _("Rejected.")
    return _proposal_page(request, user, proposal_id, done=done)


def _reload(project: Any) -> None:
    """The web app's project reads its definition again (its warehouse connection stays)."""
    from passerelle.definition import load_project

    project.definition = load_project(project.root)


# -------------------------------------------------------------------------------- lineage
@router.get("/lineage/{kind}/{name}")
def lineage_page(request: Request, user: User, kind: str, name: str) -> Response:
    import re

    project = request.app.state.web_project
    _ = translator(user.lang)
    if kind not in glossary_review.FOLDERS or not re.match(NAME_PATTERN, name):
        return _not_found(request, user, PasserelleError(
            _("No such entry in the glossary."), _("Open the glossary to pick one.")))
    entries = locked(lambda: lineage.glossary_entries(request.app.state, project))
    graph = lineage.build(project, entries, kind, name)
    if graph is None:
        return _not_found(request, user, PasserelleError(
            _("No such entry in the glossary."), _("Open the glossary to pick one.")))
    entry = next(e for e in entries if e["kind"] == kind and e["name"] == name)
    return render(request, "glossary_lineage.html", user.lang, user=user, entry=entry,
                  graph=lineage.layout(graph))
