"""`passerelle identity suggest`: a commented identity.yml from the staged records, on
hand-made records whose right proposal is known; written only inside the project."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
import yaml

from identity_golden_helpers import customer_records, record
from passerelle.errors import PasserelleError
from passerelle.identity import service
from passerelle.project.identity_models import IdentityConfig
from passerelle.project.load import ProjectDefinition
from passerelle.project.models import ProjectConfig
from passerelle.project.paths import PathNotAllowed

FIRST = ["Anne", "Paul", "Marc", "Lena", "Hugo", "Jade", "Noah", "Emma"]
LAST = ["Schmidt", "Weber", "Wagner", "Becker", "Hoffmann", "Koch", "Richter"]


def _records(engine) -> None:
    rows = []
    for i in range(120):
        rows.append(record(
            "crm", str(i), first_name=FIRST[i % 8], last_name=LAST[i % 7],
            birth_date=dt.date(1950, 1, 1) + dt.timedelta(days=37 * i),
            postcode=f"{10115 + i % 40}", address_line1=f"{i % 30} Hauptstraße",
            city="Berlin" if i % 2 else "Potsdam", country="DE", gender="FM"[i % 2],
            email=f"p{i}@example.de" if i % 3 else None,
            region="Brandenburg" if i == 0 else None))
    customer_records(engine, rows)


def test_proposal_fits_the_records(engine, tmp_path):
    _records(engine)
    project = ProjectDefinition(root=tmp_path, config=ProjectConfig(name="t"))
    text = service.suggest(project, engine)
    config = IdentityConfig.model_validate(yaml.safe_load(text))
    assert [k.field for k in config.keys] == ["email"]  # 67 % filled, every value distinct
    methods = {c.field: c.method for c in config.probabilistic.comparisons}
    assert methods == {"first_name": "name", "last_name": "name", "birth_date": "date",
                       "address_line1": "address", "postcode": "postcode", "city": "exact",
                       "gender": "exact"}
    assert config.probabilistic.blocking == "auto"
    assert "# left out: country (one value only)" in text
    assert "# left out: region (filled in on 0.8% of records)" in text
    assert "1,012,000 candidate pairs (1,000,000 + 100 x 120 records)" in text
    assert "blocking: auto would choose today:" in text


def test_written_inside_the_project_and_never_over_a_file(duckdb_engine, tmp_path):
    _records(duckdb_engine)
    project = ProjectDefinition(root=tmp_path, config=ProjectConfig(name="t"))
    text = service.suggest(project, duckdb_engine, Path("proposed.yml"))
    assert (tmp_path / "proposed.yml").read_text() == text
    with pytest.raises(PasserelleError, match="--force"):
        service.suggest(project, duckdb_engine, Path("proposed.yml"))
    service.suggest(project, duckdb_engine, Path("proposed.yml"), force=True)
    with pytest.raises(PathNotAllowed):
        service.suggest(project, duckdb_engine, Path("../elsewhere.yml"))
