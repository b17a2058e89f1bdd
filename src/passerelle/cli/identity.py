"""`passerelle profile` and `passerelle identity`: who is who, and why."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from passerelle.cli.common import (
    JsonOpt,
    ProjectOpt,
    app,
    console,
    formatter,
    open_project,
    print_json,
)

identity_app = typer.Typer(no_args_is_help=True, help="Identity: who is who, and why.")
app.add_typer(identity_app, name="identity")
RecordArg = Annotated[str, typer.Argument(help="A record as source:record_id.")]


@app.command()
def profile(
    query: Annotated[str, typer.Argument(help="Person id, source:id, customer id, e-mail, "
                                              "phone or loyalty card.")],
    project: ProjectOpt = Path("."),
    mask: Annotated[bool, typer.Option(help="Mask e-mails, phones, birth dates, addresses.")]
    = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the view as JSON.")] = False,
) -> None:
    """Show one person's 360° view: golden record, sources, orders, events, and why."""
    from passerelle.cli.remote import remote_server, segment_path
    from passerelle.identity import service
    from passerelle.identity.render import render_person

    if (remote := remote_server(project)):
        view = remote.get(f"/api/persons/{segment_path(query)}", mask=mask)
        proj = open_project(project, core=True)  # its locale and zone (no warehouse opened)
    else:
        with open_project(project) as proj:
            view = service.profile(proj.definition, proj.engine, query, mask_pii=mask)
    if as_json:
        print_json(view)
    else:
        console.print(render_person(view, formatter(proj)))


@identity_app.command("report")
def identity_report(
    project: ProjectOpt = Path("."),
    truth: Annotated[Path | None, typer.Option(
        help="Ground truth (the demo's truth/records.csv): adds precision, recall, F1.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Profiles, records per profile, biggest clusters, refused shared keys, accuracy."""
    from passerelle.identity import service
    from passerelle.identity.render import render_report

    with open_project(project) as proj:
        report = service.report(proj.engine, truth)
    if as_json:
        print_json(report)
    else:
        console.print(render_report(report, formatter(proj)))


def _pin(kind: str, record_a: str, record_b: str, reason: str, author: str | None,
         project: Path) -> None:
    from passerelle.identity import service

    with open_project(project) as proj:
        pin_id = service.pin(proj.definition, proj.engine, kind, record_a, record_b, reason,
                             author)
    what = "the same person" if kind == "merge" else "different people"
    console.print(f"[green]Pinned[/green] {record_a} and {record_b} as {what} ({pin_id}). "
                  "The next `passerelle run` applies it.")


ReasonOpt = Annotated[str, typer.Option(help="Why (kept in the audit ledger).")]
AuthorOpt = Annotated[str | None, typer.Option(help="Who decides (default: your user name).")]


@identity_app.command()
def merge(record_a: RecordArg, record_b: RecordArg, reason: ReasonOpt,
          author: AuthorOpt = None, project: ProjectOpt = Path(".")) -> None:
    """Pin two records as the same person, whatever the rules say."""
    _pin("merge", record_a, record_b, reason, author, project)


@identity_app.command()
def split(record_a: RecordArg, record_b: RecordArg, reason: ReasonOpt,
          author: AuthorOpt = None, project: ProjectOpt = Path(".")) -> None:
    """Pin two records as different people, whatever the rules say."""
    _pin("split", record_a, record_b, reason, author, project)


@identity_app.command()
def unpin(pin_id: Annotated[str, typer.Argument(help="Pin id, as `identity pins` shows.")],
          author: AuthorOpt = None, project: ProjectOpt = Path(".")) -> None:
    """Withdraw a pin made from the CLI or the API (it stays in the audit ledger)."""
    from passerelle.identity import service

    with open_project(project) as proj:
        pin = service.unpin(proj.engine, pin_id, author)
    console.print(f"Withdrew pin {pin.pin_id} ({pin.kind} {pin.node_a} {pin.node_b}).")


@identity_app.command("pins")
def list_pins(project: ProjectOpt = Path("."), as_json: JsonOpt = False) -> None:
    """List the pins in force (identity.yml's and those made from the CLI or API)."""
    from rich.table import Table

    from passerelle.identity import service

    with open_project(project) as proj:
        pins = service.pins(proj.definition, proj.engine)
    if as_json:
        return print_json(pins)
    table = Table(header_style="bold")
    for col in ("pin", "kind", "record a", "record b", "reason", "author", "origin"):
        table.add_column(col)
    for p in pins:
        table.add_row(p.pin_id, p.kind, p.node_a, p.node_b, p.reason, p.author or "", p.origin)
    console.print(table if pins else "No pin.")


@identity_app.command()
def why(record_a: RecordArg, record_b: RecordArg, project: ProjectOpt = Path("."),
        as_json: JsonOpt = False) -> None:
    """Why are these two records one person: the chain of links, with evidence and dates."""
    from passerelle.identity import service
    from passerelle.identity.render import evidence_text

    with open_project(project) as proj:
        path = service.why(proj.engine, record_a, record_b)
    if as_json:
        return print_json(path)
    if not path:
        console.print(f"{record_a} and {record_b} are different people.")
        return
    for step in path:
        console.print(f"{step['node_a']} — {step['node_b']}: {step['rule']} "
                      f"[dim](since run {step['first_seen_run']})[/dim]\n    "
                      f"{evidence_text(step['rule'], step['evidence'])}", highlight=False)


@identity_app.command()
def diff(
    candidate: Annotated[Path, typer.Argument(help="The changed identity.yml to preview.")],
    project: ProjectOpt = Path("."),
    as_json: Annotated[bool, typer.Option("--json", help="Print the diff as JSON.")] = False,
) -> None:
    """Preview what a changed identity.yml would merge and split, before applying it."""
    from passerelle.identity import service
    from passerelle.render import identity_diff_text

    with open_project(project) as proj:
        result = service.diff(proj.definition, proj.engine, candidate, proj.reporter)
    if as_json:
        print_json(result)
    else:
        console.print(identity_diff_text(result))


@identity_app.command()
def train(project: ProjectOpt = Path(".")) -> None:
    """Re-train the probabilistic model on the current records and save it."""
    from passerelle.identity import service

    with open_project(project) as proj:
        info = service.train(proj.definition, proj.engine, proj.reporter)
    console.print(f"Model trained on {info.records:,} records and saved to {info.path}. "
                  "Commit it; the next runs use it.")
