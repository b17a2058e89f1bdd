"""`passerelle privacy`: GDPR access, erasure and the register of requests."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from passerelle.cli.common import ProjectOpt, app, console, open_project

privacy_app = typer.Typer(no_args_is_help=True,
                          help="GDPR requests: access, erasure, and their register.")
app.add_typer(privacy_app, name="privacy")
SubjectArg = Annotated[str, typer.Argument(
    help="The person: person id, source:id, customer id, e-mail, phone or loyalty card.")]
RequestedByOpt = Annotated[str | None, typer.Option(
    "--by", help="Who handles the request (default: your user name).")]


@privacy_app.command("access")
def privacy_access(
    subject: SubjectArg,
    out: Annotated[Path, typer.Option("--out", "-o", help="JSON file to write.")],
    by: RequestedByOpt = None,
    project: ProjectOpt = Path("."),
) -> None:
    """Write everything held about a person to a JSON file (access and portability)."""
    from passerelle.identity import service
    from passerelle.privacy import access_report

    with open_project(project) as proj:
        person = service.person_id_of(proj.definition, proj.engine, subject)
        report = access_report(proj.definition, proj.engine, person,
                               requested_by=by or service.default_author())
    out.write_text(json.dumps(report, indent=2, ensure_ascii=False, default=str) + "\n",
                   encoding="utf-8")
    rows = sum(len(v) for v in report["source_rows"].values())
    derived = sum(len(v) for v in report["derived_rows"].values())
    console.print(f"Wrote {out}: {len(report['records'])} record(s), {rows} source row(s), "
                  f"{derived} derived row(s), {len(report['exports'])} export(s). "
                  f"Request {report['request_id']} registered.")


@privacy_app.command("erase")
def privacy_erase(
    subject: SubjectArg,
    reason: Annotated[str, typer.Option(help="Why: the request and its date, for the "
                                             "register.")],
    by: RequestedByOpt = None,
    yes: Annotated[bool, typer.Option("--yes", help="Erase without asking to confirm.")]
    = False,
    project: ProjectOpt = Path("."),
) -> None:
    """Erase a person everywhere and keep them out of later loads (shows what first)."""
    from passerelle.identity import service
    from passerelle.privacy import erase_person, preview_erasure
    from passerelle.render import erasure_text

    with open_project(project) as proj:
        person = service.person_id_of(proj.definition, proj.engine, subject)
        console.print(erasure_text(preview_erasure(proj.definition, proj.engine, person),
                                   done=False))
        if not yes and not typer.confirm("Erase this person? This cannot be undone"):
            console.print("Nothing erased.")
            raise typer.Exit(1)
        done = erase_person(proj.definition, proj.engine, person,
                            requested_by=by or service.default_author(), reason=reason)
    console.print(erasure_text(done, done=True))


@privacy_app.command("requests")
def privacy_requests(
    project: ProjectOpt = Path("."),
    as_json: Annotated[bool, typer.Option("--json", help="Print the register as JSON.")]
    = False,
) -> None:
    """The register of access and erasure requests, latest first."""
    from rich.table import Table

    from passerelle.privacy import list_requests

    with open_project(project) as proj:
        rows = list_requests(proj.engine)
    if as_json:
        sys.stdout.write(json.dumps(rows, indent=2, ensure_ascii=False, default=str) + "\n")
        return
    table = Table(header_style="bold")
    for col in ("request", "kind", "person", "by", "at", "reason"):
        table.add_column(col)
    for r in rows:
        table.add_row(r["request_id"], r["kind"], r["person_id"], r["requested_by"] or "",
                      str(r["at"])[:19], r["reason"] or "")
    console.print(table if rows else "No request registered.")
