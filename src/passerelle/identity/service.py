"""Identity verbs of a project, shared by the CLI, the API and the tests.

Thin: each verb finds what the identity modules need in the project definition (its
identity rules, which source a customer id belongs to) and calls them.
"""

from __future__ import annotations

import getpass
from pathlib import Path
from typing import Any

from passerelle.engines.base import Engine
from passerelle.errors import PasserelleError, Problems
from passerelle.project.identity_models import IdentityConfig
from passerelle.project.load import ProjectDefinition, parse_document
from passerelle.project.paths import check_paths
from passerelle.project.yamlio import YamlSyntaxError, read_yaml
from passerelle.reporter import Reporter


def default_author() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no user name in some containers
        return "unknown"


def _config(project: ProjectDefinition) -> IdentityConfig:
    if project.identity is None:
        raise PasserelleError("This project has no identity.yml, so identity is not resolved.",
                              "Add identity.yml (see docs/profiles.md), then `passerelle run`.")
    return project.identity


def customer_sources(project: ProjectDefinition, entity: str) -> dict[str, str]:
    """``{source: customer_source}`` for sources of ``entity`` that reference customers."""
    return {s.name: s.customer_source for s in project.sources.values()
            if s.entity == entity and s.customer_source}


def find(project: ProjectDefinition, engine: Engine, query: str,
         limit: int = 20) -> list[dict[str, Any]]:
    from passerelle.identity.view import find_persons

    return find_persons(engine, query, limit, default_region=project.config.default_region)


def person_id_of(project: ProjectDefinition, engine: Engine, query: str) -> str:
    """The id of the one person ``query`` (any identifier) designates, or a clear error."""
    from passerelle.identity.view import PersonNotFound

    found = find(project, engine, query, limit=5)
    if not found:
        raise PersonNotFound(f"No person matches '{query}'.",
                              "Try a person id (P...), a source record (source:id), a customer "
                              "id, an e-mail, a phone number or a loyalty card.")
    if len(found) > 1:
        ids = ", ".join(p["person_id"] for p in found)
        raise PasserelleError(f"'{query}' matches {len(found)} persons: {ids}.",
                              "Give one of these person ids.")
    return found[0]["person_id"]


def profile(project: ProjectDefinition, engine: Engine, query: str,
            mask_pii: bool = False) -> dict[str, Any]:
    """The 360° view of the one person ``query`` identifies."""
    from passerelle.identity.view import person_view

    return person_view(engine, person_id_of(project, engine, query),
                       orders_sources=customer_sources(project, "orders"),
                       events_sources=customer_sources(project, "events"), mask_pii=mask_pii)


def pin(project: ProjectDefinition, engine: Engine, kind: str, node_a: str, node_b: str,
        reason: str, author: str | None = None, origin: str = "cli") -> str:
    from passerelle.identity.pins import add_pin

    return add_pin(engine, kind, node_a, node_b, reason, author or default_author(), origin,
                   yml_pins=_config(project).pins)


def unpin(engine: Engine, pin_id: str, author: str | None = None) -> Any:
    from passerelle.identity.pins import remove_pin

    return remove_pin(engine, pin_id, author or default_author())


def pins(project: ProjectDefinition, engine: Engine) -> list[Any]:
    from passerelle.identity.pins import active_pins

    return active_pins(engine, _config(project).pins)


def why(engine: Engine, node_a: str, node_b: str) -> list[dict]:
    from passerelle.identity.ledger import why_linked

    return why_linked(engine, node_a, node_b)


def report(engine: Engine, truth: Path | None = None) -> dict[str, Any]:
    from passerelle.identity.report import identity_report

    if truth is not None and not truth.is_file():
        raise PasserelleError(f"No truth file at {truth}.",
                              "Give the records.csv that `passerelle demo` writes to truth/.")
    return identity_report(engine, truth)


def train(project: ProjectDefinition, engine: Engine, reporter: Reporter) -> Any:
    from passerelle.identity.probabilistic import train as train_model
    from passerelle.identity.tables import CUSTOMER_RECORDS

    config = _config(project).probabilistic
    if not engine.exists(CUSTOMER_RECORDS):
        raise PasserelleError("There are no customer records to train on yet.",
                              "Run `passerelle run` first.")
    return train_model(engine, engine.table(CUSTOMER_RECORDS), config,
                       config.model_file(project.root), reporter)


def blocking(project: ProjectDefinition, engine: Engine) -> Any:
    """The blocking report of identity.yml's rules (see :mod:`passerelle.identity.blocking`)."""
    from passerelle.identity.blocking import analyse
    from passerelle.identity.tables import CUSTOMER_RECORDS

    config = _config(project).probabilistic
    if not engine.exists(CUSTOMER_RECORDS):
        raise PasserelleError("There are no customer records to analyse yet.",
                              "Run `passerelle run` first.")
    return analyse(engine, engine.table(CUSTOMER_RECORDS), config, project.root)


def suggest(project: ProjectDefinition, engine: Engine, out: Path | None = None,
            force: bool = False) -> str:
    """A proposed identity.yml from the staged records; written to ``out`` (inside the
    project, never over an existing file unless ``force``) or returned."""
    from passerelle.identity.suggest import suggest as propose
    from passerelle.identity.tables import CUSTOMER_RECORDS
    from passerelle.project.paths import confine

    if not engine.exists(CUSTOMER_RECORDS):
        raise PasserelleError("There are no staged customer records to read yet.",
                              "Run `passerelle run --step stage` first.")
    target = None
    if out is not None:
        target = confine(project.root, out, what="output file (--out)")
        if target.exists() and not force:
            raise PasserelleError(f"{out} exists: it is left as it is.",
                                  "Give another --out, or add --force to replace it.")
    text = propose(engine, engine.table(CUSTOMER_RECORDS))
    if target is not None:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
    return text


def load_candidate(path: Path, project_root: Path) -> IdentityConfig:
    """Parse a candidate identity.yml, reporting every problem with its line (a path that
    leaves the project's allowed folders is one)."""
    problems = Problems()
    try:
        doc = read_yaml(path, str(path))
    except FileNotFoundError as exc:
        raise PasserelleError(f"No file {path}.", "Give the changed identity.yml.") from exc
    except YamlSyntaxError as exc:
        problems.add(exc.file, exc.message, exc.line)
        problems.raise_if_any()
    parsed = parse_document(IdentityConfig, doc, problems)
    if parsed is not None:
        check_paths(problems, doc, parsed, project_root)
    problems.raise_if_any()
    return parsed


def diff(project: ProjectDefinition, engine: Engine, candidate_path: Path,
         reporter: Reporter) -> dict[str, Any]:
    from passerelle.identity.diff import identity_diff

    _config(project)
    return identity_diff(project, engine, load_candidate(candidate_path, project.root), reporter)
