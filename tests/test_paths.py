"""Paths named by project files and requests stay inside the project folder (issue 14.1).

A candidate identity.yml sent to the API, a source file, an export destination: each path is
resolved (``..`` and symbolic links followed) and refused outside the project folder unless
``allowed_paths`` in passerelle.yml lists its folder; an export never overwrites a file it
did not write.
"""

from __future__ import annotations

import csv
import hashlib
import textwrap
from datetime import datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

import passerelle
from activation_helpers import build_audience, build_profiles
from api_helpers import authorize
from passerelle.activation import DestinationError, export_csv, parse_destination
from passerelle.api import create_server
from passerelle.definition import load_project
from passerelle.engines.base import Engine
from passerelle.errors import ProjectError
from passerelle.project.paths import PathNotAllowed
from passerelle.project.schema import json_schema
from passerelle.sources.inspect import inspect_sources
from splink_synthetic import synthetic_records

SENTINEL = "written by someone else\n"
COLUMNS = ("customer_id", "first_name", "last_name", "birth_date", "postcode", "city",
           "address_line1")


def write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return root


def tiny_project(root: Path, source_path: str = "data/c.csv", extra: str = "") -> Path:
    return write(root, {
        "passerelle.yml": f"name: tiny\n{extra}",
        "sources/crm.yml": f"""
            entity: customers
            connector:
              type: csv
              path: {source_path}
            columns:
              customer_id: id
              email: mail
        """,
        "data/c.csv": "id,mail\n1,a@x.fr\n",
    })


def problems_of(root: Path) -> list[str]:
    with pytest.raises(ProjectError) as info:
        load_project(root)
    return [str(p) for p in info.value.problems]


# -- the API's identity diff ---------------------------------------------------------
@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """A run project of ~100 customer records (enough to train Splink) behind the API; its
    identity.yml has no probabilistic matching, so every candidate preview trains a model."""
    base = tmp_path_factory.mktemp("diff")
    root = base / "project"
    records, _ = synthetic_records(60, seed=3)
    (root / "data").mkdir(parents=True)
    with (root / "data" / "customers.csv").open("w", newline="", encoding="utf-8") as f:
        out = csv.writer(f)
        out.writerow(COLUMNS)
        for row in records.select(list(COLUMNS)).to_pylist():
            out.writerow(["" if row[c] is None else row[c] for c in COLUMNS])
    write(root, {
        "passerelle.yml": "name: tiny\n",
        "sources/crm.yml": """
            entity: customers
            connector: {type: csv, path: data/customers.csv}
            columns: {customer_id: customer_id, first_name: first_name,
                      last_name: last_name, birth_date: birth_date, postcode: postcode,
                      city: city, address_line1: address_line1}
        """,
        "identity.yml": "keys: [{field: customer_id}]\nprobabilistic: {enabled: false}\n",
    })
    project = passerelle.open(root)
    assert project.run().ok
    with TestClient(create_server(project, loader=False),
                    base_url="http://localhost") as client:
        yield authorize(client, project), root, base
    project.close()


def _snapshot(folder: Path) -> dict[str, str]:
    """Every file of the project but the warehouse and the application database (the
    server writes its audit log there: who asked for the diff)."""
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and p.suffix != ".duckdb"
            and ".wal" not in p.name and not p.name.startswith("app.db")}


CANDIDATE = """\
keys: [{field: customer_id}]
probabilistic:
  comparisons:
    - {field: first_name, method: name}
    - {field: last_name, method: name}
    - {field: birth_date, method: exact}
  model_path: MODEL
"""


@pytest.mark.parametrize("kind", ["absolute", "dotdot"])
def test_api_diff_never_writes_outside_the_project(served, kind):
    client, root, base = served
    sentinel = base / f"sentinel-{kind}.json"
    sentinel.write_text(SENTINEL)
    model = str(sentinel) if kind == "absolute" else f"../{sentinel.name}"
    before = _snapshot(root)
    response = client.post("/api/identity/diff", content=CANDIDATE.replace("MODEL", model),
                           headers={"content-type": "application/yaml"})
    assert response.status_code == 422, response.text
    [problem] = response.json()["problems"]
    assert problem["line"] == 7 and "outside the project folder" in problem["message"]
    assert sentinel.read_text() == SENTINEL
    assert _snapshot(root) == before


