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


def _yaml_blocks(text: str) -> list[str]:
    return re.findall(r"```yaml\n(.*?)```", text, flags=re.S)


@pytest.mark.parametrize("doc", sorted(p.name for p in DOCS.glob("*.md")))
def test_yaml_examples_in_docs_are_valid(doc):
    """Every ```yaml block in docs/ parses, and validates when it is a whole project file."""
    from passerelle.project.models import ChecksFile, ProjectConfig, SourceConfig

    for block in _yaml_blocks((DOCS / doc).read_text(encoding="utf-8")):
        data = yaml.safe_load(block)
        if not isinstance(data, dict):
            continue
        if "entity" in data and "connector" in data:
            data.setdefault("name", "example")
            SourceConfig.model_validate(data)
        elif "checks" in data:
            ChecksFile.model_validate(data)
        elif "name" in data and "engine" in data:
            ProjectConfig.model_validate(data)


def test_every_api_route_is_documented():
    from passerelle.api.routes import build_router

    page = (DOCS / "api.md").read_text(encoding="utf-8")
    router = build_router(project=None)  # routes only; no request is served
    for route in router.routes:
        for method in route.methods:
            assert f"`{method} {route.path}" in page, f"{method} {route.path} not in docs/api.md"
