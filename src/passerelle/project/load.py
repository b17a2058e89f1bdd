"""Read a project folder into validated models, collecting every problem at once.

Two levels:
- :func:`load_project` parses and cross-checks the files (syntax, unknown keys, mapping
  targets, references between files). It never touches data or the network.
- :func:`inspect_sources` goes further for `passerelle validate`: files exist, mapped columns
  exist in them, databases answer.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from passerelle.errors import Problem, Problems
from passerelle.model import ENTITIES
from passerelle.project.identity_models import CONSENT_FIELDS, IDENTITY_FIELDS, IdentityConfig
from passerelle.project.leaves import Skipped
from passerelle.project.models import (
    CheckConfig,
    ChecksFile,
    ProjectConfig,
    RelationshipsCheck,
    RowCountCheck,
    SourceConfig,
    UniqueCheck,
    check_name,
)
from passerelle.project.paths import allowed_roots, check_paths
from passerelle.project.yamlio import YamlDoc, YamlSyntaxError, read_yaml, substitute_env

PROJECT_FILE = "passerelle.yml"
LINEAGE_COLUMNS = ("_source", "_record_id", "_issues", "_load_id", "_loaded_at", "_source_file",
                   "_source_row")


@dataclass
class Located:
    """Where a model came from, so later problems can point at the file and line."""

    doc: YamlDoc
    prefix: tuple[str | int, ...] = ()

    def line(self, *loc: str | int) -> int | None:
        return self.doc.line_of((*self.prefix, *loc))


@dataclass
class ProjectDefinition:
    root: Path
    config: ProjectConfig
    sources: dict[str, SourceConfig] = field(default_factory=dict)
    checks: list[CheckConfig] = field(default_factory=list)
    identity: IdentityConfig | None = None  # None: the project has no identity.yml
    traits: Any = None  # TraitDefinitions (traits/*.yml), None when there is none
    metrics: Any = None  # ProjectMetrics (metrics/*.yml), None when there is none
    experiments: Any = None  # ExperimentDefinitions (experiments/*.yml)
    segments: Any = None  # SegmentDefinitions (segments/*.yml), None when there is none
    consent: Any = None  # ConsentConfig (consent.yml, or the two default purposes)
    where: dict[int, Located] = field(default_factory=dict)  # id(model) -> origin
    warnings: list[str] = field(default_factory=list)
    # Problems of leaf files (traits, metrics, segments...) and the definitions they left
    # out (see project/leaves.py): reported by validate and the run, never a stop.
    leaf_problems: list[Problem] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)

    def located(self, model: BaseModel) -> Located | None:
        return self.where.get(id(model))


def _rel(root: Path, path: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


def _hint_for(error_type: str, loc: tuple[Any, ...], valid: list[str] | None) -> str | None:
    if error_type == "extra_forbidden" and valid:
        bad = str(loc[-1]) if loc else ""
        close = difflib.get_close_matches(bad, valid, n=1)
        return f"did you mean '{close[0]}'?" if close else f"allowed keys: {', '.join(valid)}"
    return None


def parse_document(model: type[BaseModel], doc: YamlDoc, problems: Problems) -> Any:
    """Validate ``doc.data`` against ``model``; every pydantic error becomes a located problem."""
    missing_env: list[str] = []
    data = substitute_env(doc.data, missing_env)
    for name in sorted(set(missing_env)):
        problems.add(doc.file, f"environment variable ${{{name}}} is not set",
                     hint=f"export {name}=... or use ${{{name}:-default}}")
    if missing_env:
        return None
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors()
        # A value that may be "text or mapping" fails both ways; the mapping's error is the
        # useful one, so drop the bare "should be a string" beside it.
        detailed = {doc.present(tuple(e["loc"])) for e in errors if e["type"] != "string_type"}
        for err in errors:
            loc = tuple(err["loc"])
            if err["type"] == "string_type" and doc.present(loc) in detailed:
                continue
            shown = doc.present(loc)
            if err["type"] in ("missing", "extra_forbidden") and loc and loc[-1] not in shown:
                shown = (*shown, loc[-1])
            where = ".".join(str(p) for p in shown)
            if err["type"] == "missing":
                text = f"{where}: required key is missing"
            elif err["type"] == "extra_forbidden":
                text = f"unknown key '{where}'"
            else:
                msg = err["msg"].removeprefix("Value error, ")
                text = f"{where}: {msg}" if where else msg
            hint = _hint_for(err["type"], loc, _keys_of(model, loc))
            problems.add(doc.file, text, doc.line_of(loc), hint)
        return None


def _keys_of(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str] | None:
    """Allowed keys of the model that holds ``loc[-1]`` (for 'did you mean' hints)."""
    current: Any = model
    for part in loc[:-1]:
        if isinstance(current, type) and issubclass(current, BaseModel):
            fld = current.model_fields.get(part)
            if fld is not None:
                current = _model_in(fld.annotation, loc)
            # else: a discriminator tag such as 'csv', already resolved by _model_in
        elif isinstance(part, int):
            continue  # list index
        else:
            return None
    if isinstance(current, type) and issubclass(current, BaseModel):
        return [f.alias or n for n, f in current.model_fields.items()]
    return None


def _model_in(annotation: Any, loc: tuple[Any, ...]) -> Any:
    """The model class inside ``annotation`` (unwrapping lists, optionals and tagged unions)."""
    import typing

    candidates: list[Any] = [annotation]
    while candidates:
        ann = candidates.pop(0)
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            tag = ann.model_fields.get("type")
            if tag is None or set(typing.get_args(tag.annotation)) & set(loc):
                return ann
        candidates.extend(typing.get_args(ann))
    return annotation


def read_documents(root: Path, pattern: str, problems: Problems, *, required: bool = False,
                   expected: str = "expected a mapping of keys at the top level",
                   ) -> list[YamlDoc]:
    """The YAML files matching ``pattern`` (``folder/*`` means its .yml and .yaml files) that
    parse to a mapping; syntax errors, empty files and other shapes become problems.
    An empty file is only a warning unless the file is ``required``."""
    globs = [f"{pattern}.yml", f"{pattern}.yaml"] if pattern.endswith("/*") else [pattern]
    docs = []
    for path in sorted(p for g in globs for p in root.glob(g)):
        try:
            doc = read_yaml(path, _rel(root, path))
        except YamlSyntaxError as exc:
            problems.add(exc.file, exc.message, exc.line,
                         hint="check indentation and that ':' is followed by a space")
            continue
        if doc.data is None and not required:
            problems.add(doc.file, "file is empty", hint="remove it or fill it in",
                         severity="warning")
        elif not isinstance(doc.data, dict):
            problems.add(doc.file, expected, doc.line_of(()))
        else:
            docs.append(doc)
    return docs


def read_core(root: Path | str) -> tuple[ProjectDefinition | None, Problems]:
    """The files every step depends on (passerelle.yml, identity.yml, sources, checks),
    parsed and cross-checked: the definition of what parsed, without its leaf definitions
    (None when passerelle.yml itself did not), and the problems that stop a run.
    :func:`passerelle.definition.read_project` adds the leaves."""
    root = Path(root).resolve()
    problems = Problems()
    project_file = root / PROJECT_FILE
    if not project_file.is_file():
        problems.add(str(root), f"no {PROJECT_FILE} here: this is not a Passerelle project",
                     hint="create one with `passerelle init DIR`, or pass --project DIR")
        return None, problems

    docs: list[tuple[str, YamlDoc]] = []
    for kind, folder in (("project", PROJECT_FILE), ("identity", "identity.yml"),
                         ("source", "sources/*"), ("checks", "checks/*")):
        docs += [(kind, doc) for doc in read_documents(root, folder, problems,
                                                       required=kind == "project")]

    config: ProjectConfig | None = None
    identity: IdentityConfig | None = None
    identity_at: Located | None = None
    definition_sources: dict[str, SourceConfig] = {}
    checks: list[tuple[CheckConfig, Located]] = []
    where: dict[int, Located] = {}
    unparsed: set[str] = set()  # sources whose file has problems: checks on them wait

    roots = allowed_roots(root)
    for kind, doc in docs:
        if kind == "project":
            config = parse_document(ProjectConfig, doc, problems)
            if config is not None:
                check_paths(problems, doc, config, root, roots)
        elif kind == "identity":
            identity = parse_document(IdentityConfig, doc, problems)
            identity_at = Located(doc)
            if identity is not None:
                check_paths(problems, doc, identity, root, roots)
        elif kind == "source":
            stem = Path(doc.file).stem
            doc.data.setdefault("name", stem)
            source = parse_document(SourceConfig, doc, problems)
            if source is None:
                unparsed.add(str(doc.data.get("name", stem)))
                _check_targets_alone(doc, problems)
                continue
            if source.name in definition_sources:
                problems.add(doc.file, f"source name '{source.name}' is used twice",
                             doc.line_of(("name",)), hint="source names must be unique")
                continue
            definition_sources[source.name] = source
            where[id(source)] = Located(doc)
            check_paths(problems, doc, source, root, roots)
        else:
            parsed = parse_document(ChecksFile, doc, problems)
            if parsed is not None:
                for i, check in enumerate(parsed.checks):
                    located = Located(doc, ("checks", i))
                    checks.append((check, located))
                    where[id(check)] = located

    for source in definition_sources.values():
        _cross_check_source(source, where[id(source)], definition_sources, problems)
    seen_checks: dict[str, Located] = {}
    for check, located in checks:
        name = check_name(check)
        if name in seen_checks:
            first = seen_checks[name]
            problems.add(located.doc.file, f"check name '{name}' is used twice",
                         located.line("type"),
                         f"first used in {first.doc.file}:{first.line('type')}; "
                         "give one of them a `name:`")
        seen_checks.setdefault(name, located)
        if check.source in unparsed or getattr(check, "to", None) in unparsed:
            continue
        _cross_check_check(check, located, definition_sources, problems)

    if identity is not None and identity_at is not None:
        _cross_check_identity(identity, identity_at, definition_sources, problems)
    if config is None:
        return None, problems
    return ProjectDefinition(
        root=root, config=config, sources=definition_sources,
        checks=[c for c, _ in checks], identity=identity, where=where,
        warnings=[str(p) for p in problems.warnings],
    ), problems


def closest(word: str, options: list[str], prefix: str = "") -> str | None:
    """A "did you mean" hint; ``prefix``, shared by every option, is left out of the
    likeness (extra_employer is not close to extra_passport)."""
    n = len(prefix)
    close = difflib.get_close_matches(word[n:], [o[n:] for o in options], n=1)
    return f"did you mean '{prefix}{close[0]}'?" if close else None


def _check_targets(entity_name: str, columns: dict[str, Any], at: Located,
                   problems: Problems) -> None:
    entity = ENTITIES[entity_name]
    fields = entity.field_names
    for target in columns:
        if target not in fields:
            problems.add(at.doc.file, f"'{target}' is not a field of the {entity.name} entity",
                         at.line("columns", target),
                         closest(target, fields) or f"fields: {', '.join(fields)}")
    for f in entity.fields:
        if f.required and f.name not in columns:
            problems.add(at.doc.file, f"required field '{f.name}' of {entity.name} is not mapped",
                         at.line("columns"), f"add `{f.name}: <source column>` under columns")


def _check_targets_alone(doc: YamlDoc, problems: Problems) -> None:
    """A source file with a shape error elsewhere still gets its mapping checked, so one
    `validate` shows every problem of the file."""
    from pydantic import TypeAdapter

    parts = {}
    for key in ("entity", "columns"):
        try:
            parts[key] = TypeAdapter(SourceConfig.model_fields[key].annotation).validate_python(
                doc.data.get(key))
        except ValidationError:
            return  # already reported with the file's problems
    _check_targets(parts["entity"], parts["columns"], Located(doc), problems)


def _cross_check_source(source: SourceConfig, at: Located, sources: dict[str, SourceConfig],
                        problems: Problems) -> None:
    _check_targets(source.entity, source.columns, at, problems)
    if source.customer_source is not None:
        ref = sources.get(source.customer_source)
        if ref is None:
            problems.add(at.doc.file,
                         f"customer_source '{source.customer_source}' is not a source",
                         at.line("customer_source"),
                         closest(source.customer_source, list(sources)))
        elif ref.entity != "customers":
            problems.add(at.doc.file,
                         f"customer_source '{source.customer_source}' maps {ref.entity}, "
                         "not customers", at.line("customer_source"))
    if source.is_file and source.incremental.key:
        problems.add(at.doc.file, "incremental.key is ignored for files: files are tracked by "
                     "fingerprint", at.line("incremental", "key"), severity="warning")


def _cross_check_check(check: CheckConfig, at: Located, sources: dict[str, SourceConfig],
                       problems: Problems) -> None:
    source = sources.get(check.source)
    if source is None:
        problems.add(at.doc.file, f"check on unknown source '{check.source}'", at.line("source"),
                     closest(check.source, list(sources)))
        return
    columns = [*ENTITIES[source.entity].field_names, *LINEAGE_COLUMNS]
    if isinstance(check, RowCountCheck):
        return
    targets = check.column if isinstance(check, UniqueCheck) else [check.column]
    for col in [targets] if isinstance(targets, str) else targets:
        if col not in columns:
            problems.add(at.doc.file, f"'{col}' is not a column of stg_{source.name}",
                         at.line("column"), closest(col, columns))
    if isinstance(check, RelationshipsCheck):
        ref = sources.get(check.to)
        if ref is None:
            problems.add(at.doc.file, f"relationships check refers to unknown source '{check.to}'",
                         at.line("to"), closest(check.to, list(sources)))
        elif check.field not in [*ENTITIES[ref.entity].field_names, *LINEAGE_COLUMNS]:
            problems.add(at.doc.file, f"'{check.field}' is not a column of stg_{ref.name}",
                         at.line("field"), closest(check.field, ENTITIES[ref.entity].field_names))


def _cross_check_identity(identity: IdentityConfig, at: Located,
                          sources: dict[str, SourceConfig], problems: Problems) -> None:
    customer_sources = [s.name for s in sources.values() if s.entity == "customers"]

    def known(name: str, *loc: str | int) -> None:
        if name not in customer_sources:
            problems.add(at.doc.file, f"'{name}' is not a customers source", at.line(*loc),
                         closest(name, customer_sources)
                         or f"customers sources: {', '.join(customer_sources) or 'none'}")

    extra = sorted({f"extra_{n}" for s in sources.values() if s.entity == "customers"
                    for n in s.extra_fields})

    def field_known(field: str, *loc: str | int) -> None:
        if field.startswith("extra_") and field not in extra:
            problems.add(at.doc.file, f"'{field}' is no customer source's extra field",
                         at.line(*loc), closest(field, extra, prefix="extra_")
                         or "declare it in a customer source: "
                         f"`extra_fields: {{{field[6:]}: <column>}}`")

    for i, key in enumerate(identity.keys):
        field_known(key.field, "keys", i, "field")
        for name in key.sources or []:
            known(name, "keys", i, "sources")
    probabilistic = identity.probabilistic
    for i, comparison in enumerate(probabilistic.comparisons):
        field_known(comparison.field, "probabilistic", "comparisons", i, "field")
    for i, rule in enumerate(probabilistic.blocking_rules):
        for rule_field in rule:
            field_known(rule_field, "probabilistic", "blocking", i)
    for name in identity.survivorship.source_priority:
        known(name, "survivorship", "source_priority")
    for name in identity.survivorship.fields:
        if name in CONSENT_FIELDS:
            problems.add(at.doc.file, f"'{name}' has no survivorship rule: consent always "
                         "follows the latest choice", at.line("survivorship", "fields", name),
                         "remove this line")
        elif name not in IDENTITY_FIELDS:
            problems.add(at.doc.file, f"'{name}' is not a field of the golden record",
                         at.line("survivorship", "fields", name),
                         closest(name, list(IDENTITY_FIELDS)))
    for i, pin in enumerate(identity.pins):
        for ref in pin.records:
            source, sep, record = ref.partition(":")
            if not sep or not record:
                problems.add(at.doc.file, f"pin record '{ref}' is not source:record_id",
                             at.line("pins", i, "records"), "e.g. crm_contacts:CRM-000123")
            else:
                known(source, "pins", i, "records")
