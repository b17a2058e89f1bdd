"""A project's run reads its files as `validate` does: a fixed connector setting fixes the
project, a broken one breaks both, and `--reload` reads a source again on purpose."""

from __future__ import annotations

from pathlib import Path

import pytest

import passerelle
from passerelle.errors import PasserelleError

SOURCE = """entity: customers
connector:
  type: csv
  path: data/crm.csv
  delimiter: {delimiter}
columns:
  customer_id: id
  email: email
"""


def project(root: Path, delimiter: str) -> Path:
    (root / "sources").mkdir(parents=True, exist_ok=True)
    (root / "data").mkdir(exist_ok=True)
    (root / "passerelle.yml").write_text("name: shop\n")
    (root / "sources" / "crm.yml").write_text(SOURCE.format(delimiter=delimiter))
    if not (root / "data" / "crm.csv").exists():
        (root / "data" / "crm.csv").write_bytes(b"id;email\n1;a@x.fr\n2;b@x.fr\n")
    return root


def validate_and_run(root: Path) -> tuple[int, passerelle.core.RunResult]:
    with passerelle.open(root) as proj:
        problems = len(proj.validate().errors)
        return problems, proj.run()


def test_validate_and_run_agree_when_a_delimiter_is_broken_then_fixed(tmp_path):
    problems, result = validate_and_run(project(tmp_path, "';'"))
    assert problems == 0 and result.ok

    problems, result = validate_and_run(project(tmp_path, "','"))  # wrong for this file
    assert problems == 2 and not result.ok  # run fails as validate does
    assert "raw_crm does not have" in result.errors[0].reason

    problems, result = validate_and_run(project(tmp_path, "auto"))  # fixed: the project too
    assert problems == 0 and result.ok, [e.reason for e in result.errors]
    assert result.stages["crm"].rows_staged == 2
    assert any("delimiter ',' -> ';'" in m for m in result.loads["crm"].messages)


def test_reload_option_names_a_source(tmp_path):
    with passerelle.open(project(tmp_path, "auto")) as proj:
        assert proj.run().ok
        again = proj.run(reload=["crm"])
        assert again.ok and again.loads["crm"].units_replaced == 1
        assert again.stages["crm"].rows_staged == 2  # staged again from the new load
        with pytest.raises(PasserelleError, match="no source named 'crn'"):
            proj.run(reload=["crn"])
