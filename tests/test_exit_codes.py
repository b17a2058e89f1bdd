"""Every exit code of the documented table (docs/project.md, "Exit codes"), each produced
the way a user meets it, on the starter project."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from passerelle.errors import EXIT_CODES_HELP, ExitCode, worst

CLV_TRAIT = """traits:
  - name: clv
    description: Spend expected over a year
    owner: Data team
    type: builtin
    builtin: clv
    horizon_days: 365
"""


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", "from passerelle.cli import main; main()",
                           *args], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "COLUMNS": "200"})


@pytest.fixture(scope="module")
def starter(tmp_path_factory) -> Path:
    """The starter project, run once (exit 0: everything ran); tests change a copy, so
    their runs are incremental and cheap."""
    root = tmp_path_factory.mktemp("codes") / "shop"
    assert cli("init", str(root)).returncode == 0
    run = cli("run", "-p", str(root))
    assert run.returncode == ExitCode.OK, run.stdout + run.stderr
    return root


def copy_of(starter: Path, tmp_path: Path) -> Path:
    import shutil

    return Path(shutil.copytree(starter, tmp_path / "shop"))


def test_the_table_is_in_help_and_docs():
    help_text = cli("--help").stdout
    assert "Exit codes:" in help_text and "4 ran in part" in " ".join(help_text.split())
    docs = (Path(__file__).parents[1] / "docs" / "project.md").read_text()
    for code in ExitCode:
        assert f"| {int(code)} |" in docs, f"exit code {int(code)} is not in docs/project.md"
    assert EXIT_CODES_HELP.startswith("Exit codes: 0 done")


def test_worst_code_wins():
    assert worst([]) == ExitCode.OK
    assert worst([ExitCode.PARTIAL, ExitCode.USER_ERROR]) == ExitCode.USER_ERROR
    assert worst([ExitCode.PARTIAL, ExitCode.EXTERNAL_ERROR, 1]) == ExitCode.EXTERNAL_ERROR
    assert worst([4, 3, 2]) == ExitCode.INTERNAL_ERROR


def test_0_when_everything_ran(starter):
    status = cli("status", "-p", str(starter), "--json")
    assert status.returncode == 0 and '"status": "failed"' not in status.stdout


@pytest.mark.parametrize("args", [("status", "--nope"), ("segment", "count"),
                                  ("segment", "nope"), ("nope",)])
def test_1_for_a_mistyped_command_line(args):
    run = cli(*args)
    assert run.returncode == ExitCode.USER_ERROR, run.stderr
    assert "Traceback" not in run.stderr


def test_1_for_a_bad_project_or_input(starter, tmp_path):
    root = copy_of(starter, tmp_path)
    unknown = cli("segment", "count", "nobody_here", "-p", str(root))
    assert unknown.returncode == 1 and "no segment" in unknown.stderr
    source = root / "sources" / "contacts.yml"
    source.write_text(source.read_text().replace("  email: email", "  emial: email"))
    for command in ("validate", "run"):
        bad = cli(command, "-p", str(root))
        assert bad.returncode == 1, command + bad.stdout + bad.stderr
    outside = cli("status", "-p", str(tmp_path / "nowhere"))
    assert outside.returncode == 1 and "not a Passerelle project" in " ".join(
        outside.stderr.split())


def test_2_when_a_file_outside_passerelle_is_missing(starter, tmp_path):
    root = copy_of(starter, tmp_path)
    (root / "data" / "contacts.csv").unlink()
    run = cli("run", "-p", str(root))
    assert run.returncode == ExitCode.EXTERNAL_ERROR, run.stdout + run.stderr
    assert "File not found: data/contacts.csv" in run.stderr


def test_3_for_a_bug(monkeypatch, capsys):
    """An exception Passerelle did not mean to raise: exit 3, no traceback, a hint."""
    from passerelle import cli as cli_module
    from passerelle.cli.common import app

    @app.command("__boom", hidden=True)
    def boom() -> None:
        raise ZeroDivisionError("planted")

    try:
        monkeypatch.setattr(sys, "argv", ["passerelle", "__boom"])
        monkeypatch.delenv("PASSERELLE_DEBUG", raising=False)
        with pytest.raises(SystemExit) as ended:
            cli_module.main()
    finally:
        app.registered_commands.pop()
    assert ended.value.code == ExitCode.INTERNAL_ERROR
    err = capsys.readouterr().err
    assert "Internal error" in err and "planted" in err and "Traceback" not in err


def test_4_when_a_trait_fails_during_run(starter, tmp_path):
    root = copy_of(starter, tmp_path)
    (root / "traits").mkdir()
    (root / "traits" / "customer.yml").write_text(CLV_TRAIT)  # no orders: clv cannot fit
    run = cli("run", "-p", str(root))
    assert run.returncode == ExitCode.PARTIAL, run.stdout + run.stderr
    assert "traits failed: clv" in run.stderr
    status = cli("status", "-p", str(root), "--json")
    assert '"status": "failed"' in status.stdout


def test_4_when_an_error_check_fails(starter, tmp_path):
    root = copy_of(starter, tmp_path)
    checks = root / "checks" / "quality.yml"
    checks.write_text(checks.read_text().replace("severity: warn\n    tolerance: 1",
                                                 "severity: error\n    tolerance: 0"))
    csv = root / "data" / "contacts.csv"
    csv.write_bytes(csv.read_bytes().replace(b"helene.dupre@example.fr", b""))
    run = cli("run", "-p", str(root), "--reload", "contacts")
    assert run.returncode == ExitCode.PARTIAL, run.stdout + run.stderr
    assert "check failed" in run.stderr and "passerelle checks" in run.stderr
