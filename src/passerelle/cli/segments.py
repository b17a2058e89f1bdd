"""`passerelle segment` and `passerelle audience`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from passerelle.cli.common import (
    JsonOpt,
    ProjectOpt,
    WideOpt,
    app,
    console,
    formatter,
    open_project,
    print_json,
)
from passerelle.errors import PasserelleError

segment_app = typer.Typer(no_args_is_help=True, help="Segments: count, look, refresh.")
app.add_typer(segment_app, name="segment")
audience_app = typer.Typer(no_args_is_help=True, help="Audiences: consented, with holdouts.")
app.add_typer(audience_app, name="audience")
SegmentArg = Annotated[str, typer.Argument(help="Segment name (segments/<name>.yml).")]


@segment_app.command("count")
def segment_count(name: SegmentArg, project: ProjectOpt = Path("."),
                  as_json: JsonOpt = False) -> None:
    """How many people are in the segment right now (computed live)."""
    from passerelle.cli.remote import remote_server, segment_path
    from passerelle.segments import service

    # the project's files only: a running server holds the warehouse
    with open_project(project) as proj:
        fmt = formatter(proj)
        if (remote := remote_server(project)):
            n = remote.get(f"/api/segments/{segment_path(name)}/count")["people"]
        else:
            n = service.count(proj, name)
    if as_json:
        print_json({"segment": name, "people": n})
    else:
        console.print(f"{name}: {fmt.count(n, 'person', 'people')}")


@segment_app.command("sample")
def segment_sample(
    name: SegmentArg, project: ProjectOpt = Path("."),
    n: Annotated[int, typer.Option(help="How many people.")] = 20,
    role: Annotated[str, typer.Option(
        help="Who looks: marketer (e-mail, phone and last name masked), it or admin "
             "(shown).")] = "marketer",
    wide: WideOpt = False, as_json: JsonOpt = False,
) -> None:
    """A few members, personal data masked for the role (marketer by default)."""
    from passerelle.render import rows_table
    from passerelle.segments import service

    with open_project(project) as proj:
        rows = service.sample(proj, name, n=n, role=role)
    if as_json:
        return print_json(rows)
    columns = tuple(rows[0]) if rows else ("person_id",)
    console.print(rows_table(rows, columns[:5], formatter(proj), wide=wide, more=columns[5:]))


@segment_app.command("overlap")
def segment_overlap(
    names: Annotated[list[str], typer.Argument(help="Two to eight segments.")],
    project: ProjectOpt = Path("."),
    as_json: JsonOpt = False,
) -> None:
    """How the segments overlap: every intersection, with counts."""
    from passerelle.render import rows_table
    from passerelle.segments import service

    with open_project(project) as proj:
        result = service.overlap(proj, names)
    if as_json:
        return print_json(result)
    fmt = formatter(proj)
    console.print("Only in exactly these segments:")
    console.print(rows_table([{"in": " & ".join(r["in"]), "people": r["people"]}
                              for r in result["regions"]], ("in", "people"), fmt))
    console.print("In at least these segments:")
    console.print(rows_table([{"segments": " & ".join(r["segments"]), "people": r["people"]}
                              for r in result["intersections"]], ("segments", "people"), fmt))


@segment_app.command("members")
def segment_members(
    name: SegmentArg, project: ProjectOpt = Path("."),
    since: Annotated[str | None, typer.Option(help="Only members who entered since (ISO).")]
    = None,
    on: Annotated[str | None, typer.Option(help="Members on that date (ISO).")] = None,
    limit: Annotated[int | None, typer.Option(help="Maximum rows.")] = 50,
    as_json: JsonOpt = False,
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
    if as_json:
        return print_json(rows)
    console.print(rows_table(rows, tuple(rows[0]) if rows else ("person_id",), formatter(proj)))


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
    as_json: JsonOpt = False,
) -> None:
    """Refresh stored memberships now (`passerelle run` does it after traits)."""
    import time

    from passerelle.cli.remote import remote_server
    from passerelle.jobs.kinds import decisions_after_events, last_load
    from passerelle.render import record_text
    from passerelle.segments import service

    if watch is not None and not events:
        raise PasserelleError("--watch goes with --events.",
                              "Run `passerelle segment refresh --events --watch 60`.")
    if (remote := remote_server(project)):
        params = {"names": names or None, "full": full, "events": events}
        while True:
            result = remote.result(remote.job("segment_refresh", params))
            if as_json or events:
                if not events or result["staged"] or watch is None:
                    print_json(result)
            else:
                with open_project(project) as proj:
                    console.print(refresh_text(result, formatter(proj)))
            if watch is None:
                return
            time.sleep(watch)
    if not events:
        with open_project(project) as proj:
            summary = service.refresh(proj, names or None, full=full)
        if as_json:
            return print_json(summary)
        return console.print(refresh_text(summary, formatter(proj)))
    while True:
        # the warehouse is opened for each round only, so the collector's loader and
        # `passerelle run` can use a DuckDB file in between
        with open_project(project) as proj:
            before = last_load(proj)
            result = service.refresh_events(proj, force=full)
            # the decision store of the people these events and identify calls touched
            decisions = decisions_after_events(proj, before)
        if result.staged or watch is None:
            data = vars(result) | {"memberships": vars(result.memberships)
                                   if result.memberships else None,
                                   "decision_store": decisions}
            print_json(data) if as_json else console.print(record_text(data, formatter(proj)))
        if watch is None:
            return
        time.sleep(watch)


@segment_app.command("status")
def segment_status(project: ProjectOpt = Path("."), wide: WideOpt = False,
                   as_json: JsonOpt = False) -> None:
    """Freshness of every segment: last and next refresh, stale or not."""
    from passerelle.render import rows_table
    from passerelle.runlog import utcnow
    from passerelle.segments.freshness import segment_freshness

    with open_project(project) as proj:
        rows = segment_freshness(proj, utcnow())
    if as_json:
        return print_json(rows)
    console.print(rows_table(rows, ("segment", "members", "last_refreshed_at", "stale"),
                             formatter(proj), wide=wide, more=("next_refresh_at", "status")))


@audience_app.command("status")
def audience_status(project: ProjectOpt = Path("."), wide: WideOpt = False,
                    as_json: JsonOpt = False) -> None:
    """Freshness of every audience: built when, next refresh, stale and why."""
    from passerelle.render import rows_table
    from passerelle.segments import service

    with open_project(project) as proj:
        rows = service.audience_status(proj)
    if as_json:
        return print_json(rows)
    console.print(rows_table(rows, ("audience", "treated", "holdout", "built_at", "stale"),
                             formatter(proj), wide=wide,
                             more=("segment", "next_refresh_at", "why"), free_text=("why",)))


@audience_app.command("build")
def audience_build(
    name: Annotated[str, typer.Argument(help="Audience name.")],
    project: ProjectOpt = Path("."),
    as_json: JsonOpt = False,
) -> None:
    """Rebuild an audience: consent and reachability applied, holdout drawn."""
    from passerelle.cli.remote import remote_server
    from passerelle.render import record_text
    from passerelle.segments import service

    with open_project(project) as proj:  # the warehouse is opened only when not remote
        fmt = formatter(proj)
        if (remote := remote_server(project)):
            summary = remote.result(remote.job("audience_build", {"audience": name}))
        else:
            summary = vars(service.build(proj, name))
    if as_json:
        return print_json(summary)
    console.print(record_text(summary, fmt, title=f"Audience {name} built"))


def refresh_text(summary: dict, fmt):
    """What a refresh did: one line a segment, then the audiences rebuilt."""
    from rich.console import Group

    from passerelle.render import rows_table

    rows = [{"segment": name, **counts} for name, counts in summary["refreshed"].items()]
    rows += [{"segment": name, "members": "unchanged"} for name in summary["unchanged"]]
    rows += [{"segment": name, "members": f"failed: {why}"}
             for name, why in summary["failed"].items()]
    parts = [f"Run {summary['run_id']}",
             rows_table(rows, ("segment", "members", "entered", "exited"), fmt)]
    audiences = list(summary.get("audiences", {}).values())
    if audiences:
        parts.append(rows_table(audiences, ("audience", "segment_members", "no_consent",
                                            "eligible", "holdout", "treated"), fmt))
    return Group(*parts)
