"""The command line as a user runs it: real processes, exit codes, no tracebacks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


def cli(*args: str, cwd: Path | None = None, columns: int = 200) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", "from passerelle.cli import main; main()", *args],
        capture_output=True, text=True, cwd=cwd, env=cli_env(columns),
    )


def cli_env(columns: int = 200) -> dict[str, str]:
    """A user's environment: a terminal this wide, no variable of the test run."""
    return {"COLUMNS": str(columns), "PATH": "/usr/bin:/bin", "HOME": str(Path.home()),
            **_pythonpath()}


def _pythonpath() -> dict[str, str]:
    # a worktree's code, when PYTHONPATH points at it, rather than the installed copy
    return {"PYTHONPATH": os.environ["PYTHONPATH"]} if "PYTHONPATH" in os.environ else {}


def test_init_validate_run_status(tmp_path):
    project = tmp_path / "shop"
    init = cli("init", str(project))
    assert init.returncode == 0, init.stderr
    assert (project / "passerelle.yml").exists()

    validate = cli("validate", "-p", str(project))
    assert validate.returncode == 0, validate.stdout + validate.stderr
    assert "1 source, 2 checks, all valid" in validate.stdout

    run = cli("run", "-p", str(project))
    assert run.returncode == 0, run.stdout + run.stderr
    assert "contacts" in run.stdout and "Traceback" not in run.stderr

    status = cli("status", "-p", str(project))
    assert status.returncode == 0
    for step in ("load", "stage", "checks", "unify", "identity"):
        assert step in status.stdout

    again = cli("init", str(project))
    assert again.returncode == 1 and "already holds a Passerelle project" in again.stderr


def test_validate_reports_problems_with_exit_code_1(tmp_path):
    cli("init", str(tmp_path / "p"))
    source = tmp_path / "p" / "sources" / "contacts.yml"
    source.write_text(source.read_text().replace("  email: email", "  emial: email")
                      .replace("ville", "town"))
    result = cli("validate", "-p", str(tmp_path / "p"))
    assert result.returncode == 1
    out = result.stdout + result.stderr
    assert "sources/contacts.yml:15" in out and "did you mean 'email'" in out
    assert "Traceback" not in out


def test_validate_finds_unknown_column_and_missing_file(tmp_path):
    cli("init", str(tmp_path / "p"))
    source = tmp_path / "p" / "sources" / "contacts.yml"
    source.write_text(source.read_text().replace("city: ville", "city: town"))
    result = cli("validate", "-p", str(tmp_path / "p"))
    assert result.returncode == 1
    assert "column 'town' (mapped to city) is not in the source" in result.stdout
    (tmp_path / "p" / "data" / "contacts.csv").unlink()
    result = cli("validate", "-p", str(tmp_path / "p"))
    assert result.returncode == 1 and "data/contacts.csv" in result.stdout


def test_schema_prints_json_schema(tmp_path):
    result = cli("schema", "source")
    assert result.returncode == 0
    assert json.loads(result.stdout)["title"] == "SourceConfig"
    written = cli("schema", "--out", str(tmp_path / "s"))
    assert written.returncode == 0
    assert sorted(p.name for p in (tmp_path / "s").iterdir()) == [
        "checks.schema.json", "destination.schema.json", "identity.schema.json",
        "metrics.schema.json", "passerelle.schema.json", "segment.schema.json",
        "source.schema.json", "traits.schema.json"]
    bad = cli("schema", "nope")
    assert bad.returncode == 1 and "Unknown schema 'nope'" in bad.stderr


def test_not_a_project_is_a_clear_error(tmp_path):
    result = cli("run", "-p", str(tmp_path))
    assert result.returncode == 1
    assert "has no passerelle.yml" in result.stderr and "Traceback" not in result.stderr
    # what to do, not "fix them, then check with `passerelle validate`"
    assert "passerelle init DIR" in result.stderr and "-p DIR" in result.stderr
    assert "validate" not in result.stderr


@pytest.mark.parametrize("args", [["run", "--source", "nope"]])
def test_unknown_source(tmp_path, args):
    cli("init", str(tmp_path / "p"))
    result = cli(*args, "-p", str(tmp_path / "p"))
    assert result.returncode == 1
    assert "There is no source named 'nope'" in result.stderr
    assert "Sources of this project: contacts" in result.stderr
