"""`passerelle profile` and `passerelle identity`: who is who, and why."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

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

if TYPE_CHECKING:
    from rich.console import RenderableType

    from passerelle.formatting import Formatter
    from passerelle.identity.blocking import BlockingReport

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


@identity_app.command("blocking")
def identity_blocking(
    project: ProjectOpt = Path("."),
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Pairs each blocking rule generates, those only it finds, and the recall ceiling."""
    from passerelle.identity import service

    with open_project(project) as proj:
        report = service.blocking(proj.definition, proj.engine)
    if as_json:
        sys.stdout.write(json.dumps(report.to_dict(), indent=2, ensure_ascii=False) + "\n")
    else:
        console.print(render_blocking(report, formatter(proj)))


@identity_app.command("suggest")
def identity_suggest(
    project: ProjectOpt = Path("."),
    out: Annotated[Path | None, typer.Option(
        "--out", help="Write the proposal to this file (inside the project).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace --out if it exists.")]
    = False,
) -> None:
    """Propose an identity.yml from the staged records, with comments saying why."""
    from passerelle.identity import service

    with open_project(project) as proj:
        text = service.suggest(proj.definition, proj.engine, out, force)
    if out is None:
        sys.stdout.write(text)
    else:
        console.print(f"Wrote the proposed identity.yml to {out}: review it, then rename it "
                      "identity.yml.")


def render_blocking(report: BlockingReport, fmt: Formatter) -> RenderableType:
    """The blocking report as a table that fits the terminal, and the recall ceiling."""
    from rich.console import Group
    from rich.text import Text

    from passerelle.render import FitTable

    n = fmt.number
    rows = [[", ".join(r.rule), n(r.comparisons), n(r.marginal), n(r.cumulative),
             n(r.only_here), r.why] for r in report.rules]
    how = "chosen by blocking: auto" if report.auto else "identity.yml"
    table = FitTable(["rule", "pairs", "new", "cumulative", "only this rule", "why"]
                     if report.auto else ["rule", "pairs", "new", "cumulative",
                                          "only this rule"],
                     rows if report.auto else [r[:5] for r in rows], free=("why",),
                     right=("pairs", "new", "cumulative", "only this rule"),
                     title=f"Blocking rules ({how}), on {n(report.records)} distinct records")
    lines = Text()
    share = report.total / report.all_pairs if report.all_pairs else 0
    lines.append(f"{n(report.total)} candidate pairs of {n(report.all_pairs)} "
                 f"({fmt.percent(share, 3)}); budget {n(report.budget)}.\n")
    lines.append("Recall ceiling (share of true pairs the rules compare):\n", style="bold")
    for label, part in (("deterministic links", report.keys),
                        ("pairs the model links, by looser rules on a sample", report.model)):
        if part is None:
            lines.append(f"  {label}: —\n")
        else:
            hit, total = part
            lines.append(f"  {label}: {fmt.percent(hit / total if total else 0, 1)} "
                         f"({n(hit)} of {n(total)})\n")
    if report.model is not None:
        loose = "; ".join(", ".join(r) for r in report.loose_rules)
        lines.append(f"  looser rules: {loose}; sample of {n(report.sample)} records\n",
                     style="dim")
    if report.note:
        lines.append(f"  {report.note}\n", style="yellow")
    return Group(table if report.rules else Text("No blocking rule."), lines)


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
