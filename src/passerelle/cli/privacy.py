"""`passerelle privacy`: GDPR access, erasure and the register of requests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from passerelle.cli.common import ProjectOpt, app, console, open_project, print_json

privacy_app = typer.Typer(no_args_is_help=True,
                          help="GDPR requests: access, erasure, and their register.")
app.add_typer(privacy_app, name="privacy")
SubjectArg = Annotated[str, typer.Argument(
    help="The person: person id, source:id, customer id, e-mail, phone or loyalty card.")]
RequestedByOpt = Annotated[str | None, typer.Option(
    "--by", help="Who handles the request (default: your user name).")]
RecordsOpt = Annotated[str | None, typer.Option(
    "--records", help="Only these records of the person, as source:id separated by commas "
                      "(when identity merged two people, e.g. a couple's family e-mail).")]


def _records(records: str | None) -> list[str] | None:
    return [r.strip() for r in records.split(",") if r.strip()] if records else None


@privacy_app.command("access")
def privacy_access(
    subject: SubjectArg,
    out: Annotated[Path, typer.Option("--out", "-o", help="JSON file to write.")],
    by: RequestedByOpt = None,
    records: RecordsOpt = None,
    project: ProjectOpt = Path("."),
) -> None:
    """Write everything held about a person to a JSON file (access and portability)."""
    from passerelle.identity import service
    from passerelle.privacy import access_report, person_of

    chosen = _records(records)
    with open_project(project) as proj:
        person = person_of(proj.definition, proj.engine, subject, chosen)
        report = access_report(proj.definition, proj.engine, person,
                               requested_by=by or service.default_author(),
                               records=chosen)
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
    records: RecordsOpt = None,
    rewrite_exports: Annotated[bool, typer.Option(
        "--rewrite-exports", help="Rewrite the CSV exports on disk that hold the person "
                                  "without their rows.")] = False,
    vacuum_full: Annotated[bool, typer.Option(
        "--vacuum-full", help="PostgreSQL: VACUUM FULL the tables touched, so their files "
                              "no longer hold the deleted rows (locks each table).")] = False,
    yes: Annotated[bool, typer.Option("--yes", help="Erase without asking to confirm.")]
    = False,
    project: ProjectOpt = Path("."),
) -> None:
    """Erase a person everywhere and keep them out of later loads (shows what first)."""
    from passerelle.identity import service
    from passerelle.privacy import erase_person, person_of, preview_erasure
    from passerelle.render import erasure_text

    chosen = _records(records)
    with open_project(project) as proj:
        person = person_of(proj.definition, proj.engine, subject, chosen)
        preview = preview_erasure(proj.definition, proj.engine, person, records=chosen)
        console.print(erasure_text(preview, done=False))
        files = [f["file"] for f in preview["export_files"]]
        if files:
            console.print("CSV exports on disk that hold the person: " + ", ".join(files))
        if not yes:
            if not typer.confirm("Erase this person? This cannot be undone"):
                console.print("Nothing erased.")
                raise typer.Exit(1)
            if files and not rewrite_exports:
                rewrite_exports = typer.confirm("Rewrite these files without the person?")
        done = erase_person(proj.definition, proj.engine, person,
                            requested_by=by or service.default_author(), reason=reason,
                            records=chosen, rewrite_exports=rewrite_exports,
                            vacuum_full=vacuum_full)
    console.print(erasure_text(done, done=True))
    for r in done["exports_rewritten"]:
        console.print(f"Rewrote {r['file']} without the person ({r['rows_removed']} row(s)).")
    left = sorted(set(files) - {r["file"] for r in done["exports_rewritten"]})
    if left:
        console.print("These files still hold the person: " + ", ".join(left) + ". Rewrite "
                      "them with `--rewrite-exports` at the erasure, or delete them.",
                      style="yellow")
    storage = done["storage"]
    if storage.get("to_run"):
        console.print("The database files still hold the deleted rows until their tables are "
                      f"rewritten: run `{storage['to_run']}` at a quiet time (it locks each "
                      "table), or erase with --vacuum-full. Backups and the WAL keep them until "
                      "they rotate.", style="yellow")


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
        print_json(rows)
        return
    table = Table(header_style="bold")
    for col in ("request", "kind", "person", "by", "at", "reason"):
        table.add_column(col)
    for r in rows:
        table.add_row(r["request_id"], r["kind"], r["person_id"], r["requested_by"] or "",
                      str(r["at"])[:19], r["reason"] or "")
    console.print(table if rows else "No request registered.")
