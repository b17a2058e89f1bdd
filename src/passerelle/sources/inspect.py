"""Opening every source of a project: files exist, mapped columns exist, databases answer."""

from __future__ import annotations

from passerelle.errors import ConnectorError, Problems
from passerelle.project.consent_models import check_source_columns
from passerelle.project.load import ProjectDefinition, closest
from passerelle.project.paths import PathNotAllowed


def inspect_sources(project: ProjectDefinition, only: str | None = None) -> Problems:
    """Open every source: files exist, mapped columns exist, databases answer."""
    from passerelle.sources import source_columns

    problems = Problems()
    columns: dict[str, list[str]] = {}
    for source in project.sources.values():
        if only and source.name != only:
            continue
        at = project.located(source)
        file = at.doc.file if at else f"sources/{source.name}.yml"
        try:
            available = source_columns(project.root, source)
        except (ConnectorError, PathNotAllowed) as exc:  # a link in a folder may lead out
            problems.add(file, exc.reason, at.line("connector", "path") if at else None,
                         exc.instruction)
            continue
        columns[source.name] = available
        for target, mapping in source.mappings().items():
            if mapping.column is not None and mapping.column not in available:
                problems.add(
                    file, f"column '{mapping.column}' (mapped to {target}) is not in the source",
                    at.line("columns", target) if at else None,
                    closest(mapping.column, available) or f"columns: {', '.join(available)}",
                )
    if project.consent is not None:  # consent.yml may read columns the mapping does not
        check_source_columns(project.consent, project.root, project.sources, columns, problems)
    return problems
