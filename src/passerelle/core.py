"""The one object the CLI, the API server, the worker and the tests all use."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from passerelle.definition import load_project, read_project
from passerelle.errors import PasserelleError, Problem, Problems
from passerelle.project.load import ProjectDefinition
from passerelle.reporter import Reporter, SilentReporter

if TYPE_CHECKING:  # imported where used: `validate --offline` needs no warehouse library
    from passerelle.engines import DuckDBFile, Engine
    from passerelle.pipeline import RunResult


class Project:
    """A loaded project folder and its warehouse. Use :func:`passerelle.open`."""

    def __init__(self, definition: ProjectDefinition, reporter: Reporter | None = None) -> None:
        self.definition = definition
        self.reporter: Reporter = reporter or SilentReporter()
        self._engine: Engine | None = None
        self._file: DuckDBFile | None = None  # a DuckDB warehouse read without Ibis

    @property
    def root(self) -> Path:
        return self.definition.root

    @property
    def config(self):
        return self.definition.config

    @property
    def sources(self):
        return self.definition.sources

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            from passerelle.engines import open_engine

            self._engine = open_engine(self.config.engine, self.root, file=self._file)
        return self._engine

    def _duckdb(self) -> DuckDBFile | None:
        """The DuckDB warehouse file (None for other engines), opened without Ibis."""
        if self._engine is not None:
            return getattr(self._engine, "file", None)
        if self._file is None:
            from passerelle.engines import duckdb_file

            self._file = duckdb_file(self.config.engine, self.root)
        return self._file

    def has_table(self, name: str) -> bool:
        """Whether the warehouse has this table (``engine.exists``, without Ibis on DuckDB)."""
        file = self._duckdb()
        if file is None:
            return self.engine.exists(name)
        from passerelle.engines.quick import exists

        return exists(file, name)

    def catalogue(self) -> str | None:
        """A digest of the warehouse's tables, views (their SQL) and columns, read without
        Ibis on DuckDB (None on other engines): results derived from the catalogue alone
        (a metric's lineage) are kept for one digest."""
        file = self._duckdb()
        if file is None:
            return None
        from passerelle.engines.quick import catalogue

        return catalogue(file)

    def rows(self, key: str, build: Callable[[Mapping[str, Any]], Any],
             values: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        """The rows of the Ibis table ``build(slots)`` makes, each slot standing for one of
        ``values`` (text or numbers); on DuckDB, the SQL is compiled once and kept in the
        project's state folder, so a later command reads without importing Ibis
        (:mod:`passerelle.engines.quick`). ``key`` names the query."""
        file = self._duckdb()
        if file is None:  # compiled every time
            return self.engine.prepared(key, values or {}, build).to_pylist()
        from passerelle.engines.quick import read_rows

        return read_rows(self.root, file, key, values or {}, build, lambda: self.engine)

    def sharing(self, reporter: Reporter) -> Project:
        """The same project on the same warehouse connection, reporting to ``reporter`` (the
        server's worker gives each job its own). Close the original, never this one."""
        other = Project(self.definition, reporter)
        other._engine = self.engine
        return other

    def validate(self, connect: bool = True) -> Problems:
        """Deep checks beyond parsing: files, columns, connections (the project already parsed)."""
        problems = Problems()
        for warning in self.definition.warnings:
            problems.add("", warning, severity="warning")
        problems.items += leaf_report(self.definition)
        if connect:
            from passerelle.sources.inspect import inspect_sources

            problems.items.extend(inspect_sources(self.definition).items)
            try:  # opening is the check (a DuckDB file without Ibis)
                file = self._duckdb()
                file.connection if file is not None else self.engine.con  # noqa: B018
            except PasserelleError as exc:  # EngineError carries reason + instruction
                problems.add("passerelle.yml", exc.reason, hint=exc.instruction)
        return problems

    def run(self, source: str | None = None, full: bool = False,
            retrain: bool = False, reload: Sequence[str] = (), pages: bool = False
            ) -> RunResult:
        """Load what is new, stage, check, then the later steps. ``full`` redoes every step
        even when its inputs did not change; ``retrain`` re-trains the identity model;
        ``reload`` names sources read again from scratch (their earlier loads replaced);
        ``pages`` runs only the last steps, which prepare what the web pages read."""
        from passerelle.pipeline import run_pipeline

        for name in ([source] if source is not None else []) + list(reload):
            if name not in self.sources:
                known = ", ".join(sorted(self.sources)) or "none"
                raise PasserelleError(f"There is no source named '{name}'.",
                                      f"Sources of this project: {known}.")
        return run_pipeline(self.definition, self.engine, self.reporter, only_source=source,
                            full=full, retrain=retrain, reload=frozenset(reload),
                            pages=pages)

    def metrics(self):
        """The project's metric definitions (metrics/*.yml)."""
        if self.definition.metrics is None:
            raise PasserelleError("This project defines no metric.",
                                  "Add metrics/*.yml (see docs/metrics.md).")
        return self.definition.metrics

    def glossary(self, lang: str | None = None) -> list[dict]:
        """Metrics and traits with definition, owner, lineage and use, sorted by name.

        Built-in traits are defined in ``lang`` (``en``, ``fr``; default: the language of
        the project's locale); the project's own definitions are shown as written."""
        from passerelle.metrics.glossary import glossary, kept_lineage
        from passerelle.traits.definitions import language_of
        from passerelle.traits.glossary import computed_traits, trait_entries

        language = language_of(lang, self.config.display_locale)
        entries = glossary(self.definition.metrics, lineage_of=kept_lineage(self)) \
            if self.definition.metrics else []
        if self.definition.traits is not None:
            entries += trait_entries(self.definition.traits, None, self.sources,
                                     self.definition.segments, language,
                                     computed=computed_traits(self), root=self.root)
        return sorted(entries, key=lambda e: (e["name"], e["kind"]))

    def status(self, limit: int = 10) -> list[dict]:
        from passerelle.runlog import last_runs

        return last_runs(self, limit)

    def close(self) -> None:
        if self._engine is not None:
            self._engine.close()  # and the DuckDB file it was given
            self._engine = None
        elif self._file is not None:
            self._file.close()
        self._file = None

    def __enter__(self) -> Project:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def leaf_report(definition: ProjectDefinition) -> list[Problem]:
    """Problems of the leaf files, then what each left out of the run and why."""
    return [*definition.leaf_problems, *(s.problem() for s in definition.skipped)]


def validate_folder(project_dir: Path | str = ".", connect: bool = True
                    ) -> tuple[ProjectDefinition | None, Problems]:
    """Every problem of a project folder in one pass, even when some files do not parse:
    the sources that did are still opened and their columns checked (``connect``).
    Returns what parsed (None when passerelle.yml itself did not) and the problems."""
    definition, problems = read_project(project_dir)
    if definition is None:
        return None, problems
    project = Project(definition)
    try:
        if problems.errors:  # the project cannot open: inspect what parsed, no engine
            problems.items += leaf_report(definition)
            if connect:
                from passerelle.sources.inspect import inspect_sources

                problems.items += inspect_sources(definition).items
            return definition, problems
        return definition, project.validate(connect=connect)
    finally:
        project.close()


def open_project(project_dir: Path | str = ".", reporter: Reporter | None = None) -> Project:
    """Load and validate the project folder; raises ProjectError listing every problem."""
    return Project(load_project(project_dir), reporter)


def open_core(project_dir: Path | str = ".", reporter: Reporter | None = None) -> Project:
    """The project with only the files every step depends on (passerelle.yml, identity.yml,
    sources, checks), no leaf definitions: enough for commands that read what runs left in
    the warehouse (status, checks, quarantine), which then answer quickly and even while a
    trait or segment file is being edited."""
    from passerelle.project.load import read_core

    definition, problems = read_core(project_dir)
    if problems.errors or definition is None:
        from passerelle.errors import ProjectError

        raise ProjectError(problems.items)
    return Project(definition, reporter)