def test_api_diff_trains_its_model_in_a_temporary_folder(served):
    client, root, base = served
    before, around = _snapshot(root), sorted(p.name for p in base.iterdir())
    response = client.post("/api/identity/diff",
                           content=CANDIDATE.replace("MODEL", "identity/model.json"),
                           headers={"content-type": "application/yaml"})
    assert response.status_code == 200, response.text
    assert response.json()["model_trained_for_preview"] is True
    assert _snapshot(root) == before  # no model saved in the project
    assert sorted(p.name for p in base.iterdir()) == around


# -- source files --------------------------------------------------------------------
def test_source_outside_the_project_is_a_validation_error(tmp_path):
    outside = tmp_path / "elsewhere" / "c.csv"
    outside.parent.mkdir()
    outside.write_text("id,mail\n1,a@x.fr\n")
    for path in (str(outside), "../elsewhere/c.csv", "../elsewhere/*.csv"):
        root = tiny_project(tmp_path / "p", path)
        [problem] = problems_of(root)
        assert problem.startswith("sources/crm.yml:4: connector.path:"), problem
        assert "outside the project folder" in problem and "allowed_paths" in problem


def test_allowed_paths_lets_a_folder_in(tmp_path):
    outside = tmp_path / "elsewhere" / "c.csv"
    outside.parent.mkdir()
    outside.write_text("id,mail\n1,a@x.fr\n")
    root = tiny_project(tmp_path / "p", str(outside), f"allowed_paths: [{outside.parent}]\n")
    project = load_project(root)
    assert project.config.allowed_paths == [str(outside.parent)]
    assert "allowed_paths" in json_schema("passerelle")["properties"]
    assert inspect_sources(project).errors == []


def test_a_link_out_of_the_project_is_refused(tmp_path):
    secret = tmp_path / "secret.csv"
    secret.write_text("id,mail\n1,a@x.fr\n")
    root = tiny_project(tmp_path / "p", "data/*.csv")
    (root / "data" / "link.csv").symlink_to(secret)
    project = load_project(root)  # the pattern itself stays inside
    [problem] = inspect_sources(project).errors
    assert (problem.file, problem.line) == ("sources/crm.yml", 4)
    assert "outside the project folder" in problem.message


def test_every_path_field_is_checked(tmp_path):
    root = write(tiny_project(tmp_path / "p"), {
        "identity.yml": "probabilistic: {model_path: /etc/model.json}\n",
        "destinations/out.yml": "type: csv\npath: ../{audience}.csv\n",
    })
    (root / "passerelle.yml").write_text("name: t\nengine: {type: duckdb, path: /tmp/w.duckdb}\n")
    found = problems_of(root)
    assert any(p.startswith("passerelle.yml:2: engine.path:") for p in found), found
    assert any(p.startswith("identity.yml:1: probabilistic.model_path:") for p in found), found
    assert any(p.startswith("destinations/out.yml:2: path:") for p in found), found


# -- exports -------------------------------------------------------------------------
def _warehouse(engine: Engine) -> None:
    build_profiles(engine)
    build_audience(engine, "vip", ["p1", "p2"], [], "run1", datetime(2026, 11, 1, 8))


def test_export_outside_the_project_is_refused(duckdb_engine: Engine, tmp_path: Path) -> None:
    _warehouse(duckdb_engine)
    root = tiny_project(tmp_path / "p")
    dest = parse_destination({"type": "csv", "path": "../outside/{audience}.csv"})
    with pytest.raises(PathNotAllowed, match="outside the project folder"):
        export_csv(duckdb_engine, "vip", dest, root=root)
    assert not (tmp_path / "outside").exists()


def test_export_never_overwrites_a_foreign_file(duckdb_engine: Engine, tmp_path: Path) -> None:
    _warehouse(duckdb_engine)
    dest = parse_destination({"type": "csv", "path": "exports/vip.csv"})
    first = export_csv(duckdb_engine, "vip", dest, root=tmp_path)
    again = export_csv(duckdb_engine, "vip", dest, root=tmp_path)  # its own file: replaced
    assert again.status == "delivered" and again.sha256 == first.sha256
    target = tmp_path / "exports" / "vip.csv"
    target.write_text(SENTINEL)  # someone edits or replaces the file
    with pytest.raises(DestinationError, match="Remove or rename that file"):
        export_csv(duckdb_engine, "vip", dest, root=tmp_path)
    assert target.read_text() == SENTINEL
