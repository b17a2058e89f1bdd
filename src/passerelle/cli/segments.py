"""`passerelle segment` and `passerelle audience`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from passerelle.cli.common import ProjectOpt, app, console, open_project, print_json
from passerelle.errors import PasserelleError

segment_app = typer.Typer(no_args_is_help=True, help="Segments: count, look, refresh.")
app.add_typer(segment_app, name="segment")
audience_app = typer.Typer(no_args_is_help=True, help="Audiences: consented, with holdouts.")
app.add_typer(audience_app, name="audience")
SegmentArg = Annotated[str, typer.Argument(help="Segment name (segments/<name>.yml).")]


@segment_app.command("count")
def segment_count(name: SegmentArg, project: ProjectOpt = Path(".")) -> None:
    """How many people are in the segment right now (computed live)."""
    from passerelle.cli.remote import remote_server, segment_path
    from passerelle.segments import service

    if (remote := remote_server(project)):
        n = remote.get(f"/api/segments/{segment_path(name)}/count")["people"]
    else:
        with open_project(project) as proj:
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

    with open_project(project) as proj:
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

    with open_project(project) as proj:
        print_json(service.overlap(proj, names))


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

    with open_project(project) as proj:
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

    from passerelle.cli.remote import remote_server
    from passerelle.segments import service

    if watch is not None and not events:
        raise PasserelleError("--watch goes with --events.",
                              "Run `passerelle segment refresh --events --watch 60`.")
    if (remote := remote_server(project)):
        params = {"names": names or None, "full": full, "events": events}
        while True:
            result = remote.result(remote.job("segment_refresh", params))
            if not events or result["staged"] or watch is None:
                print_json(result)
            if watch is None:
                return
            time.sleep(watch)
    if not events:
        with open_project(project) as proj:
            print_json(service.refresh(proj, names or None, full=full))
        return
    while True:
        # the warehouse is opened for each round only, so the collector's loader and
        # `passerelle run` can use a DuckDB file in between
        with open_project(project) as proj:
            result = service.refresh_events(proj, force=full)
        if result.staged or watch is None:
            print_json(vars(result) | {"memberships": vars(result.memberships)
                                        if result.memberships else None})
        if watch is None:
            return
        time.sleep(watch)


@segment_app.command("status")
def segment_status(project: ProjectOpt = Path(".")) -> None:
    """Freshness of every segment: last and next refresh, stale or not."""
    from passerelle.render import rows_table
    from passerelle.segments import service

    with open_project(project) as proj:
        rows = service.status(proj)
    console.print(rows_table(rows, ("segment", "members", "last_refreshed_at",
                                    "next_refresh_at", "stale", "status")))


@audience_app.command("status")
def audience_status(project: ProjectOpt = Path(".")) -> None:
    """Freshness of every audience: built when, next refresh, stale and why."""
    from passerelle.render import rows_table
    from passerelle.segments import service

    with open_project(project) as proj:
        rows = service.audience_status(proj)
    console.print(rows_table(rows, ("audience", "segment", "treated", "holdout", "built_at",
                                    "next_refresh_at", "stale", "why")))


@audience_app.command("build")
def audience_build(
    name: Annotated[str, typer.Argument(help="Audience name.")],
    project: ProjectOpt = Path("."),
) -> None:
    """Rebuild an audience: consent and reachability applied, holdout drawn."""
    from passerelle.cli.remote import remote_server
    from passerelle.segments import service

    if (remote := remote_server(project)):
        print_json(remote.result(remote.job("audience_build", {"audience": name})))
        return
    with open_project(project) as proj:
        summary = service.build(proj, name)
    print_json(vars(summary))
