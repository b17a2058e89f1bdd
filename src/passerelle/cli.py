"""Command line: parses options and forwards to :class:`passerelle.Project`. Nothing else."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from passerelle.errors import ExitCode, PasserelleError, ProjectError

app = typer.Typer(
    name="passerelle", no_args_is_help=True, add_completion=False,
    help="Passerelle: the customer data platform marketing and IT share.",
)
console = Console()
err_console = Console(stderr=True)
_state = {"debug": False}

ProjectOpt = Annotated[Path, typer.Option(
    "--project", "-p", envvar="PASSERELLE_PROJECT", help="Project folder.",
    show_default="current folder")]


@app.callback()
def _main(debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks.")] = False) -> None:
    _state["debug"] = debug


def _reporter():
    from passerelle.reporter import RichReporter

    return RichReporter(err_console)


def _open(project_dir: Path):
    import passerelle

    return passerelle.open(project_dir, reporter=_reporter())


@app.command()
def init(directory: Annotated[Path, typer.Argument(help="Folder to create.")]) -> None:
    """Write a commented starter project into DIRECTORY."""
    from passerelle.project.starter import init_project

    files = init_project(directory)
    console.print(f"[green]Created[/green] {directory} with {len(files)} files.")
    console.print(f"Next: [bold]passerelle validate -p {directory}[/bold], then "
                  f"[bold]passerelle run -p {directory}[/bold]")


@app.command()
def validate(
    project: ProjectOpt = Path("."),
    offline: Annotated[bool, typer.Option(help="Only parse files; open no file or database.")]
    = False,
) -> None:
    """Check the project and report every problem at once, with file, line and hint."""
    from passerelle.render import problems_text

    with _open(project) as proj:
        problems = proj.validate(connect=not offline)
    if problems.items:
        console.print(problems_text(problems.items), end="", soft_wrap=True)
    if problems.errors:
        n = len(problems.errors)
        err_console.print(f"[bold red]{n} problem{'s' if n > 1 else ''}[/bold red] to fix.")
        raise typer.Exit(ExitCode.USER_ERROR)
    console.print(f"[green]✓[/green] {proj.root.name}: {len(proj.sources)} sources, "
                  f"{len(proj.definition.checks)} checks, all valid.")


@app.command()
def schema(
    kind: Annotated[str, typer.Argument(
        help="passerelle | identity | source | checks | metrics | traits | destination | "
             "segment")]
    = "passerelle",
    out: Annotated[Path | None, typer.Option(help="Write every schema into this folder.")]
    = None,
) -> None:
    """Print the JSON Schema of a project file (for editor completion)."""
    from passerelle.project.schema import SCHEMAS, json_schema, write_schemas

    if out is not None:
        for path in write_schemas(out):
            console.print(f"wrote {path}")
        return
    if kind not in SCHEMAS:
        raise PasserelleError(f"Unknown schema '{kind}'.", f"Choose one of: {', '.join(SCHEMAS)}.")
    sys.stdout.write(json.dumps(json_schema(kind), indent=2, ensure_ascii=False) + "\n")


@app.command()
def run(
    project: ProjectOpt = Path("."),
    source: Annotated[str | None, typer.Option(help="Run only this source.")] = None,
    full: Annotated[bool, typer.Option(help="Redo every step, even those whose inputs did not "
                                            "change.")]
    = False,
) -> None:
    """Load new data from every source, stage it, check it."""
    from passerelle.render import run_summary

    with _open(project) as proj:
        result = proj.run(source=source, full=full)
    console.print(run_summary(result))
    _exit_for(result)


def _exit_for(result) -> None:
    for error in result.errors:
        err_console.print(f"[red]✗[/red] {error.reason}", highlight=False)
        if error.instruction:
            err_console.print(f"  [dim]→ {error.instruction}[/dim]", highlight=False)
    if result.failed_checks:
        err_console.print(f"[red]✗ {len(result.failed_checks)} error-severity check(s) failed; "
                          "later steps were skipped.[/red]")
        raise typer.Exit(ExitCode.USER_ERROR)
    if result.errors:
        raise typer.Exit(max(int(e.exit_code) for e in result.errors))


@app.command()
def status(
    project: ProjectOpt = Path("."),
    limit: Annotated[int, typer.Option(help="Number of runs to show.")] = 5,
) -> None:
    """Show the last pipeline runs, step by step."""
    from passerelle.render import runs_table

    with _open(project) as proj:
        rows = proj.status(limit)
    if not rows:
        console.print("No run yet. Start one with [bold]passerelle run[/bold].")
        return
    console.print(runs_table(rows))


@app.command()
def demo(
    directory: Annotated[Path, typer.Argument(help="Folder for the demo project.")]
    = Path("passerelle-demo"),
    size: Annotated[int, typer.Option(help="Number of people in the demo company.")] = 2000,
    seed: Annotated[int, typer.Option(help="Random seed (same seed, same data).")] = 42,
    eshop_mysql: Annotated[str | None, typer.Option(
        help="Write the e-shop into this MariaDB/MySQL database instead of files, e.g. "
             "mysql://root@127.0.0.1:3306/passerelle_demo")] = None,
) -> None:
    """Generate a demo retailer, write its project, and run the whole pipeline on it."""
    from passerelle.demo.run import run_demo
    from passerelle.render import run_summary

    outcome = run_demo(directory, size=size, seed=seed, eshop_mysql=eshop_mysql,
                       reporter=_reporter())
    console.print(run_summary(outcome.result))
    console.print(
        f"\n[bold]Demo ready[/bold] in {outcome.project_dir} "
        f"(ground truth in {outcome.truth_dir}).\n"
        f"  passerelle status -p {outcome.project_dir}    last runs\n"
        f"  passerelle run -p {outcome.project_dir}       re-run: only new data is loaded\n"
        f"  passerelle validate -p {outcome.project_dir}  check the project files\n"
        "The tables are in warehouse.duckdb inside the project; docs/ explains each one."
    )
    _exit_for(outcome.result)


@app.command()
def serve(
    project: ProjectOpt = Path("."),
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8080,
    loader: Annotated[bool, typer.Option(help="Move collected events into the warehouse "
                                               "continuously.")] = True,
) -> None:
    """Serve the event collector (/v1, Segment-Spec) and the REST API (/api, /docs)."""
    from passerelle.api.app import serve as run_server

    with _open(project) as proj:
        console.print(f"Passerelle on http://{host}:{port}  (API docs: /docs; Ctrl-C stops)")
        run_server(proj, host=host, port=port, loader=loader)


events_app = typer.Typer(no_args_is_help=True, help="Collected events and the tracking plan.")
app.add_typer(events_app, name="events")


@events_app.command("violations")
def events_violations(
    project: ProjectOpt = Path("."),
    source: Annotated[str | None, typer.Option(help="Only this collector source.")] = None,
) -> None:
    """Events that broke the tracking plan, grouped by event and rule."""
    from rich.table import Table

    from passerelle.collect import list_violations

    with _open(project) as proj:
        rows = list_violations(proj.engine, source)
    if not rows:
        console.print("No violation of the tracking plan.")
        return
    table = Table(header_style="bold")
    for col in ("source", "event", "rule", "field", "events", "last seen", "example"):
        table.add_column(col)
    for r in rows:
        table.add_row(r["source"], r["event"] or "", r["rule"], r["field"] or "",
                      f"{r['events']:,}", str(r["last_seen"])[:19], str(r["example"] or "")[:60])
    console.print(table)


# ------------------------------------------------------------------------------ identity
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
    from passerelle.identity import service
    from passerelle.identity.render import render_person

    with _open(project) as proj:
        view = service.profile(proj.definition, proj.engine, query, mask_pii=mask)
    if as_json:
        sys.stdout.write(json.dumps(view, indent=2, ensure_ascii=False, default=str) + "\n")
    else:
        console.print(render_person(view))


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

    with _open(project) as proj:
        report = service.report(proj.engine, truth)
    if as_json:
        sys.stdout.write(json.dumps(report, indent=2, ensure_ascii=False, default=str) + "\n")
    else:
        console.print(render_report(report))


def _pin(kind: str, record_a: str, record_b: str, reason: str, author: str | None,
         project: Path) -> None:
    from passerelle.identity import service

    with _open(project) as proj:
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

    with _open(project) as proj:
        pin = service.unpin(proj.engine, pin_id, author)
    console.print(f"Withdrew pin {pin.pin_id} ({pin.kind} {pin.node_a} {pin.node_b}).")


@identity_app.command("pins")
def list_pins(project: ProjectOpt = Path(".")) -> None:
    """List the pins in force (identity.yml's and those made from the CLI or API)."""
    from rich.table import Table

    from passerelle.identity import service

    with _open(project) as proj:
        pins = service.pins(proj.definition, proj.engine)
    table = Table(header_style="bold")
    for col in ("pin", "kind", "record a", "record b", "reason", "author", "origin"):
        table.add_column(col)
    for p in pins:
        table.add_row(p.pin_id, p.kind, p.node_a, p.node_b, p.reason, p.author or "", p.origin)
    console.print(table if pins else "No pin.")


@identity_app.command()
def why(record_a: RecordArg, record_b: RecordArg, project: ProjectOpt = Path(".")) -> None:
    """Why are these two records one person: the chain of links, with evidence and dates."""
    from passerelle.identity import service
    from passerelle.identity.render import evidence_text

    with _open(project) as proj:
        path = service.why(proj.engine, record_a, record_b)
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

    with _open(project) as proj:
        result = service.diff(proj.definition, proj.engine, candidate, proj.reporter)
    if as_json:
        sys.stdout.write(json.dumps(result, indent=2, ensure_ascii=False, default=str) + "\n")
    else:
        console.print(identity_diff_text(result))


@identity_app.command()
def train(project: ProjectOpt = Path(".")) -> None:
    """Re-train the probabilistic model on the current records and save it."""
    from passerelle.identity import service

    with _open(project) as proj:
        info = service.train(proj.definition, proj.engine, proj.reporter)
    console.print(f"Model trained on {info.records:,} records and saved to {info.path}. "
                  "Commit it; the next runs use it.")


# ------------------------------------------------------------------------------ segments
segment_app = typer.Typer(no_args_is_help=True, help="Segments: count, look, refresh.")
app.add_typer(segment_app, name="segment")
audience_app = typer.Typer(no_args_is_help=True, help="Audiences: consented, with holdouts.")
app.add_typer(audience_app, name="audience")
SegmentArg = Annotated[str, typer.Argument(help="Segment name (segments/<name>.yml).")]


@segment_app.command("count")
def segment_count(name: SegmentArg, project: ProjectOpt = Path(".")) -> None:
    """How many people are in the segment right now (computed live)."""
    from passerelle.segments import service

    with _open(project) as proj:
        n = service.count(proj, name)
    console.print(f"{name}: {n:,} people")


@segment_app.command("sample")
def segment_sample(
    name: SegmentArg, project: ProjectOpt = Path("."),
    n: Annotated[int, typer.Option(help="How many people.")] = 20,
    role: Annotated[str, typer.Option(
        help="Who looks: marketer (e-mail, phone and last name masked), it or admin "
             "(shown).")] = "marketer",
) -> None:
    """A few members, personal data masked for the role (marketer by default)."""
    from passerelle.render import rows_table
    from passerelle.segments import service

    with _open(project) as proj:
        rows = service.sample(proj, name, n=n, role=role)
    columns = tuple(rows[0]) if rows else ("person_id",)
    console.print(rows_table(rows, columns))


@segment_app.command("overlap")
def segment_overlap(
    names: Annotated[list[str], typer.Argument(help="Two to eight segments.")],
    project: ProjectOpt = Path("."),
) -> None:
    """How the segments overlap: every intersection, with counts."""
    from passerelle.segments import service

    with _open(project) as proj:
        _print_json(service.overlap(proj, names))


@segment_app.command("members")
def segment_members(
    name: SegmentArg, project: ProjectOpt = Path("."),
    since: Annotated[str | None, typer.Option(help="Only members who entered since (ISO).")]
    = None,
    on: Annotated[str | None, typer.Option(help="Members on that date (ISO).")] = None,
    limit: Annotated[int | None, typer.Option(help="Maximum rows.")] = 50,
) -> None:
    """Stored members: now, new since a date, or on a past date."""
    from datetime import datetime

    from passerelle.render import rows_table
    from passerelle.segments import service

    def parse(text: str | None) -> datetime | None:
        if text is None:
            return None
        try:
            return datetime.fromisoformat(text)
        except ValueError as exc:
            raise PasserelleError(f"'{text}' is not a date.", "Use 2026-11-01 or "
                                  "2026-11-01T08:00.") from exc

    with _open(project) as proj:
        rows = service.members(proj, name, since=parse(since), on=parse(on), limit=limit)
    console.print(rows_table(rows, tuple(rows[0]) if rows else ("person_id",)))


@segment_app.command("refresh")
def segment_refresh(
    names: Annotated[list[str] | None, typer.Argument(help="Segments (default: all due).")]
    = None,
    project: ProjectOpt = Path("."),
    full: Annotated[bool, typer.Option(help="Refresh even fresh segments.")] = False,
    events: Annotated[bool, typer.Option(
        "--events", help="After new events were loaded: stage them and refresh only the "
                         "segments over events, incrementally.")] = False,
    watch: Annotated[float | None, typer.Option(
        help="With --events: look for new events every this many seconds until stopped.")]
    = None,
) -> None:
    """Refresh stored memberships now (`passerelle run` does it after traits)."""
    import time

    from passerelle.segments import service

    if watch is not None and not events:
        raise PasserelleError("--watch goes with --events.",
                              "Run `passerelle segment refresh --events --watch 60`.")
    if not events:
        with _open(project) as proj:
            _print_json(service.refresh(proj, names or None, full=full))
        return
    while True:
        # the warehouse is opened for each round only, so the collector's loader and
        # `passerelle run` can use a DuckDB file in between
        with _open(project) as proj:
            result = service.refresh_events(proj, force=full)
        if result.staged or watch is None:
            _print_json(vars(result) | {"memberships": vars(result.memberships)
                                        if result.memberships else None})
        if watch is None:
            return
        time.sleep(watch)


@segment_app.command("status")
def segment_status(project: ProjectOpt = Path(".")) -> None:
    """Freshness of every segment: last and next refresh, stale or not."""
    from passerelle.render import rows_table
    from passerelle.segments import service

    with _open(project) as proj:
        rows = service.status(proj)
    console.print(rows_table(rows, ("segment", "members", "last_refreshed_at",
                                    "next_refresh_at", "stale", "status")))


@audience_app.command("status")
def audience_status(project: ProjectOpt = Path(".")) -> None:
    """Freshness of every audience: built when, next refresh, stale and why."""
    from passerelle.render import rows_table
    from passerelle.segments import service

    with _open(project) as proj:
        rows = service.audience_status(proj)
    console.print(rows_table(rows, ("audience", "segment", "treated", "holdout", "built_at",
                                    "next_refresh_at", "stale", "why")))


@audience_app.command("build")
def audience_build(
    name: Annotated[str, typer.Argument(help="Audience name.")],
    project: ProjectOpt = Path("."),
) -> None:
    """Rebuild an audience: consent and reachability applied, holdout drawn."""
    from passerelle.segments import service

    with _open(project) as proj:
        summary = service.build(proj, name)
    _print_json(vars(summary))


# ---------------------------------------------------------------------------- activation
@app.command()
def export(
    audience: Annotated[str, typer.Argument(help="Audience to send.")],
    to: Annotated[str, typer.Option("--to", help="Destination name (destinations/<name>.yml).")],
    project: ProjectOpt = Path("."),
    user: Annotated[str | None, typer.Option(help="Who sends it (kept in the export log).")]
    = None,
    allow_empty: Annotated[bool, typer.Option(
        "--allow-empty", help="Send the audience even if nobody is in it (a webhook or table "
                              "sync then removes everyone from the destination).")] = False,
) -> None:
    """Send an audience to a destination: CSV file, webhook or database table."""
    from passerelle.activation import activate, load_destinations
    from passerelle.identity.service import default_author

    with _open(project) as proj:
        destinations = load_destinations(proj.root)
        if to not in destinations:
            known = ", ".join(sorted(destinations)) or "none"
            raise PasserelleError(f"There is no destination named '{to}'.",
                                  f"Destinations of this project: {known}.")
        result = activate(proj.engine, audience, destinations[to], name=to, root=proj.root,
                          user=user or default_author(), allow_empty=allow_empty)
    color = {"delivered": "green", "partial": "yellow"}.get(result.status, "red")
    console.print(f"[{color}]{result.status}[/{color}]: {result.people:,} people of "
                  f"{audience} to {to} ({result.kind}: {result.target}). {result.detail}",
                  highlight=False)
    if result.sha256:
        console.print(f"  file {result.file_path}  sha256 {result.sha256}")
    if result.dead_letters:
        console.print(f"  {len(result.dead_letters)} batch(es) in the dead-letter list: "
                      f"`passerelle deliveries dead-letters`, then `passerelle deliveries retry`.")
    if result.status not in ("delivered",):
        raise typer.Exit(ExitCode.EXTERNAL_ERROR)


deliveries_app = typer.Typer(no_args_is_help=True, help="Exports made and failed deliveries.")
app.add_typer(deliveries_app, name="deliveries")


@deliveries_app.command("list")
def deliveries_list(
    project: ProjectOpt = Path("."),
    audience: Annotated[str | None, typer.Option(help="Only this audience.")] = None,
    limit: Annotated[int, typer.Option(help="Number of exports to show.")] = 20,
) -> None:
    """The export log: who sent which audience where, when, how many people."""
    from passerelle.activation import list_exports
    from passerelle.render import rows_table

    with _open(project) as proj:
        rows = list_exports(proj.engine, audience, limit)
    console.print(rows_table(rows, ("export_id", "started_at", "user_name", "audience",
                                    "destination", "kind", "people", "status")))


@deliveries_app.command("dead-letters")
def deliveries_dead_letters(
    project: ProjectOpt = Path("."),
    audience: Annotated[str | None, typer.Option(help="Only this audience.")] = None,
) -> None:
    """Webhook batches that failed every try and wait to be retried."""
    from passerelle.activation import list_dead_letters
    from passerelle.render import rows_table

    with _open(project) as proj:
        rows = list_dead_letters(proj.engine, "open", audience)
    console.print(rows_table(rows, ("dead_letter_id", "audience", "destination", "people",
                                    "attempts", "last_attempt_at", "error")))


@deliveries_app.command("retry")
def deliveries_retry(
    project: ProjectOpt = Path("."),
    audience: Annotated[str | None, typer.Option(help="Only this audience.")] = None,
) -> None:
    """Re-send the open dead letters, oldest first."""
    from passerelle.activation import load_destinations, retry_dead_letters
    from passerelle.activation.models import WebhookDestination
    from passerelle.identity.service import default_author

    with _open(project) as proj:
        hooks = {name: d for name, d in load_destinations(proj.root).items()
                 if isinstance(d, WebhookDestination)}
        results = retry_dead_letters(proj.engine, hooks, audience=audience,
                                     user=default_author())
    for r in results:
        console.print(f"{r.status}: {r.people:,} people of {r.audience} to {r.destination}")
    if not results:
        console.print("No open dead letter.")
    elif any(r.status != "delivered" for r in results):
        raise typer.Exit(ExitCode.EXTERNAL_ERROR)


# ---------------------------------------------------------------------------- measurement
experiments_app = typer.Typer(no_args_is_help=True, help="A/B tests: coverage and analysis.")
app.add_typer(experiments_app, name="experiments")


def _print_json(data) -> None:
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")


@experiments_app.command("list")
def experiments_list(project: ProjectOpt = Path(".")) -> None:
    """Experiments defined and experiments seen in exposure events, side by side."""
    from passerelle.measure.report import experiments_coverage
    from passerelle.render import rows_table

    with _open(project) as proj:
        rows = experiments_coverage(proj, proj.engine)
    console.print(rows_table(rows, ("experiment", "defined", "people", "first_seen",
                                    "last_seen", "status")))


@experiments_app.command("analyse")
def experiments_analyse(
    name: Annotated[str, typer.Argument(help="Experiment name (experiments/<name>.yml).")],
    project: ProjectOpt = Path("."),
    as_json: Annotated[bool, typer.Option("--json", help="Print the full analysis.")] = False,
) -> None:
    """Analyse an A/B/n test: sample ratio, lifts with intervals, chance to win, verdict."""
    from passerelle.measure.report import analyse_experiment
    from passerelle.render import experiment_text

    with _open(project) as proj:
        analysis = analyse_experiment(proj, proj.engine, name)
    _print_json(analysis) if as_json else console.print(experiment_text(analysis))


@app.command()
def campaigns(
    project: ProjectOpt = Path("."),
    window: Annotated[int, typer.Option(help="Days after a touch in which a purchase counts.")]
    = 14,
    grain: Annotated[str | None, typer.Option(help="day, week or month (default: all time).")]
    = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print rows as JSON.")] = False,
) -> None:
    """Spend, reach, conversions, revenue, CPA, ROAS and ROI per campaign, with intervals."""
    from datetime import timedelta

    from passerelle.measure.report import campaign_results
    from passerelle.render import arrow_table

    with _open(project) as proj:
        table = campaign_results(proj, proj.engine, timedelta(days=window), grain)
    _print_json(table.to_pylist()) if as_json else console.print(arrow_table(table))


@app.command()
def attribution(
    project: ProjectOpt = Path("."),
    lookback: Annotated[int, typer.Option(help="Days of touches before a purchase.")] = 30,
    revenue: Annotated[bool, typer.Option(help="Attribute revenue rather than conversions.")]
    = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print rows as JSON.")] = False,
) -> None:
    """Conversions (or revenue) per channel under every attribution model, side by side."""
    from datetime import timedelta

    from passerelle.measure.report import attribution_report
    from passerelle.render import arrow_table

    with _open(project) as proj:
        report = attribution_report(proj, proj.engine, timedelta(days=lookback))
    table = report["revenue" if revenue else "conversions"]
    _print_json(table.to_pylist()) if as_json else console.print(arrow_table(table))


@app.command()
def incrementality(
    project: ProjectOpt = Path("."),
    audience: Annotated[list[str] | None, typer.Option(
        "--audience", help="Only this audience (repeat for several; default: all).")] = None,
    window: Annotated[int, typer.Option(help="Days after each send in which a purchase "
                                              "counts.")] = 14,
    campaign: Annotated[list[str] | None, typer.Option(
        "--campaign", help="AUDIENCE=CAMPAIGN_ID: the ad_spend campaign of an audience "
                           "(default: the audience's name).")] = None,
    spend: Annotated[list[str] | None, typer.Option(
        "--spend", help="AUDIENCE=AMOUNT: what the audience's sends cost, in the project "
                        "currency (instead of ad_spend).")] = None,
    rate: Annotated[list[str] | None, typer.Option(
        "--rate", help="CURRENCY=RATE to convert ad spend, e.g. USD=0.92.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the full report as JSON.")]
    = False,
) -> None:
    """What each audience's sends caused: sent vs held out, lifts and incremental ROI."""
    from datetime import timedelta

    from passerelle.measure.holdouts import (
        incrementality_report,
        incrementality_text,
        parse_pairs,
    )

    with _open(project) as proj:
        report = incrementality_report(
            proj, proj.engine, timedelta(days=window), audience or None,
            parse_pairs(campaign, "AUDIENCE=CAMPAIGN_ID"), parse_pairs(spend, "AUDIENCE=AMOUNT"),
            parse_pairs(rate, "CURRENCY=RATE"))
    if as_json:
        _print_json(report)
    else:
        sys.stdout.write(incrementality_text(report))


# ------------------------------------------------------------------------------- metrics
metrics_app = typer.Typer(no_args_is_help=True, help="Metrics of the shared glossary.")
app.add_typer(metrics_app, name="metrics")


@metrics_app.command("query")
def metrics_query(
    metrics: Annotated[list[str], typer.Argument(help="Metric names (or synonyms).")],
    project: ProjectOpt = Path("."),
    by: Annotated[list[str] | None, typer.Option(
        "--by", help="Dimension to group by (repeat the option for several).")] = None,
    grain: Annotated[str | None, typer.Option(
        help="Time grain: day, week, month, quarter, year (groups by metric_time).")] = None,
    where: Annotated[str | None, typer.Option(
        help="Filter on dimensions, e.g. \"country = 'FR'\".")] = None,
    order_by: Annotated[list[str] | None, typer.Option(
        "--order-by", help="Column to sort by; prefix with - for descending.")] = None,
    limit: Annotated[int | None, typer.Option(help="Maximum rows.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print rows as JSON.")] = False,
    sql: Annotated[bool, typer.Option("--sql", help="Print the compiled SQL only.")] = False,
) -> None:
    """Answer a metric question from the warehouse, e.g. revenue by channel and month."""
    from passerelle.metrics import compile_sql, query
    from passerelle.render import arrow_table

    group_by = list(by or [])
    if grain and not any(g.split("__")[0] == "metric_time" for g in group_by):
        group_by.append("metric_time")
    with _open(project) as proj:
        definitions = proj.metrics()
        args = dict(group_by=group_by, where=where, order_by=list(order_by or []),
                    limit=limit, grain=grain)
        if sql:
            sys.stdout.write(compile_sql(proj.engine, definitions, metrics, **args) + "\n")
            return
        table = query(proj.engine, definitions, metrics, **args)
    if as_json:
        sys.stdout.write(json.dumps(table.to_pylist(), indent=2, default=str) + "\n")
    else:
        console.print(arrow_table(table))


@app.command()
def glossary(
    project: ProjectOpt = Path("."),
    as_json: Annotated[bool, typer.Option("--json", help="Print entries as JSON.")] = False,
) -> None:
    """Every metric and trait: definition, owner, status, lineage and where it is used."""
    from passerelle.render import glossary_table

    with _open(project) as proj:
        entries = proj.glossary()
    if as_json:
        sys.stdout.write(json.dumps(entries, indent=2, ensure_ascii=False, default=str) + "\n")
    else:
        console.print(glossary_table(entries))


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

    with _open(project) as proj:
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

    with _open(project) as proj:
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

    with _open(project) as proj:
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


def main() -> None:
    """Entry point: user errors print a reason and what to do; tracebacks only with --debug."""
    try:
        app(standalone_mode=True)  # Typer handles usage errors, --help and exit codes
    except PasserelleError as exc:
        if _state["debug"]:
            raise
        from passerelle.render import print_error, problems_text

        if isinstance(exc, ProjectError):
            err_console.print(problems_text(exc.problems), end="", soft_wrap=True)
            n = len(exc.problems)
            err_console.print(f"[bold red]{n} problem(s)[/bold red] in the project; nothing "
                              "was run. Fix them, then check with `passerelle validate`.")
        else:
            print_error(err_console, exc.reason, exc.instruction)
        sys.exit(int(exc.exit_code))
    except Exception as exc:
        if _state["debug"] or os.environ.get("PASSERELLE_DEBUG"):
            raise
        err_console.print(f"[bold red]Internal error:[/bold red] {type(exc).__name__}: {exc}",
                          highlight=False)
        err_console.print("[dim]→ This is a bug in Passerelle. Re-run with --debug for the "
                          "traceback and report it.[/dim]")
        sys.exit(int(ExitCode.INTERNAL_ERROR))
