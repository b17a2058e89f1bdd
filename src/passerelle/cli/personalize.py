"""`passerelle decide` and `passerelle offers`: personalisation from the command line."""

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
from passerelle.errors import PasserelleError

offers_app = typer.Typer(no_args_is_help=True, help="Offers and placements: check, refresh.")
app.add_typer(offers_app, name="offers")


def _context(pairs: list[str] | None) -> dict[str, str]:
    out = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise PasserelleError(f"'{pair}' is not key=value.", "Write --context device=mobile.")
        out[key.strip()] = value
    return out


@app.command("decide")
def decide_command(
    placement: Annotated[str, typer.Option(help="Placement (placements/<name>.yml).")],
    audience: Annotated[str | None, typer.Option(
        help="Decide for every treated member of this audience, in the warehouse.")] = None,
    person: Annotated[str | None, typer.Option(
        help="Decide for one person, known by any identifier.")] = None,
    context: Annotated[list[str] | None, typer.Option(
        help="Context value key=value (repeat); e.g. channel=email.")] = None,
    project: ProjectOpt = Path("."),
    as_json: JsonOpt = False,
) -> None:
    """Choose the message of a placement: for a whole audience (written to the
    batch_decisions table) or for one person (printed)."""
    from passerelle import personalize
    from passerelle.render import record_text

    if (audience is None) == (person is None):
        raise PasserelleError("Give --audience or --person (one of them).",
                              "e.g. passerelle decide --placement newsletter_hero "
                              "--audience newsletter")
    with open_project(project) as proj:
        if audience is not None:
            from passerelle.personalize.batch import decide_batch

            summary = vars(decide_batch(proj, placement, audience, _context(context)))
            title = f"Decisions for {audience} on {placement}"
        else:
            store = personalize.open_store(proj)
            summary = personalize.decide(store, person, placement, _context(context)).as_dict()
            title = f"Decision for {person} on {placement}"
        fmt = formatter(proj)
    if as_json:
        return print_json(summary)
    console.print(record_text(summary, fmt, title=title))


@offers_app.command("validate")
def offers_validate(project: ProjectOpt = Path(".")) -> None:
    """Check placements/*.yml and offers/*.yml (templates, segments, traits, context)."""
    from passerelle.errors import ProjectError
    from passerelle.personalize.validate import load_offers

    root = Path(project).resolve()
    defs, problems = load_offers(root)
    if problems.errors:
        raise ProjectError(problems.items)
    console.print(f"{len(defs.placements)} placement(s), {len(defs.offers)} offer(s): no "
                  "problem found.")


@offers_app.command("refresh")
def offers_refresh(project: ProjectOpt = Path("."), as_json: JsonOpt = False) -> None:
    """Rebuild the decision store (eligibility, template values, ids) in the warehouse."""
    from passerelle.personalize import refresh_decision_store
    from passerelle.render import record_text

    with open_project(project) as proj:
        summary = vars(refresh_decision_store(proj))
        fmt = formatter(proj)
    if as_json:
        return print_json(summary)
    console.print(record_text(summary, fmt, title="Decision store refreshed"))
