"""`passerelle quarantine` and `passerelle checks` on a starter project with one malformed
line, at 80 columns: the load-time row says `load`, and why, with file and row."""

from __future__ import annotations

import json

from test_cli import cli


def test_quarantine_and_checks_without_sql(tmp_path):
    project = tmp_path / "shop"
    assert cli("init", str(project)).returncode == 0
    data = project / "data" / "contacts.csv"
    with data.open("ab") as f:  # one separator too many
        f.write("C999;Zoé;Roux;zoe@example.fr;;;;75001;Paris;oui;2026-02-03 17:45:00\n"
                .encode("latin-1"))
    run = cli("run", "-p", str(project))
    assert run.returncode == 0, run.stdout + run.stderr

    counts = cli("quarantine", "-p", str(project), columns=80)
    assert counts.returncode == 0, counts.stderr
    line = next(x for x in counts.stdout.splitlines() if "csv_too_many_columns" in x)
    assert "load" in line and "…" not in line

    rows = json.loads(cli("quarantine", "-p", str(project), "--sample", "5", "--json").stdout)
    [bad] = [r for r in rows if r["reason"] == "csv_too_many_columns"]
    assert bad["stage"] == "load" and bad["source_file"] == "data/contacts.csv"
    assert bad["detail"].startswith(f"data/contacts.csv, row {bad['source_row']}: 11 columns "
                                    "where the header has 10")
    assert "Expected Number of Columns" not in bad["detail"] and "C999;Zo" in bad["detail"]
    sample = cli("quarantine", "-p", str(project), "--sample", "5", "--source", "contacts",
                 columns=80)
    assert "csv_too_many_columns" in sample.stdout and all(
        len(x) <= 80 for x in sample.stdout.splitlines())
    assert "Nothing in quarantine for this filter." in cli(
        "quarantine", "-p", str(project), "--reason", "nope").stdout

    checks = cli("checks", "-p", str(project), columns=80)
    assert checks.returncode == 0, checks.stderr
    names = [x for x in checks.stdout.splitlines() if x.startswith("│")]
    assert len(names) == 2 and all("pass" in x for x in names)
    history = json.loads(cli("checks", "-p", str(project), "--history", "--json").stdout)
    assert len(history) == 2 and {"name", "passed", "checked_at"} <= set(history[0])
