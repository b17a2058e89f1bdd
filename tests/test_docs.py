"""Docs that cannot drift: generated reference pages match the code; examples parse."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from passerelle.docgen import PAGES, REFERENCE

DOCS = Path(__file__).resolve().parents[1] / "docs"


@pytest.mark.parametrize("page", sorted(PAGES))
def test_reference_page_is_up_to_date(page):
    committed = (REFERENCE / page).read_text(encoding="utf-8")
    assert committed == PAGES[page](), (
        f"docs/reference/{page} is stale: run `python -m passerelle.docgen` and commit it")


def test_every_command_is_documented():
    import typer.main

    from passerelle.cli import app
    from passerelle.docgen import _commands

    page = (REFERENCE / "cli.md").read_text(encoding="utf-8")
    names = [name for name, _ in _commands(typer.main.get_command(app), "passerelle")]
    assert "passerelle identity merge" in names
    for name in names:
        assert f"## `{name}`" in page


def _yaml_blocks(text: str) -> list[tuple[int, str]]:
    """(line, text) of every ```yaml block."""
    return [(text.count("\n", 0, m.start()) + 2, m.group(1))
            for m in re.finditer(r"```yaml\n(.*?)```", text, flags=re.S)]


#: What an excerpt (``# passerelle.yml (excerpt)``) is merged into: the smallest valid file.
EXCERPT_BASE = {"passerelle.yml": {"name": "example"}}
LABEL = re.compile(r"# ([\w./-]+\.ya?ml)( \(excerpt\))?\n")


def _file_problems(root: Path, file: str) -> list[str]:
    """The problems the project loader finds in ``file`` of the project at ``root``, read by
    the reader of its kind (only the file's own checks: the other files are not there)."""
    from passerelle.collect.plan import load_plan
    from passerelle.errors import Problems, ProjectError
    from passerelle.metrics.load import read_metrics
    from passerelle.project.destinations_models import load_destinations
    from passerelle.project.experiments_models import load_experiments
    from passerelle.project.identity_models import IdentityConfig
    from passerelle.project.load import parse_document, read_documents
    from passerelle.project.models import ChecksFile, ProjectConfig, SourceConfig
    from passerelle.segments import read_segments
    from passerelle.traits.files import load_traits

    problems = Problems()
    kind = file.split("/")[0] if "/" in file else file
    from passerelle.project.consent_models import ConsentConfig

    models = {"passerelle.yml": ProjectConfig, "identity.yml": IdentityConfig,
              "consent.yml": ConsentConfig,
              "sources": SourceConfig, "checks": ChecksFile}
    readers = {"traits": load_traits, "metrics": read_metrics, "segments": read_segments,
               "experiments": load_experiments}
    try:
        if kind in models:
            for doc in read_documents(root, file, problems):
                if kind == "sources":  # the file name is the default name
                    doc.data.setdefault("name", Path(file).stem)
                parse_document(models[kind], doc, problems)
        elif kind in readers:
            readers[kind](root, problems)
        elif kind == "destinations":
            load_destinations(root)
        elif kind in ("offers", "placements"):
            from passerelle.personalize.validate import load_offers

            problems.items.extend(load_offers(root)[1].items)
        elif kind == "tracking-plan.yml":
            load_plan(root, file)
        else:
            return [f"'{file}' is not a kind of project file this test knows"]
    except ProjectError as exc:
        problems.items.extend(exc.problems)
    return [str(p) for p in problems.errors]


@pytest.mark.parametrize("doc", sorted(p.name for p in DOCS.glob("*.md")))
def test_yaml_examples_in_docs_are_valid(doc, tmp_path, monkeypatch):
    """Every ```yaml block in docs/ names the project file it shows on its first line
    (``# sources/crm.yml``; ``# passerelle.yml (excerpt)`` for a part of one) and is valid
    as that file: written into a project folder and read by the loader of its kind."""
    for line, block in _yaml_blocks((DOCS / doc).read_text(encoding="utf-8")):
        label = LABEL.match(block)
        assert label, (f"docs/{doc}:{line}: start the yaml block with the project file it "
                       "shows, e.g. `# sources/crm_contacts.yml`")
        file, excerpt = label.group(1), bool(label.group(2))
        for name in re.findall(r"\$\{(\w+)\}", block):  # secrets: any long enough value
            monkeypatch.setenv(name, "x" * 32)
        if excerpt:
            assert file in EXCERPT_BASE, f"docs/{doc}:{line}: no excerpt of {file}"
            data = {**EXCERPT_BASE[file], **yaml.safe_load(block)}
            block = yaml.safe_dump(data)
        root = tmp_path  # one project a page: a block may use what an earlier one declared
        (root / file).parent.mkdir(parents=True, exist_ok=True)
        (root / file).write_text(block, encoding="utf-8")
        assert _file_problems(root, file) == [], f"docs/{doc}:{line}"


def test_every_api_route_is_documented():
    from passerelle.api.routes import build_router

    page = (DOCS / "api.md").read_text(encoding="utf-8")
    router = build_router(project=None)  # routes only; no request is served
    for route in router.routes:
        for method in route.methods:
            assert f"`{method} {route.path}" in page, f"{method} {route.path} not in docs/api.md"
